"""ARES-EA's ``FamilyEnvironment``: what the samplers and the evaluation need of the family.

Episodes are ``BatchedAresEA`` (one Cheetah call per step for all episodes of a round);
each episode draws its target and initial settings from its own generator
(``sample_initial_states``), then the rollout's action noise from the same generator, so
an episode depends only on its task and its random key. The Cheetah segment is built once
per process (``shared_segment``), in the worker for the multiprocessing sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
from maml_rl.families.ares_ea.dynamics import DEFAULT_THRESHOLDS, N_MAGNETS, OBS_SIZE, AresDynamics, validate_target
from maml_rl.families.ares_ea.tasks import AresTask, sample_tasks, task_arrays
from maml_rl.families.base import Controller, FigureStyle, StreamFactory


@lru_cache(maxsize=1)
def shared_segment() -> Any:
    """The process's Cheetah model of the segment (stateless between calls; needs the extra ``ares``)."""
    from maml_rl.families.ares_ea.segment import AresSegment

    return AresSegment()


def _settings(action_mode: str = "delta", max_time: int = 50, target: Sequence[float] | None = None,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS, success_steps: int = 1,
              weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), reward_mode: str = "objective",
              step_penalty: float = 0.0, off_screen_penalty: float = 0.0,
              initial_magnet_range: float = 1.0) -> "AresEnvironment":
    """The options of ``AresEA`` (without ``task``); an unknown option is a ``TypeError``."""
    dynamics = AresDynamics(action_mode=action_mode, max_time=max_time, thresholds=tuple(thresholds),
                            success_steps=success_steps, weights=tuple(weights), reward_mode=reward_mode,
                            step_penalty=step_penalty, off_screen_penalty=off_screen_penalty,
                            initial_magnet_range=initial_magnet_range)
    fixed = None if target is None else tuple(float(v) for v in validate_target(target))
    return AresEnvironment(dynamics, fixed)


@dataclass(frozen=True)
class AresEnvironment:
    """ARES-EA settings from ``env-kwargs`` (the options of ``AresEA``; building them needs no Cheetah).

    Attributes
    ----------
    dynamics
        Transition, reward and termination parameters.
    target
        A fixed target (mu_x, sigma_x, mu_y, sigma_y) [m], or ``None``: every episode draws one.
    """

    dynamics: AresDynamics
    target: tuple[float, ...] | None = None
    obs_dim: int = OBS_SIZE
    act_dim: int = N_MAGNETS

    @classmethod
    def from_kwargs(cls, env_kwargs: Mapping[str, Any]) -> "AresEnvironment":
        return _settings(**env_kwargs)

    @property
    def max_time(self) -> int:
        return self.dynamics.max_time

    @property
    def figure_style(self) -> FigureStyle:
        return FigureStyle(reference_labels={"benchmark": "Nelder-Mead", "limit": "limit"},
                           state_label="magnet setting / its limit", state_scale=1.0,
                           obs_label="observation (beam, settings, target; scaled)")

    def sample_tasks(self, rng: np.random.Generator, n: int, first_id: int = 0) -> list[AresTask]:
        return sample_tasks(rng, n, first_id=first_id)

    def task_arrays(self, tasks: Sequence[AresTask]) -> tuple[np.ndarray, ...]:
        return task_arrays(tasks)

    def start_episodes(self, arrays: tuple[np.ndarray, ...], rngs: list[np.random.Generator],
                       streams: StreamFactory) -> tuple[BatchedAresEA, np.ndarray]:
        beams, misalignments = arrays
        segment = shared_segment()
        targets, magnets = sample_initial_states(rngs, beams, misalignments, self.dynamics, segment, self.target)
        episodes = BatchedAresEA(self.dynamics, segment)
        return episodes, episodes.reset(beams, misalignments, magnets, targets)

    def evaluate(self, controller: Controller | None, task: AresTask, n_episodes: int, seed: int,
                 references: bool = True) -> Any:
        from maml_rl.families.ares_ea.evaluation import evaluate

        return evaluate(controller, task, n_episodes, seed, self, references=references)
