"""The default sampler: all tasks x episodes stepped together in this process."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from maml_rl.episode import EpisodeBatch
from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.samplers.base import ClosingSampler, SamplerSpec
from maml_rl.samplers.rollout import RolloutKey, rollout


class VectorizedSampler(ClosingSampler):
    """In-process sampler: one policy forward per time step for the whole meta-batch."""

    def __init__(self, spec: SamplerSpec, policy: NormalMLPPolicy | None = None) -> None:
        self.spec = spec
        self.policy = policy if policy is not None else NormalMLPPolicy(**spec.policy_config)

    def sample(self, params: Mapping[str, torch.Tensor], tasks: Sequence[Any], batch: int,
               round_index: int) -> EpisodeBatch:
        return rollout(self.policy, params, self.spec.environment.task_arrays(tasks), np.arange(len(tasks)),
                       self.spec.episodes_per_task, self.spec.environment,
                       RolloutKey(self.spec.seed, batch, round_index, self.spec.purpose))

    def close(self) -> None:
        pass
