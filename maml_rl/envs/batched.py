"""B steering episodes at once, each with its own task, stepped with array operations.

Uses the same ``SteeringDynamics`` as ``AwakeSteering`` (no second copy of the physics).
Finished episodes are frozen: later steps leave their state unchanged and report zero
reward and no flags, so a sampler can keep stepping the whole batch.
"""

from __future__ import annotations

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
        all_active = bool(active.all())
        theta = self.theta
        if not all_active:
            # Finished rows are stepped from the centre with a zero action (their results are
            # discarded): a frozen lost beam would otherwise send every later step through
            # the aperture's slow path. Rows are independent, so active rows are unaffected.
            keep = active[:, None]
            theta, actions = np.where(keep, theta, 0.0), np.where(keep, actions, 0.0)
        result = self.dynamics.step(self.response, theta, actions, self.steps, self._rms, noise)
        if all_active:  # nothing frozen yet: the step's arrays are the batch's
            self.theta, self._rms = result.theta, result.rms
            reward, terminated, truncated = result.reward, result.terminated, result.truncated
            success, beam_lost = result.success, result.beam_lost
        else:
            self.theta = np.where(keep, result.theta, self.theta)
            self._rms = np.where(active, result.rms, self._rms)
            reward = np.where(active, result.reward, 0.0)
            terminated, truncated = result.terminated & active, result.truncated & active
            success, beam_lost = result.success & active, result.beam_lost & active
        self.steps = self.steps + active
        self.done = self.done | terminated | truncated
        return StepResult(theta=self.theta, obs=result.obs.astype(np.float32), reward=reward, terminated=terminated,
                          truncated=truncated, success=success, beam_lost=beam_lost, rms=result.rms, active=active)
