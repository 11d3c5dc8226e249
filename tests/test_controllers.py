"""Benchmark and limit controllers, and the evaluation helper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.controllers import benchmark_action, limit_steps_and_action
from maml_rl.envs.tasks import Task, load_evaluation_tasks
from maml_rl.evaluation import benchmark_controller, evaluate, evaluation_kicks


def test_benchmark_centres_in_one_step_when_within_bounds() -> None:
    env = AwakeSteering()
    obs, _ = env.reset(options={"initial_kicks": np.full(10, 2e-6)})
    action = benchmark_action(env.response, obs)
    assert np.abs(action).max() <= 1
    obs, *_ = env.step(action)
    np.testing.assert_allclose(obs, 0, atol=1e-6)


def test_benchmark_direction_and_bound(rng) -> None:
    response = Task.nominal().response()
    obs = rng.uniform(-0.9, 0.9, size=(20, 10))
    actions = benchmark_action(np.broadcast_to(response, (20, 10, 10)), obs)
    full = -np.linalg.solve(response, obs.T).T / 0.01
    assert np.all(np.abs(actions).max(-1) <= 1 + 1e-12)
    cos = np.sum(actions * full, -1) / np.linalg.norm(actions, axis=-1) / np.linalg.norm(full, axis=-1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)


def _min_residual_reference(gain: np.ndarray, obs: np.ndarray, bound: float) -> float:
    """Independent solver (L-BFGS-B on the squared residual) for min ||obs + G D||, |D|_inf <= bound."""
    best = np.inf
    for start in (np.zeros(10), np.clip(-np.linalg.solve(gain, obs), -bound, bound)):
        res = minimize(lambda d: np.sum((obs + gain @ d) ** 2), start, jac=lambda d: 2 * gain.T @ (obs + gain @ d),
                       bounds=[(-bound, bound)] * 10, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
        best = min(best, float(np.sqrt(res.fun)))
    return best


def test_limit_step_count_is_the_smallest_feasible_one() -> None:
    env = AwakeSteering()
    gain = 0.01 * env.response
    radius = 0.1 * np.sqrt(10)
    for seed in range(15):
        obs, _ = env.reset(seed=seed)
        k, action = limit_steps_and_action(env.response, obs.astype(float))
        assert k >= 1 and np.abs(action).max() <= 1 + 1e-9
        assert np.linalg.norm(obs + gain @ (k * action)) <= radius + 1e-9
        if k > 1:
            assert _min_residual_reference(gain, obs.astype(float), k - 1) > radius * (1 - 1e-6)


def test_limit_is_a_lower_bound_of_the_benchmark_on_every_episode() -> None:
    for task in load_evaluation_tasks()[:3]:
        result = evaluate(None, task, n_episodes=100, seed=4)
        assert result.benchmark.success_rate == 1.0 and result.limit.success_rate == 1.0
        assert np.all(result.limit.lengths <= result.benchmark.lengths)
    nominal = evaluate(None, Task.nominal(), n_episodes=200, seed=0)
    # Published reference figures for the nominal optics: about 3.5 and 1.65 steps.
    assert 3.2 < nominal.benchmark.mean_length < 3.8
    assert 1.5 < nominal.limit.mean_length < 1.8


def test_evaluate_policy_on_identical_initial_states() -> None:
    task = load_evaluation_tasks()[2]
    result = evaluate(benchmark_controller(task, "horizontal", AwakeSteering().dynamics), task, n_episodes=30, seed=1)
    np.testing.assert_array_equal(result.policy.lengths, result.benchmark.lengths)
    np.testing.assert_array_equal(result.policy.returns, result.benchmark.returns)
    assert result.length_ratio() == 1.0
    np.testing.assert_array_equal(result.initial_kicks, evaluation_kicks(task, 30, 1))
    trajectory = result.policy.trajectories[0]
    t = int(result.policy.lengths[0])
    assert trajectory["obs"].shape == (t + 1, 10) and trajectory["actions"].shape == (t, 10)
    assert trajectory["rewards"][-1] > -1  # ended by success
    zero = evaluate(lambda obs: np.zeros_like(obs), task, n_episodes=5, seed=1, references=False)
    assert zero.policy.success_rate == 0.0 and np.all(zero.policy.lengths == 100)
    assert zero.benchmark is None
    with pytest.raises(ValueError):
        zero.length_ratio()
