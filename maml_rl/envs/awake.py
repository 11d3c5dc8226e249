"""The AWAKE steering environment (gymnasium), registered as ``AwakeSteering-v0``.

The agent reads 10 beam position monitors and moves 10 correctors of the TT43 line; the
episode ends when the orbit rms is below the threshold (success), when the beam hits the
aperture (beam loss) or, truncated, after ``max_time`` steps. The dynamics live in
``maml_rl.envs.dynamics`` and are shared with the batched environment.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from maml_rl.envs.dynamics import PLANES, SteeringDynamics, rms, sample_initial_kicks
from maml_rl.envs.response import QUAD_VARIABLES, response_matrices
from maml_rl.envs.tasks import Task, sample_tasks

__all__ = ["AwakeSteering", "QUAD_VARIABLES", "response_matrices", "Task"]

N_CHANNELS = 10


class AwakeSteering(gym.Env):
    """Trajectory steering of the AWAKE electron line for one task (optics).

    Parameters
    ----------
    plane
        ``"horizontal"`` (default) or ``"vertical"``.
    max_time
        Steps before truncation (default 100).
    noise_sigma
        Observation noise (default 0).
    action_scale
        Corrector kick per unit action [rad] (default 1e-4).
    threshold
        Success when rms(obs) < threshold (default 0.1).
    reward_mode, step_penalty, beam_loss_penalty
        Reward shaping (default: -10 rms(obs), no penalties); see ``SteeringDynamics``.
    num_random_quads
        ``sample_tasks`` scales only the last k quadrupole variables (default all 10).
    task
        Initial task (default: nominal optics).

    Notes
    -----
    ``reset(options={"initial_kicks": theta})`` starts from given corrector kicks instead of
    a random state (used to compare policies on identical initial states).
    """

    metadata = {"render_modes": []}

    def __init__(self, plane: str = "horizontal", max_time: int = 100, noise_sigma: float = 0.0,
                 action_scale: float = 1e-4, threshold: float = 0.1, reward_mode: str = "rms",
                 step_penalty: float = 0.0, beam_loss_penalty: float = 0.0,
                 num_random_quads: int = len(QUAD_VARIABLES),
                 task: Task | None = None) -> None:
        super().__init__()
        if plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
        if not 0 <= num_random_quads <= len(QUAD_VARIABLES):
            raise ValueError(f"num_random_quads must lie in [0, {len(QUAD_VARIABLES)}], got {num_random_quads!r}")
        self.plane = plane
        self.num_random_quads = num_random_quads
        self.dynamics = SteeringDynamics(max_time=max_time, noise_sigma=noise_sigma,
                                         action_scale=action_scale, threshold=threshold,
                                         reward_mode=reward_mode, step_penalty=step_penalty,
                                         beam_loss_penalty=beam_loss_penalty)
        self.observation_space = spaces.Box(-1.0, 1.0, (N_CHANNELS,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (N_CHANNELS,), dtype=np.float32)
        self._task = task if task is not None else Task.nominal()
        self._next_task_id = 1
        self._theta = np.zeros(N_CHANNELS)
        self._steps = 0
        self._rms = 0.0

    # -------------------------------------------------------------------- task API
    def sample_tasks(self, n: int) -> list[Task]:
        """Draw ``n`` tasks from the task distribution with the environment's generator.

        Admissibility (see ``maml_rl.envs.tasks.is_admissible``) is checked in this
        environment's plane, so every returned task can start an episode here.
        """
        tasks = sample_tasks(self.np_random, n, self.num_random_quads, first_id=self._next_task_id,
                             plane=self.plane)
        self._next_task_id += n
        return tasks

    def reset_task(self, task: Task) -> None:
        """Switch to ``task`` (takes effect immediately; call ``reset`` to start an episode)."""
        if not isinstance(task, Task):
            raise TypeError(f"expected a Task, got {type(task).__name__}")
        self._task = task

    def get_task(self) -> Task:
        return self._task

    @property
    def response(self) -> np.ndarray:
        """Response matrix of the current task in the chosen plane."""
        return self._task.response(self.plane)

    @property
    def kicks(self) -> np.ndarray:
        """Current corrector kicks [rad] (a copy)."""
        return self._theta.copy()

    # -------------------------------------------------------------------- gymnasium API
    def _noise(self) -> np.ndarray | None:
        if self.dynamics.noise_sigma > 0:
            return self.np_random.standard_normal((1, N_CHANNELS))
        return None

    def _info(self, success: bool, lost: bool) -> dict[str, Any]:
        return {"task_id": self._task.id, "step": self._steps, "success": success,
                "beam_lost": lost, "rms": self._rms}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "initial_kicks" in options:
            theta = np.asarray(options["initial_kicks"], dtype=float)
            if theta.shape != (N_CHANNELS,) or not np.all(np.isfinite(theta)):
                raise ValueError(f"initial_kicks must be {N_CHANNELS} finite numbers")
        else:
            theta = sample_initial_kicks(self.np_random, self.response)
        self._theta = theta.copy()
        self._steps = 0
        obs, lost = self.dynamics.observe(self.response[None], self._theta[None], self._noise())
        self._rms = float(rms(obs[0]))
        return obs[0].astype(np.float32), self._info(False, bool(lost[0]))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=float).reshape(1, N_CHANNELS)
        result = self.dynamics.step(self.response[None], self._theta[None], action,
                                    np.array([self._steps]), np.array([self._rms]), self._noise())
        self._theta = result.theta[0]
        self._steps += 1
        self._rms = float(result.rms[0])
        info = self._info(bool(result.success[0]), bool(result.beam_lost[0]))
        return (result.obs[0].astype(np.float32), float(result.reward[0]),
                bool(result.terminated[0]), bool(result.truncated[0]), info)
