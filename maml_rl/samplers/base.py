"""What every sampler provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import torch

from maml_rl.episode import EpisodeBatch
from maml_rl.families.base import FamilyEnvironment
from maml_rl.seeding import PURPOSE_TRAINING


@dataclass(frozen=True)
class SamplerSpec:
    """Everything needed to build a sampler's environments and policy copies.

    Attributes
    ----------
    environment
        The task family's environment settings (``maml_rl.families.base.FamilyEnvironment``;
        picklable, rebuilt in worker processes): sizes, horizon, batched episodes.
    episodes_per_task
        Episodes per task and round (``fast-batch-size``).
    seed
        Seed of the episodes' random streams.
    policy_config
        ``NormalMLPPolicy.config()`` (to rebuild the network in worker processes).
    purpose
        ``maml_rl.seeding.PURPOSE_TRAINING`` or ``PURPOSE_ADAPTATION``: keys the episodes'
        random streams, so test-time adaptation never replays meta-training's episodes.
    """

    environment: FamilyEnvironment
    episodes_per_task: int
    seed: int
    policy_config: dict
    purpose: int = PURPOSE_TRAINING


class Sampler(Protocol):
    """Samples one round of episodes for all tasks of a meta-batch."""

    def sample(self, params: Mapping[str, torch.Tensor], tasks: Sequence[Any], batch: int,
               round_index: int) -> EpisodeBatch:
        """Episodes [K, T, B] of ``tasks`` with task-stacked ``params`` (K, ...)."""
        ...

    def close(self) -> None:
        """Release resources (idempotent)."""
        ...


class ClosingSampler:
    """Context-manager face of a sampler: ``close`` on leaving a ``with`` block and, best effort,
    when garbage-collected (worker processes or actors must not outlive a forgotten sampler)."""

    def close(self) -> None:  # pragma: no cover - every sampler overrides it
        raise NotImplementedError

    def __enter__(self) -> "ClosingSampler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown, half-built sampler
            pass
