"""Valid steps of K tasks in blocks of equal size: batched products without per-task padding.

Packing each task's valid steps to the front (``EpisodeBatch.packed_steps``, [K, N] with N
the largest task's count) leaves K N - sum_k n_k rows of padding. When one task has long
episodes and the others short ones, most rows are padding (2-4 x the valid steps in the
first batches of the default training), and every loss, gradient and Fisher-vector
product pays for them. Cutting each task's valid steps into blocks of M rows leaves fewer
than M padded rows per task; block g evaluates the parameters of its task ``task[g]``
(gathered along the task axis), so a layer is still one batched matrix product.

Sums over blocks equal sums over the valid steps; only the floating-point summation order
differs from the padded layout.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import torch
import torch.nn.functional as F

DEFAULT_BLOCK_SIZE = 64  # largest rows per block: blocks still large for GEMM
MIN_BLOCK_SIZE = 16


def adaptive_block_size(counts: torch.Tensor, largest: int = DEFAULT_BLOCK_SIZE,
                        smallest: int = MIN_BLOCK_SIZE) -> int:
    """Rows per block for tasks with ``counts`` valid steps: the power of two nearest to a
    quarter of the median count, within [smallest, largest] (``largest`` if it is smaller).

    Padding is below one block per task, so it stays a fraction of at most about a quarter
    to a half of a task's steps: early in training (hundreds of steps per task) the blocks
    are large for the matrix products; late (episodes of 2-3 steps, about 36 steps per
    task) 16-row blocks leave about 350-370 rows where 64-row blocks leave 512 for 283 valid steps,
    and the Fisher-vector product, the inner steps and the surrogate shrink with them.
    Only the floating-point summation order depends on the choice.
    """
    if largest <= smallest:
        return max(int(largest), 1)
    quarter = max(float(counts.double().median()) / 4.0, 1.0)
    size = 2 ** round(math.log2(quarter))
    return int(min(max(size, smallest), largest))


@dataclass(frozen=True)
class StepBlocks:
    """The valid steps of K tasks as G blocks of M rows; padding rows have mask 0 and zero data.

    Attributes
    ----------
    observations, actions
        (G, M, d).
    advantages, mask
        (G, M).
    task
        (G,) int64: the task whose steps block g holds.
    counts
        (K,) number of valid steps of each task.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    task: torch.Tensor
    counts: torch.Tensor
    copies: int = 1  # ``repeat`` made these steps from that many copies of one set
    _repeats: dict[int, "StepBlocks"] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_tasks(self) -> int:
        return int(self.counts.shape[0])

    def task_means(self, values: torch.Tensor) -> torch.Tensor:
        """(K,) mean of (G, M) ``values`` over each task's valid steps (padding ignored)."""
        sums = values.new_zeros(self.num_tasks).index_add(0, self.task, (values * self.mask).sum(1))
        return sums / self.counts.clamp_min(1).to(sums.dtype)

    @cached_property
    def mean_loss_cotangent(self) -> torch.Tensor:
        """(G, M) c = d L / d x for L = -sum_k mean_{t in task k} A_t x_t: -A_gm / n_k on valid
        rows, 0 on padding (the REINFORCE loss's cotangent of the log-likelihoods)."""
        dtype = self.advantages.dtype
        return self.advantage_cotangent(torch.full((self.num_tasks,), -1.0, dtype=dtype)
                                        / self.counts.clamp_min(1).to(dtype))

    def advantage_cotangent(self, per_task: torch.Tensor) -> torch.Tensor:
        """(G, M) c_gm = (per_task[task of g] mask_gm) A_gm: the cotangent of x for a loss
        sum_k per_task_k sum_{t in task k} A_t x_t (0 on padding), in autograd's order."""
        return (per_task.index_select(0, self.task).unsqueeze(1) * self.mask) * self.advantages

    def task_mean_weights(self) -> torch.Tensor:
        """(G, M) weights w with sum_gm w_gm x_gm = sum_k (mean of x over task k's valid steps)."""
        per_task = 1.0 / self.counts.clamp_min(1).to(self.mask.dtype)
        return self.mask * per_task[self.task].unsqueeze(1)

    def gather(self, params: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        """Per-block parameters ``params[name][task[g]]`` from task-stacked ``params``.

        Computed as a product with the (G, K) one-hot matrix of the blocks' tasks (exact:
        each entry is 1 x value plus zeros), so that the gradient of a task's slice, the sum
        over its blocks, is one matrix product too; autograd's backward of ``index_select``
        is a scatter several times slower. Differentiable to any order. Where no gradient can
        flow (grad mode off, or no parameter requires one) the rows are copied by
        ``index_select`` instead: the same values without the product's arithmetic.
        """
        out = OrderedDict()
        if not (torch.is_grad_enabled() and any(p.requires_grad for p in params.values())):
            for name, p in params.items():
                out[name] = p.index_select(0, self.task)
            return out
        for name, p in params.items():
            selector = self.selector if self.selector.dtype == p.dtype else self.selector.to(p.dtype)
            out[name] = (selector @ p.reshape(p.shape[0], -1)).view(len(self.task), *p.shape[1:])
        return out

    def task_sums(self, per_block: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        """Sums over each task's blocks, (K, ...) from (G, ...): the adjoint of ``gather``.

        ``selector^T @ x`` as autograd's backward of ``gather`` computes it, so a hand-written
        gradient summed here equals autograd's bit for bit. A tensor that is the transpose of
        its last two axes of a contiguous one (a weight gradient from ``x^T delta``) is summed
        in that contiguous layout and transposed after: the same sums per entry, with a
        (K, ...) copy instead of autograd's (G, ...) one. Returns contiguous tensors.
        """
        out = OrderedDict()
        blocks, tasks = len(self.task) // self.copies, self.num_tasks // self.copies
        for name, x in per_block.items():
            selector = self.copy_selector
            adjoint = (selector if selector.dtype == x.dtype else selector.to(x.dtype)).t()
            transposed = x.dim() == 3 and not x.is_contiguous() and x.transpose(1, 2).is_contiguous()
            rows = (x.transpose(1, 2) if transposed else x).reshape(x.shape[0], -1)
            if self.copies == 1:
                sums = adjoint.mm(rows)
            else:  # copy by copy: one product over all copies would sum in another order
                sums = rows.new_empty(self.num_tasks, rows.shape[1])
                for c in range(self.copies):
                    torch.mm(adjoint, rows[c * blocks:(c + 1) * blocks], out=sums[c * tasks:(c + 1) * tasks])
            if transposed:
                out[name] = sums.view(-1, x.shape[2], x.shape[1]).transpose(1, 2).contiguous()
            else:
                out[name] = sums.view(-1, *x.shape[1:])
        return out

    def repeat(self, copies: int) -> "StepBlocks":
        """These steps ``copies`` times over, copy c holding tasks c K, ..., c K + K - 1 (cached).

        Evaluates several sets of task-stacked parameters in one pass (the line-search trials,
        ``MAMLTRPO.trial_values``): every block, and every task's blocks in order, is the
        same as here, so per-block products and per-task sums give each copy the values
        these steps give alone.
        """
        if copies == 1:
            return self
        if self.copies != 1:
            raise ValueError("these blocks are already repeated")
        if copies not in self._repeats:
            k = self.num_tasks
            self._repeats[copies] = StepBlocks(
                observations=self.observations.repeat(copies, 1, 1), actions=self.actions.repeat(copies, 1, 1),
                advantages=self.advantages.repeat(copies, 1), mask=self.mask.repeat(copies, 1),
                task=torch.cat([self.task + c * k for c in range(copies)]), counts=self.counts.repeat(copies),
                copies=copies)
        return self._repeats[copies]

    @cached_property
    def copy_selector(self) -> torch.Tensor:
        """(G / copies, K / copies) one-hot matrix of one copy's blocks (``selector`` if one copy)."""
        if self.copies == 1:
            return self.selector
        blocks = len(self.task) // self.copies
        return F.one_hot(self.task[:blocks], self.num_tasks // self.copies).to(self.mask.dtype)

    @cached_property
    def selector(self) -> torch.Tensor:
        """(G, K) one-hot matrix: selector[g, k] = 1 iff block g holds task k's steps."""
        return F.one_hot(self.task, self.num_tasks).to(self.mask.dtype)


def step_blocks(mask: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                advantages: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE) -> StepBlocks:
    """Cut packed steps ([K, N, ...], valid rows first in each task) into blocks of ``block_size`` rows.

    Parameters
    ----------
    mask
        (K, N) packed mask: 1 on the first n_k rows of task k, 0 after.
    observations, actions
        (K, N, d) packed.
    advantages
        (K, N) packed.
    block_size
        M, rows per block.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    k, n = mask.shape
    counts = mask.sum(1).round().to(torch.int64)
    per_row = -(-n // block_size) if n else 0  # blocks a full row of N steps needs
    padded = per_row * block_size - n
    needed = (counts + block_size - 1) // block_size
    keep = (torch.arange(per_row).unsqueeze(0) < needed.unsqueeze(1)).reshape(-1)

    def cut(tensor: torch.Tensor) -> torch.Tensor:
        trailing = tensor.dim() - 2
        tensor = F.pad(tensor, (0, 0) * trailing + (0, padded))
        return tensor.reshape(k * per_row, block_size, *tensor.shape[2:])[keep]

    task = torch.arange(k).repeat_interleave(per_row)[keep]
    return StepBlocks(observations=cut(observations), actions=cut(actions), advantages=cut(advantages),
                      mask=cut(mask), task=task, counts=counts)
