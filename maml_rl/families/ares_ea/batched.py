"""B ARES-EA episodes at once, each with its own task, stepped with one Cheetah call.

Uses the same ``AresDynamics`` as ``AresEA`` (no second copy of the semantics).
Finished episodes are frozen: later steps leave their state unchanged and report zero
reward and no flags, so a sampler can keep stepping the whole batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from maml_rl.families.ares_ea.dynamics import (N_BEAM, N_MAGNETS, AresDynamics, AresStepResult, observation,
                                               sample_initial_magnets, sample_targets)
from maml_rl.families.ares_ea.segment import AresSegment


def sample_initial_states(rngs: Sequence[np.random.Generator], beams: np.ndarray, misalignments: np.ndarray,
                          dynamics: AresDynamics, segment: AresSegment,
                          target: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Targets and initial settings of B episodes, each drawn from its own generator.

    Each generator first draws its target (unless ``target`` fixes it for all), then its
    initial settings (``sample_initial_magnets``), so an episode's start does not depend
    on the other episodes of the batch.

    Parameters
    ----------
    rngs
        One generator per episode.
    beams, misalignments
        (B, 11) and (B, 8) task arrays of the episodes.

    Returns
    -------
    (targets, magnets)
        (B, 4) and (B, 5).
    """
    n = len(rngs)
    if target is None:
        targets = np.concatenate([sample_targets(rng, 1) for rng in rngs]).reshape(n, N_BEAM)
    else:
        targets = np.tile(np.asarray(target, dtype=float), (n, 1))

    def track(magnets: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        return segment.screen_beam_numpy(magnets, beams[episodes], misalignments[episodes])

    return targets, sample_initial_magnets(rngs, track, targets, dynamics.thresholds,
                                           magnet_range=dynamics.initial_magnet_range)


class BatchedAresEA:
    """A batch of ARES-EA episodes.

    Parameters
    ----------
    dynamics
        Shared transition function and its parameters.
    segment
        The Cheetah model (built on first use if omitted).
    """

    def __init__(self, dynamics: AresDynamics, segment: AresSegment | None = None) -> None:
        self.dynamics = dynamics
        self.segment = segment if segment is not None else AresSegment()
        self.magnets = np.zeros((0, N_MAGNETS))
        self.targets = np.zeros((0, N_BEAM))
        self.misalignments = np.zeros((0, 8))
        self.steps = np.zeros(0, dtype=int)
        self.hold = np.zeros(0, dtype=int)
        self.done = np.zeros(0, dtype=bool)
        self.initial_objective = np.zeros(0)
        self.objective = np.zeros(0)
        self.beam = np.zeros((0, N_BEAM))
        self._incoming: Any = None

    @property
    def batch_size(self) -> int:
        return len(self.magnets)

    def track(self, magnets: np.ndarray) -> np.ndarray:
        """Screen beam (B, 4) of the current episodes for settings (B, 5)."""
        return self.segment.screen_beam_numpy(magnets, self._incoming, self.misalignments)

    def reset(self, beams: np.ndarray, misalignments: np.ndarray, initial_magnets: np.ndarray,
              targets: np.ndarray) -> np.ndarray:
        """Start B episodes.

        Parameters
        ----------
        beams
            (B, 11) incoming-beam parameters (``BEAM_PARAMETERS`` order).
        misalignments
            (B, 8) misalignments [m].
        initial_magnets
            (B, 5) settings (see ``sample_initial_states``).
        targets
            (B, 4) target beams [m].

        Returns
        -------
        ndarray
            (B, 13) float32 observations.
        """
        self.magnets = np.array(initial_magnets, dtype=float)
        n = len(self.magnets)
        self.targets = np.array(targets, dtype=float).reshape(n, N_BEAM)
        self.misalignments = np.array(misalignments, dtype=float).reshape(n, -1)
        self._incoming = self.segment.incoming_beam(np.asarray(beams, dtype=float).reshape(n, -1))
        self.steps = np.zeros(n, dtype=int)
        self.hold = np.zeros(n, dtype=int)
        self.done = np.zeros(n, dtype=bool)
        self.beam = self.track(self.magnets)
        self.objective = self.dynamics.objective(self.beam, self.targets)
        self.initial_objective = self.dynamics.initial_objective(self.beam, self.targets)
        return observation(self.beam, self.magnets, self.targets)

    def step(self, actions: np.ndarray) -> AresStepResult:
        """Advance every unfinished episode by one step with its row of ``actions``."""
        active = ~self.done
        result = self.dynamics.step(self.track, self.magnets, actions, self.targets, self.steps, self.hold,
                                    self.initial_objective, self.objective)
        keep = active[:, None]
        self.magnets = np.where(keep, result.magnets, self.magnets)
        self.beam = np.where(keep, result.beam, self.beam)
        self.objective = np.where(active, result.objective, self.objective)
        self.hold = np.where(active, result.hold, self.hold)
        self.steps = self.steps + active
        terminated = result.terminated & active
        truncated = result.truncated & active
        self.done = self.done | terminated | truncated
        return replace(result, magnets=self.magnets, beam=self.beam, objective=self.objective, hold=self.hold,
                       obs=observation(self.beam, self.magnets, self.targets),
                       reward=np.where(active, result.reward, 0.0), terminated=terminated, truncated=truncated,
                       success=result.success & active, off_screen=result.off_screen & active, active=active)
