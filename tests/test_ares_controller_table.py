"""The ARES-EA controller table: every controller on the same episodes at several tolerances."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import REPO
from maml_rl.config import load_config
from maml_rl.runio import RunFolderError
from maml_rl.training import environment_of

pytest.importorskip("cheetah")

from maml_rl.families.ares_ea import controller_table as ct  # noqa: E402

ARES_EVALUATION = REPO / "configs" / "ares_ea_evaluation.yaml"
META_POLICY = REPO / "awake" / "pretrained_ares_ea_policy.th"
THRESHOLDS = (100e-6, 20e-6)
MAX_TIME = 6


def hold(obs: np.ndarray) -> np.ndarray:
    """Zero delta actions: the settings never change."""
    return np.zeros((len(obs), 5))


@pytest.fixture(scope="module")
def setting():
    config = load_config(ARES_EVALUATION)
    environment = environment_of(config)
    environment = replace(environment, dynamics=replace(environment.dynamics, max_time=MAX_TIME))
    tasks = config.task_family.load_evaluation_tasks(None)[:2]
    return environment, tasks


@pytest.fixture(scope="module")
def records(setting):
    from maml_rl import load_policy
    from maml_rl.adaptation import policy_controller

    environment, tasks = setting
    agents = [ct.Agent("a", hold, trained_task=0, seed=1), ct.Agent("b", hold, trained_task=1, seed=2)]
    out = ct.compare(environment, tasks, THRESHOLDS, 2, 1, policy_controller(load_policy(META_POLICY)),
                     {t.id: hold for t in tasks}, agents)
    return [r.as_dict() for r in out]


def test_with_thresholds_changes_only_the_tolerance(setting) -> None:
    environment, _ = setting
    tight = ct.with_thresholds(environment, 20e-6)
    assert tight.dynamics.thresholds == (20e-6,) * 4
    assert replace(tight.dynamics, thresholds=environment.dynamics.thresholds) == environment.dynamics
    assert tight.target == environment.target


def test_every_controller_on_every_task_and_agents_on_their_own_task(records) -> None:
    for um in (100.0, 20.0):
        for task_id in (0, 1):
            names = [r["controller"] for r in records if r["threshold_um"] == um and r["task_id"] == task_id]
            assert names == ["Nelder-Mead", "Bayesian optimisation", "limit", "meta-policy, zero-shot",
                             "meta-policy, adapted", "PPO"]
            (agent,) = [r for r in records if r["threshold_um"] == um and r["task_id"] == task_id and r["agent"]]
            assert agent["trained_task"] == task_id and agent["agent_seed"] == task_id + 1


def test_holding_the_settings_never_succeeds_and_ends_at_the_initial_distance(setting, records) -> None:
    from maml_rl.families.ares_ea.environment import shared_segment
    from maml_rl.families.ares_ea.evaluation import evaluation_states
    from maml_rl.families.ares_ea.tasks import task_arrays

    environment, tasks = setting
    segment = shared_segment()
    for threshold in THRESHOLDS:
        env = ct.with_thresholds(environment, threshold)
        for task in tasks:
            targets, magnets = evaluation_states(task, 2, 1, env)
            beams, shifts = (np.repeat(a, 2, axis=0) for a in task_arrays([task]))
            screen = segment.screen_beam_numpy(magnets, segment.incoming_beam(beams), shifts)
            initial = np.median(np.sum(np.abs(screen - targets), axis=1)) * 1e6  # O_0 written out here
            for name in ("meta-policy, adapted", "PPO"):
                (row,) = [r for r in records if r["controller"] == name and r["task_id"] == task.id
                          and r["threshold_um"] == threshold * 1e6]
                assert row["success_rate"] == 0.0 and row["mean_steps"] == MAX_TIME
                assert row["median_final_distance_um"] == pytest.approx(initial, rel=1e-9)


def test_a_looser_tolerance_is_met_at_least_as_often_and_as_early(records) -> None:
    def row(name, task_id, um):
        (out,) = [r for r in records if r["controller"] == name and r["task_id"] == task_id and r["threshold_um"] == um]
        return out

    for task_id in (0, 1):
        loose, tight = row("meta-policy, zero-shot", task_id, 100.0), row("meta-policy, zero-shot", task_id, 20.0)
        assert loose["success_rate"] >= tight["success_rate"] and loose["mean_steps"] <= tight["mean_steps"]
        # The limit plans land within 100 um on every episode of these tasks, in fewer steps than the horizon.
        assert row("limit", task_id, 100.0)["success_rate"] == 1.0
        assert row("limit", task_id, 100.0)["mean_steps"] < MAX_TIME


def test_on_random_tasks_every_agent_runs_on_every_task(setting) -> None:
    environment, tasks = setting
    agents = [ct.Agent("a", hold, trained_task=0, seed=1), ct.Agent("b", hold, trained_task=7, seed=2)]
    out = ct.compare(environment, tasks, THRESHOLDS[:1], 2, 1, agents=agents, agents_on_own_task=False)
    assert sorted((r.task_id, r.agent) for r in out if r.agent) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]


def _rows(controller, values, agent=None):
    return [{"threshold_um": 100.0, "task_id": t, "controller": controller, "success_rate": s, "mean_steps": n,
             "median_final_distance_um": d, "agent": agent} for t, (s, n, d) in enumerate(values)]


def test_summary_means_success_and_steps_and_takes_the_median_distance() -> None:
    records = (_rows("limit", [(1.0, 2.0, 10.0), (0.5, 4.0, 30.0), (1.0, 3.0, 20.0)])
               + _rows("PPO", [(0.0, 25.0, 100.0)], "x") + _rows("PPO", [(1.0, 5.0, 300.0)], "y")
               + _rows("PPO", [(0.5, 10.0, 200.0)], "z"))
    summary = dict((name, (n, runs)) for name, n, runs in ct.summarise(records, 100.0))
    assert summary["limit"][0] == 3 and summary["limit"][1] == [pytest.approx((2.5 / 3, 3.0, 20.0))]
    assert summary["PPO"] == (1, [(0.0, 25.0, 100.0), (1.0, 5.0, 300.0), (0.5, 10.0, 200.0)])
    text = ct.format_summary(records, 100.0, 25)
    assert "| limit | 3 | 83 % | 3.0 | 20 |" in text
    assert "| PPO (3 agents: median [range]) | 1 | 50 [0, 100] % | 10.0 [5.0, 25.0] | 200 [100, 300] |" in text
    assert ct.summarise(records, 100.0, task_ids=[1])[0] == ("limit", 1, [(0.5, 4.0, 30.0)])
    assert ct.summarise(records, 20.0) == []


def test_adapted_policies_must_belong_to_the_tasks(setting, tmp_path) -> None:
    from maml_rl import load_policy
    from maml_rl.checkpoint import save_policy

    _, tasks = setting
    with pytest.raises(RunFolderError, match="no adapted policy for task 0"):
        ct.adapted_controllers(tmp_path, tasks)
    policy = load_policy(META_POLICY)
    for task in tasks:  # both files claim task 1
        save_policy(tmp_path / "policies" / f"task_{task.id}.th", policy, {"task_factors": list(tasks[1].factors)})
    with pytest.raises(RunFolderError, match="adapted to another task than task 0"):
        ct.adapted_controllers(tmp_path, tasks)
    assert set(ct.adapted_controllers(tmp_path, tasks[1:])) == {1}


def test_command_writes_records_and_tables_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    argv = ["--task-ids", "0", "--num-episodes", "1", "--thresholds-um", "100", "--meta-policy", str(META_POLICY),
            "--output-folder", str(tmp_path), "--experiment-name", "ares"]
    assert ct.main(argv) == 0
    folder = tmp_path / "ares" / "controllers"
    rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    assert [r["controller"] for r in rows] == ["Nelder-Mead", "Bayesian optimisation", "limit",
                                              "meta-policy, zero-shot"]
    assert "| meta-policy, zero-shot | 1 |" in (folder / "tables.md").read_text()
    assert "| Bayesian optimisation | 1 |" in (folder / "tables.md").read_text()
    assert "success within 100 um, 1 tasks" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        ct.run_main(ct.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "already exists" in err[0]
    with pytest.raises(SystemExit):
        ct.run_main(ct.main, [*argv, "--thresholds-um", "-5", "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--thresholds-um must be positive" in err[0]
    with pytest.raises(RunFolderError, match="no records.jsonl"):
        ct.read_records(tmp_path)


def test_figure_of_two_runs(tmp_path, records, capsys) -> None:
    from maml_rl.families.ares_ea.controller_figure import main as figure

    folders = []
    for name, rows in (("eval", records), ("random", [r for r in records if r["task_id"] == 1])):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        folders.append(str(folder))
    out = tmp_path / "controllers.png"
    assert figure([*folders, "--titles", "a", "b", "--output", str(out)]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as exit_info:
        figure([*folders, "--titles", "a", "--output", str(out)])
    assert exit_info.value.code == 2 and "one title per folder" in capsys.readouterr().err


def test_without_gpytorch_the_evaluation_works_and_the_table_says_which_extra(tmp_path) -> None:
    """gpytorch is the extra 'modelbased': only the Bayesian-optimisation row needs it."""
    import subprocess
    import sys

    blocked = "import sys; sys.modules['gpytorch'] = None; "
    evaluation = subprocess.run([sys.executable, "-c", blocked + "import maml_rl.families.ares_ea.evaluation"],
                                cwd=REPO, capture_output=True, text=True)
    assert evaluation.returncode == 0, evaluation.stderr
    table = subprocess.run([sys.executable, "-c", blocked + "from maml_rl.cli import run_main; "
                            "from maml_rl.families.ares_ea.controller_table import main; "
                            f"run_main(main, ['--output-folder', {str(tmp_path)!r}])"],
                           cwd=REPO, capture_output=True, text=True)
    lines = table.stderr.strip().splitlines()
    assert table.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), table.stderr
    assert "'modelbased'" in lines[0] and not any(tmp_path.iterdir())  # no run folder made
