"""Dyna: learned models, the imagined environment against the real one, counting, a tiny run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from maml_rl.baselines.model_based.base import controller_of
from maml_rl.baselines.model_based.dyna import Dyna
from maml_rl.baselines.model_based.ensemble import BootstrapEnsemble, MLPModel
from maml_rl.baselines.model_based.model_env import ModelSteeringEnv
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.controllers import benchmark_action
from maml_rl.evaluation import evaluate

ENV_KWARGS = {"beam_loss_penalty": 200.0, "max_time": 100}


class StepCounter(gym.Wrapper):
    """Counts the steps that reach the real environment."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.count = 0

    def step(self, action):  # noqa: ANN001, ANN201 - gymnasium's signature
        self.count += 1
        return self.env.step(action)


def random_transitions(env: AwakeSteering, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [obs, a], changes of the readings) of n random steps inside the aperture."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    inputs, targets = [], []
    while len(inputs) < n:
        action = rng.uniform(-1, 1, 10)
        next_obs, _, terminated, truncated, info = env.step(action)
        if not info["beam_lost"]:
            inputs.append(np.concatenate([obs, action]))
            targets.append(next_obs.astype(float) - obs)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return np.array(inputs), np.array(targets)


def test_model_environment_with_an_exact_model_reproduces_the_real_one() -> None:
    real = AwakeSteering(max_time=8, noise_sigma=0.0, reward_mode="improvement", step_penalty=0.5,
                         beam_loss_penalty=200.0)
    ensemble = BootstrapEnsemble(20, 10, size=3, kind="linear", seed=0)
    ensemble.fit(*random_transitions(real, 200, seed=1))
    model = ModelSteeringEnv(ensemble, real.dynamics, lambda: np.zeros((0, 10)), rollout_length=8)
    rng = np.random.default_rng(2)
    outcomes = {"success": 0, "beam_lost": 0, "truncated": 0}
    for episode in range(30):
        obs, _ = real.reset(seed=100 + episode)
        model_obs, _ = model.reset(seed=episode, options={"readings": obs.astype(float)})
        np.testing.assert_array_equal(model_obs, obs)
        kind = episode % 3  # the benchmark succeeds, small random steps time out, big ones lose the beam
        for _ in range(8):
            action = benchmark_action(real.response, obs) if kind == 0 else rng.uniform(-1, 1, 10) * [0, 0.1, 5][kind]
            obs, reward, terminated, truncated, info = real.step(action)
            m_obs, m_reward, m_terminated, m_truncated, m_info = model.step(action)
            np.testing.assert_allclose(m_obs, obs, atol=1e-5)
            assert m_reward == pytest.approx(reward, abs=1e-4)
            assert (m_terminated, m_truncated) == (terminated, truncated)
            assert (m_info["success"], m_info["beam_lost"]) == (info["success"], info["beam_lost"])
            if terminated or truncated:
                outcomes["success" if info["success"] else "beam_lost" if info["beam_lost"] else "truncated"] += 1
                break
    assert all(count > 0 for count in outcomes.values()), outcomes


def test_model_environment_passes_gymnasiums_checks() -> None:
    real = AwakeSteering()
    ensemble = BootstrapEnsemble(20, 10, size=2, kind="linear", seed=0)
    ensemble.fit(*random_transitions(real, 40, seed=0))
    starts = np.random.default_rng(0).uniform(-0.5, 0.5, (5, 10))
    check_env(ModelSteeringEnv(ensemble, real.dynamics, lambda: starts), skip_render_check=True)


def test_bootstrap_members_differ_and_the_mlp_learns_the_linear_map() -> None:
    env = AwakeSteering(noise_sigma=0.01)
    inputs, targets = random_transitions(env, 150, seed=3)
    ensemble = BootstrapEnsemble(20, 10, size=4, kind="linear", seed=0)
    ensemble.fit(inputs, targets)
    predictions = ensemble.predict(inputs[:20])
    assert predictions.shape == (4, 20, 10)
    assert np.ptp(predictions, axis=0).max() > 1e-4  # resampled data, different members
    test_inputs, test_targets = random_transitions(env, 50, seed=4)
    mlp = MLPModel(20, 10, epochs=300, seed=0)
    mlp.fit(inputs, targets)
    error = np.mean((mlp.predict(test_inputs) - test_targets) ** 2)
    assert error < 0.25 * np.mean(test_targets ** 2)  # explains most of the variance of unseen steps


def test_only_real_steps_are_counted() -> None:
    torch.set_num_threads(1)
    real = StepCounter(AwakeSteering(**ENV_KWARGS))
    method = Dyna(real, seed=0, n_random=10, imagined_steps=5, sac_kwargs={"learning_starts": 10})
    seen: list[int] = []
    method.learn(30, callback=lambda m, n: seen.append(n) or True, eval_every=10)
    assert real.count == method.num_timesteps == 30
    assert seen == [10, 20, 30]
    assert method.imagined_timesteps == method.agent.num_timesteps == 5 * 21  # planning from step 10 on
    method.learn(7, callback=lambda m, n: n < 35, eval_every=5)  # stops after the callback at 35
    assert real.count == method.num_timesteps == 35


def test_dyna_learns_on_a_tiny_budget() -> None:
    torch.set_num_threads(1)
    env = AwakeSteering(**ENV_KWARGS)
    method = Dyna(env, seed=1, n_random=20, imagined_steps=10)
    before = evaluate(controller_of(method), env.get_task(), 30, seed=5, dynamics=env.dynamics)
    method.learn(60)
    after = evaluate(controller_of(method), env.get_task(), 30, seed=5, dynamics=env.dynamics)
    assert method.num_timesteps == 60
    # seeds 1-3 measured: return -351 -> -154, -204 -> -130, -261 -> -143; success 0-47 % -> 47-60 %
    assert after.policy.mean_return > before.policy.mean_return + 50
    assert after.policy.success_rate >= 0.4
