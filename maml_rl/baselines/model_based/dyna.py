"""Dyna: a model-free agent (SB3 SAC) trained mostly on rollouts imagined by a learned model.

Dyna (Sutton 1991, "Dyna, an integrated architecture for learning, planning, and
reacting", SIGART Bulletin 2(4)) interleaves three processes on every real step:

1. acting in the real environment (here: SAC's stochastic policy; uniform random actions
   for the first ``n_random`` steps) and storing the transition;
2. model learning: refit a ``BootstrapEnsemble`` of one-step models of d = obs' - obs on
   the real transitions whose readings are all informative (none at the aperture);
3. planning: ``imagined_steps`` steps of SAC in the ``ModelSteeringEnv`` (branched
   rollouts of ``rollout_length`` steps from real observed readings, a random ensemble
   member per step, the real reward and termination rules), one gradient step per
   imagined step on the imagined replay buffer (Janner et al. 2019, MBPO);

and, every ``real_every`` real steps, direct RL: ``real_gradient_steps`` SAC updates on a
replay buffer of the real transitions only. SAC is Haarnoja et al. 2018. Only real steps
count as interactions (``num_timesteps``); SAC's own step counter counts imagined steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from maml_rl.baselines.model_based.base import (
    Callback, CallbackSchedule, RealEnvironment, Transition, batch_obs, dynamics_of, informative_readings)
from maml_rl.baselines.model_based.ensemble import BootstrapEnsemble, ModelKind
from maml_rl.baselines.model_based.model_env import ModelSteeringEnv
from maml_rl.ppo_baseline import silent_logger


class Dyna:
    """Dyna-style SAC on an AWAKE environment, with the face of ``base.InteractiveMethod``.

    Parameters
    ----------
    env
        An ``AwakeSteering`` environment (the real one).
    seed
        Fixes the environment's initial states and noise, the ensemble's resampling,
        the imagined rollouts and SAC.
    model_kind, ensemble_size
        Members of the ensemble (``"linear"`` or ``"mlp"``) and their number.
    model_every
        Refit the ensemble after this many new real samples.
    n_random
        Uniformly random real actions before the agent acts (and before planning starts).
    imagined_steps
        Imagined SAC steps (= gradient steps) per real step.
    rollout_length
        Length of an imagined rollout (truncation).
    real_every, real_gradient_steps
        Direct-RL updates on real data: ``real_gradient_steps`` every ``real_every`` steps.
    sac_kwargs
        Passed to ``stable_baselines3.SAC`` (defaults: two layers of 64, batch 128,
        learning rate 1e-3, gamma 0.95, 100 imagined steps before the first update).
    """

    def __init__(self, env: gym.Env, seed: int = 0, model_kind: ModelKind = "linear", ensemble_size: int = 5,
                 model_every: int = 1, n_random: int = 20, imagined_steps: int = 10, rollout_length: int = 10,
                 real_every: int = 10, real_gradient_steps: int = 10,
                 sac_kwargs: dict[str, Any] | None = None) -> None:
        from stable_baselines3 import SAC
        from stable_baselines3.common.buffers import ReplayBuffer

        if min(model_every, n_random, real_every, rollout_length) < 1 or min(imagined_steps, real_gradient_steps) < 0:
            raise ValueError("model_every, n_random, real_every, rollout_length must be >= 1; step counts >= 0")
        self.env = env
        self.dynamics = dynamics_of(env)
        self.n = int(env.action_space.shape[0])
        self.model_every, self.n_random = int(model_every), int(n_random)
        self.imagined_steps, self.real_every, self.real_gradient_steps = int(imagined_steps), int(real_every), int(
            real_gradient_steps)
        self.real = RealEnvironment(env, seed)
        self.rng = np.random.default_rng([int(seed), 0xD7A])
        self.ensemble = BootstrapEnsemble(2 * self.n, self.n, ensemble_size, model_kind, seed=seed)
        self._inputs: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        self._since_fit = 0
        self.model_env = ModelSteeringEnv(self.ensemble, self.dynamics, self._start_states, rollout_length, n=self.n)
        kwargs: dict[str, Any] = {"policy_kwargs": {"net_arch": [64, 64]}, "batch_size": 128, "learning_rate": 1e-3,
                                  "gamma": 0.95, "learning_starts": 100, "buffer_size": 200_000}
        kwargs.update(sac_kwargs or {})
        self.agent = SAC("MlpPolicy", self.model_env, seed=seed, device="cpu", verbose=0, **kwargs)
        self.agent.set_logger(silent_logger())  # no SB3-<date> folders in the temporary directory
        self.real_buffer = ReplayBuffer(200_000, env.observation_space, env.action_space, device="cpu",
                                        handle_timeout_termination=True)
        self.num_timesteps = 0
        self.imagined_timesteps = 0
        self._planning_started = False

    # ------------------------------------------------------------------ data
    def _start_states(self) -> np.ndarray:
        return np.asarray(self._starts) if self._starts else np.zeros((0, self.n))

    def _store(self, step: Transition) -> None:
        self.real_buffer.add(step.obs[None], step.next_obs[None], step.action[None], np.array([step.reward]),
                             np.array([step.episode_over]),
                             [{"TimeLimit.truncated": step.truncated and not step.terminated}])
        if informative_readings(step.obs).all():
            self._starts.append(step.obs)
            if step.informative(self.dynamics.noise_sigma).all():
                self._inputs.append(np.concatenate([step.obs, step.action]))
                self._targets.append(step.next_obs - step.obs)
                self._since_fit += 1

    def fit_models(self) -> None:
        if len(self._inputs) >= 2:
            self.ensemble.fit(np.stack(self._inputs), np.stack(self._targets))
            self._since_fit = 0

    # ------------------------------------------------------------------ training
    def _plan(self) -> None:
        """Imagined SAC steps in the model environment (each followed by one gradient step)."""
        if self.imagined_steps == 0:
            return
        self.agent.learn(total_timesteps=self.imagined_steps, reset_num_timesteps=not self._planning_started,
                         progress_bar=False)
        self._planning_started = True
        self.imagined_timesteps = int(self.agent.num_timesteps)

    def _direct_update(self) -> None:
        """SAC updates on real transitions only (swaps the agent's buffer for the real one)."""
        if self.real_gradient_steps == 0 or not self._planning_started or self.real_buffer.size() == 0:
            return
        imagined = self.agent.replay_buffer
        self.agent.replay_buffer = self.real_buffer
        try:
            self.agent.train(gradient_steps=self.real_gradient_steps, batch_size=self.agent.batch_size)
        finally:
            self.agent.replay_buffer = imagined

    def learn(self, total_timesteps: int, callback: Callback | None = None, eval_every: int | None = None) -> "Dyna":
        """``total_timesteps`` real steps, each followed by model learning, planning and (periodically) direct RL."""
        schedule = CallbackSchedule(callback, eval_every, self.num_timesteps)
        for _ in range(int(total_timesteps)):
            obs = self.real.obs
            if self.num_timesteps < self.n_random:
                action = self.rng.uniform(-1.0, 1.0, self.n)
            else:
                action = self.agent.predict(obs.astype(np.float32), deterministic=False)[0]
            step = self.real.step(action)
            self.num_timesteps += 1
            self._store(step)
            if self._since_fit >= self.model_every:
                self.fit_models()
            if self.num_timesteps >= self.n_random and self.ensemble.fitted:
                self._plan()
                if self.num_timesteps % self.real_every == 0:
                    self._direct_update()
            if not schedule(self, self.num_timesteps):
                break
        return self

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SAC's action(s) (the mean action if deterministic)."""
        batch, single = batch_obs(obs, self.n)
        actions = self.agent.predict(batch.astype(np.float32), deterministic=deterministic)[0]
        return (actions[0] if single else actions), None
