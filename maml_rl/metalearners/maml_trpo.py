"""MAML with a REINFORCE inner loop and a TRPO outer loop.

Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks"; Schulman et al. (2015), "Trust Region Policy Optimization".

For every task i of a meta-batch:

1. inner loop: theta_i^0 = theta; for k < num_steps, sample episodes D_i^k with
   theta_i^k, fit a linear baseline, compute GAE advantages A and take
   theta_i^{k+1} = theta_i^k - fast_lr * grad L_in(theta_i^k; D_i^k),
   L_in = -mean_t log pi(a_t | s_t) A_t (REINFORCE);
2. sample validation episodes D_i' with the adapted theta_i' = theta_i^K.

Outer loop: maximise the post-adaptation surrogate
L(theta) = mean_i mean_t [pi_{theta_i'(theta)}(a_t|s_t) / pi_old(a_t|s_t)] A_t on D_i'
subject to mean_i KL(pi_old || pi_{theta_i'(theta)}) <= max_kl, where theta_i'(theta)
re-adapts from the meta-parameters on the stored D_i^k (``create_graph=True`` for
second-order MAML, detached inner gradients for first-order). The step is the natural
gradient s = H^-1 g (conjugate gradient on Hessian-vector products of the KL, damped),
scaled so that 0.5 s^T H s = max_kl, then a backtracking line search that accepts the
first trial (in order of decreasing step) with an improving surrogate and KL <= max_kl and
otherwise keeps the old parameters. Consecutive trials are evaluated together, ``ls_threads``
at once in threads or, for small batches, at least two stacked into one pass (each one
exactly as alone, so the accepted step does not depend on how); the trial that is needed
when the first is rejected, which it almost always is, then comes at a fraction of its cost.

All K tasks are processed together through task-stacked parameters
(``NormalMLPPolicy.forward_stacked``); losses, gradients and Fisher-vector products see
only the valid steps, cut into blocks of equal size (``maml_rl.utils.blocks``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from maml_rl.baseline import LinearFeatureBaseline
from maml_rl.episode import EpisodeBatch
from maml_rl.policies.normal_mlp import Activations, NormalMLPPolicy, gaussian_kl, gaussian_log_prob
from maml_rl.samplers.base import Sampler
from maml_rl.utils.blocks import DEFAULT_BLOCK_SIZE, StepBlocks, adaptive_block_size, step_blocks
from maml_rl.utils.optimization import conjugate_gradient
from maml_rl.utils.torch_utils import flat, fresh_leaves, stack_params, unflatten_like

# Below this many block rows per inner step, concurrent line-search trials are stacked into
# one pass. Measured on the 2-core AMD EPYC (Zen 3) of README "Speed", default config, two
# trials: at 420-980 rows two threads took 1.7-2.1 x one trial and the stacked pass 1.6-1.8 x;
# at 1,150-1,400 rows both 1.85 x; at 1,850-4,500 rows threads 1.1-1.7 x, stacked 1.8-2.7 x.
STACK_ROWS = 1024

Task = Any  # a task of any family: an integer ``id`` and ``factors`` (maml_rl.families.base)


@dataclass(frozen=True)
class OldPolicy:
    """The old (pre-update) adapted policies on the validation steps, in the block layout of
    ``MAMLTRPO.steps(valid)``: means (G, M, act), floored log-stds (G, 1, act) and the
    log-likelihoods (G, M) of the taken actions. All detached."""

    mean: torch.Tensor
    log_std: torch.Tensor
    log_prob: torch.Tensor


@dataclass
class Surrogate:
    """Surrogate loss and KL at some meta-parameters, with what produced them.

    ``adapted`` holds the task-stacked adapted parameters (K, ...).
    """

    loss: torch.Tensor
    kl: torch.Tensor
    old: OldPolicy
    adapted: "OrderedDict[str, torch.Tensor]"


@dataclass(frozen=True)
class _Adaptation:
    """Adapted parameters computed while sampling, with what they depend on."""

    meta: torch.Tensor  # meta-parameter vector they were adapted from
    batches: tuple[EpisodeBatch, ...]
    packed: tuple[object, ...]  # each batch's packed steps (a new object when advantages change)
    params: "OrderedDict[str, torch.Tensor]"

    def matches(self, batches: Sequence[EpisodeBatch], meta: torch.Tensor) -> bool:
        return (len(batches) == len(self.batches) and all(a is b for a, b in zip(batches, self.batches))
                and all(b.packed_steps() is p for b, p in zip(batches, self.packed))
                and torch.equal(meta, self.meta))


class MAMLTRPO:
    """Meta-learner: adaptation, surrogate, KL and the TRPO update of ``policy``.

    Parameters
    ----------
    policy
        The meta-policy (its parameters are the meta-parameters).
    fast_lr
        Inner-loop step size.
    num_steps
        Inner-loop gradient steps.
    first_order
        First-order MAML (inner gradients treated as constants).
    gamma, gae_lambda
        Discount and GAE parameter.
    max_kl
        Trust-region radius.
    cg_iters, cg_damping
        Conjugate-gradient iterations and damping added to the KL Hessian.
    ls_max_steps, ls_backtrack_ratio
        Line-search trials and step shrink factor.
    ls_threads
        Line-search trials evaluated concurrently in threads (1: one after the other). For
        small batches (``ls_stack_rows``) max(2, ls_threads) trials are instead stacked into
        one pass, without threads. Changes only the wall time: every trial is computed exactly
        as alone and the first acceptable one wins.
    ls_stack_rows
        Trials are stacked rather than run in threads when the training batches have fewer
        block rows per inner step (``stacks_trials``); changes only the wall time.
    baseline_reg
        Initial ridge coefficient of the linear baseline.
    adv_std_floor
        Floor of the per-task standard deviation that normalises the advantages (0: plain
        normalisation); see ``maml_rl.episode.normalize_per_task``.
    block_size
        Largest number of rows per block of valid steps in losses and Fisher products; each
        batch uses ``maml_rl.utils.blocks.adaptive_block_size`` of its step counts (changes
        only the floating-point summation order).
    """

    def __init__(self, policy: NormalMLPPolicy, fast_lr: float = 0.5, num_steps: int = 1,
                 first_order: bool = False, gamma: float = 0.99, gae_lambda: float = 1.0,
                 max_kl: float = 1e-2, cg_iters: int = 10, cg_damping: float = 1e-2,
                 ls_max_steps: int = 10, ls_backtrack_ratio: float = 0.5, baseline_reg: float = 1e-5,
                 adv_std_floor: float = 0.0, block_size: int = DEFAULT_BLOCK_SIZE, ls_threads: int = 1,
                 ls_stack_rows: int = STACK_ROWS) -> None:
        if ls_threads < 1:
            raise ValueError(f"ls_threads must be >= 1, got {ls_threads}")
        self.policy = policy
        self.fast_lr = fast_lr
        self.num_steps = num_steps
        self.first_order = first_order
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.max_kl = max_kl
        self.cg_iters, self.cg_damping = cg_iters, cg_damping
        self.ls_max_steps, self.ls_backtrack_ratio = ls_max_steps, ls_backtrack_ratio
        self.baseline_reg = baseline_reg
        self.adv_std_floor = adv_std_floor
        self.block_size = block_size
        self.ls_threads = ls_threads
        self.ls_stack_rows = ls_stack_rows
        self._pool: ThreadPoolExecutor | None = None  # started at the first concurrent line search
        self._blocks: dict[int, tuple[object, StepBlocks]] = {}
        self._adaptation: _Adaptation | None = None

    def steps(self, batch: EpisodeBatch) -> StepBlocks:
        """The valid steps of ``batch`` with their advantages, in blocks (cached per batch)."""
        packed = batch.packed_steps()  # a new object whenever the advantages change
        cached = self._blocks.get(id(batch))
        if cached is not None and cached[0] is packed:
            return cached[1]
        size = adaptive_block_size(packed.mask.sum(1), self.block_size)
        blocks = step_blocks(packed.mask, packed.observations, packed.actions, packed.advantages, size)
        self._blocks[id(batch)] = (packed, blocks)  # holding ``packed`` keeps the identity check sound
        while len(self._blocks) > 4 * (self.num_steps + 1):  # this and the previous meta-batches
            del self._blocks[next(iter(self._blocks))]
        return blocks

    # ------------------------------------------------------------------ inner loop
    def prepare(self, batch: EpisodeBatch) -> EpisodeBatch:
        """Fit a fresh linear baseline per task and store normalised GAE advantages."""
        baseline = LinearFeatureBaseline(batch.observations.shape[-1], reg_coeff=self.baseline_reg)
        batch.compute_advantages(baseline, self.gamma, self.gae_lambda, normalize=True, min_std=self.adv_std_floor)
        return batch

    def inner_loss(self, batch: EpisodeBatch, params: "OrderedDict[str, torch.Tensor]") -> torch.Tensor:
        """Sum over tasks of the per-task REINFORCE loss -mean_t log pi(a_t|s_t) A_t.

        Summing (not averaging) gives each task's parameter slice its own task's gradient.
        """
        steps = self.steps(batch)
        mean, log_std = self.policy.stacked_mean_log_std(steps.observations, steps.gather(params))
        return -steps.task_means(gaussian_log_prob(steps.actions, mean, log_std) * steps.advantages).sum()

    def inner_gradient(self, batch: EpisodeBatch,
                       params: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor]":
        """Gradient of ``inner_loss`` with respect to the task-stacked ``params`` (values only).

        L = -sum_k mean_{t in task k} log pi(a_t|s_t) A_t, so the cotangent of step t of task k
        is c_t = -A_t / n_k (0 on padding); the policy's vector-Jacobian product gives each
        block's gradient and ``StepBlocks.task_sums`` adds the blocks of a task. The operations
        are those of autograd's backward of ``inner_loss``: the values equal
        ``torch.autograd.grad(self.inner_loss(batch, params), params)`` bit for bit (tested).
        """
        return self.block_gradient(self.steps(batch), params)

    def block_gradient(self, steps: StepBlocks,
                       params: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor]":
        """``inner_gradient`` on the valid steps ``steps`` of a batch (or of several copies of it)."""
        with torch.no_grad():
            per_block = steps.gather(params)  # rows copied (no gradient can flow): contiguous, detached
            blocks = self.policy.stacked_log_prob_vjp(steps.observations, steps.actions, steps.mean_loss_cotangent,
                                                      per_block)
            return steps.task_sums(blocks)

    def adapt(self, train_batches: Sequence[EpisodeBatch], first_order: bool | None = None,
              params: "OrderedDict[str, torch.Tensor] | None" = None) -> "OrderedDict[str, torch.Tensor]":
        """Task-stacked adapted parameters after one inner step per training batch.

        Starts from the meta-parameters (replicated over the batches' tasks) unless
        ``params`` (task-stacked) is given. Second-order steps keep the graph of the inner
        gradient (``update_params``); first-order steps and every step under
        ``torch.no_grad()`` (values only) take the gradient from ``inner_gradient``, a
        constant, so theta' = theta - lr * g stays differentiable in theta with
        d theta' / d theta = I, as with autograd's detached gradient.
        """
        first_order = self.first_order if first_order is None else first_order
        if params is None:
            params = stack_params(self.policy.meta_parameters(), train_batches[0].num_tasks)
        for batch in train_batches:
            if torch.is_grad_enabled() and not first_order:
                params = self.policy.update_params(self.inner_loss(batch, params), params, self.fast_lr, first_order)
                continue
            grads = self.inner_gradient(batch, params)
            params = OrderedDict((n, p - self.fast_lr * grads[n]) for n, p in params.items())
        return params

    def sample(self, sampler: Sampler, tasks: Sequence[Task], batch_index: int,
               timings: dict[str, float] | None = None) -> tuple[list[EpisodeBatch], EpisodeBatch]:
        """Sample the training rounds (adapting between them) and the validation round.

        ``timings`` accumulates the seconds spent in "sampling" and "adaptation" (baseline
        fits, advantages and inner steps).
        """
        timings = {} if timings is None else timings

        @contextmanager
        def timed(phase: str) -> Iterator[None]:
            start = time.perf_counter()
            yield
            timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start

        params = fresh_leaves(stack_params(self.policy.meta_parameters(), len(tasks)))
        train: list[EpisodeBatch] = []
        for round_index in range(self.num_steps):
            with timed("sampling"):
                episodes = sampler.sample(params, tasks, batch_index, round_index)
            with timed("adaptation"):
                self.prepare(episodes)
                params = fresh_leaves(self.adapt([episodes], first_order=True, params=params))
            train.append(episodes)
        with timed("sampling"):
            valid = sampler.sample(params, tasks, batch_index, self.num_steps)
        with timed("adaptation"):
            self.prepare(valid)
        # The outer step re-adapts from the same meta-parameters on the same batches: the same values.
        self._adaptation = _Adaptation(meta=parameters_to_vector(self.policy.parameters()).detach().clone(),
                                       batches=tuple(train), packed=tuple(b.packed_steps() for b in train),
                                       params=OrderedDict((n, p.detach()) for n, p in params.items()))
        return train, valid

    # ------------------------------------------------------------------ outer loop
    def adapted_parameters(self, train_batches: Sequence[EpisodeBatch], num_tasks: int,
                           meta: "OrderedDict[str, torch.Tensor] | None" = None) -> "OrderedDict[str, torch.Tensor]":
        """Task-stacked parameters adapted from the meta-parameters on ``train_batches``.

        ``meta`` (named like the policy's parameters) replaces the policy's own meta-parameters.
        First-order MAML at the meta-parameters the batches were sampled with: the values
        computed while sampling (``sample``), which a re-adaptation reproduces exactly, with
        the first-order dependence theta_i' = stored_i + (theta - theta), d theta_i'/d theta = I.
        """
        meta = self.policy.meta_parameters() if meta is None else meta
        start = stack_params(meta, num_tasks)
        stored = self.stored_adaptation(train_batches, num_tasks, meta)
        if stored is not None:
            if not torch.is_grad_enabled():
                return stored
            return OrderedDict((n, stored[n] + (p - p.detach())) for n, p in start.items())
        return self.adapt(train_batches, params=start)

    def stored_adaptation(self, train_batches: Sequence[EpisodeBatch], num_tasks: int,
                          meta: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor] | None":
        """First-order MAML: the adapted parameters computed while sampling ``train_batches``
        if they were adapted from ``meta`` (detached), else None."""
        memo = self._adaptation
        if (self.first_order and memo is not None and num_tasks == memo.params["log_std"].shape[0]
                and memo.matches(train_batches, parameters_to_vector(meta.values()).detach())):
            return memo.params
        return None

    def surrogate(self, train_batches: Sequence[EpisodeBatch], valid: EpisodeBatch,
                  old: OldPolicy | None = None, meta: "OrderedDict[str, torch.Tensor] | None" = None) -> "Surrogate":
        """Surrogate loss -mean_i mean_t ratio_t A_t and mean KL(old || new) through adaptation.

        With ``old=None`` the current policy is the old one (ratio 1, KL 0, but both keep
        their graphs, so gradient and Hessian at the current parameters are available).
        Under ``torch.no_grad()`` (line-search trials) only the values are computed.
        ``meta`` replaces the policy's meta-parameters (``adapted_parameters``).
        """
        params = self.adapted_parameters(train_batches, valid.num_tasks, meta)
        steps = self.steps(valid)
        mean, log_std = self.policy.stacked_mean_log_std(steps.observations, steps.gather(params))
        log_prob = gaussian_log_prob(steps.actions, mean, log_std)
        if old is None:
            old = OldPolicy(mean.detach(), log_std.detach(), log_prob.detach())
        _, gains, kls = surrogate_terms(steps, mean, log_std, log_prob, old)
        return Surrogate(loss=-gains.mean(), kl=kls.mean(), old=old, adapted=params)

    def kl_weights(self, valid: EpisodeBatch) -> torch.Tensor:
        """w_kn with KL = sum_kn w_kn KL_kn (mean over each task's valid steps, then over tasks)."""
        mask = valid.packed_steps().mask
        return mask / mask.sum(1, keepdim=True).clamp_min(1.0) / mask.shape[0]

    def hessian_vector_product(self, kl: torch.Tensor, damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> (d^2 KL / d theta^2) v + damping v, by double back-propagation through ``kl``'s graph."""
        params = list(self.policy.parameters())
        grad = flat(torch.autograd.grad(kl, params, create_graph=True))

        def product(vector: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(torch.dot(grad, vector), params, retain_graph=True)
            return flat(hv) + damping * vector

        return product

    def kl_hessian_product(self, valid: EpisodeBatch, current: Surrogate) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> H v + damping v, H the Hessian of the mean KL at the current meta-parameters.

        First-order MAML: the adapted parameters move exactly like the meta-parameters, so H is
        the task-averaged Fisher of the adapted policies, computed in closed form
        (``NormalMLPPolicy.fisher_vector_product``). Second-order: double back-propagation
        through the adaptation (``hessian_vector_product``).
        """
        if not self.first_order:
            return self.hessian_vector_product(current.kl, self.cg_damping)
        steps = self.steps(valid)
        return self.damped_fisher(steps, steps.gather(OrderedDict((n, p.detach()) for n, p in current.adapted.items())))

    def damped_fisher(self, steps: StepBlocks, per_block: "OrderedDict[str, torch.Tensor]",
                      forward: Activations | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> F v + damping v, F the task-averaged Fisher of the policies ``per_block`` (the
        block-gathered adapted parameters) on the valid ``steps``; ``forward`` is their
        ``stacked_activations`` if already computed."""
        fisher = self.policy.fisher_vector_product(steps.observations, per_block,
                                                   steps.task_mean_weights() / steps.num_tasks, forward)
        return lambda vector: fisher(vector) + self.cg_damping * vector

    def current_point(self, train_batches: Sequence[EpisodeBatch],
                      valid: EpisodeBatch) -> tuple[Surrogate, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Surrogate, its gradient (flattened like the parameters) and ``kl_hessian_product`` at
        the current meta-parameters.

        First-order MAML with the adaptation stored while sampling: one value-only forward pass
        over the validation steps serves the values, the gradient and the Fisher product. The
        gradient is autograd's backward of ``surrogate(...).loss`` written out, operation by
        operation (loss -> per-task means -> ratio -> log-likelihood, then
        ``stacked_log_prob_vjp``, the block gather's adjoint and the sum over tasks of
        theta_i' = stored_i + (theta - theta)), so every value equals that of the autograd path
        bit for bit (tested); that path, which builds the graph and runs two more forward
        passes, serves every other case.
        """
        params = list(self.policy.parameters())
        adapted = self.stored_adaptation(train_batches, valid.num_tasks, self.policy.meta_parameters())
        if adapted is None:
            current = self.surrogate(train_batches, valid)
            grad = flat(torch.autograd.grad(current.loss, params, retain_graph=not self.first_order))
            return current, grad, self.kl_hessian_product(valid, current)
        steps = self.steps(valid)
        k = steps.num_tasks
        with torch.no_grad():
            per_block = steps.gather(adapted)
            forward = self.policy.stacked_activations(steps.observations, per_block)
            log_prob = gaussian_log_prob(steps.actions, forward.mean, forward.log_std)
            old = OldPolicy(forward.mean, forward.log_std, log_prob)
            ratio, gains, kls = surrogate_terms(steps, forward.mean, forward.log_std, log_prob, old)
            loss, kl = -gains.mean(), kls.mean()
            # d loss / d log_prob as autograd's backward computes it: (-1 / K) / n_k, gathered
            # to the blocks, times the mask, the advantages and d exp / dx = ratio.
            counts = steps.counts.clamp_min(1).to(loss.dtype)
            cotangent = steps.advantage_cotangent((torch.full((k,), -1.0, dtype=loss.dtype) / k) / counts) * ratio
            blocks = self.policy.stacked_log_prob_vjp(steps.observations, steps.actions, cotangent, per_block,
                                                      forward)
            grad = flat(task_grad.sum(0) for task_grad in steps.task_sums(blocks).values())
        current = Surrogate(loss=loss, kl=kl, old=old, adapted=adapted)
        return current, grad, self.damped_fisher(steps, per_block, forward)

    def step(self, train_batches: Sequence[EpisodeBatch], valid: EpisodeBatch) -> dict[str, Any]:
        """One TRPO update of the meta-parameters. Returns the step's diagnostics."""
        params = list(self.policy.parameters())
        current, grad, hvp = self.current_point(train_batches, valid)
        old_loss = current.loss.item()
        direction, cg_iterations = conjugate_gradient(hvp, grad, self.cg_iters)
        shs = 0.5 * float(torch.dot(direction, hvp(direction)))
        log: dict[str, Any] = {"loss_before": old_loss, "kl_before": current.kl.item(),
                               "cg_iterations": cg_iterations, "grad_norm": float(grad.norm()),
                               "ls_accepted": False, "ls_step": -1, "loss_after": old_loss, "kl_after": 0.0}
        if not (shs > 0 and math.isfinite(shs)):
            return log  # no trust-region step along a non-positive-curvature direction
        full_step = direction / math.sqrt(shs / self.max_kl)
        old_vector = parameters_to_vector(params).detach().clone()
        # Stacked, two trials cost less than one after the other, and the second is almost always needed.
        together = max(self.ls_threads, 2) if self.stacks_trials(train_batches) else self.ls_threads
        trial = 0
        while trial < self.ls_max_steps:
            group = range(trial, min(trial + together, self.ls_max_steps))
            vectors = [old_vector - self.ls_backtrack_ratio ** t * full_step for t in group]
            results = self.trial_values(vectors, train_batches, valid, current.old)
            for t, vector, (loss, kl) in zip(group, vectors, results):
                if loss < old_loss and kl <= self.max_kl:  # the first acceptable trial, in order
                    vector_to_parameters(vector, params)
                    log.update(ls_accepted=True, ls_step=t, loss_after=loss, kl_after=kl)
                    return log
            trial = group.stop
        return log  # no acceptable step: the parameters were never changed

    def trial_values(self, vectors: Sequence[torch.Tensor], train_batches: Sequence[EpisodeBatch],
                     valid: EpisodeBatch, old: OldPolicy) -> list[tuple[float, float]]:
        """Surrogate loss and mean KL after re-adapting from each meta-parameter vector (values only).

        Several vectors are evaluated together: for small batches stacked into one pass
        (``stacks_trials``), otherwise the first in this thread and the others concurrently in
        worker threads (torch releases the GIL inside its operations). Each evaluation takes
        the operations of evaluating its vector alone, so the values do not depend on how many
        are evaluated together, nor how.
        """
        names, like = zip(*self.policy.named_parameters())
        # views, as vector_to_parameters makes
        metas = [OrderedDict(zip(names, unflatten_like(vector, like))) for vector in vectors]

        def values(meta: "OrderedDict[str, torch.Tensor]") -> tuple[float, float]:
            with torch.no_grad():  # grad mode is per thread
                candidate = self.surrogate(train_batches, valid, old, meta)
            return candidate.loss.item(), candidate.kl.item()

        if len(metas) == 1:
            return [values(metas[0])]
        if self.stacks_trials(train_batches):
            return self.stacked_trial_values(metas, train_batches, valid, old)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(self.ls_threads - 1, 1), thread_name_prefix="line-search")
        others = [self._pool.submit(values, meta) for meta in metas[1:]]
        return [values(metas[0])] + [future.result() for future in others]

    def stacks_trials(self, train_batches: Sequence[EpisodeBatch]) -> bool:
        """Whether concurrent trials are stacked into one pass (``stacked_trial_values``) rather
        than run in threads: when the training batches have fewer than ``ls_stack_rows`` block
        rows per inner step. A small trial is mostly per-operation overhead, during which a
        thread holds Python's GIL, so two threads take about as long as one trial after the
        other; stacked, the two share every operation."""
        rows = sum(self.steps(batch).mask.numel() for batch in train_batches)
        return rows < self.ls_stack_rows * len(train_batches)

    def stacked_trial_values(self, metas: Sequence["OrderedDict[str, torch.Tensor]"],
                             train_batches: Sequence[EpisodeBatch], valid: EpisodeBatch,
                             old: OldPolicy) -> list[tuple[float, float]]:
        """Surrogate loss and mean KL after re-adapting from each of n meta-parameter sets, in
        one pass (values only).

        The n K adapted policies are stacked along the task axis over n copies of every
        batch's blocks (``StepBlocks.repeat``): each block's products, each task's sums and
        each copy's means are the operations one set alone takes, so the values equal
        ``trial_values`` of each set alone bit for bit (tested).
        """
        n, k = len(metas), valid.num_tasks
        with torch.no_grad():
            params = OrderedDict((name, torch.cat([m[name].unsqueeze(0).expand(k, *m[name].shape) for m in metas]))
                                 for name in metas[0])
            for batch in train_batches:
                grads = self.block_gradient(self.steps(batch).repeat(n), params)
                params = OrderedDict((name, p - self.fast_lr * grads[name]) for name, p in params.items())
            steps = self.steps(valid).repeat(n)
            mean, log_std = self.policy.stacked_mean_log_std(steps.observations, steps.gather(params))
            repeated = OldPolicy(old.mean.repeat(n, 1, 1), old.log_std.repeat(n, 1, 1), old.log_prob.repeat(n, 1))
            log_prob = gaussian_log_prob(steps.actions, mean, log_std)
            _, gains, kls = surrogate_terms(steps, mean, log_std, log_prob, repeated)
        return [((-gains[c * k:(c + 1) * k].mean()).item(), kls[c * k:(c + 1) * k].mean().item()) for c in range(n)]


def surrogate_terms(steps: StepBlocks, mean: torch.Tensor, log_std: torch.Tensor, log_prob: torch.Tensor,
                    old: OldPolicy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ratios pi / pi_old (G, M), and per task (K,) the mean of ratio_t A_t and the mean
    KL(pi_old || pi) over its valid steps, for the policies (``mean``, ``log_std``) whose
    log-likelihoods of the taken actions are ``log_prob``."""
    ratio = torch.exp(log_prob - old.log_prob)
    gains = steps.task_means(ratio * steps.advantages)
    return ratio, gains, steps.task_means(gaussian_kl(old.mean, old.log_std, mean, log_std))


def episode_statistics(batch: EpisodeBatch, prefix: str) -> dict[str, Any]:
    """Mean return, length and success rate of a batch, overall and per task."""
    returns = batch.episode_returns()
    lengths = batch.lengths.float()
    success = batch.success.float()
    return {
        f"{prefix}_return": float(returns.mean()),
        f"{prefix}_length": float(lengths.mean()),
        f"{prefix}_success": float(success.mean()),
        f"{prefix}_return_per_task": returns.mean(1).tolist(),
        f"{prefix}_length_per_task": lengths.mean(1).tolist(),
        f"{prefix}_success_per_task": success.mean(1).tolist(),
    }


def meta_update(learner: MAMLTRPO, sampler: Sampler, tasks: Sequence[Task], batch_index: int) -> dict[str, Any]:
    """Sample, adapt and take one TRPO step for one meta-batch; returns the batch's log row."""
    timings: dict[str, float] = {}
    train, valid = learner.sample(sampler, tasks, batch_index, timings)
    start = time.perf_counter()
    log = learner.step(train, valid)
    timings["trpo"] = time.perf_counter() - start
    row: dict[str, Any] = {"batch": batch_index, "task_ids": [t.id for t in tasks],
                           "task_factors": [list(t.factors) for t in tasks]}
    row.update(episode_statistics(train[0], "train"))
    row.update(episode_statistics(valid, "valid"))
    row.update(log)
    row["interactions"] = sum(b.interactions() for b in train) + valid.interactions()
    row.update({f"time_{phase}": seconds for phase, seconds in timings.items()})
    row["time_total"] = float(np.sum(list(timings.values())))
    return row
