"""Small torch helpers: masked means, parameter dict and vector conversions."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Mapping

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Mean of ``values`` over ``dims`` counting only entries where ``mask`` is 1."""
    return (values * mask).sum(dims) / mask.sum(dims).clamp_min(1.0)


def discounted_reverse_cumsum(values: torch.Tensor, factor: float) -> torch.Tensor:
    """y_t = sum_{s >= t} factor^(s - t) x_s along axis -2 of [..., T, B], as one matrix product.

    Equals the recursion y_t = x_t + factor y_{t+1} (y_T = 0) up to rounding, with a (T, T)
    upper-triangular matrix of powers P[t, s] = factor^(s - t) instead of T Python-level steps.
    For episodes padded after their last step (values 0 there) this is each episode's own
    discounted sum: returns (factor gamma) and GAE (factor gamma lambda).
    """
    t = values.shape[-2]
    lag = torch.arange(t).unsqueeze(0) - torch.arange(t).unsqueeze(1)  # s - t
    base = torch.tensor(factor, dtype=values.dtype)
    powers = torch.where(lag >= 0, base ** lag.clamp_min(0).to(values.dtype), torch.zeros((), dtype=values.dtype))
    return powers @ values


def stack_params(params: Mapping[str, torch.Tensor], k: int) -> "OrderedDict[str, torch.Tensor]":
    """Replicate one parameter dict along a new leading task axis of size ``k`` (differentiably)."""
    return OrderedDict((name, p.unsqueeze(0).expand(k, *p.shape)) for name, p in params.items())


def task_slice(params: Mapping[str, torch.Tensor], index: int | slice) -> "OrderedDict[str, torch.Tensor]":
    """The parameters of task(s) ``index`` from a task-stacked dict."""
    return OrderedDict((name, p[index]) for name, p in params.items())


def fresh_leaves(params: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Detached copies that require grad: the start of a graph-free inner step."""
    return OrderedDict((n, p.detach().clone().requires_grad_(True)) for n, p in params.items())


def flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_like(vector: torch.Tensor, like: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Split a vector into tensors shaped like ``like``."""
    out, offset = [], 0
    for t in like:
        n = t.numel()
        out.append(vector[offset:offset + n].view_as(t))
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {offset}")
    return out
