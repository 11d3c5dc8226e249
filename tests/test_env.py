"""The AwakeSteering environment: semantics, gymnasium compliance, batched equivalence."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import maml_rl.envs  # noqa: F401  (registers AwakeSteering-v0)
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.batched import BatchedAwakeSteering
from maml_rl.envs.dynamics import (SteeringDynamics, normalise_actions, rms, sample_initial_kicks,
                                   sample_initial_kicks_batch, saturate)
from maml_rl.envs.tasks import Task


def test_check_env_and_registration() -> None:
    check_env(AwakeSteering(), skip_render_check=True)
    env = gym.make("AwakeSteering-v0", max_time=7)
    obs, info = env.reset(seed=3)
    assert obs.shape == (10,) and obs.dtype == np.float32
    assert set(info) >= {"task_id", "step", "success"}
    env.close()


def test_observation_is_scaled_readings_bounded_by_the_aperture() -> None:
    env = AwakeSteering()
    direction = np.linspace(-2e-4, 2e-4, 10)
    readings = 100 * env.response @ direction
    # Inside the aperture (largest reading 0.99): the observation is the scaled reading itself.
    theta = direction * 0.99 / np.abs(readings).max()
    obs, info = env.reset(options={"initial_kicks": theta})
    np.testing.assert_allclose(obs, (100 * env.response @ theta).astype(np.float32), rtol=1e-6)
    assert np.abs(obs).max() == pytest.approx(0.99, rel=1e-6) and not info["beam_lost"]
    # Past the aperture (largest reading 3): readings beyond 1 are bounded to [-1, 1]; from the
    # first monitor outside on, every reading is that monitor's sign (beam lost there).
    theta = direction * 3.0 / np.abs(readings).max()
    obs, info = env.reset(options={"initial_kicks": theta})
    raw = 100 * env.response @ theta
    first = int(np.argmax(np.abs(raw) >= 1))
    assert np.abs(raw).max() == pytest.approx(3.0) and info["beam_lost"]
    np.testing.assert_allclose(obs[:first], raw[:first].astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(obs[first:], np.sign(raw[first]))
    np.testing.assert_array_equal(obs, np.clip(obs, -1, 1))
    assert env.observation_space.contains(obs)


def test_action_is_rescaled_not_clipped_and_reward_is_minus_ten_rms() -> None:
    env = AwakeSteering()
    theta = np.full(10, 1e-5)
    env.reset(options={"initial_kicks": theta})
    action = np.array([2.0, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 0.0])
    obs, reward, terminated, truncated, info = env.step(action)
    np.testing.assert_allclose(env.kicks, theta + 1e-4 * action / 2.0)
    assert reward == pytest.approx(-10 * np.sqrt(np.mean(obs.astype(float) ** 2)), rel=1e-6)
    assert info["step"] == 1 and not truncated
    small = np.array([0.3] * 10)
    np.testing.assert_array_equal(normalise_actions(small[None])[0], small)  # inside the box: unchanged


def test_success_terminates_with_reward_above_minus_one() -> None:
    env = AwakeSteering()
    action = np.sign(env.response[7])  # |a| <= 1, moves monitor 9 strongly
    theta = -1e-4 * action
    obs, _ = env.reset(options={"initial_kicks": theta})
    assert rms(obs.astype(float)) > 0.1
    obs, reward, terminated, truncated, info = env.step(action)  # back to theta = 0
    assert terminated and not truncated and info["success"]
    assert reward > -1 and rms(obs.astype(float)) < 0.1


def test_beam_loss_saturates_from_first_lost_monitor_and_terminates() -> None:
    readings = np.array([[0.2, -0.5, 1.3, -0.1, -2.0, 0.4, 0.0, 0.3, 0.1, 0.9]])
    obs, lost = saturate(readings)
    np.testing.assert_array_equal(obs[0], [0.2, -0.5, 1, 1, 1, 1, 1, 1, 1, 1])
    assert lost[0]
    env = AwakeSteering()
    action = np.sign(env.response[7])
    env.reset(options={"initial_kicks": 2e-4 * action})
    for _ in range(100):
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated:
            break
    raw = 100 * env.response @ env.kicks
    first = int(np.argmax(np.abs(raw) >= 1))
    assert terminated and info["beam_lost"] and not info["success"]
    np.testing.assert_array_equal(obs[first:], np.sign(raw[first]))
    np.testing.assert_allclose(obs[:first], raw[:first], rtol=1e-6)
    assert reward == pytest.approx(-10 * rms(obs.astype(float)), rel=1e-6)


def test_time_limit_truncates_without_terminating() -> None:
    env = AwakeSteering(max_time=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(10))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_reset_distribution_and_reproducibility() -> None:
    env = AwakeSteering()
    first = env.reset(seed=42)[0]
    np.testing.assert_array_equal(first, env.reset(seed=42)[0])
    for _ in range(200):
        obs, _ = env.reset()
        assert np.max(np.abs(obs)) <= 0.95 and rms(obs.astype(float)) > 0.2
        assert np.all(np.abs(env.kicks) <= 5e-4)


def test_reset_fails_clearly_on_an_unusable_task(monkeypatch) -> None:
    env = AwakeSteering()
    monkeypatch.setattr(AwakeSteering, "response", property(lambda self: np.eye(10) * 1e-3))
    with pytest.raises(RuntimeError, match="no initial state"):
        env.reset(seed=0)


def test_batched_initial_states_fail_clearly_on_an_unusable_task() -> None:
    responses = np.stack([np.eye(10) * 5.0, np.eye(10) * 1e-3])  # the second cannot reach rms 0.2
    with pytest.raises(RuntimeError, match=r"no initial state .* episode\(s\) \[1\]"):
        sample_initial_kicks_batch([np.random.default_rng(s) for s in range(2)], responses, max_draws=5000)


def test_task_api() -> None:
    env = AwakeSteering(num_random_quads=3)
    env.reset(seed=5)
    tasks = env.sample_tasks(20)
    factors = np.array([t.factors for t in tasks])
    assert np.all(factors[:, :7] == 1.0)
    assert np.all((factors[:, 7:] >= 0.75) & (factors[:, 7:] <= 1.25))
    assert len({t.id for t in tasks}) == 20
    env2 = AwakeSteering(num_random_quads=3)
    env2.reset(seed=5)
    assert [t.factors for t in env2.sample_tasks(20)] == [t.factors for t in tasks]
    env.reset_task(tasks[4])
    assert env.get_task() == tasks[4]
    np.testing.assert_array_equal(env.response, tasks[4].response_matrices[0])
    all_quads = AwakeSteering()
    all_quads.reset(seed=1)
    f = np.array([t.factors for t in all_quads.sample_tasks(50)])
    assert np.all(f != 1.0) and f.min() >= 0.75 and f.max() <= 1.25


@pytest.mark.parametrize("plane", ["horizontal", "vertical"])
def test_sampled_tasks_can_start_episodes_in_the_env_plane(plane) -> None:
    # About 45 % of the distribution is inadmissible in the vertical plane: sampling must check
    # admissibility in the environment's own plane, or reset() fails on those tasks.
    from maml_rl.envs.tasks import is_admissible
    env = AwakeSteering(plane=plane)
    env.reset(seed=0)
    tasks = env.sample_tasks(40)
    assert all(is_admissible(t, plane) for t in tasks)
    for task in tasks:
        env.reset_task(task)
        obs, _ = env.reset()
        assert np.sqrt(np.mean(obs.astype(float) ** 2)) > 0.2


def test_task_value_object() -> None:
    task = Task(7, (1.1,) * 10)
    assert task.response_matrices is task.response_matrices  # cached
    clone = pickle.loads(pickle.dumps(task))
    assert clone == task and clone.id == 7
    np.testing.assert_array_equal(clone.response("vertical"), task.response("vertical"))
    with pytest.raises(ValueError, match="positive"):
        Task(1, (0.0,) * 10)
    with pytest.raises(ValueError, match="shape"):
        Task(1, (1.0,) * 9)
    with pytest.raises(ValueError, match="plane"):
        task.response("diagonal")


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="plane"):
        AwakeSteering(plane="x")
    with pytest.raises(ValueError, match="max_time"):
        AwakeSteering(max_time=0)
    with pytest.raises(ValueError, match="reward_mode"):
        AwakeSteering(reward_mode="bonus")
    with pytest.raises(ValueError, match="threshold"):
        AwakeSteering(threshold=2.0)


def test_vertical_plane_uses_vertical_response() -> None:
    env = AwakeSteering(plane="vertical")
    theta = np.full(10, 1e-4)
    obs, _ = env.reset(options={"initial_kicks": theta})
    np.testing.assert_allclose(obs, np.clip(100 * Task.nominal().response_matrices[1] @ theta, -1, 1), rtol=1e-6)


def test_observation_noise_is_seeded_and_only_on_the_readings() -> None:
    env = AwakeSteering(noise_sigma=0.05)
    theta = np.full(10, 1e-4)
    a = env.reset(seed=1, options={"initial_kicks": theta})[0]
    b = env.reset(seed=1, options={"initial_kicks": theta})[0]
    c = env.reset(seed=2, options={"initial_kicks": theta})[0]
    truth = np.clip(100 * env.response @ theta, -1, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, truth)
    assert np.std(a - truth) < 0.2


def test_improvement_reward_telescopes() -> None:
    env = AwakeSteering(reward_mode="improvement", step_penalty=0.1)
    obs0, _ = env.reset(seed=9)
    rng = np.random.default_rng(0)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-0.3, 0.3, 10))
        total += reward
        steps += 1
        if terminated or truncated:
            break
    expected = 10 * (rms(obs0.astype(float)) - rms(obs.astype(float))) - 0.1 * steps
    assert total == pytest.approx(expected, abs=1e-5)


def test_batched_environment_equals_single_environment() -> None:
    """Same initial kicks and actions -> identical observations, rewards and flags."""
    rng = np.random.default_rng(3)
    env = AwakeSteering(max_time=25)
    env.reset(seed=0)
    tasks = env.sample_tasks(6)
    kicks = np.array([sample_initial_kicks(rng, t.response()) for t in tasks])
    actions = rng.normal(0, 0.8, size=(25, len(tasks), 10))
    actions[:, 0] = 0.0                 # episode 0 runs into the time limit
    actions[:, 1] = np.sign(tasks[1].response_matrices[0][7])  # episode 1 loses the beam
    kicks[1] = 2e-4 * actions[0, 1]
    batched = BatchedAwakeSteering(SteeringDynamics(max_time=25))
    obs_b = batched.reset(np.stack([t.response_matrices[0] for t in tasks]), kicks)
    records_b = [[] for _ in tasks]
    for t in range(25):
        step = batched.step(actions[t])
        for e in range(len(tasks)):
            if step.active[e]:
                records_b[e].append((step.obs[e].copy(), step.reward[e], step.terminated[e], step.truncated[e],
                                     step.success[e]))
    for e, task in enumerate(tasks):
        env.reset_task(task)
        obs_s, _ = env.reset(options={"initial_kicks": kicks[e]})
        np.testing.assert_array_equal(obs_s, obs_b[e])
        records_s = []
        for t in range(25):
            obs, reward, terminated, truncated, info = env.step(actions[t, e])
            records_s.append((obs, reward, terminated, truncated, info["success"]))
            if terminated or truncated:
                break
        assert len(records_s) == len(records_b[e])
        for (o1, r1, te1, tr1, s1), (o2, r2, te2, tr2, s2) in zip(records_s, records_b[e]):
            np.testing.assert_array_equal(o1, o2)
            assert (r1, te1, tr1, s1) == (r2, bool(te2), bool(tr2), bool(s2))
    assert batched.done.all()
    assert records_b[0][-1][3] and records_b[1][-1][2]  # truncated / beam loss happened


def test_batched_initial_states_equal_sequential_draws() -> None:
    """The one-pass first chunk and the per-episode fallback reproduce sample_initial_kicks."""
    from maml_rl.envs.tasks import sample_tasks

    tasks = sample_tasks(np.random.default_rng(8), 12, plane="vertical")
    responses = np.stack([t.response("vertical") for t in tasks] * 4)  # weak plane: many fallbacks
    seeds = range(len(responses))
    batched = sample_initial_kicks_batch([np.random.default_rng(s) for s in seeds], responses)
    sequential = np.stack([sample_initial_kicks(np.random.default_rng(s), r) for s, r in zip(seeds, responses)])
    np.testing.assert_array_equal(batched, sequential)


def test_ppo_fresh_task_is_admissible_in_the_plane_it_steers() -> None:
    from dataclasses import replace

    from maml_rl.config import load_config
    from maml_rl.envs.tasks import REPO_ROOT, is_admissible
    from ppo import resolve_task
    base = load_config(REPO_ROOT / "configs" / "awake_evaluation.yaml")
    config = replace(base, env_kwargs={**base.env_kwargs, "plane": "vertical"})
    tasks = [resolve_task(-1, None, seed, config) for seed in range(12)]
    assert all(is_admissible(t, "vertical") for t in tasks)
