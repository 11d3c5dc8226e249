"""The AresEA environment: semantics on constructed cases, gymnasium compliance, batched equivalence."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import maml_rl.families.ares_ea  # noqa: F401  (registers AresEA-v0)
from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
from maml_rl.families.ares_ea.dynamics import (BEAM_SCALE, AresDynamics, admissible_starts, observation,
                                               on_screen, sample_initial_magnets)
from maml_rl.families.ares_ea.env import AresEA
from maml_rl.families.ares_ea.segment import MAGNET_LIMITS, SCREEN_HALF_SIZE, AresSegment
from maml_rl.families.ares_ea.tasks import AresTask, sample_tasks, task_arrays

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def segment() -> AresSegment:
    return AresSegment()


def linear_track(magnets: np.ndarray) -> np.ndarray:
    """A stand-in for the physics: the beam is (m1, |m2|, m3, |m4|) x 1e-5 m per unit of setting / limit."""
    x = np.asarray(magnets) / MAGNET_LIMITS
    return np.stack([x[:, 0] * 1e-3, np.abs(x[:, 1]) * 1e-3, x[:, 2] * 1e-3, np.abs(x[:, 3]) * 1e-3], axis=1)


def run_steps(dynamics: AresDynamics, magnets: np.ndarray, target: np.ndarray, actions: list[np.ndarray]) -> list:
    """Step one episode on ``linear_track`` the way the environments do; returns the results."""
    beam = linear_track(magnets[None])
    o0 = dynamics.initial_objective(beam, target[None])
    previous, hold, out = dynamics.objective(beam, target[None]), np.zeros(1, dtype=int), []
    for k, action in enumerate(actions):
        result = dynamics.step(linear_track, magnets[None], action[None], target[None], np.array([k]), hold, o0,
                               previous)
        magnets, hold, previous = result.magnets[0], result.hold, result.objective
        out.append(result)
    return out


# ----------------------------------------------------------------------------- semantics on constructed cases

def test_actions_direct_and_delta() -> None:
    m = np.array([[68.0, -10.0, 1e-3, 0.0, -6e-3]])
    a = np.array([[1.0, -0.5, 3.0, 0.2, -1.0]])  # 3.0 is clipped to 1
    np.testing.assert_allclose(AresDynamics(action_mode="direct").apply_actions(m, a),
                               [[72.0, -36.0, 6.1782e-3, 14.4, -6.1782e-3]])
    np.testing.assert_allclose(AresDynamics(action_mode="delta").apply_actions(m, a),
                               [[72.0, -13.6, 1e-3 + 6.1782e-4, 1.44, -6.1782e-3]])  # limits bind at +-L


def test_objective_reward_and_improvement_reward() -> None:
    target = np.array([0.0, 1e-4, 0.0, 1e-4])
    m0 = np.array([36.0, 36.0, 0.5 * 6.1782e-3, 36.0, 0.0])      # beam (5e-4, 5e-4, 5e-4, 5e-4)
    actions = [np.array([-1.0, -1.0, -1.0, -1.0, 0.0])] * 2      # each step: beam -1e-4 per entry
    o0 = 5e-4 + 4e-4 + 5e-4 + 4e-4
    plain = run_steps(AresDynamics(), m0, target, actions)
    assert plain[0].reward[0] == pytest.approx(-(o0 - 4e-4) / o0, rel=1e-9)
    assert plain[1].reward[0] == pytest.approx(-(o0 - 8e-4) / o0, rel=1e-9)
    shaped = run_steps(AresDynamics(reward_mode="improvement", step_penalty=0.05), m0, target, actions)
    assert [r.reward[0] for r in shaped] == pytest.approx([4e-4 / o0 - 0.05, 4e-4 / o0 - 0.05], rel=1e-9)


def test_success_needs_consecutive_steps_within_thresholds() -> None:
    target = np.array([1e-4, 1e-4, 1e-4, 1e-4])
    m0 = np.array([0.0, 0.0, 0.0, 0.0, 0.0])            # beam 0: 1e-4 from the target in every entry
    to_target = np.array([1.0, 1.0, 1.0, 1.0, 0.0])     # delta 0.1 L -> beam (1e-4, 1e-4, 1e-4, 1e-4)
    stay, away = np.zeros(5), -to_target
    dyn = AresDynamics(success_steps=2)
    results = run_steps(dyn, m0, target, [to_target, away, to_target, stay])
    assert [int(r.hold[0]) for r in results] == [1, 0, 1, 2]
    assert [bool(r.terminated[0]) for r in results] == [False, False, False, True]
    assert results[-1].success[0] and not results[-1].truncated[0]
    assert run_steps(AresDynamics(success_steps=1), m0, target, [to_target])[0].success[0]
    # Within every threshold except one: no success.
    near = run_steps(AresDynamics(thresholds=(2e-5, 2e-5, 2e-5, 1e-6)), m0, target + [0, 0, 0, 5e-6], [to_target])
    assert not near[0].success[0]


def test_off_screen_terminates_as_failure_with_penalty() -> None:
    dyn = AresDynamics(action_mode="direct", off_screen_penalty=3.0)
    target = np.array([0.0, 1e-4, 0.0, 1e-4])
    # The stand-in reaches at most 1 mm: on the screen. A beam just beyond the half-height is not.
    result = run_steps(dyn, np.zeros(5), target, [np.array([0.0, 0.1, 1.0, 0.1, 0.0])])[0]
    assert not result.off_screen[0]

    def far(magnets: np.ndarray) -> np.ndarray:
        beam = linear_track(magnets)
        beam[:, 2] = SCREEN_HALF_SIZE[1] * 1.001
        return beam

    o0 = dyn.initial_objective(linear_track(np.zeros((1, 5))), target[None])
    lost = dyn.step(far, np.zeros((1, 5)), np.zeros((1, 5)), target[None], np.array([0]), np.array([0]), o0, o0)
    assert lost.off_screen[0] and lost.terminated[0] and not lost.success[0] and not lost.truncated[0]
    expected = -dyn.objective(far(np.zeros((1, 5))), target[None])[0] / o0[0] - 3.0
    assert lost.reward[0] == pytest.approx(expected)


def test_the_screen_is_the_published_sensor_and_its_edge_is_the_off_screen_boundary() -> None:
    """2448 x 2040 pixels of 3.3198 x 2.4469 um: half-sizes 4.0634 mm x 2.4958 mm; a centroid
    just inside either edge is on the screen, just outside is not (both signs, both planes)."""
    half = np.array([2448 * 3.3198e-6, 2040 * 2.4469e-6]) / 2
    np.testing.assert_allclose(SCREEN_HALF_SIZE, half, rtol=1e-15)
    assert half == pytest.approx([4.0634e-3, 2.4958e-3], rel=1e-4)
    for plane, column in ((0, 0), (1, 2)):
        for sign in (1.0, -1.0):
            beam = np.array([[0.0, 1e-4, 0.0, 1e-4]] * 2)
            beam[:, column] = sign * half[plane] * np.array([0.999, 1.001])
            assert on_screen(beam).tolist() == [True, False]


def test_time_limit_truncates_without_terminating() -> None:
    dyn = AresDynamics(max_time=3)
    m0 = np.array([10.0, 10.0, 1e-3, 10.0, 0.0])
    results = run_steps(dyn, m0, np.array([0.0, 1e-4, 0.0, 1e-4]), [np.zeros(5)] * 3)
    assert [(bool(r.terminated[0]), bool(r.truncated[0])) for r in results] == [(False, False)] * 2 + [(False, True)]
    # Success on the last step terminates and does not truncate.
    last = run_steps(AresDynamics(max_time=1), np.zeros(5), np.full(4, 1e-4), [np.array([1.0, 1.0, 1.0, 1.0, 0.0])])[0]
    assert last.terminated[0] and not last.truncated[0]


def test_observation_is_normalised_beam_magnets_target() -> None:
    beam = np.array([[1e-3, 2e-4, -5e-4, 1.0]])          # sigma_y far beyond the screen: clipped
    magnets = np.array([[72.0, -36.0, 0.0, 7.2, 6.1782e-3]])
    target = np.array([[0.0, 1e-4, 0.0, 1e-4]])
    obs = observation(beam, magnets, target)
    assert obs.dtype == np.float32 and obs.shape == (1, 13)
    np.testing.assert_allclose(obs[0, :4], [1e-3 / BEAM_SCALE[0], 2e-4 / BEAM_SCALE[1], -5e-4 / BEAM_SCALE[2], 1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(obs[0, 4:9], [1, -0.5, 0, 0.1, 1], rtol=1e-6)
    np.testing.assert_allclose(obs[0, 9:], (target / BEAM_SCALE)[0], rtol=1e-6)


def test_dynamics_options_are_validated() -> None:
    for kwargs, message in [({"action_mode": "absolute"}, "action_mode"), ({"max_time": 0}, "max_time"),
                            ({"success_steps": 0}, "success_steps"), ({"thresholds": (1e-5,) * 3}, "thresholds"),
                            ({"weights": (1, 1, 1, -1)}, "weights"), ({"reward_mode": "bonus"}, "reward_mode"),
                            ({"off_screen_penalty": -1.0}, "off_screen_penalty"),
                            ({"initial_magnet_range": 0.0}, "initial_magnet_range"),
                            ({"initial_magnet_range": 1.5}, "initial_magnet_range")]:
        with pytest.raises(ValueError, match=message):
            AresDynamics(**kwargs)


# ----------------------------------------------------------------------------- the gymnasium environment

@pytest.mark.parametrize("action_mode", ["delta", "direct"])
def test_check_env(action_mode: str) -> None:
    check_env(AresEA(action_mode=action_mode), skip_render_check=True)


def test_registration_and_step_contents() -> None:
    env = gym.make("AresEA-v0", max_time=7)
    obs, info = env.reset(seed=3)
    assert obs.shape == (13,) and obs.dtype == np.float32
    assert set(info) >= {"task_id", "step", "success", "off_screen", "objective", "beam", "target", "magnets"}
    obs, reward, terminated, truncated, info = env.step(np.zeros(5, dtype=np.float32))
    np.testing.assert_array_equal(obs, observation(info["beam"][None], info["magnets"][None], info["target"][None])[0])
    assert reward == pytest.approx(-info["normalised_objective"])
    env.close()


def test_direct_action_to_known_settings_succeeds(segment: AresSegment) -> None:
    """Target = the beam at settings m*: one direct action m* / L reaches it exactly."""
    task = sample_tasks(np.random.default_rng(21), 1)[0]
    beams, shifts = task_arrays([task])
    goal = np.array([10.0, -10.0, 1e-3, 10.0, -1e-3])
    target = segment.screen_beam_numpy(goal[None], beams, shifts)[0]
    assert on_screen(target)
    env = AresEA(action_mode="direct", task=task, target=target)
    obs, info = env.reset(seed=0)
    assert not np.allclose(info["beam"], target)
    obs, reward, terminated, truncated, info = env.step(goal / MAGNET_LIMITS)
    assert terminated and info["success"] and not truncated
    assert reward == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(env.magnets, goal, rtol=1e-12)


def test_steering_off_the_screen_terminates(segment: AresSegment) -> None:
    env = AresEA(action_mode="direct", task=AresTask.nominal())
    env.reset(seed=1)
    # Full vertical kick: 6.18 mrad x 0.975 m = 6 mm > 2.5 mm half-height.
    obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 1.0, 0, 0]))
    assert terminated and info["off_screen"] and not info["success"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(5))


def test_time_limit_in_the_environment() -> None:
    env = AresEA(max_time=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(5))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_reset_draws_admissible_reproducible_states(segment: AresSegment) -> None:
    task = sample_tasks(np.random.default_rng(2), 1)[0]
    env = AresEA(task=task)
    first = env.reset(seed=42)[0]
    np.testing.assert_array_equal(first, env.reset(seed=42)[0])
    beams, shifts = task_arrays([task])
    for _ in range(20):
        _, info = env.reset()
        assert np.all(np.abs(info["magnets"]) <= MAGNET_LIMITS)
        assert abs(info["target"][0]) <= 1e-3 and 2e-5 <= info["target"][1] <= 3e-4
        beam = segment.screen_beam_numpy(info["magnets"][None], beams, shifts)
        assert admissible_starts(beam, info["target"][None], env.dynamics.thresholds)[0]
    fixed = AresEA(target=(1e-4, 5e-5, -1e-4, 6e-5))
    assert np.array_equal(fixed.reset(seed=0)[1]["target"], [1e-4, 5e-5, -1e-4, 6e-5])


def test_initial_magnet_range_narrows_the_reset_draws(segment: AresSegment) -> None:
    """r < 1 draws settings within r L and still only admissible starts; r = 1 is the old draw."""
    task = sample_tasks(np.random.default_rng(3), 1)[0]
    narrow = AresEA(task=task, initial_magnet_range=0.2)
    beams, shifts = task_arrays([task])
    for seed in range(10):
        _, info = narrow.reset(seed=seed)
        assert np.all(np.abs(info["magnets"]) <= 0.2 * MAGNET_LIMITS + 1e-12)
        beam = segment.screen_beam_numpy(info["magnets"][None], beams, shifts)
        assert admissible_starts(beam, info["target"][None], narrow.dynamics.thresholds)[0]
    default, whole = AresEA(task=task), AresEA(task=task, initial_magnet_range=1.0)
    np.testing.assert_array_equal(default.reset(seed=5)[1]["magnets"], whole.reset(seed=5)[1]["magnets"])


def test_reset_options_are_validated() -> None:
    env = AresEA()
    start = np.array([10.0, -10.0, 0.0, 5.0, 0.0])
    _, info = env.reset(seed=0, options={"initial_magnets": start, "target": (0, 1e-4, 0, 1e-4)})
    np.testing.assert_array_equal(info["magnets"], start)
    with pytest.raises(ValueError, match="exceed the limits"):
        env.reset(options={"initial_magnets": [80.0, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match="off the screen"):
        env.reset(options={"initial_magnets": [0, 0, 6e-3, 0, 0]})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"initial_kicks": start})
    with pytest.raises(ValueError, match="target"):
        AresEA(target=(0.0, -1e-4, 0.0, 1e-4))


def test_reset_fails_clearly_when_no_start_exists() -> None:
    rngs = [np.random.default_rng(0)]

    def nowhere(magnets: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        return np.full((len(magnets), 4), 1.0)   # always off the screen

    with pytest.raises(RuntimeError, match="no initial magnet setting"):
        sample_initial_magnets(rngs, nowhere, np.zeros((1, 4)), (2e-5,) * 4, max_draws=100)


def test_task_api() -> None:
    env = AresEA()
    env.reset(seed=5)
    tasks = env.sample_tasks(10)
    assert len({t.id for t in tasks}) == 10
    env2 = AresEA()
    env2.reset(seed=5)
    assert env2.sample_tasks(10) == tasks
    env.reset_task(tasks[3])
    assert env.get_task() == tasks[3]
    with pytest.raises(TypeError, match="AresTask"):
        env.reset_task("task 3")


def test_batched_environment_equals_single_environment(segment: AresSegment) -> None:
    """Same initial states and actions -> the same observations, rewards and flags, step by step."""
    rng = np.random.default_rng(3)
    horizon = 12
    dyn = AresDynamics(max_time=horizon)
    tasks = sample_tasks(rng, 5)
    beams, shifts = task_arrays(tasks)
    targets, magnets = sample_initial_states([np.random.default_rng(s) for s in range(5)], beams, shifts, dyn, segment)
    actions = rng.uniform(-1, 1, (horizon, 5, 5))
    actions[:, 0] = 0.0                                   # episode 0 runs into the time limit
    actions[:, 1] = [0, 0, 1.0, 0, 0]                     # episode 1 kicks the beam off the screen
    magnets[1] = 0.0                                      # (from all magnets off: 0.6 mm per step)
    first = np.clip(magnets[2] + 0.1 * MAGNET_LIMITS * actions[0, 2], -MAGNET_LIMITS, MAGNET_LIMITS)
    targets[2] = segment.screen_beam_numpy(first[None], beams[2:3], shifts[2:3])[0]   # episode 2 succeeds at once
    batched = BatchedAresEA(dyn, segment)
    obs_b = batched.reset(beams, shifts, magnets, targets)
    records_b: list[list] = [[] for _ in tasks]
    for t in range(horizon):
        step = batched.step(actions[t])
        for e in range(len(tasks)):
            if step.active[e]:
                records_b[e].append((step.obs[e].copy(), step.reward[e], step.terminated[e], step.truncated[e],
                                     step.success[e], step.off_screen[e]))
    for e, task in enumerate(tasks):
        env = AresEA(max_time=horizon, task=task)
        obs_s, _ = env.reset(options={"initial_magnets": magnets[e], "target": targets[e]})
        np.testing.assert_allclose(obs_s, obs_b[e], rtol=1e-6, atol=1e-7)
        records_s = []
        for t in range(horizon):
            obs, reward, terminated, truncated, info = env.step(actions[t, e])
            records_s.append((obs, reward, terminated, truncated, info["success"], info["off_screen"]))
            if terminated or truncated:
                break
        assert len(records_s) == len(records_b[e])
        for (o1, r1, *flags1), (o2, r2, *flags2) in zip(records_s, records_b[e]):
            np.testing.assert_allclose(o1, o2, rtol=1e-6, atol=1e-7)
            assert r1 == pytest.approx(r2, rel=1e-10, abs=1e-12)
            assert tuple(flags1) == tuple(bool(f) for f in flags2)
    assert batched.done.all()
    assert records_b[0][-1][3] and records_b[1][-1][5] and records_b[2][-1][4]   # truncated, off screen, success
    assert len(records_b[2]) == 1


def test_batched_initial_states_equal_one_by_one(segment: AresSegment) -> None:
    dyn = AresDynamics()
    beams, shifts = task_arrays(sample_tasks(np.random.default_rng(8), 6))
    together = sample_initial_states([np.random.default_rng(s) for s in range(6)], beams, shifts, dyn, segment)
    for i in range(6):
        alone = sample_initial_states([np.random.default_rng(i)], beams[i:i + 1], shifts[i:i + 1], dyn, segment)
        np.testing.assert_array_equal(alone[0][0], together[0][i])
        np.testing.assert_array_equal(alone[1][0], together[1][i])


# ----------------------------------------------------------------------------- optional dependency

def test_cheetah_is_optional_and_its_absence_is_named() -> None:
    """``import maml_rl`` and the family package do not import Cheetah; without it, creating
    the environment fails with an ImportError naming the ``ares`` extra (one subprocess)."""
    code = (
        "import sys\n"
        "import maml_rl, maml_rl.families.ares_ea, maml_rl.families.ares_ea.tasks\n"
        "print('imported', 'cheetah' in sys.modules)\n"
        "sys.modules['cheetah'] = None  # as if not installed\n"
        "import gymnasium as gym\n"
        "try:\n"
        "    gym.make('AresEA-v0')\n"
        "except ImportError as exc:\n"
        "    print('error', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "imported False"
    assert lines[1].startswith("error ") and '".[ares]"' in lines[1] and "cheetah-accelerator" in lines[1]
