"""A simulated step cost for any family's environment: a stand-in for an expensive simulator.

``StepCost(environment, step_cost_ms)`` behaves like ``environment`` except that every
batched step busy-waits ``step_cost_ms`` milliseconds for each episode that takes the step,
as a simulator that costs that much CPU per step (MAD-X, Cheetah with particle tracking,
the real machine) would. The wait is a busy loop, not a sleep, so that a worker waiting
holds a core as a real simulator does: parallel samplers gain only where cores are free.
The wrapper is a frozen, picklable value like the environment itself, so every sampler
(in-process, multiprocessing, Ray) builds it in its worker and pays the same cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from maml_rl.families.base import BatchedEpisodes, BatchedStep, FamilyEnvironment, StreamFactory


def busy_wait(seconds: float) -> None:
    """Spin for ``seconds`` of wall time (holding the core, as a CPU-bound simulator would)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class CostlyEpisodes:
    """Batched episodes whose every step costs ``step_cost_ms`` per active episode."""

    def __init__(self, episodes: BatchedEpisodes, step_cost_ms: float) -> None:
        self._episodes = episodes
        self._seconds = step_cost_ms / 1000.0

    @property
    def done(self) -> np.ndarray:
        return self._episodes.done

    @property
    def steps(self) -> np.ndarray:
        return self._episodes.steps

    def step(self, actions: np.ndarray) -> BatchedStep:
        busy_wait(self._seconds * int((~self._episodes.done).sum()))
        return self._episodes.step(actions)


@dataclass(frozen=True)
class StepCost:
    """``environment`` with a simulated cost of ``step_cost_ms`` per episode step (see module doc)."""

    environment: FamilyEnvironment
    step_cost_ms: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.step_cost_ms) or self.step_cost_ms < 0:
            raise ValueError(f"step_cost_ms must be >= 0, got {self.step_cost_ms!r}")

    def __getattr__(self, name: str) -> Any:
        # Everything but the batched episodes is the wrapped environment's; dunder lookups
        # (pickle, copy) must not recurse into a half-built instance.
        if name.startswith("__") or name == "environment":
            raise AttributeError(name)
        return getattr(self.environment, name)

    def start_episodes(self, arrays: tuple[np.ndarray, ...], rngs: list[np.random.Generator],
                       streams: StreamFactory) -> tuple[CostlyEpisodes, np.ndarray]:
        episodes, first_obs = self.environment.start_episodes(arrays, rngs, streams)
        return CostlyEpisodes(episodes, self.step_cost_ms), first_obs


def with_step_cost(environment: FamilyEnvironment, step_cost_ms: float) -> FamilyEnvironment:
    """``environment`` itself for a zero cost, else wrapped in ``StepCost``."""
    return environment if step_cost_ms == 0 else StepCost(environment, float(step_cost_ms))
