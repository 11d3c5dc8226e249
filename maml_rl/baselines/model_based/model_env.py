"""A gymnasium environment that imagines AWAKE steering with a learned model.

The state is the (noise-free) readings r. A step applies the same rules as
``maml_rl.envs.dynamics.SteeringDynamics.step``, with the learned model in place of the
physics:

    a  <- a / max(1, max|a|)
    r' =  r + f_k(r, a)              f_k: a member of the ensemble drawn for this step
    obs', lost = aperture(r')         readings from the first |r'_i| >= 1 on = sign (beam loss)
    obs' <- clip(obs' + noise_sigma * N(0, I), -1, 1)
    reward: -10 rms(obs') or 10 (rms(obs) - rms(obs')), minus step_penalty,
            minus beam_loss_penalty if lost
    terminated = success (rms(obs') < threshold and not lost) or lost
    truncated  = not terminated and rollout_length steps taken

Episodes start from real observed readings (``start_states``), so imagined rollouts
branch off the states the real agent has visited (Sutton 1991, Dyna; Janner et al. 2019,
MBPO: short branched rollouts limit the compounding of model errors). With an exact model
and the real environment's ``max_time`` as ``rollout_length`` it reproduces the real
environment step by step (tested).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from maml_rl.baselines.model_based.ensemble import BootstrapEnsemble
from maml_rl.envs.dynamics import REWARD_SCALE, SteeringDynamics, normalise_actions, rms, saturate


class ModelSteeringEnv(gym.Env):
    """Imagined AWAKE steering on a ``BootstrapEnsemble`` of models of d = obs' - obs.

    Parameters
    ----------
    ensemble
        Fitted models of the change of the readings given [readings, action].
    dynamics
        The real environment's rules (threshold, reward, penalties, noise, action scale).
    start_states
        Callable returning the (M, n) array of real readings to start from (sampled
        uniformly at every reset; read at reset time, so it sees new data).
    rollout_length
        Imagined steps before truncation.
    noise
        Add the real ``noise_sigma`` to the imagined observations (default True), so imagined
        observations look like real ones.

    Notes
    -----
    ``reset(options={"readings": r})`` starts from given readings.
    """

    metadata = {"render_modes": []}

    def __init__(self, ensemble: BootstrapEnsemble, dynamics: SteeringDynamics,
                 start_states: Callable[[], np.ndarray], rollout_length: int = 10, noise: bool = True,
                 n: int = 10) -> None:
        super().__init__()
        if rollout_length < 1:
            raise ValueError(f"rollout_length must be >= 1, got {rollout_length!r}")
        self.ensemble, self.dynamics, self.start_states = ensemble, dynamics, start_states
        self.rollout_length, self.noise, self.n = int(rollout_length), bool(noise), int(n)
        self.observation_space = spaces.Box(-1.0, 1.0, (n,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (n,), dtype=np.float32)
        self._readings = np.zeros(n)
        self._steps = 0
        self._rms = 0.0

    def _observe(self, readings: np.ndarray) -> tuple[np.ndarray, bool]:
        obs, lost = saturate(readings[None])
        if self.noise and self.dynamics.noise_sigma > 0:
            obs = np.clip(obs + self.dynamics.noise_sigma * self.np_random.standard_normal(obs.shape), -1.0, 1.0)
        return obs[0], bool(lost[0])

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "readings" in options:
            readings = np.asarray(options["readings"], dtype=float).reshape(self.n)
        else:
            states = np.atleast_2d(self.start_states())
            if len(states) == 0:
                raise RuntimeError("no real start state yet")
            readings = states[self.np_random.integers(len(states))]
        self._readings = readings.copy()
        self._steps = 0
        obs, lost = self._observe(self._readings)
        self._rms = float(rms(obs))
        return obs.astype(np.float32), {"beam_lost": lost, "rms": self._rms}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        applied = normalise_actions(np.asarray(action, dtype=float).reshape(self.n))
        member = int(self.np_random.integers(len(self.ensemble)))
        change = self.ensemble.predict(np.concatenate([self._readings, applied])[None], member)[0]
        self._readings = self._readings + change
        obs, lost = self._observe(self._readings)
        current = float(rms(obs))
        dyn = self.dynamics
        reward = -REWARD_SCALE * current if dyn.reward_mode == "rms" else REWARD_SCALE * (self._rms - current)
        reward = reward - dyn.step_penalty - dyn.beam_loss_penalty * lost
        success = current < dyn.threshold and not lost
        terminated = success or lost
        self._steps += 1
        truncated = not terminated and self._steps >= self.rollout_length
        self._rms = current
        info = {"success": success, "beam_lost": lost, "rms": current, "member": member}
        return obs.astype(np.float32), float(reward), terminated, truncated, info
