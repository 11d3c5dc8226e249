"""Config validation, policy files, run folders and metrics files."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from maml_rl import PolicyLoadError, load_policy, save_policy
from maml_rl.checkpoint import load_training_state, rng_state, set_rng_state
from maml_rl.config import ConfigError, load_config
from maml_rl.policies import NormalMLPPolicy
from maml_rl.runio import MetricsLog, RunFolderError, prepare_new_run, read_metrics, run_folder

from conftest import REPO


def _write_config(path, **changes):
    data = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_configs_load_with_the_documented_values() -> None:
    train = load_config(REPO / "configs" / "awake.yaml")
    test = load_config(REPO / "configs" / "awake_evaluation.yaml")
    assert (train.gamma, train.gae_lambda, train.first_order, train.hidden_sizes, train.nonlinearity) == \
        (1.0, 0.99, True, [64, 64], "tanh")
    assert (train.fast_batch_size, train.num_steps, train.num_batches, train.meta_batch_size) == (16, 4, 500, 8)
    assert (train.max_kl, train.cg_iters, train.cg_damping, train.ls_max_steps, train.ls_backtrack_ratio) == \
        (1e-3, 40, 1e-5, 100, 0.6)
    assert train.fast_lr == 0.01 and test.fast_lr == 0.0001 and test.adv_std_floor == 1.0
    for path in ("awake.yaml", "awake_evaluation.yaml"):  # every key is commented
        for line in (REPO / "configs" / path).read_text().splitlines():
            if line and not line.startswith((" ", "#")) and not line.endswith(":"):
                assert "#" in line, line


@pytest.mark.parametrize("changes, message", [
    ({"fast-lr": "fast"}, "'fast-lr' must be a number"),
    ({"num-steps": 2.5}, "'num-steps' must be an integer"),
    ({"num-steps": 0}, "'num-steps' must be >= 1"),
    ({"first-order": "yes"}, "'first-order' must be true or false"),
    ({"hidden-sizes": [64, -1]}, "'hidden-sizes' must be a non-empty list"),
    ({"meta-batchsize": 8}, "unknown key 'meta-batchsize'"),
    ({"max-kl": None}, "missing key(s) 'max-kl'"),
    ({"gamma": 1.5}, "'gamma' must lie in"),
    ({"env-name": "CartPole-v1"}, "'env-name' must be AwakeSteering-v0"),
    ({"env-kwargs": {"plane": "diagonal"}}, "plane"),
    ({"env-kwargs": {"colour": "red"}}, "'env-kwargs' has an unknown option"),
])
def test_config_errors_name_the_key_and_the_file(tmp_path, changes, message) -> None:
    path = _write_config(tmp_path / "bad.yaml", **changes)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_policy_file_round_trip_and_public_loader(tmp_path) -> None:
    torch.manual_seed(0)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(16, 16))
    save_policy(tmp_path / "p.th", policy, {"note": "test"})
    loaded = load_policy(tmp_path / "p.th")
    assert isinstance(loaded, torch.nn.Module) and not loaded.training
    dist = loaded(torch.zeros(5, 10))
    assert dist.mean.shape == (5, 10) and dist.sample().shape == (5, 10)
    torch.testing.assert_close(dist.mean, policy(torch.zeros(5, 10)).mean)


def test_policy_file_errors(tmp_path) -> None:
    with pytest.raises(PolicyLoadError, match="policy file not found"):
        load_policy(tmp_path / "missing.th")
    corrupt = tmp_path / "corrupt.th"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(PolicyLoadError, match="corrupt or unreadable"):
        load_policy(corrupt)
    foreign = tmp_path / "foreign.th"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(PolicyLoadError, match="not a policy file of this project"):
        load_policy(foreign)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(16,))
    save_policy(tmp_path / "p.th", policy)
    data = torch.load(tmp_path / "p.th", weights_only=True)
    data["policy_config"]["hidden_sizes"] = [32]
    torch.save(data, tmp_path / "incompatible.th")
    with pytest.raises(PolicyLoadError, match="incompatible policy file"):
        load_policy(tmp_path / "incompatible.th")


def test_training_state_restores_every_rng(tmp_path) -> None:
    import random

    import numpy as np

    policy = NormalMLPPolicy(10, 10, hidden_sizes=(8,))
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    save_policy(tmp_path / "state.th", policy, {"batch": 7, "seed": 5}, rng=True)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    state = load_training_state(tmp_path / "state.th")
    set_rng_state(state["rng"])
    assert state["metadata"]["batch"] == 7
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    assert set(rng_state()) == {"torch", "numpy", "python"}


def test_run_folders_are_never_clobbered_silently(tmp_path) -> None:
    folder = run_folder(tmp_path, "exp", "train")
    prepare_new_run(folder, overwrite=False)
    (folder / "result.txt").write_text("precious")
    with pytest.raises(RunFolderError, match="already exists"):
        prepare_new_run(folder, overwrite=False)
    assert (folder / "result.txt").read_text() == "precious"
    prepare_new_run(folder, overwrite=True)
    assert not any(folder.iterdir())
    with pytest.raises(RunFolderError, match="invalid experiment name"):
        run_folder(tmp_path, "../escape", "train")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match="cannot write"):
        prepare_new_run(run_folder(blocker, "exp", "train"), overwrite=False)


def test_metrics_log_appends_one_row_at_a_time_and_resumes(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    log = MetricsLog.create(path)
    log.append({"batch": 0, "value": 1.5, "bad": float("nan")})
    size = path.stat().st_size
    inode = path.stat().st_ino
    log.append({"batch": 1, "list": [1, 2]})
    # Appended in place: the first row's bytes are untouched, the file is not replaced.
    assert path.stat().st_ino == inode and path.read_bytes()[:size].endswith(b"\n")
    rows = read_metrics(path)
    assert rows == [{"batch": 0, "value": 1.5, "bad": None}, {"batch": 1, "list": [1, 2]}]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind
    # A crash during an append leaves a torn last line: reading refuses it, resuming drops it,
    # together with the rows of batches whose training state was not saved.
    with open(path, "a") as handle:
        handle.write('{"batch": 2, "val')
    with pytest.raises(RunFolderError, match="line 3"):
        read_metrics(path)
    log, kept = MetricsLog.resume(path, lambda row: row["batch"] < 1)
    assert kept == rows[:1] and read_metrics(path) == rows[:1]
    log.append({"batch": 1})
    assert [r["batch"] for r in read_metrics(path)] == [0, 1]
    (tmp_path / "broken.jsonl").write_text(json.dumps({"a": 1}) + "\n{\"a\": \n" + json.dumps({"a": 2}) + "\n")
    with pytest.raises(RunFolderError, match="line 2"):  # torn inside the file: never silently dropped
        MetricsLog.resume(tmp_path / "broken.jsonl", lambda row: True)
    with pytest.raises(RunFolderError, match="no metrics file"):
        read_metrics(tmp_path / "absent.jsonl")


def test_every_os_error_from_a_user_path_is_one_line_and_exit_2(capsys) -> None:
    from maml_rl.cli import run_main

    for error in (NotADirectoryError(20, "Not a directory", "out/file/run"), IsADirectoryError(21, "Is a directory",
                  "awake"), FileNotFoundError(2, "No such file or directory", "a", "b")):
        def main(argv, error=error):
            raise error

        with pytest.raises(SystemExit) as exit_info:
            run_main(main, [])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and error.filename in lines[0]
