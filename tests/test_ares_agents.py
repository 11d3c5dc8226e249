"""Single-task agents on the ARES-EA family through ``ppo.py`` (the same command as AWAKE's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REPO
from maml_rl.agents import agent_controller, load_agent
from maml_rl.config import load_config
from maml_rl.families.ares_ea.env import AresEA
from maml_rl.ppo_baseline import make_env
from test_agents import _ppo_script

ARES_CONFIG = REPO / "configs" / "ares_ea_evaluation.yaml"


def test_the_family_supplies_the_single_task_environment() -> None:
    config = load_config(ARES_CONFIG)
    task = config.task_family.load_evaluation_tasks(None)[3]
    env = make_env(config, task)
    assert isinstance(env, AresEA) and env.get_task() == task
    assert env.observation_space.shape == (13,) and env.action_space.shape == (5,)
    # The env-kwargs reach the environment (25-step episodes, 100 um thresholds).
    assert env.dynamics.max_time == 25 and np.allclose(env.dynamics.thresholds, 1e-4)


def test_ppo_trains_saves_and_tests_on_ares(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    main = _ppo_script().main
    model = tmp_path / "ares.zip"
    common = ["--config", str(ARES_CONFIG), "--num-episodes", "2", "--output-file", str(model)]
    assert main(["--train", "--steps", "128", "--set", "n_steps=64", "--set", "batch_size=32", "--no-progress",
                 *common]) == 0
    out = capsys.readouterr().out
    assert "PPO trained 128 steps on task 0" in out and "Nelder-Mead: success" in out
    with zipfile.ZipFile(model) as archive:
        info = json.loads(archive.read("settings.json"))
    assert info["family"] == "ares_ea" and info["env_kwargs"]["max_time"] == 25
    assert main(["--test", "--task-id", "2", *common]) == 0
    assert "PPO trained on task 0, tested on task 2" in capsys.readouterr().out
    assert model.with_name("ares_test_task2.png").stat().st_size > 10_000
    # On random tasks: those of test.py --random-tasks (same stream), summarised over tasks.
    assert main(["--test", "--random-tasks", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "tested on 2 random tasks" in out and "1000000 |" in out and "1000001 |" in out
    assert "over 2 tasks:" in out and "median final distance" in out
    with pytest.raises(SystemExit):
        main(["--train", "--random-tasks", "2", *common])
    # The loaded agent acts on ARES observations (13 values) within the action box.
    agent, _ = load_agent("ppo", model)
    actions = agent_controller(agent)(np.zeros((4, 13), dtype=np.float32))
    assert actions.shape == (4, 5) and np.all(np.abs(actions) <= 1.0)


def test_off_policy_agent_trains_on_ares(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    model = tmp_path / "td3.zip"
    assert _ppo_script().main(["--train", "--algo", "td3", "--steps", "60", "--set", "learning_starts=20",
                               "--config", str(ARES_CONFIG), "--num-episodes", "2", "--output-file", str(model),
                               "--no-progress"]) == 0
    assert "TD3 trained 60 steps on task 0" in capsys.readouterr().out
    agent, info = load_agent("td3", model)
    assert info["family"] == "ares_ea" and agent.observation_space.shape == (13,)


def test_testing_an_agent_on_another_family_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    model = tmp_path / "ares.zip"
    assert _ppo_script().main(["--train", "--steps", "64", "--set", "n_steps=64", "--set", "batch_size=32",
                               "--config", str(ARES_CONFIG), "--num-episodes", "1", "--output-file", str(model),
                               "--no-progress"]) == 0
    result = subprocess.run([sys.executable, "ppo.py", "--test", "--output-file", str(model)], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "trained on the ares_ea family" in lines[0] and "is awake" in lines[0]


@pytest.mark.parametrize("family", ["not_a_family", 3])
def test_an_archive_naming_an_unknown_family_is_refused(tmp_path, monkeypatch, family) -> None:
    from maml_rl.ppo_baseline import ModelFileError
    from maml_rl.ppo_model_file import spaces_env

    with pytest.raises(ModelFileError, match="unknown task family"):
        spaces_env(tmp_path / "x.zip", {"family": family})
