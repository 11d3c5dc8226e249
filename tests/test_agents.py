"""ppo.py --algo: every single-task agent trains, saves weights only, reloads to the same
actions, is tested through the CLI, and refuses bad options and crafted files."""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from maml_rl.agent_settings import SettingsError, apply_overrides, settings_from_dict, settings_to_dict
from maml_rl.agents import ALGOS, agent_controller, default_model_path, default_settings, load_agent, save_agent, \
    train_agent
from maml_rl.model_archive import SETTINGS_MEMBER, WEIGHTS_MEMBER, settings_json
from maml_rl.ppo_baseline import ModelFileError
from test_ppo import _Payload, one_error_line, run

STEPS = 200
SEED = 5
OBS = np.random.default_rng(0).uniform(-1, 1, (9, 10)).astype(np.float32)


def small(algo: str):
    """Settings that update within STEPS (tiny warm-up, batch and rollout)."""
    settings = default_settings(algo)
    if algo == "ppo":
        return replace(settings, n_steps=64, batch_size=32, n_epochs=2)
    return replace(settings, learning_starts=50, batch_size=32)


def actions(model) -> np.ndarray:
    return agent_controller(model)(OBS)


@pytest.mark.parametrize("algo", ALGOS)
def test_train_save_load_gives_the_same_actions(tmp_path, evaluation_config, evaluation_task, algo) -> None:
    settings = small(algo)
    model = train_agent(algo, settings, evaluation_config, evaluation_task, STEPS, SEED, progress=False)
    assert model.num_timesteps >= STEPS
    path = tmp_path / f"{algo}.zip"
    save_agent(algo, model, settings, path, {"task": evaluation_task.as_dict(), "steps": STEPS, "seed": SEED})
    loaded, info = load_agent(algo, path)
    np.testing.assert_array_equal(actions(loaded), actions(model))
    assert info["task"]["id"] == evaluation_task.id and info["format"] == f"maml-rl-awake/{algo}-v1"
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted([SETTINGS_MEMBER, WEIGHTS_MEMBER])
    if algo != "ppo":
        assert settings_from_dict(type(settings), info[algo]) == settings
    # the training moved the policy away from its initialisation (the test is not vacuous)
    untrained = train_agent(algo, settings, evaluation_config, evaluation_task, 1, SEED, progress=False)
    assert not np.array_equal(actions(untrained), actions(model))


@pytest.mark.parametrize("algo", ["td3", "sac", "ddpg", "naf"])
def test_same_seed_same_actions(evaluation_config, evaluation_task, algo) -> None:
    first, second = (train_agent(algo, small(algo), evaluation_config, evaluation_task, STEPS, SEED, progress=False)
                     for _ in range(2))
    np.testing.assert_array_equal(actions(first), actions(second))
    other = train_agent(algo, small(algo), evaluation_config, evaluation_task, STEPS, SEED + 1, progress=False)
    assert not np.array_equal(actions(first), actions(other))


def test_overrides_are_parsed_strictly() -> None:
    td3 = apply_overrides(default_settings("td3"), ["learning_rate=3e-4", "buffer_size=5e4", "net_arch_pi=32,32"],
                          "td3")
    assert (td3.learning_rate, td3.buffer_size, td3.net_arch_pi) == (3e-4, 50_000, (32, 32))
    naf = apply_overrides(default_settings("naf"), ["double_q=false", "max_grad_norm=none"], "naf")
    assert naf.double_q is False and naf.max_grad_norm is None
    assert apply_overrides(default_settings("sac"), ["ent_coef=0.01"], "sac").ent_coef == "0.01"
    for items, fragment in [(["learning_rat=1"], "learning_rat"), (["buffer_size=1.5"], "buffer_size"),
                            (["gamma=abc"], "gamma"), (["gamma=2"], "gamma"), (["tau"], "key=value"),
                            (["tau=0.1", "tau=0.2"], "twice"), (["double_q=yes"], "double_q")]:
        algo = "naf" if "double_q" in items[0] else "td3"
        with pytest.raises(SettingsError, match=fragment):
            apply_overrides(default_settings(algo), items, algo)
    with pytest.raises(SettingsError, match="ent_coef"):
        apply_overrides(default_settings("sac"), ["ent_coef=auto_x"], "sac")


def test_defaults_round_trip_through_json() -> None:
    for algo in ALGOS:
        settings = default_settings(algo)
        assert settings_from_dict(type(settings), json.loads(json.dumps(settings_to_dict(settings)))) == settings
    assert default_model_path("ppo") == Path("awake/ppo/ppo_model.zip")
    assert default_model_path("per-naf") == Path("awake/per-naf/per-naf_model.zip")


def _archive(path: Path, algo: str, settings: dict, weights: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(SETTINGS_MEMBER, settings_json(algo, settings, {}))
        archive.writestr(WEIGHTS_MEMBER, weights)
    return path


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crafted_files_are_refused_without_running_code(tmp_path, evaluation_config, evaluation_task) -> None:
    marker = tmp_path / "marker"
    settings = small("td3")
    model = train_agent("td3", settings, evaluation_config, evaluation_task, 60, SEED, progress=False)
    good = tmp_path / "good.zip"
    save_agent("td3", model, settings, good, {})
    state = model.policy.state_dict()
    good_settings = settings_to_dict(settings)
    missing = dict(good_settings)
    del missing["tau"]
    shrunk = {k: (v[:1] if v.ndim else v) for k, v in state.items()}
    cases = {
        "pickle as weights": (_archive(tmp_path / "p.zip", "td3", good_settings, pickle.dumps(_Payload(marker))),
                              "refused"),
        "payload in torch file": (_archive(tmp_path / "t.zip", "td3", good_settings,
                                           _torch_bytes({"w": _Payload(marker)})), "refused"),
        "missing key": (_archive(tmp_path / "m.zip", "td3", missing, _torch_bytes(state)), "missing ['tau']"),
        "bad value": (_archive(tmp_path / "v.zip", "td3", {**good_settings, "gamma": "0.9"}, _torch_bytes(state)),
                      "gamma"),
        "shape mismatch": (_archive(tmp_path / "s.zip", "td3", good_settings, _torch_bytes(shrunk)), "do not fit"),
    }
    # a huge replay buffer in the settings is not allocated on loading (nothing is replayed)
    huge = _archive(tmp_path / "h.zip", "td3", {**good_settings, "buffer_size": 10**12}, _torch_bytes(state))
    np.testing.assert_array_equal(actions(load_agent("td3", huge)[0]), actions(model))
    for label, (path, fragment) in cases.items():
        with pytest.raises(ModelFileError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
            load_agent("td3", path)
        assert not marker.exists(), label
    with pytest.raises(ModelFileError, match=r"is a td3 model, not sac \(pass --algo td3\)"):
        load_agent("sac", good)
    with pytest.raises(ModelFileError, match="is a td3 model, not naf"):
        load_agent("naf", good)
    naf_file = tmp_path / "naf.zip"
    _archive(naf_file, "naf", settings_to_dict(default_settings("naf")), _torch_bytes({"critics.x": torch.zeros(1)}))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_agent("naf", naf_file)


def _ppo_script():
    """``ppo.py`` as a module, to run its ``main`` in this process (a subprocess costs
    seconds of imports; the one-line error format is checked in a subprocess below)."""
    spec = importlib.util.spec_from_file_location("ppo_script", REPO / "ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_trains_and_tests_on_another_task(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    main = _ppo_script().main
    for algo in ("td3", "naf"):
        path = tmp_path / algo / "agent.zip"
        assert main(["--train", "--algo", algo, "--steps", "120", "--num-episodes", "2", "--no-progress",
                     "--set", "learning_starts=40", "--set", "batch_size=16", "--output-file", str(path)]) == 0
        assert f"{algo.upper()} trained 120 steps on task 0" in capsys.readouterr().out
        assert json.loads(path.with_suffix(".json").read_text())[algo]["batch_size"] == 16
        assert main(["--test", "--algo", algo, "--task-id", "2", "--num-episodes", "2",
                     "--output-file", str(path)]) == 0
        assert f"{algo.upper()} trained on task 0, tested on task 2" in capsys.readouterr().out
        assert (path.parent / "agent_test_task2.png").is_file()
    with pytest.raises(ModelFileError, match="--overwrite"):
        main(["--train", "--algo", "td3", "--steps", "50", "--output-file", str(tmp_path / "td3" / "agent.zip")])
    with pytest.raises(SettingsError, match="applies to --train"):
        main(["--test", "--algo", "td3", "--set", "tau=0.1", "--output-file", str(tmp_path / "td3" / "agent.zip")])
    with pytest.raises(SystemExit):
        main(["--train", "--algo", "a2c"])
    assert "invalid choice: 'a2c'" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="buffer_siz"):  # refused before training
        main(["--train", "--algo", "td3", "--set", "buffer_siz=5", "--output-file", str(tmp_path / "x.zip")])
    assert not (tmp_path / "x.zip").exists()
    # the real command line: a user error is one line and exit code 2
    one_error_line(run("ppo.py", "--test", "--algo", "sac", "--num-episodes", "2",
                       "--output-file", str(tmp_path / "td3" / "agent.zip"), expect=2), "--algo td3")
