"""Padded batches of episodes for K tasks, discounted returns and GAE.

Layout: ``[K, T, B, ...]`` = task, time step, episode. Step t of episode b is valid iff
t < lengths[k, b]; ``mask`` is 1 there and 0 on padding. Every quantity computed here is
exactly 0 on padded entries, and padding never enters a sum, a mean or a fit.

Truncation vs termination: an episode that ended by success or beam loss
(``terminated``) has value 0 after its last step. An episode cut by the time limit
(``truncated``) is not over in the MDP: GAE bootstraps its last step with the baseline's
value of the final observation, delta_{T-1} = r_{T-1} + gamma V(s_T) - V(s_{T-1}).
Monte-Carlo returns (the baseline's regression targets) are the rewards actually
observed; the baseline's time features let it represent the shorter remaining horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import torch

from maml_rl.utils.torch_utils import discounted_reverse_cumsum, masked_mean


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = sum_{l >= 0} gamma^l r_{t+l} within each episode; [..., T, B] -> [..., T, B].

    Padded rewards must be (and are treated as) zero.
    """
    return discounted_reverse_cumsum(rewards * mask, gamma) * mask


def generalized_advantages(rewards: torch.Tensor, values: torch.Tensor, last_values: torch.Tensor,
                           mask: torch.Tensor, lengths: torch.Tensor, terminated: torch.Tensor,
                           gamma: float, gae_lambda: float) -> torch.Tensor:
    """GAE(gamma, lambda) (Schulman et al. 2016) on padded episodes.

    A_t = sum_l (gamma lambda)^l delta_{t+l},  delta_t = r_t + gamma V(s_{t+1}) - V(s_t),
    with V(s_T) = 0 after termination and the baseline's ``last_values`` after truncation.

    Parameters
    ----------
    rewards, values, mask
        [..., T, B].
    last_values
        [..., B] value of the observation after each episode's last step.
    lengths, terminated
        [..., B] episode lengths and whether each episode terminated.
    """
    T = rewards.shape[-2]
    steps = torch.arange(T, device=rewards.device).view(*([1] * (rewards.dim() - 2)), T, 1)
    is_last = steps == (lengths.unsqueeze(-2) - 1)
    bootstrap = torch.where(terminated, torch.zeros_like(last_values), last_values).unsqueeze(-2)
    next_values = torch.cat([values[..., 1:, :], torch.zeros_like(values[..., :1, :])], dim=-2)
    next_values = torch.where(is_last, bootstrap.expand_as(next_values), next_values)
    deltas = (rewards + gamma * next_values - values) * mask
    # Padding follows each episode's last step and its deltas are 0, so the masked recursion
    # A_t = delta_t + gamma lambda A_{t+1} mask_t is the plain reverse discounted sum.
    return discounted_reverse_cumsum(deltas, gamma * gae_lambda) * mask


def normalize_per_task(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / (std + eps) over the valid [T, B] entries of each task; padding stays 0."""
    mean = masked_mean(values, mask, (-2, -1))
    centred = (values - mean[..., None, None]) * mask
    var = (centred ** 2).sum((-2, -1)) / mask.sum((-2, -1)).clamp_min(1.0)
    return centred / (var.sqrt()[..., None, None] + eps)


@dataclass
class PackedSteps:
    """The valid steps of each task, packed to the front: [K, N, ...], N = max valid steps per task.

    Losses need no temporal order, so packing drops the padding of short episodes (often
    most of a [T, B] grid) before any network evaluation.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor


def pack_steps(mask: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Move the valid entries of [K, T, B, ...] tensors to the front of a [K, N, ...] layout.

    Returns the packed tensors followed by the packed mask (1 on the first
    ``mask[k].sum()`` entries of task k, 0 after).
    """
    k = mask.shape[0]
    valid = mask.reshape(k, -1) > 0
    counts = valid.sum(1)
    n = int(counts.max()) if k else 0
    destination = torch.cumsum(valid, 1) - 1
    task_index = torch.arange(k).unsqueeze(1).expand_as(valid)[valid]
    slot = destination[valid]
    out = []
    for tensor in tensors:
        flat_tensor = tensor.reshape(k, valid.shape[1], *tensor.shape[3:])
        packed = flat_tensor.new_zeros((k, n, *tensor.shape[3:]))
        packed[task_index, slot] = flat_tensor[valid]
        out.append(packed)
    packed_mask = (torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)).to(mask.dtype)
    return (*out, packed_mask)


@dataclass
class EpisodeBatch:
    """Episodes of K tasks, B per task, padded to T steps.

    Attributes
    ----------
    observations, actions
        [K, T, B, d] float32; observation t is the one action t was taken in.
    rewards, mask
        [K, T, B] float32.
    lengths
        [K, B] int64 number of steps of each episode.
    terminated, success
        [K, B] bool: ended by termination (success or beam loss) / by success.
    last_observations
        [K, B, d] observation after the last step (used to bootstrap truncated episodes).
    advantages
        [K, T, B] filled by ``compute_advantages``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    terminated: torch.Tensor
    success: torch.Tensor
    last_observations: torch.Tensor
    advantages: torch.Tensor | None = field(default=None)
    _packed: PackedSteps | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[1]

    @property
    def episodes_per_task(self) -> int:
        return self.rewards.shape[2]

    @property
    def time_steps(self) -> torch.Tensor:
        """[K, T, B] step index t of every entry."""
        T = self.horizon
        return torch.arange(T, dtype=torch.float32).view(1, T, 1).expand_as(self.rewards)

    def episode_returns(self) -> torch.Tensor:
        """[K, B] undiscounted return of each episode."""
        return (self.rewards * self.mask).sum(1)

    def interactions(self) -> int:
        """Number of environment steps in the batch."""
        return int(self.lengths.sum())

    def compute_advantages(self, baseline: "object", gamma: float, gae_lambda: float,
                           normalize: bool = True) -> torch.Tensor:
        """Fit ``baseline`` to this batch (per task), then GAE; normalised per task."""
        returns = discounted_returns(self.rewards, self.mask, gamma)
        baseline.fit(self.observations, self.time_steps, self.mask, returns)  # type: ignore[attr-defined]
        values = baseline.predict(self.observations, self.time_steps) * self.mask  # type: ignore[attr-defined]
        last_values = baseline.predict(self.last_observations.unsqueeze(1),  # type: ignore[attr-defined]
                                       self.lengths.unsqueeze(1).float()).squeeze(1)
        advantages = generalized_advantages(self.rewards, values, last_values, self.mask, self.lengths,
                                            self.terminated, gamma, gae_lambda)
        self.advantages = normalize_per_task(advantages, self.mask) if normalize else advantages
        self._packed = None
        return self.advantages

    def packed_steps(self) -> PackedSteps:
        """Valid steps with their advantages, packed per task (computed once, cached)."""
        if self.advantages is None:
            raise ValueError("episodes need advantages first (compute_advantages)")
        if self._packed is None:
            self._packed = PackedSteps(*pack_steps(self.mask, self.observations, self.actions, self.advantages))
        return self._packed

    def select_tasks(self, index: Sequence[int] | slice) -> "EpisodeBatch":
        """The sub-batch of some tasks (padding trimmed to their longest episode)."""
        index = list(range(self.num_tasks))[index] if isinstance(index, slice) else list(index)
        horizon = int(self.lengths[index].max()) if index else 0
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.init:
                continue
            if value is None:
                values[f.name] = None
                continue
            value = value[index]
            if value.dim() >= 3 and f.name not in ("last_observations",):
                value = value[:, :horizon]
            values[f.name] = value
        return EpisodeBatch(**values)

    @staticmethod
    def concatenate(batches: Sequence["EpisodeBatch"]) -> "EpisodeBatch":
        """Join batches of different tasks along K, padding to the longest horizon."""
        horizon = max(b.horizon for b in batches)
        values = {}
        for f in fields(EpisodeBatch):
            parts = [getattr(b, f.name) for b in batches]
            if not f.init:
                continue
            if any(p is None for p in parts):
                values[f.name] = None
                continue
            if parts[0].dim() >= 3 and f.name != "last_observations":
                parts = [torch.nn.functional.pad(p, _time_padding(p, horizon)) for p in parts]
            values[f.name] = torch.cat(parts, dim=0)
        return EpisodeBatch(**values)

    @staticmethod
    def from_numpy(arrays: dict[str, np.ndarray]) -> "EpisodeBatch":
        """Build from numpy arrays with the attribute names (dtypes converted)."""
        return EpisodeBatch(
            observations=torch.as_tensor(arrays["observations"], dtype=torch.float32),
            actions=torch.as_tensor(arrays["actions"], dtype=torch.float32),
            rewards=torch.as_tensor(arrays["rewards"], dtype=torch.float32),
            mask=torch.as_tensor(arrays["mask"], dtype=torch.float32),
            lengths=torch.as_tensor(arrays["lengths"], dtype=torch.int64),
            terminated=torch.as_tensor(arrays["terminated"], dtype=torch.bool),
            success=torch.as_tensor(arrays["success"], dtype=torch.bool),
            last_observations=torch.as_tensor(arrays["last_observations"], dtype=torch.float32),
        )


def _time_padding(tensor: torch.Tensor, horizon: int) -> tuple[int, ...]:
    """``F.pad`` spec that pads dim 1 (time) of ``tensor`` with zeros up to ``horizon``."""
    trailing = tensor.dim() - 2  # dims after time
    return (0, 0) * trailing + (0, horizon - tensor.shape[1])
