"""The comparison: evaluations after PPO updates, fresh and confirmed evaluation states,
spread over seeds, and the meta-training cost read from the policy file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from maml_rl.adaptation import EvaluationPoint, adapt, adaptation_sampler, policy_controller
from maml_rl.checkpoint import save_policy
from maml_rl.compare import against_benchmark, evaluation_seed, main, meta_training_cost, run_agent, run_maml
from maml_rl.compare_report import Curve, cell, summary
from maml_rl.config import load_config
from maml_rl.envs.tasks import load_evaluation_tasks
from maml_rl.evaluation import ControllerStats, Evaluation, benchmark_controller, evaluation_kicks, run_controller
from maml_rl.ppo_baseline import PPOSettings, ppo_controller, train_ppo
from maml_rl.training import environment_of, make_policy
from maml_rl.utils.torch_utils import task_slice

EPISODES = 12


@pytest.fixture(scope="module")
def config(tiny_config):
    return load_config(tiny_config)


@pytest.fixture(scope="module")
def tasks():
    return load_evaluation_tasks()


# ------------------------------------------------------------------ fresh, keyed evaluation states

def test_evaluation_seeds_are_reproducible_and_distinct_per_seed_point_and_purpose() -> None:
    keys = [(s, i, p) for s in (1, 2) for i in range(20) for p in ("check", "confirm")]
    seeds = [evaluation_seed(*key) for key in keys]
    assert len(set(seeds)) == len(keys)
    assert seeds == [evaluation_seed(*key) for key in keys]


def test_policy_and_benchmark_run_on_the_same_fresh_states(config, tasks) -> None:
    env, task = environment_of(config), tasks[3]
    policy = make_policy(config, 0)
    first = against_benchmark(policy_controller(policy), task, EPISODES, evaluation_seed(1, 0, "check"), env)
    second = against_benchmark(policy_controller(policy), task, EPISODES, evaluation_seed(1, 1, "check"), env)
    assert not np.allclose(first.initial_kicks, second.initial_kicks)
    for ev, index in ((first, 0), (second, 1)):
        kicks = evaluation_kicks(task, EPISODES, evaluation_seed(1, index, "check"), env.plane)
        np.testing.assert_array_equal(ev.initial_kicks, kicks)
        benchmark = benchmark_controller(task, env.plane, env.dynamics)
        bench = run_controller(benchmark, task, kicks, env.dynamics, env.plane)
        np.testing.assert_array_equal(ev.benchmark.lengths, bench.lengths)
        own = run_controller(policy_controller(policy), task, kicks, env.dynamics, env.plane)
        np.testing.assert_array_equal(ev.policy.lengths, own.lengths)


def test_adaptation_draws_fresh_states_at_every_point_and_test_py_keeps_its_states(config, tasks, tmp_path) -> None:
    chosen = tasks[:2]

    def points(evaluation_seed_of):
        policy = make_policy(config, 1)
        sampler = adaptation_sampler(config, policy, 1)
        seen: list[EvaluationPoint] = []
        adapt(policy, config, chosen, sampler, 2, tmp_path / str(len(list(tmp_path.iterdir()))), EPISODES, 1, 1,
              on_evaluation=seen.append, evaluation_seed=evaluation_seed_of)
        return policy, seen

    policy, fresh = points(lambda batch: evaluation_seed(1, batch, "check"))
    assert [p.batch for p in fresh] == [0, 1, 2]
    for point in fresh:
        for k, ev in enumerate(point.evaluations):
            np.testing.assert_array_equal(
                ev.initial_kicks, evaluation_kicks(ev.task, EPISODES, evaluation_seed(1, point.batch, "check")))
            # the parameters handed out with the point are the ones that were evaluated
            again = run_controller(policy_controller(policy, task_slice(point.params, k)), ev.task,
                                   ev.initial_kicks, environment_of(config).dynamics)
            np.testing.assert_array_equal(again.lengths, ev.policy.lengths)
    assert not np.allclose(fresh[0].evaluations[0].initial_kicks, fresh[1].evaluations[0].initial_kicks)
    _, default = points(None)  # test.py: the same states (seed, task) at every point, as before
    for point in default:
        np.testing.assert_array_equal(point.evaluations[0].initial_kicks, evaluation_kicks(chosen[0], EPISODES, 1))


# ------------------------------------------------------------------ the criterion needs a confirmation

def _evaluation(task, lengths: list[int], success: list[bool], bench_lengths: list[int]) -> Evaluation:
    def stats(values: list[int], ok: list[bool]) -> ControllerStats:
        zeros = np.zeros(len(values))
        return ControllerStats(np.array(values), zeros, np.array(ok), zeros)

    return Evaluation(task, np.zeros((len(lengths), 10)), stats(lengths, success),
                      stats(bench_lengths, [True] * len(bench_lengths)), None)


def test_a_pass_counts_only_when_confirmed_on_a_second_set(tasks) -> None:
    task, curve, calls = tasks[0], Curve(), []
    passing = _evaluation(task, [2, 3], [True, True], [3, 3])
    failing = _evaluation(task, [5, 5], [True, True], [3, 3])  # longer than the benchmark

    def confirm_with(result):
        return lambda: calls.append(1) or result

    curve.add(0, 0, failing, confirm_with(passing))
    assert calls == [] and curve.reached_at is None  # no confirmation asked without a pass
    curve.add(1, 100, passing, confirm_with(failing))
    assert curve.reached_at is None and curve.confirmations[0]["passed"] is False
    curve.add(2, 250, passing, confirm_with(passing))
    assert curve.reached_at == 250 and curve.budget == 250
    curve.add(3, 400, passing, confirm_with(failing))
    assert curve.reached_at == 250 and len(calls) == 2  # reached once: no more confirmations
    assert curve.interactions == [0, 100, 250, 400] and curve.length_ratio[0] == pytest.approx(5 / 3)


# ------------------------------------------------------------------ spread over seeds

def _curve(reached_at: int | None, budget: int) -> Curve:
    return Curve(reached_at=reached_at, budget=budget)


def test_cells_show_median_range_and_count_not_reached_as_beyond_budget() -> None:
    assert cell([_curve(300, 1000), _curve(100, 1000), _curve(200, 1000)]) == "200 (100 to 300), 3/3"
    assert cell([_curve(300, 1000), _curve(None, 900), _curve(100, 1000)]) == "300 (100 to > 900), 2/3"
    assert cell([_curve(None, 800), _curve(None, 900), _curve(5000, 6000)]) == "> 800 (5,000 to > 900), 1/3"
    assert cell([_curve(None, 800), _curve(None, 700)]) == "> 700 (> 700 to > 800), 0/2"  # lower median
    assert summary([_curve(0, 10), _curve(None, 10), _curve(0, 10)])["reached_at"] == [0, None, 0]


# ------------------------------------------------------------------ PPO inside the comparison

def test_ppo_points_score_a_policy_trained_on_exactly_the_labelled_steps_on_fresh_states(config, tasks) -> None:
    task, settings, curve = tasks[2], PPOSettings(n_steps=64, batch_size=32, n_epochs=2), Curve()
    run_agent("ppo", config, task, curve, 192, 64, EPISODES, 5, settings, progress=False)
    assert curve.index == [0, 1, 2, 3] and curve.interactions == [0, 64, 128, 192]
    env = environment_of(config)
    for index in (1, 3):
        model = train_ppo(config, task, curve.interactions[index], 5, progress=False, settings=settings)
        again = against_benchmark(ppo_controller(model), task, EPISODES, evaluation_seed(5, index, "check"), env)
        assert curve.length_ratio[index] == again.length_ratio()
        assert curve.success[index] == again.policy.success_rate


def test_maml_curves_are_labelled_with_each_tasks_own_interactions(config, tasks, tmp_path) -> None:
    chosen, curves = tasks[:2], {t.id: Curve() for t in tasks[:2]}
    run_maml(make_policy(config, 2), config, chosen, curves, 2, EPISODES, 2, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for k, task in enumerate(chosen):
        assert curves[task.id].index == [0, 1, 2]
        assert curves[task.id].interactions == [0] + [row["task_interactions"][k] for row in rows]


# ------------------------------------------------------------------ meta-training cost and the CLI

def test_meta_training_cost_comes_from_the_policy_metadata(config, tmp_path) -> None:
    policy = make_policy(config, 0)
    save_policy(tmp_path / "with.th", policy, {"meta_training_interactions": 2_243_228,
                                               "meta_training_wall_time": 553.4})
    save_policy(tmp_path / "without.th", policy, {"batch": 3})
    save_policy(tmp_path / "bad.th", policy, {"meta_training_interactions": True, "meta_training_wall_time": 1.0})
    assert meta_training_cost(tmp_path / "with.th") == {"interactions": 2_243_228, "wall_time": 553.4}
    assert meta_training_cost(tmp_path / "without.th") is None
    assert meta_training_cost(tmp_path / "bad.th") is None


def run(*args: str, expect: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-m", "maml_rl.compare", *args], cwd=REPO, capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_comparison_over_seeds_end_to_end(config, tiny_config, tmp_path, capsys) -> None:
    policy = make_policy(config, 7)
    save_policy(tmp_path / "meta.th", policy, {"meta_training_interactions": 12_345, "meta_training_wall_time": 67.8})
    save_policy(tmp_path / "plain.th", policy, {})
    common = ["--config", str(tiny_config), "--task-ids", "0", "3", "--ppo-steps", "128", "--ppo-n-steps", "64",
              "--ppo-eval-every", "64", "--maml-batches", "1", "--eval-episodes", "6", "--no-progress"]
    out = run(*common, "--policy", str(tmp_path / "meta.th"), "--seeds", "4", "5",
              "--output-folder", str(tmp_path), expect=0).stdout
    folder = tmp_path / "comparison" / "compare"
    report = (folder / "comparison.md").read_text()
    cost = f"meta-training cost: 12,345 interactions and 68 s of wall time (once, for all tasks; from {tmp_path}"
    assert cost in report and cost in out
    data = json.loads((folder / "comparison.json").read_text())
    assert data["seeds"] == [4, 5] and data["meta_training_cost"] == {"interactions": 12345, "wall_time": 67.8}
    for method in ("ppo", "maml_random", "maml_meta"):
        assert set(data["runs"][method]["3"]) == {"4", "5"}
        assert data["summary"][method]["3"]["seeds"] == 2
    assert data["runs"]["ppo"]["0"]["4"]["interactions"] == [0, 64, 128]
    assert "/2 |" in report.splitlines()[4]  # seeds reached out of 2
    # without --methods: the three methods and the table as before
    assert report.splitlines()[2] == ("| task | PPO from scratch | MAML adaptation from random init | "
                                      "MAML adaptation from the meta-policy |")
    assert data["methods"] == ["ppo", "maml-random", "meta-policy"]
    for name in ("comparison.png", "seed_4/maml_meta/evaluations.jsonl", "seed_5/maml_random/evaluations.jsonl"):
        assert (folder / name).stat().st_size > 0, name

    # in-process from here on (faster): --seed S is --seeds S; a policy without the cost keys
    main(["--config", str(tiny_config), "--task-ids", "0", "--ppo-steps", "64", "--ppo-n-steps", "64",
          "--maml-batches", "1", "--eval-episodes", "4", "--no-progress", "--policy", str(tmp_path / "plain.th"),
          "--seed", "4", "--output-folder", str(tmp_path / "b")])
    assert f"meta-training cost: not recorded in {tmp_path / 'plain.th'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "comparison" / "compare" / "comparison.json").read_text())["seeds"] == [4]
    for bad in (["--seeds", "1", "1"], ["--seed", "1", "--seeds", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*common, "--policy", str(tmp_path / "plain.th"), *bad, "--output-folder", str(tmp_path / "c")])
        assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
