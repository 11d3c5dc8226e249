"""ARES-EA references: the limit (gradient descent through Cheetah) and Nelder-Mead."""

from __future__ import annotations

import numpy as np
import pytest

from maml_rl.families.ares_ea.dynamics import DELTA_FRACTION, AresDynamics, within_thresholds
from maml_rl.families.ares_ea.env import AresEA
from maml_rl.families.ares_ea.references import limit, nelder_mead
from maml_rl.families.ares_ea.segment import MAGNET_LIMITS, AresSegment
from maml_rl.families.ares_ea.tasks import load_evaluation_tasks, task_arrays


@pytest.fixture(scope="module")
def segment() -> AresSegment:
    return AresSegment()


@pytest.fixture(scope="module")
def episode() -> tuple:
    """Evaluation task 1, a target in the target range and admissible initial settings."""
    task = load_evaluation_tasks()[1]
    target = np.array([3e-4, 1e-4, -2e-4, 8e-5])
    env = AresEA(task=task, target=target)
    _, info = env.reset(seed=2)
    return task, target, info["magnets"]


def test_limit_beats_random_settings_within_bounds(segment: AresSegment, episode: tuple) -> None:
    task, target, m0 = episode
    dyn = AresDynamics(action_mode="direct")
    result = limit(segment, task, target, m0, dyn, np.random.default_rng(0), starts=4, iterations=30,
                   polish_iterations=20)
    assert np.all(np.abs(result.best_settings) <= MAGNET_LIMITS)
    beams, shifts = task_arrays([task])
    random = np.random.default_rng(1).uniform(-1, 1, (256, 5)) * MAGNET_LIMITS
    random_objective = dyn.objective(segment.screen_beam_numpy(random, np.repeat(beams, 256, 0),
                                                               np.repeat(shifts, 256, 0)), target)
    start = dyn.objective(segment.screen_beam_numpy(m0[None], beams, shifts), target)[0]
    assert result.best_objective < 0.05 * random_objective.min() and result.best_objective < 0.05 * start
    np.testing.assert_allclose(segment.screen_beam_numpy(result.best_settings[None], beams, shifts)[0],
                               result.best_beam, rtol=1e-12)
    # Direct mode: one step (success_steps = 1), and the plan really succeeds in the environment.
    assert result.steps == 1
    env = AresEA(action_mode="direct", task=task)
    env.reset(options={"initial_magnets": m0, "target": target})
    _, _, terminated, _, info = env.step(result.actions(m0, "direct")[0])
    assert terminated and info["success"]


def test_limit_steps_in_delta_mode(segment: AresSegment, episode: tuple) -> None:
    """A target made reachable in 2 delta steps: the limit needs at most 2, its plan respects
    the per-step bound and succeeds in the environment at exactly the predicted step."""
    task, _, m0 = episode
    beams, shifts = task_arrays([task])
    direction = np.array([0.5, 0.5, -1.0, 0.5, 1.0])   # keeps the beam on the screen all the way
    goal = np.clip(m0 + 1.5 * DELTA_FRACTION * MAGNET_LIMITS * direction, -MAGNET_LIMITS, MAGNET_LIMITS)
    target = segment.screen_beam_numpy(goal[None], beams, shifts)[0]
    dyn = AresDynamics(action_mode="delta", success_steps=2)
    result = limit(segment, task, target, m0, dyn, np.random.default_rng(0), starts=4, iterations=30,
                   polish_iterations=0, max_steps=3)
    assert result.steps is not None and 2 <= result.steps <= 3     # <= 2 moves, then one step of holding
    actions = result.actions(m0, "delta")
    assert np.all(np.abs(actions) <= 1 + 1e-9)
    assert np.all(np.abs(result.plan) <= MAGNET_LIMITS)
    env = AresEA(task=task, success_steps=2)
    env.reset(options={"initial_magnets": m0, "target": target})
    for k, action in enumerate(actions, start=1):
        _, _, terminated, truncated, info = env.step(action)
        assert terminated == (k == len(actions)) and not truncated
    assert info["success"] and result.path_on_screen


def test_limit_reports_an_unreachable_target(segment: AresSegment, episode: tuple) -> None:
    task, _, m0 = episode
    far = np.array([3.9e-3, 1e-6, 2.4e-3, 1e-6])       # a 1 um spot at the corner of the screen
    result = limit(segment, task, far, m0, AresDynamics(action_mode="direct"), np.random.default_rng(0),
                   starts=2, iterations=10, polish_iterations=10)
    assert result.steps is None and len(result.plan) == 0
    with pytest.raises(ValueError, match="starts"):
        limit(segment, task, far, m0, AresDynamics(), np.random.default_rng(0), starts=1)


def test_nelder_mead_respects_bounds_and_improves(segment: AresSegment, episode: tuple) -> None:
    task, target, m0 = episode
    seen: list[np.ndarray] = []
    original = segment.screen_beam_numpy

    def spy(magnets, beam, shifts):
        seen.append(np.array(magnets))
        return original(magnets, beam, shifts)

    segment.screen_beam_numpy = spy
    try:
        result = nelder_mead(segment, task, target, m0, AresDynamics(), max_interactions=80)
    finally:
        del segment.screen_beam_numpy
    settings = np.concatenate(seen)
    assert result.interactions == len(settings) == 80
    assert np.all(np.abs(settings) <= MAGNET_LIMITS)
    np.testing.assert_allclose(settings[0], m0)                       # the first interaction measures the start
    assert result.best_objective < 0.5 * result.objectives[0]
    best = result.best_so_far()
    assert np.all(np.diff(best[~np.isnan(best)]) <= 0) and best[-1] == result.best_objective
    beams, shifts = task_arrays([task])
    assert AresDynamics().objective(original(result.best_settings[None], beams, shifts), target)[0] == \
        pytest.approx(result.best_objective)
    if result.success_interaction is not None:
        reached = original(settings[result.success_interaction - 1][None], beams, shifts)
        assert within_thresholds(reached, target, AresDynamics().thresholds)[0]
    with pytest.raises(ValueError, match="max_interactions"):
        nelder_mead(segment, task, target, m0, AresDynamics(), max_interactions=0)


def test_reference_table_and_benchmark_run_on_tiny_budgets(tmp_path, capsys) -> None:
    from maml_rl.families.ares_ea import benchmark, reference_table
    from maml_rl.families.ares_ea.tasks import write_task_file

    tasks_file = tmp_path / "tasks.yaml"
    write_task_file(load_evaluation_tasks()[:1], tasks_file)
    assert reference_table.main(["--tasks-file", str(tasks_file), "--episodes", "1", "--budget", "6",
                                 "--action-mode", "direct", "--starts", "2", "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert "limit steps" in out and out.splitlines()[1].split("|")[0].strip() == "0"
    assert reference_table.main(["--tasks-file", str(tmp_path / "missing.yaml")]) == 2
    assert benchmark.main(["--batch-sizes", "1", "3", "--steps", "2", "--repeats", "1", "--gym-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "batch     3" in out and "env steps/s" in out


def test_project_benchmark_command_measures_ares_at_batch_1_128_1024(capsys) -> None:
    """``python -m maml_rl.benchmark ares`` prints the throughput at the issue's batch sizes and
    of the gymnasium environment (numbers are printed, not asserted against a speed)."""
    from maml_rl.benchmark import main

    assert main(["ares", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rates = {}
    for line in out.splitlines():
        if "env steps/s" in line:
            name, value = line.split(":", 1)
            rates[name.strip()] = float(value.split("env steps/s")[0].replace(",", ""))
    assert list(rates) == ["batched env, batch     1", "batched env, batch   128", "batched env, batch  1024",
                           "gymnasium AresEA-v0 (batch 1)"]
    assert all(np.isfinite(v) and v > 0 for v in rates.values())
