"""End-to-end smoke tests of the user scripts on tiny budgets, resume, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO

TIMING_KEYS = {"time_sampling", "time_adaptation", "time_trpo", "time_total", "wall_time"}


def run(*args: str, expect: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert result.returncode == expect, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_config(tiny_training_config) -> Path:
    return tiny_training_config  # this module's name for the shared tiny training config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config) -> Path:
    out = tmp_path_factory.mktemp("runs")
    run("train.py", "--config", str(tiny_config), "--output-folder", str(out), "--experiment-name", "tiny",
        "--save-progress-interval", "2", "--no-progress")
    return out


def test_train_writes_a_complete_run_folder(trained) -> None:
    folder = trained / "tiny" / "train"
    for name in ("config.yaml", "metrics.jsonl", "policy.th", "checkpoints/policy_batch_00002.th",
                 "checkpoints/policy_batch_00003.th"):
        assert (folder / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["batch"] for r in rows] == [0, 1, 2]
    for key in ("train_return", "valid_return", "valid_success", "loss_before", "loss_after", "kl_after",
                "ls_accepted", "ls_step", "interactions", "time_sampling", "time_adaptation", "time_trpo"):
        assert key in rows[0], key
    from maml_rl.checkpoint import load_training_state

    assert load_training_state(folder / "policy.th")["metadata"]["batch"] == 2  # resumable
    resolved = yaml.safe_load((folder / "config.yaml").read_text())
    assert resolved["seed"] == 1 and resolved["config"]["num-batches"] == 3


def test_existing_run_is_refused_then_overwritten(trained, tiny_config) -> None:
    folder = trained / "tiny" / "train"
    before = (folder / "metrics.jsonl").read_bytes()
    result = run("train.py", "--config", str(tiny_config), "--output-folder", str(trained), "--experiment-name",
                 "tiny", "--no-progress", expect=2)
    one_line_error(result, "already exists", "--resume", "--overwrite")
    assert (folder / "metrics.jsonl").read_bytes() == before
    copy = trained / "copy"
    run("train.py", "--config", str(tiny_config), "--output-folder", str(copy), "--num-batches", "1", "--no-progress")
    run("train.py", "--config", str(tiny_config), "--output-folder", str(copy), "--num-batches", "2",
        "--overwrite", "--no-progress")
    assert len((copy / "maml" / "train" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_reproduces_the_uninterrupted_run(tmp_path, trained, tiny_config) -> None:
    # Also with other numbers of concurrent line-search trials than the uninterrupted run's default.
    run("train.py", "--config", str(tiny_config), "--output-folder", str(tmp_path), "--experiment-name", "tiny",
        "--num-batches", "1", "--no-progress", "--ls-threads", "1")
    run("train.py", "--output-folder", str(tmp_path), "--experiment-name", "tiny", "--num-batches", "3", "--resume",
        "--no-progress", "--ls-threads", "3")
    full = [json.loads(x) for x in (trained / "tiny" / "train" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (tmp_path / "tiny" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(resumed) == len(full) == 3
    for a, b in zip(full, resumed):
        assert {k: v for k, v in a.items() if k not in TIMING_KEYS} == \
            {k: v for k, v in b.items() if k not in TIMING_KEYS}
    uninterrupted = torch.load(trained / "tiny" / "train" / "policy.th", weights_only=True)["state_dict"]
    continued = torch.load(tmp_path / "tiny" / "train" / "policy.th", weights_only=True)["state_dict"]
    for name, value in uninterrupted.items():
        assert torch.equal(value, continued[name])


def test_adaptation_evaluation_and_plots(tmp_path, trained, tiny_config) -> None:
    policy = trained / "tiny" / "train" / "policy.th"
    common = ["--config", str(tiny_config), "--output-folder", str(tmp_path), "--num-batches", "2",
              "--num-episodes", "4", "--plot-interval", "1", "--task-ids", "0", "3"]
    run("test.py", "--use-meta-policy", "--policy", str(policy), "--experiment-name", "meta", *common)
    run("test.py", "--experiment-name", "scratch", *common)
    for name in ("meta", "scratch"):
        folder = tmp_path / name / "test"
        for item in ("metrics.jsonl", "evaluations.jsonl", "policies/task_0.th", "policies/task_3.th",
                     "figures/verification_batch_0000.png", "figures/verification_batch_0002.png",
                     "figures/adaptation_progress.png"):
            assert (folder / item).stat().st_size > 0, item
        evaluations = [json.loads(x) for x in (folder / "evaluations.jsonl").read_text().splitlines()]
        assert {(e["batch"], e["task_id"]) for e in evaluations} == {(b, t) for b in (0, 1, 2) for t in (0, 3)}
    out = run("run_maml.py", "--policy", str(policy), "--task-ids", "0", "3", "--num-episodes", "4",
              "--output-folder", str(tmp_path), "--experiment-name", "eval").stdout
    assert "benchmark" in out and "limit" in out and "episode length / benchmark" in out
    assert (tmp_path / "eval" / "run_maml" / "verification.png").stat().st_size > 0
    run("run_maml.py", "--task-policies", str(tmp_path / "meta" / "test"), "--task-ids", "0", "3",
        "--num-episodes", "4", "--stochastic", "--output-folder", str(tmp_path), "--experiment-name", "eval2")
    run("read_out_train.py", "--output-folder", str(trained), "--experiment-name", "tiny")
    assert (trained / "tiny" / "train" / "progress.png").stat().st_size > 0
    run("read_out_train.py", "--output-folder", str(tmp_path), "--experiment-name", "meta", "--experiment-type", "test")
    run("read_out_train.py", "--compare", str(tmp_path / "meta" / "test"), str(tmp_path / "scratch" / "test"),
        "--labels", "meta", "scratch", "--output", str(tmp_path / "cmp.png"))
    assert (tmp_path / "cmp.png").stat().st_size > 0 and (tmp_path / "cmp_evaluations.png").stat().st_size > 0


@pytest.mark.parametrize("args, fragments", [
    (["train.py", "--config", "nowhere.yaml"], ["config file not found", "nowhere.yaml"]),
    (["test.py", "--task-ids", "0", "42"], ["unknown task id(s) [42]"]),
    (["test.py", "--use-meta-policy", "--policy", "missing.th"], ["policy file not found", "missing.th"]),
    (["run_maml.py", "--policy", "missing.th"], ["policy file not found"]),
    (["train.py", "--resume", "--experiment-name", "never-ran"], ["nothing to resume"]),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, fragments) -> None:
    result = run(*args, "--output-folder", str(tmp_path), expect=2)
    one_line_error(result, *fragments)


def test_line_search_threads_must_be_positive(tmp_path) -> None:
    result = run("train.py", "--ls-threads", "0", "--output-folder", str(tmp_path), expect=2)
    assert "argument --ls-threads: must be a positive integer, got 0" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_more_bad_input(tmp_path, tiny_config) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_config.read_text().replace("fast-lr:", "fast-rate:"))
    one_line_error(run("train.py", "--config", str(bad), "--output-folder", str(tmp_path), expect=2),
                   "unknown key 'fast-rate'", str(bad))
    corrupt = tmp_path / "corrupt.th"
    corrupt.write_bytes(b"\x00garbage")
    one_line_error(run("run_maml.py", "--policy", str(corrupt), "--output-folder", str(tmp_path), expect=2),
                   "corrupt or unreadable")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    one_line_error(run("train.py", "--config", str(tiny_config), "--output-folder", str(blocker), expect=2),
                   "cannot write")
    one_line_error(run("read_out_train.py", "--output-folder", str(tmp_path), "--experiment-name", "nothing",
                       expect=2), "no run folder")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    one_line_error(run("read_out_train.py", "--output-folder", str(tmp_path), "--experiment-name", "empty",
                       expect=2), "no metrics file")


def test_ppo_train_test_and_errors(tmp_path) -> None:
    model = tmp_path / "ppo" / "agent.zip"
    out = run("ppo.py", "--train", "--task-id", "1", "--steps", "256", "--num-episodes", "5", "--no-progress",
              "--output-file", str(model)).stdout
    assert "benchmark" in out and "limit" in out
    for path in (model, model.with_suffix(".json"), tmp_path / "ppo" / "agent_train_task1.png"):
        assert path.stat().st_size > 0, path
    assert json.loads(model.with_suffix(".json").read_text())["task"]["id"] == 1
    out = run("ppo.py", "--test", "--task-id", "2", "--num-episodes", "5", "--output-file", str(model)).stdout
    assert "trained on task 1, tested on task 2" in out
    assert (tmp_path / "ppo" / "agent_test_task2.png").stat().st_size > 0
    run("ppo.py", "--train", "--task-id", "-1", "--steps", "64", "--num-episodes", "3", "--no-progress",
        "--output-file", str(tmp_path / "fresh.zip"))
    assert json.loads((tmp_path / "fresh.json").read_text())["task"]["id"] == -1
    one_line_error(run("ppo.py", "--test", "--output-file", str(tmp_path / "none.zip"), expect=2),
                   "PPO model file not found")
    one_line_error(run("ppo.py", "--test", "--task-id", "9", "--output-file", str(model), expect=2),
                   "unknown task id(s) [9]")


def test_comparison_on_tiny_budgets(tmp_path, trained) -> None:
    policy = trained / "tiny" / "train" / "policy.th"
    out = run("-m", "maml_rl.compare", "--policy", str(policy), "--task-ids", "0", "2", "--ppo-steps", "256",
              "--ppo-eval-every", "128", "--maml-batches", "1", "--eval-episodes", "4", "--no-progress",
              "--seeds", "1", "--output-folder", str(tmp_path)).stdout
    folder = tmp_path / "comparison" / "compare"
    for name in ("comparison.png", "comparison.md", "comparison.json", "seed_1/maml_meta/evaluations.jsonl",
                 "seed_1/maml_random/evaluations.jsonl"):
        assert (folder / name).stat().st_size > 0, name
    table = (folder / "comparison.md").read_text()
    assert "PPO from scratch" in table and "| 0 |" in table and "| 2 |" in table
    assert table in out
    curves = json.loads((folder / "comparison.json").read_text())["curves"]
    assert set(curves) == {"ppo", "maml_random", "maml_meta"}
    assert curves["maml_meta"]["0"]["interactions"][0] == 0  # evaluated before any adaptation


def test_read_out_follow_refreshes_until_interrupted(trained) -> None:
    import signal
    import time

    figure = trained / "follow.png"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    process = subprocess.Popen([sys.executable, "read_out_train.py", "--output-folder", str(trained),
                                "--experiment-name", "tiny", "--follow", "--interval", "0.2", "--output", str(figure)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not figure.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    first = figure.stat().st_mtime_ns
    while figure.stat().st_mtime_ns == first and time.monotonic() < deadline:
        time.sleep(0.2)  # redrawn at least once
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert figure.stat().st_mtime_ns > first and "stopped following" in out


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(reference: Path, other: Path) -> None:
    full, resumed = _rows(reference), _rows(other)
    assert len(resumed) == len(full)
    for a, b in zip(full, resumed):
        assert {k: v for k, v in a.items() if k not in TIMING_KEYS} == \
            {k: v for k, v in b.items() if k not in TIMING_KEYS}
    expected = torch.load(reference / "policy.th", weights_only=True)
    actual = torch.load(other / "policy.th", weights_only=True)
    for name, value in expected["state_dict"].items():
        assert torch.equal(value, actual["state_dict"][name])
    assert actual["metadata"]["meta_training_interactions"] == expected["metadata"]["meta_training_interactions"]


def test_policy_files_record_the_meta_training_cost(trained) -> None:
    folder = trained / "tiny" / "train"
    rows = _rows(folder)
    metadata = torch.load(folder / "policy.th", weights_only=True)["metadata"]
    total = sum(r["interactions"] for r in rows)
    assert metadata["meta_training_interactions"] == total == rows[-1]["total_interactions"]
    assert metadata["meta_training_wall_time"] == pytest.approx(rows[-1]["wall_time"]) and rows[-1]["wall_time"] > 0
    checkpoint = torch.load(folder / "checkpoints" / "policy_batch_00002.th", weights_only=True)["metadata"]
    assert checkpoint["meta_training_interactions"] == rows[1]["total_interactions"]


def test_resume_after_a_crash_between_the_metrics_row_and_the_policy_file(tmp_path, trained, tiny_config,
                                                                        monkeypatch) -> None:
    import maml_rl.training as training

    real_save = training.save_policy

    def crash_at_batch_one(path, policy, meta, **kwargs):
        if meta["batch"] == 1:
            raise KeyboardInterrupt  # the row of batch 1 is written, its training state is not
        real_save(path, policy, meta, **kwargs)

    monkeypatch.setattr(training, "save_policy", crash_at_batch_one)
    options = dict(output_folder=tmp_path, experiment_name="tiny", save_progress_interval=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        training.train(training.TrainOptions(config=tiny_config, **options))
    folder = tmp_path / "tiny" / "train"
    assert [r["batch"] for r in _rows(folder)] == [0, 1]
    monkeypatch.setattr(training, "save_policy", real_save)
    training.train(training.TrainOptions(resume=True, **options))
    _assert_same_run(trained / "tiny" / "train", folder)


def test_resume_after_kill_9_in_the_middle_of_a_run(tmp_path, tiny_config) -> None:
    import signal
    import time

    common = ["--config", str(tiny_config), "--num-batches", "10", "--no-progress"]
    run("train.py", *common, "--output-folder", str(tmp_path / "full"))
    folder = tmp_path / "killed" / "maml" / "train"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    process = subprocess.Popen([sys.executable, "train.py", *common, "--output-folder", str(tmp_path / "killed")],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = folder / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done = len(_rows(folder))
    assert 3 <= done < 10, "killed too late to test anything"
    run("train.py", "--output-folder", str(tmp_path / "killed"), "--resume", "--no-progress")
    _assert_same_run(tmp_path / "full" / "maml" / "train", folder)


def test_resume_refuses_a_different_config_or_seed(tmp_path, trained, tiny_config) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(tiny_config.read_text().replace("max-kl: 0.001", "max-kl: 0.002"))
    before = (trained / "tiny" / "train" / "metrics.jsonl").read_bytes()
    common = ["--output-folder", str(trained), "--experiment-name", "tiny", "--resume", "--no-progress"]
    one_line_error(run("train.py", *common, "--config", str(other), expect=2), "disagrees", "max-kl")
    one_line_error(run("train.py", *common, "--seed", "7", "--num-batches", "4", expect=2), "--seed 7 disagrees")
    assert (trained / "tiny" / "train" / "metrics.jsonl").read_bytes() == before
    # The run's own config and seed, given explicitly, are accepted (here: nothing left to do).
    run("train.py", *common, "--config", str(tiny_config), "--seed", "1")
    assert (trained / "tiny" / "train" / "metrics.jsonl").read_bytes() == before


def test_progress_in_a_log_file_is_plain_lines(tmp_path, tiny_config) -> None:
    # stdout/stderr are pipes here, as in a log file or CI: no carriage-return redraws.
    result = run("train.py", "--config", str(tiny_config), "--output-folder", str(tmp_path), "--num-batches", "40")
    output = result.stdout + result.stderr
    assert "\r" not in output
    progress_lines = [line for line in result.stderr.splitlines() if line.startswith("meta-training:")]
    assert 2 <= len(progress_lines) <= 21 and progress_lines[-1].startswith("meta-training: 40/40 batch")
    assert "post" in progress_lines[-1] and "success" in progress_lines[-1]


def test_run_maml_never_replaces_a_run_folder_silently(tmp_path, trained) -> None:
    policy = trained / "tiny" / "train" / "policy.th"
    common = ["run_maml.py", "--policy", str(policy), "--task-ids", "0", "--num-episodes", "3",
              "--output-folder", str(tmp_path)]
    run(*common)
    result_file = tmp_path / "maml" / "run_maml" / "evaluation.json"
    before = result_file.read_bytes()
    one_line_error(run(*common, "--num-episodes", "4", expect=2), "already exists", "--overwrite")
    assert result_file.read_bytes() == before
    run(*common, "--num-episodes", "4", "--overwrite")
    assert json.loads(result_file.read_text())["num_episodes"] == 4


@pytest.mark.parametrize("script", [["run_maml.py", "--num-episodes", "2", "--task-ids", "0"],
                                    ["test.py", "--num-batches", "1", "--num-episodes", "2", "--task-ids", "0"],
                                    ["train.py", "--num-batches", "1"]])
def test_output_folder_that_is_a_file_gives_one_line(tmp_path, tiny_config, script) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    extra = ["--config", str(tiny_config)] if script[0] != "run_maml.py" else []
    result = run(*script, *extra, "--output-folder", str(blocker), expect=2)
    one_line_error(result, str(blocker))
    assert blocker.read_text() == "a file where a folder should be"
