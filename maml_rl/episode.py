"""Padded batches of episodes for K tasks, discounted returns and GAE.

Layout: ``[K, T, B, ...]`` = task, time step, episode. Step t of episode b is valid iff
t < lengths[k, b]; ``mask`` is 1 there and 0 on padding. Every quantity computed here is
exactly 0 on padded entries, and padding never enters a sum, a mean or a fit.

Time limit: the horizon is part of the task. The problem is the finite-horizon MDP whose
state includes the step t; the linear baseline has time features and is fitted to the
finite-horizon Monte-Carlo returns, so it estimates V(s, t) of that problem. In it, an
episode cut by the time limit is over exactly like one that ended by success or beam
loss: the value after its last step is 0, and GAE never bootstraps. (Bootstrapping with
V(s_T, t=T) would evaluate the baseline's time polynomial outside the steps it was fitted
on: values of +25 were seen where every reward is negative.) ``terminated`` is kept for
statistics only.
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


def generalized_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                           gamma: float, gae_lambda: float) -> torch.Tensor:
    """GAE(gamma, lambda) (Schulman et al. 2016) on padded finite-horizon episodes.

    A_t = sum_l (gamma lambda)^l delta_{t+l},  delta_t = r_t + gamma V(s_{t+1}) - V(s_t),
    with V = 0 after each episode's last step, whether it terminated or reached the time
    limit (the horizon is part of the task; see the module docstring). With lambda = 1
    this is A_t = R_t - V(s_t), the return the baseline is fitted to minus its estimate.

    Parameters
    ----------
    rewards, values, mask
        [..., T, B]; padded entries of ``rewards`` and ``values`` may hold anything.
    """
    values = values * mask
    next_values = torch.cat([values[..., 1:, :], torch.zeros_like(values[..., :1, :])], dim=-2)
    deltas = (rewards + gamma * next_values - values) * mask
    # Padding follows each episode's last step and its deltas are 0, so the masked recursion
    # A_t = delta_t + gamma lambda A_{t+1} mask_t is the plain reverse discounted sum.
    return discounted_reverse_cumsum(deltas, gamma * gae_lambda) * mask


def normalize_per_task(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8,
                       min_std: float = 0.0) -> torch.Tensor:
    """(x - mean) / (max(std, min_std) + eps) over the valid [T, B] entries of each task; padding stays 0.

    ``min_std`` (in the units of x) keeps a task whose advantages hardly vary from being
    scaled up to unit variance: there the spread is noise (e.g. every episode succeeds in
    one step), and normalising it would turn that noise into a full-size policy-gradient
    step. With a floor such a task contributes a proportionally small gradient.
    """
    mean = masked_mean(values, mask, (-2, -1))
    centred = (values - mean[..., None, None]) * mask
    var = (centred ** 2).sum((-2, -1)) / mask.sum((-2, -1)).clamp_min(1.0)
    return centred / (var.sqrt().clamp_min(min_std)[..., None, None] + eps)


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
        [K, B] bool: ended by termination (success or beam loss) / by success (statistics;
        GAE treats the time limit like termination, see the module docstring).
    last_observations
        [K, B, d] observation after the last step (diagnostics; no value is bootstrapped).
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
                           normalize: bool = True, min_std: float = 0.0) -> torch.Tensor:
        """Fit ``baseline`` to this batch (per task), then GAE; normalised per task (std floored at ``min_std``)."""
        returns = discounted_returns(self.rewards, self.mask, gamma)
        baseline.fit(self.observations, self.time_steps, self.mask, returns)  # type: ignore[attr-defined]
        values = baseline.predict(self.observations, self.time_steps)  # type: ignore[attr-defined]
        advantages = generalized_advantages(self.rewards, values, self.mask, gamma, gae_lambda)
        self.advantages = normalize_per_task(advantages, self.mask, min_std=min_std) if normalize else advantages
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
        """Build from numpy arrays with the attribute names (dtypes converted, memory contiguous).

        Contiguity matters beyond speed: a reduction over a strided view may sum in another
        order than over a contiguous copy, and every sampler must give bitwise equal batches.
        """
        dtypes = {"observations": torch.float32, "actions": torch.float32, "rewards": torch.float32,
                  "mask": torch.float32, "lengths": torch.int64, "terminated": torch.bool, "success": torch.bool,
                  "last_observations": torch.float32}
        return EpisodeBatch(**{name: torch.as_tensor(np.ascontiguousarray(arrays[name]), dtype=dtype).contiguous()
                               for name, dtype in dtypes.items()})


def _time_padding(tensor: torch.Tensor, horizon: int) -> tuple[int, ...]:
    """``F.pad`` spec that pads dim 1 (time) of ``tensor`` with zeros up to ``horizon``."""
    trailing = tensor.dim() - 2  # dims after time
    return (0, 0) * trailing + (0, horizon - tensor.shape[1])
