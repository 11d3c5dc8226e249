"""B steering episodes at once, each with its own task, stepped with array operations.

Uses the same ``SteeringDynamics`` as ``AwakeSteering`` (no second copy of the physics).
Finished episodes are frozen: later steps leave their state unchanged and report zero
reward and no flags, so a sampler can keep stepping the whole batch.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from maml_rl.envs.dynamics import SteeringDynamics, StepResult, rms


class BatchedAwakeSteering:
    """A batch of AWAKE steering episodes.

    Parameters
    ----------
    dynamics
        Shared transition function and its parameters.
    """

    def __init__(self, dynamics: SteeringDynamics) -> None:
        self.dynamics = dynamics
        self.response = np.zeros((0, 10, 10))
        self.theta = np.zeros((0, 10))
        self.steps = np.zeros(0, dtype=int)
        self.done = np.zeros(0, dtype=bool)
        self._rms = np.zeros(0)

    @property
    def batch_size(self) -> int:
        return len(self.theta)

    def reset(self, responses: np.ndarray, initial_kicks: np.ndarray,
              noise: np.ndarray | None = None) -> np.ndarray:
        """Start B episodes.

        Parameters
        ----------
        responses
            (B, 10, 10) response matrices (the plane already chosen).
        initial_kicks
            (B, 10) corrector kicks [rad].
        noise
            (B, 10) standard normal draws for the first observation's noise, if any.

        Returns
        -------
        ndarray
            (B, 10) float32 observations.
        """
        self.response = np.asarray(responses, dtype=float)
        self.theta = np.array(initial_kicks, dtype=float)
        if self.response.shape[0] != self.theta.shape[0]:
            raise ValueError("responses and initial_kicks must describe the same number of episodes")
        self.steps = np.zeros(len(self.theta), dtype=int)
        self.done = np.zeros(len(self.theta), dtype=bool)
        obs, _ = self.dynamics.observe(self.response, self.theta, noise)
        self._rms = rms(obs)
        return obs.astype(np.float32)

    def step(self, actions: np.ndarray, noise: np.ndarray | None = None) -> StepResult:
        """Advance every unfinished episode by one step with its row of ``actions``."""
        active = ~self.done
        result = self.dynamics.step(self.response, self.theta, actions, self.steps, self._rms, noise)
        keep = active[:, None]
        self.theta = np.where(keep, result.theta, self.theta)
        self._rms = np.where(active, result.rms, self._rms)
        self.steps = self.steps + active
        terminated = result.terminated & active
        truncated = result.truncated & active
        self.done = self.done | terminated | truncated
        return replace(result, theta=self.theta, obs=result.obs.astype(np.float32),
                       reward=np.where(active, result.reward, 0.0), terminated=terminated, truncated=truncated,
                       success=result.success & active, beam_lost=result.beam_lost & active, active=active)

