"""The PPO baseline: evaluations after updates, model files without pickle, no silent overwrite."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from maml_rl.ppo_baseline import ModelFileError, PPOSettings, train_ppo
from maml_rl.ppo_model_file import SETTINGS_MEMBER, WEIGHTS_MEMBER, load_model, save_model, settings_json

SMALL = PPOSettings(n_steps=64, batch_size=32, n_epochs=2)
SEED = 3


@pytest.fixture(scope="module")
def small_model(evaluation_config, evaluation_task):
    return train_ppo(evaluation_config, evaluation_task, 128, SEED, progress=False, settings=SMALL)


def parameters(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def run(*args: str, expect: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def one_error_line(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


# ------------------------------------------------------------------ evaluations after updates

@pytest.mark.parametrize("every, steps, labels", [(64, 192, [0, 64, 128, 192]), (100, 300, [0, 128, 256, 320])])
def test_hook_sees_a_policy_trained_on_exactly_its_label(evaluation_config, evaluation_task, every, steps,
                                                         labels) -> None:
    seen: list[tuple[int, dict[str, torch.Tensor], int]] = []
    train_ppo(evaluation_config, evaluation_task, steps, SEED, progress=False, evaluate_every=every, settings=SMALL,
              hook=lambda model, n: seen.append((n, parameters(model), model._n_updates)))
    assert [n for n, _, _ in seen] == labels
    for n, params, updates in seen:
        assert updates == SMALL.n_epochs * n // SMALL.n_steps  # every collected rollout was trained on
        reference = parameters(train_ppo(evaluation_config, evaluation_task, n, SEED, progress=False, settings=SMALL))
        assert params.keys() == reference.keys()
        assert all(torch.equal(params[k], reference[k]) for k in params), f"label {n}"
    # the labels differ in policy: a late hook (the previous update's policy) would be caught
    assert not torch.equal(seen[0][1]["action_net.weight"], seen[1][1]["action_net.weight"])


def test_default_settings_are_sb3_defaults(evaluation_config, evaluation_task) -> None:
    from stable_baselines3 import PPO

    from maml_rl.ppo_baseline import build_model, make_env

    ours = build_model(PPOSettings(), make_env(evaluation_config, evaluation_task), 0)
    theirs = PPO("MlpPolicy", make_env(evaluation_config, evaluation_task), seed=0, device="cpu")
    for name in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert str(ours.policy) == str(theirs.policy)


# ------------------------------------------------------------------ model files

def test_saved_model_reloads_with_the_same_weights_and_actions(tmp_path, small_model, evaluation_task) -> None:
    path = tmp_path / "m.zip"
    save_model(small_model, SMALL, path, {"task": evaluation_task.as_dict(), "steps": 128, "seed": SEED})
    model, info = load_model(path)
    original, loaded = parameters(small_model), parameters(model)
    assert original.keys() == loaded.keys() and all(torch.equal(original[k], loaded[k]) for k in original)
    obs = np.random.default_rng(0).uniform(-1, 1, (7, 10)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0],
                                  small_model.predict(obs, deterministic=True)[0])
    assert info["task"]["id"] == evaluation_task.id and info["steps"] == 128
    assert PPOSettings.from_dict(info["ppo"]) == SMALL
    assert json.loads(path.with_suffix(".json").read_text()) == info
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted([SETTINGS_MEMBER, WEIGHTS_MEMBER])


def test_failed_write_keeps_the_previous_model(tmp_path, small_model, monkeypatch) -> None:
    path = tmp_path / "m.zip"
    save_model(small_model, SMALL, path, {"steps": 128})
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("maml_rl.runio.os.fsync", broken_fsync)
    with pytest.raises(ModelFileError, match="cannot write PPO model"):
        save_model(small_model, SMALL, path, {"steps": 999})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.zip"]  # no temporary file left


class _Payload:
    """Unpickling this creates ``marker`` (what a malicious file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _archive(path: Path, settings: str, weights: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(SETTINGS_MEMBER, settings)
        archive.writestr(WEIGHTS_MEMBER, weights)
    return path


def _torch_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def crafted_files(folder: Path, marker: Path, small_model) -> dict[str, Path]:
    """Files whose loading by unpickling would create ``marker``."""
    payload = _Payload(marker)
    good_settings = settings_json(SMALL, {"steps": 128})
    sb3 = folder / "sb3.zip"
    small_model.save(str(sb3))
    with zipfile.ZipFile(sb3) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(payload)).decode()
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(sb3, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    (folder / "raw.zip").write_bytes(pickle.dumps(payload))
    return {"sb3 model.save with a payload": sb3,
            "plain pickle": folder / "raw.zip",
            "pickle as weights": _archive(folder / "w1.zip", good_settings, pickle.dumps(payload)),
            "torch.save with a payload": _archive(folder / "w2.zip", good_settings, _torch_pickle({"w": payload}))}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the crafted raw pickle
def test_crafted_files_are_refused_without_running_code(tmp_path, small_model) -> None:
    marker = tmp_path / "marker"
    files = crafted_files(tmp_path, marker, small_model)
    sb3 = files["sb3 model.save with a payload"]
    # the SB3 file is really malicious: SB3's own loader runs the payload
    subprocess.run([sys.executable, "-c", f"from stable_baselines3 import PPO; PPO.load({str(sb3)!r})"],
                   capture_output=True, timeout=120)
    assert marker.exists()
    marker.unlink()
    for label, path in files.items():
        with pytest.raises(ModelFileError) as error:
            load_model(path)
        assert str(path) in str(error.value), label
        assert not marker.exists(), label
    assert "stable-baselines3" in str(pytest.raises(ModelFileError, load_model, sb3).value)
    one_error_line(run("ppo.py", "--test", "--num-episodes", "2", "--output-file",
                       str(files["torch.save with a payload"]), expect=2), "refused")
    one_error_line(run("ppo.py", "--test", "--num-episodes", "2", "--output-file",
                       str(sb3), expect=2), "stable-baselines3")
    assert not marker.exists()


def test_weights_that_do_not_fit_the_settings_are_refused(tmp_path, small_model) -> None:
    state = {k: torch.zeros(1) for k in small_model.policy.state_dict()}
    path = _archive(tmp_path / "bad.zip", settings_json(SMALL, {}), _torch_pickle(state))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
    bad_settings = json.dumps({"format": "maml-rl-awake/ppo-v1", "ppo": {"n_steps": 0}})
    path = _archive(tmp_path / "bad_settings.zip", bad_settings, _torch_pickle(state))
    with pytest.raises(ModelFileError, match="bad PPO settings"):
        load_model(path)


# ------------------------------------------------------------------ no silent overwrite

def test_train_refuses_to_overwrite_a_model_without_overwrite(tmp_path) -> None:
    path = tmp_path / "agent.zip"
    path.write_bytes(b"earlier result")
    one_error_line(run("ppo.py", "--train", "--steps", "64", "--no-progress", "--output-file", str(path), expect=2),
                   "--overwrite")
    assert path.read_bytes() == b"earlier result"
    run("ppo.py", "--train", "--steps", "64", "--num-episodes", "2", "--no-progress", "--overwrite",
        "--output-file", str(path), expect=0)
    model, info = load_model(path)
    assert info["steps"] == 64 and info["trained_steps"] == model.n_steps == 2048


def test_training_leaves_no_logger_folders_in_the_temporary_directory(evaluation_config, evaluation_task, tmp_path,
                                                                      monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3's default logger would go
    train_ppo(evaluation_config, evaluation_task, 64, SEED, progress=False, settings=SMALL)
    assert not list(tmp_path.glob("SB3-*"))
