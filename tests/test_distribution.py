"""Evaluation over the task distribution: task draws, summary statistics, figures, scripts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maml_rl.distribution import (RANDOM_TASK_FIRST_ID, distribution_figure, random_evaluation_tasks, summarise,
                                  summary_dict)
from maml_rl.envs.tasks import Task, is_admissible, sample_tasks
from maml_rl.evaluation import ControllerStats, Evaluation, evaluate
from maml_rl.seeding import task_rng
from maml_rl.verification import verification_figure


def _stats(lengths, success) -> ControllerStats:
    lengths = np.asarray(lengths, dtype=float)
    return ControllerStats(lengths=lengths, returns=-lengths, success=np.asarray(success, dtype=bool),
                           final_reward=-np.ones_like(lengths))


def _evaluation(task_id: int, policy_lengths, policy_success, bench: float, limit: float) -> Evaluation:
    n = len(policy_lengths)
    return Evaluation(task=Task(task_id, (1.0,) * 10), initial_kicks=np.zeros((n, 10)),
                      policy=_stats(policy_lengths, policy_success), benchmark=_stats([bench] * n, [True] * n),
                      limit=_stats([limit] * n, [True] * n))


def test_summary_statistics_are_the_documented_ones() -> None:
    # Ten tasks of 20 episodes: task k has policy length k + 1 and k failures (k <= 2), benchmark 4, limit 2.
    evaluations = [_evaluation(k, [k + 1.0] * 20, [True] * (20 - min(k, 2)) + [False] * min(k, 2), 4.0, 2.0)
                   for k in range(10)]
    s = summarise(evaluations)
    assert s.tasks == 10
    assert s.fraction_100 == pytest.approx(0.1)  # only task 0 has no failure
    assert s.fraction_ge_95 == pytest.approx(0.2)  # 19/20 = 95 % counts, 18/20 does not
    assert s.worst_success == pytest.approx(0.9)
    ratios = (np.arange(10) + 1.0) / 4.0
    assert s.ratio_benchmark_median == pytest.approx(np.median(ratios))
    assert s.ratio_benchmark_p90 == pytest.approx(np.percentile(ratios, 90))
    assert s.ratio_benchmark_max == pytest.approx(10 / 4)
    assert s.ratio_limit_max == pytest.approx(10 / 2) and s.ratio_limit_median == pytest.approx(np.median(ratios) * 2)
    assert set(summary_dict(evaluations)) == {"policy", "benchmark", "limit"}
    assert summary_dict(evaluations)["benchmark"]["ratio_benchmark_max"] == 1.0


def test_random_evaluation_tasks_never_coincide_with_training_draws() -> None:
    tasks = random_evaluation_tasks(30, seed=1)
    assert [t.factors for t in tasks] == [t.factors for t in random_evaluation_tasks(30, seed=1)]
    assert [t.id for t in tasks] == list(range(RANDOM_TASK_FIRST_ID, RANDOM_TASK_FIRST_ID + 30))
    assert all(is_admissible(t) for t in tasks)
    training = {t.factors for batch in range(200) for t in sample_tasks(task_rng(1, batch), 8)}
    assert not training & {t.factors for t in tasks}
    vertical = random_evaluation_tasks(10, seed=1, plane="vertical")
    assert all(is_admissible(t, "vertical") for t in vertical)
    with pytest.raises(ValueError, match="at least one"):
        random_evaluation_tasks(0, seed=1)


def test_nominal_inverse_reference_ignores_the_task() -> None:
    nominal, other = Task.nominal(7), random_evaluation_tasks(1, seed=3)[0]
    on_nominal = evaluate(None, nominal, 20, 1, nominal=True)
    # On the nominal optics it is the benchmark itself.
    np.testing.assert_array_equal(on_nominal.nominal.lengths, on_nominal.benchmark.lengths)
    on_other = evaluate(None, other, 20, 1, nominal=True)
    assert not np.array_equal(on_other.nominal.lengths, on_other.benchmark.lengths)
    assert on_other.nominal.success_rate == 1.0


@pytest.mark.parametrize("tasks", [3, 40])
def test_figures_are_written_for_few_and_many_tasks(tmp_path, tasks) -> None:
    rng = np.random.default_rng(0)
    evaluations = [_evaluation(k, rng.integers(1, 9, 12), rng.random(12) < 0.97, 4.0, 2.0) for k in range(tasks)]
    for ev in evaluations:
        ev.nominal = _stats([6.0] * 12, [True] * 12)
    assert distribution_figure(evaluations, tmp_path / "cdf.png", "test").stat().st_size > 10_000
    assert verification_figure(evaluations, tmp_path / "verification.png", "test").stat().st_size > 10_000


def test_run_maml_on_random_tasks(tmp_path) -> None:
    from test_scripts import run

    out = run("run_maml.py", "--random-tasks", "14", "--num-episodes", "3", "--output-folder", str(tmp_path)).stdout
    assert "14 tasks drawn from the task distribution" in out and "nominal" in out
    folder = tmp_path / "maml" / "run_maml"
    data = json.loads((folder / "evaluation.json").read_text())
    assert data["random_tasks"] == 14 and len(data["tasks"]) == 14
    assert set(data["summary"]) == {"policy", "nominal", "benchmark", "limit"}
    assert (folder / "distribution.png").stat().st_size > 0 and (folder / "verification.png").stat().st_size > 0


def test_test_py_reports_the_distribution_at_every_point(tmp_path) -> None:
    from test_scripts import run

    out = run("test.py", "--use-meta-policy", "--random-tasks", "13", "--num-batches", "2", "--num-episodes", "3",
              "--plot-interval", "1", "--output-folder", str(tmp_path)).stdout
    folder = tmp_path / "maml" / "test"
    rows = [json.loads(line) for line in (folder / "summary.jsonl").read_text().splitlines()]
    assert [r["batch"] for r in rows] == [0, 1, 2]
    assert {"policy", "benchmark", "limit"} <= set(rows[0])
    assert all((folder / "figures" / f"distribution_batch_{b:04d}.png").exists() for b in (0, 1, 2))
    assert out.count("success >= 95 %") == 3
