"""tune.py end to end on a tiny budget: real trainings per trial, ASHA's stopping rule on the
validation return, the outputs (table, curves, a best config train.py runs), per-trial
TensorBoard, reproducible trial configs, an interrupted search resumed by Tune's restore to
the same results, and one-line errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO

pytest.importorskip("ray.tune")  # the extra 'ray' (README's test command installs it)

from maml_rl.config import load_config  # noqa: E402
from maml_rl.distributed.search_space import space_from_dict  # noqa: E402

BUDGET, TRIALS = 3, 3
SPACE = {"fast-lr": {"loguniform": [0.001, 0.1]}, "max-kl": {"loguniform": [1e-4, 1e-2]},
         "meta-batch-size": {"choice": [2, 3]}, "fast-batch-size": {"choice": [3, 4]},
         "num-steps": {"choice": [1, 2]}, "hidden-sizes": {"choice": [[16, 16], [8, 8]]},
         "env-kwargs": {"beam_loss_penalty": {"uniform": [50, 400]}}}
PARAMETERS = ["fast-lr", "max-kl", "meta-batch-size", "fast-batch-size", "num-steps", "hidden-sizes",
              "env-kwargs.beam_loss_penalty"]
RESULT_COLUMNS = PARAMETERS + ["batches", "stopped_early", "last_val_return", "last_val_success",
                               "best_val_return", "best_val_success", "status"]


def env() -> dict[str, str]:
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1", MPLBACKEND="Agg")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tune-inputs")
    data = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    data.update({"hidden-sizes": [16, 16], "fast-batch-size": 4, "num-steps": 1, "meta-batch-size": 2,
                 "num-batches": 3, "cg-iters": 5, "ls-max-steps": 5})
    data["env-kwargs"]["max_time"] = 15
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data))
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return {"config": folder / "tiny.yaml", "space": folder / "space.yaml"}


def search_args(inputs: dict[str, Path], output: Path, name: str, seed: int = 1, samples: int = TRIALS,
                budget: int = BUDGET) -> list[str]:
    return ["tune.py", "--config", str(inputs["config"]), "--search-space", str(inputs["space"]),
            "--num-samples", str(samples), "--num-batches", str(budget), "--eval-every", "1",
            "--grace-period", "1", "--reduction-factor", "2", "--max-concurrent", "1", "--validation-tasks", "2",
            "--validation-episodes", "3", "--seed", str(seed), "--output-folder", str(output),
            "--experiment-name", name]


def run(args: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env(),
                            timeout=300)
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def table(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]


def validation_rows(row: dict[str, str]) -> list[dict]:
    path = Path(row["run_folder"]).parent / "validation.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def search(inputs, tmp_path_factory) -> Path:
    """The uninterrupted reference search (with per-trial TensorBoard)."""
    output = tmp_path_factory.mktemp("tune")
    run(search_args(inputs, output, "full") + ["--tensorboard"])
    return output / "full" / "tune"


def test_every_trial_is_a_real_training_with_the_sampled_hyper_parameters(search, inputs) -> None:
    rows = table(search)
    assert len(rows) == TRIALS and all(r["status"] == "TERMINATED" for r in rows)
    space = space_from_dict(SPACE, "test")
    for row in rows:
        config = load_config(Path(row["run_folder"]).parent / "config.yaml")
        assert config.num_batches == BUDGET
        for path, dim in space.items():
            value = config.env_kwargs[path[1]] if len(path) == 2 else getattr(config, path[0].replace("-", "_"))
            shown = row[".".join(path)]
            if dim.kind == "choice":
                assert tuple(value) in dim.args if isinstance(value, list) else value in dim.args
                assert shown == ("x".join(map(str, value)) if isinstance(value, list) else str(value))
            else:
                assert dim.args[0] <= value <= dim.args[1] and float(shown) == pytest.approx(value, rel=1e-12)
        # The run folder is train()'s: one metrics row per meta-batch run, the trial's resolved config.
        metrics = [json.loads(line) for line in (Path(row["run_folder"]) / "metrics.jsonl").read_text().splitlines()]
        assert [m["batch"] for m in metrics] == list(range(int(row["batches"])))
        stored = yaml.safe_load((Path(row["run_folder"]) / "config.yaml").read_text())
        assert stored["config"] == config.to_yaml_dict() and stored["seed"] == 1
        assert (row["stopped_early"] == "True") == (int(row["batches"]) < BUDGET)
        scores = validation_rows(row)
        assert [s["batch"] for s in scores] == list(range(1, int(row["batches"]) + 1))  # --eval-every 1
        assert float(row["last_val_return"]) == pytest.approx(scores[-1]["val_return"])
        assert float(row["best_val_success"]) == pytest.approx(max(s["val_success"] for s in scores))
    assert {r["stopped_early"] for r in rows} == {"True", "False"}  # this seed: ASHA stops some, not all


def test_asha_stops_exactly_the_trials_below_the_rung_median(search) -> None:
    """Reduction factor 2, grace 1, budget 3: rungs at batches 1 and 2. With one trial at a time
    (trials in id order), a trial stops at a rung iff its val_return there is below the median
    (the 50th percentile, np.nanpercentile as ASHA) of the earlier trials' values at that rung."""
    rows = table(search)
    scores = [{s["batch"]: s["val_return"] for s in validation_rows(r)} for r in rows]
    for k, row in enumerate(rows):
        for rung in (1, 2):
            if rung > int(row["batches"]):
                break
            earlier = [s[rung] for s in scores[:k] if rung in s]
            below = bool(earlier) and scores[k][rung] < np.nanpercentile(earlier, 50)
            stops_here = int(row["batches"]) == rung
            assert below == stops_here, (k, rung, scores)


def test_validation_tasks_are_fixed_draws_of_the_distribution_not_the_evaluation_tasks(search) -> None:
    from maml_rl.envs.tasks import load_evaluation_tasks

    evaluation_ids = {t.id for t in load_evaluation_tasks()}
    seen = set()
    for row in table(search):
        for point in sorted((Path(row["run_folder"]).parent / "validation").iterdir()):
            evaluations = [json.loads(line) for line in (point / "evaluations.jsonl").read_text().splitlines()]
            seen.add(tuple(sorted({e["task_id"] for e in evaluations})))
    assert len(seen) == 1  # the same tasks at every evaluation point of every trial
    (ids,) = seen
    assert len(ids) == 2 and min(ids) >= 2_000_000 and not set(ids) & evaluation_ids


def test_outputs_best_config_trains_and_figure(search, tmp_path) -> None:
    rows = table(search)
    best = max(rows, key=lambda r: (int(r["batches"]), float(r["last_val_return"]), float(r["last_val_success"])))
    config = load_config(search / "best_config.yaml")  # the project's loader accepts it
    assert config == load_config(Path(best["run_folder"]).parent / "config.yaml")
    run(["train.py", "--config", str(search / "best_config.yaml"), "--num-batches", "1", "--output-folder",
         str(tmp_path), "--no-progress"])
    assert len((tmp_path / "maml" / "train" / "metrics.jsonl").read_text().splitlines()) == 1
    assert (search / "curves.png").stat().st_size > 20_000


def test_every_trial_writes_tensorboard_events(search) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for row in table(search):
        trial = Path(row["run_folder"]).parent
        board = EventAccumulator(str(trial / "tensorboard"), size_guidance={"scalars": 0})
        board.Reload()
        scores = validation_rows(row)
        assert [v.step for v in board.Scalars("validation/val_return")] == [s["batch"] for s in scores]
        assert [v.value for v in board.Scalars("validation/val_success")] == \
            pytest.approx([s["val_success"] for s in scores], rel=1e-6)
        training = EventAccumulator(str(Path(row["run_folder"]) / "tensorboard"), size_guidance={"scalars": 0})
        training.Reload()
        assert len(training.Scalars("train/valid_return")) == int(row["batches"])


def test_interrupted_search_resumes_to_the_same_results(search, inputs, tmp_path) -> None:
    """Ctrl-C (SIGINT) after the first trial's first score: Tune saves its state and the command
    exits 130 with trials left; --resume (Tuner.restore) finishes it. Same --seed as the reference
    search, so the same trial configs; ASHA's decisions and every score equal the uninterrupted
    search's. Tested: one interruption, early in the first trial, one trial at a time."""
    folder = tmp_path / "cut" / "tune"
    process = subprocess.Popen([sys.executable, *search_args(inputs, tmp_path, "cut")], cwd=REPO, env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in folder.glob("trials/*/validation.jsonl")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out[-2000:] + err[-2000:]
    assert "python tune.py --resume" in err
    interrupted = table(folder)
    assert any(r["status"] != "TERMINATED" for r in interrupted)  # really cut before the end
    run(["tune.py", "--resume", "--output-folder", str(tmp_path), "--experiment-name", "cut"])
    resumed, reference = table(folder), table(search)
    assert len(resumed) == TRIALS
    for a, b in zip(resumed, reference):
        assert {k: a[k] for k in RESULT_COLUMNS} == {k: b[k] for k in RESULT_COLUMNS}
        assert without_times(validation_rows(a)) == without_times(validation_rows(b))


def test_another_seed_draws_other_configs(search, inputs, tmp_path) -> None:
    run(search_args(inputs, tmp_path, "other", seed=2, samples=2, budget=1))
    other = table(tmp_path / "other" / "tune")
    reference = table(search)
    for a, b in zip(other, reference):
        assert a["fast-lr"] != b["fast-lr"] and a["env-kwargs.beam_loss_penalty"] != b["env-kwargs.beam_loss_penalty"]


def one_error(capsys, argv: list[str], *fragments: str) -> None:
    import tune as tune_script

    from maml_rl.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(tune_script.main, argv)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_input_is_one_error_line_before_ray_starts(inputs, tmp_path, capsys, monkeypatch) -> None:
    def space(data: dict) -> str:
        path = tmp_path / "space.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    common = ["--config", str(inputs["config"]), "--output-folder", str(tmp_path)]
    one_error(capsys, common + ["--search-space", space({"no-such-key": {"choice": [1, 2]}})],
              "unknown key 'no-such-key'")
    one_error(capsys, common + ["--search-space", space({"fast-lr": {"loguniform": [0, 1]}})], "'fast-lr'", "low > 0")
    one_error(capsys, common + ["--search-space", space({"meta-batch-size": {"uniform": [2, 4]}})],
              "'meta-batch-size'", "must be an integer")
    one_error(capsys, common + ["--search-space", space({"env-kwargs": {"no_option": {"choice": [1]}}})],
              "env-kwargs")
    one_error(capsys, common + ["--search-space", space({"num-batches": 5})], "budget per trial")
    one_error(capsys, common + ["--resume"], "nothing to resume")
    assert not (tmp_path / "maml").exists()  # nothing written by a refused search
    (tmp_path / "maml" / "tune").mkdir(parents=True)
    (tmp_path / "maml" / "tune" / "search.yaml").write_text("an earlier search\n")
    one_error(capsys, common, "already exists")
    assert (tmp_path / "maml" / "tune" / "search.yaml").read_text() == "an earlier search\n"
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    one_error(capsys, common + ["--experiment-name", "noray"], "extra 'ray'", "pip install -e '.[ray]'")
    assert not (tmp_path / "noray").exists()


def test_validation_scores_use_the_search_reward_not_the_trial_penalty(inputs, tmp_path) -> None:
    """Two trials that differ only in beam_loss_penalty are scored on one reward (the base
    config's): the same policy gets the same scores."""
    from maml_rl.config import config_from_dict
    from maml_rl.distributed.validation import Validator, scoring_config
    from maml_rl.training import make_policy

    base = load_config(inputs["config"])
    policy = make_policy(base, 0)
    scores = []
    for penalty in (50.0, 400.0):
        data = base.to_yaml_dict()
        data["env-kwargs"] = {**data["env-kwargs"], "beam_loss_penalty": penalty}
        trial = config_from_dict(data)
        scored = scoring_config(trial, base.env_kwargs)
        assert scored.env_kwargs == base.env_kwargs and scored.fast_lr == trial.fast_lr
        scores.append(Validator(scored, 2, 3, seed=5)(policy, tmp_path / f"v{int(penalty)}"))
    assert scores[0] == scores[1]
