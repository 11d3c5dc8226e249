"""How many conjugate-gradient iterations the TRPO step should take (``python -m maml_rl.benchmark cg``).

Trains along the config's own trajectory and, at some meta-batches, takes the TRPO step
from the same parameters and episodes with several iteration counts k. Printed per k:

* the real surrogate change of the accepted step (loss after - loss before: re-adapted
  adapted policies on the validation episodes, what the line search checks; more negative
  is better);
* the accepted line-search trial and the mean KL at the full step relative to max-kl
  (the quadratic model puts it at exactly 1);
* the distance between the float32 step and the same k iterations in float64 (same
  gradient, Fisher product in float64), relative to the float64 step: how much of the
  step is rounding.

Why it matters: the step solves the trust-region model max g^T s s.t. 1/2 s^T F s <= max-kl
with F the first-order Fisher of the adapted policies, but the line search measures the
re-adapted KL and surrogate. More iterations solve the model better (g^T s grows
monotonically with k) and move the step into directions of small Fisher curvature, where
the model and the real KL part: there the step gets worse, not better (README, "Speed").
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from maml_rl.metalearners.maml_trpo import MAMLTRPO
from maml_rl.utils.optimization import conjugate_gradient
from maml_rl.utils.torch_utils import flat

DEFAULT_STUDY_BATCHES = (0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100)
DEFAULT_ITERATIONS = (10, 20, 40, 80, 160)


def rounding_distance(learner: MAMLTRPO, train: Sequence, valid, iterations: int) -> float:
    """||s_32 - s_64|| / ||s_64|| for the TRPO steps of ``iterations`` CG iterations in float32 and float64."""
    current = learner.surrogate(train, valid)
    grad = flat(torch.autograd.grad(current.loss, list(learner.policy.parameters())))
    single = learner.kl_hessian_product(valid, current)
    steps = learner.steps(valid)
    adapted = steps.gather(OrderedDict((n, p.detach().double()) for n, p in current.adapted.items()))
    fisher = learner.policy.fisher_vector_product(steps.observations.double(), adapted,
                                                  (steps.task_mean_weights() / steps.num_tasks).double())

    def double(vector: torch.Tensor) -> torch.Tensor:
        return fisher(vector) + learner.cg_damping * vector

    d32, _ = conjugate_gradient(single, grad, iterations)
    d64, _ = conjugate_gradient(double, grad.double(), iterations)
    s32, s64 = (d / math.sqrt(float(d @ double(d))) for d in (d32.double(), d64))  # both scaled alike
    return float((s32 - s64).norm() / s64.norm())


def run(config_path: Path, seed: int, threads: int, study_batches: Sequence[int] = DEFAULT_STUDY_BATCHES,
        iterations: Sequence[int] = DEFAULT_ITERATIONS) -> tuple[dict[int, list[tuple[float, int, float, float]]],
                                                                 torch.Tensor]:
    """Print the study's table; return its rows per k (surrogate change, accepted trial, KL at the
    full step / max-kl, float32-float64 distance) and the final meta-parameters of the trajectory,
    which the study leaves untouched."""
    from maml_rl.benchmark import in_process_training
    from maml_rl.training import batch_tasks

    config, env, policy, learner, sampler = in_process_training(config_path, seed, threads)
    # Trials one at a time through ``surrogate``, so the first recorded is the full step (same results).
    learner.ls_threads, learner.ls_stack_rows = 1, 0
    first_trial_kl: list[float] = []
    surrogate = learner.surrogate

    def recording(train, valid, old=None, meta=None):  # type: ignore[no-untyped-def]
        result = surrogate(train, valid, old, meta)
        if old is not None and len(first_trial_kl) == 0:
            first_trial_kl.append(result.kl.item() / learner.max_kl)
        return result

    rows: dict[int, list[tuple[float, int, float, float]]] = {k: [] for k in iterations}
    studied = set(study_batches)
    print(f"{config_path.name}, seed {seed}: TRPO steps with k CG iterations from the same parameters and "
          f"episodes at meta-batches {sorted(studied)} (the trajectory itself uses {config.cg_iters})")
    for batch in range(max(studied) + 1):
        train, valid = learner.sample(sampler, batch_tasks(config, env, seed, batch), batch)
        if batch in studied:
            theta = parameters_to_vector(policy.parameters()).detach().clone()
            for k in iterations:
                learner.cg_iters = k
                first_trial_kl.clear()
                learner.surrogate = recording  # type: ignore[method-assign]
                log = learner.step(train, valid)
                learner.surrogate = surrogate  # type: ignore[method-assign]
                vector_to_parameters(theta, policy.parameters())
                rows[k].append((log["loss_after"] - log["loss_before"], log["ls_step"],
                                first_trial_kl[0] if first_trial_kl else math.nan,
                                rounding_distance(learner, train, valid, k)))
            learner.cg_iters = config.cg_iters
        learner.step(train, valid)
    print(" k | surrogate change: mean, median | accepted trial (mean) | KL at full step / max-kl: median (range) "
          "| float32 vs float64 step: median (range)")
    for k, values in rows.items():
        change, trial, kl, distance = (list(column) for column in zip(*values))
        print(f"{k:3d} | {statistics.mean(change):.5f}, {statistics.median(change):.5f} | {statistics.mean(trial):.2f} "
              f"| {statistics.median(kl):.1f} ({min(kl):.1f}-{max(kl):.1f}) | {statistics.median(distance):.3f} "
              f"({min(distance):.3f}-{max(distance):.3f})")
    return rows, parameters_to_vector(policy.parameters()).detach()
