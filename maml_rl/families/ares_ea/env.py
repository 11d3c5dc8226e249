"""The ARES-EA tuning environment (gymnasium), registered as ``AresEA-v0``.

The agent sets three quadrupoles and two correctors of the ARES experimental area to
bring the beam on screen AREABSCR1 to a target position and size. The task (incoming
beam and misalignments) is hidden. Semantics: ``maml_rl.families.ares_ea.dynamics``;
physics: Cheetah 0.8 (``maml_rl.families.ares_ea.segment``).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
from maml_rl.families.ares_ea.dynamics import (DEFAULT_THRESHOLDS, N_MAGNETS, OBS_SIZE, AresDynamics,
                                               admissible_starts, sample_targets, validate_magnets,
                                               validate_target)
from maml_rl.families.ares_ea.segment import AresSegment
from maml_rl.families.ares_ea.tasks import AresTask, sample_tasks, task_arrays


class AresEA(gym.Env):
    """Transverse beam tuning in the ARES experimental area for one task.

    Parameters
    ----------
    action_mode
        ``"delta"`` (default; changes of 0.1 x the limits per step) or ``"direct"``.
    max_time
        Steps before truncation (default 50).
    target
        Fixed target (mu_x, sigma_x, mu_y, sigma_y) [m]; ``None`` (default) draws one at
        every reset (``dynamics.sample_targets``).
    thresholds, success_steps, weights, reward_mode, step_penalty, off_screen_penalty, initial_magnet_range
        See ``AresDynamics``.
    task
        Initial task (default ``AresTask.nominal()``).

    Notes
    -----
    ``reset(options={"initial_magnets": m, "target": t})`` starts from given settings
    and/or target (used to compare controllers on identical initial states).
    """

    metadata = {"render_modes": []}

    def __init__(self, action_mode: str = "delta", max_time: int = 50, target: Sequence[float] | None = None,
                 thresholds: Sequence[float] = DEFAULT_THRESHOLDS, success_steps: int = 1,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), reward_mode: str = "objective",
                 step_penalty: float = 0.0, off_screen_penalty: float = 0.0, initial_magnet_range: float = 1.0,
                 task: AresTask | None = None) -> None:
        super().__init__()
        self.dynamics = AresDynamics(action_mode=action_mode, max_time=max_time, thresholds=tuple(thresholds),
                                     success_steps=success_steps, weights=tuple(weights), reward_mode=reward_mode,
                                     step_penalty=step_penalty, off_screen_penalty=off_screen_penalty,
                                     initial_magnet_range=initial_magnet_range)
        self.target = None if target is None else validate_target(target)
        self.observation_space = spaces.Box(-1.0, 1.0, (OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (N_MAGNETS,), dtype=np.float32)
        self.segment = AresSegment()
        self._episode = BatchedAresEA(self.dynamics, self.segment)  # a batch of one
        self._task = task if task is not None else AresTask.nominal()
        self._next_task_id = 1

    # -------------------------------------------------------------------- task API
    def sample_tasks(self, n: int) -> list[AresTask]:
        """Draw ``n`` tasks from the task distribution with the environment's generator."""
        tasks = sample_tasks(self.np_random, n, first_id=self._next_task_id)
        self._next_task_id += n
        return tasks

    def reset_task(self, task: AresTask) -> None:
        """Switch to ``task`` (takes effect at the next ``reset``)."""
        if not isinstance(task, AresTask):
            raise TypeError(f"expected an AresTask, got {type(task).__name__}")
        self._task = task

    def get_task(self) -> AresTask:
        return self._task

    @property
    def magnets(self) -> np.ndarray:
        """Current settings (k1 [1/m^2], angles [rad]) in ``MAGNETS`` order (a copy)."""
        return self._episode.magnets[0].copy()

    @property
    def beam(self) -> np.ndarray:
        """Current beam on the screen (mu_x, sigma_x, mu_y, sigma_y) [m] (a copy)."""
        return self._episode.beam[0].copy()

    # -------------------------------------------------------------------- gymnasium API
    def _info(self) -> dict[str, Any]:
        e = self._episode
        return {"task_id": self._task.id, "step": int(e.steps[0]),
                "success": bool(e.hold[0] >= self.dynamics.success_steps), "off_screen": False,
                "objective": float(e.objective[0]),
                "normalised_objective": float(e.objective[0] / e.initial_objective[0]),
                "beam": e.beam[0].copy(), "target": e.targets[0].copy(), "magnets": e.magnets[0].copy()}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"initial_magnets", "target"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; known: initial_magnets, target")
        beams, misalignments = task_arrays([self._task])
        target = validate_target(options["target"]) if "target" in options else self.target
        if "initial_magnets" in options:
            magnets = validate_magnets(options["initial_magnets"])[None]
            if target is None:
                target = sample_targets(self.np_random, 1)[0]
            targets = np.asarray(target, dtype=float)[None]
            beam = self.segment.screen_beam_numpy(magnets, beams, misalignments)
            if not admissible_starts(beam, targets, self.dynamics.thresholds)[0]:
                raise ValueError("initial_magnets put the beam off the screen or already within the thresholds")
        else:
            targets, magnets = sample_initial_states([self.np_random], beams, misalignments, self.dynamics,
                                                     self.segment, target)
        obs = self._episode.reset(beams, misalignments, magnets, targets)
        return obs[0], self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._episode.batch_size != 1 or self._episode.done[0]:
            raise RuntimeError("call reset() before step() (the episode has not started or has ended)")
        result = self._episode.step(np.asarray(action, dtype=float).reshape(1, N_MAGNETS))
        info = self._info()
        info["off_screen"] = bool(result.off_screen[0])
        return (result.obs[0], float(result.reward[0]), bool(result.terminated[0]), bool(result.truncated[0]), info)
