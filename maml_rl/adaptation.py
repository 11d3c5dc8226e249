"""Test-time adaptation on evaluation tasks (``test.py``) and evaluation of stored policies.

Adaptation runs the inner loop of meta-training with the evaluation config's fast-lr:
each batch samples ``fast-batch-size`` episodes per task with the current task policy,
takes one REINFORCE step, ``num-steps`` times; the next batch continues from there.
All tasks are adapted together (task-stacked parameters) with the same sampler as training.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from maml_rl.checkpoint import save_policy
from maml_rl.config import Config
from maml_rl.evaluation_results import Evaluation
from maml_rl.metalearners.maml_trpo import MAMLTRPO, episode_statistics
from maml_rl.policies import NormalMLPPolicy
from maml_rl.runio import MetricsLog
from maml_rl.samplers import Sampler, make_sampler
from maml_rl.seeding import PURPOSE_ADAPTATION
from maml_rl.training import environment_of, make_learner, make_spec
from maml_rl.utils.torch_utils import fresh_leaves, stack_params, task_slice

Task = Any  # a task of any family (maml_rl.families.base)


def policy_controller(policy: NormalMLPPolicy, params: "dict[str, torch.Tensor] | None" = None,
                      stochastic: bool = False, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A controller (obs batch -> action batch) from a policy: mean action, or sampled."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            dist = policy(torch.as_tensor(obs, dtype=torch.float32), params)
            if not stochastic:
                return dist.mean.numpy()
            noise = torch.randn(dist.mean.shape, generator=generator)
            return (dist.mean + dist.stddev * noise).numpy()

    return act


def adaptation_sampler(config: Config, policy: NormalMLPPolicy, seed: int, num_workers: int = 1,
                       kind: str | None = None, ray_address: str | None = None) -> Sampler:
    """The sampler of test-time adaptation: ``kind`` (vectorized, multiprocessing, ray), or by
    default vectorised for 1 worker and multiprocessing for more.

    Its episodes draw from the adaptation streams (``PURPOSE_ADAPTATION``), never from the
    streams meta-training used with the same seed, batch and task positions.
    """
    if kind is None:
        kind = "multiprocessing" if num_workers > 1 else "vectorized"
    return make_sampler(kind, make_spec(config, policy, seed, PURPOSE_ADAPTATION), num_workers, policy, ray_address)


@dataclass
class EvaluationPoint:
    """Evaluations of every task's policy after ``batch`` adaptation batches.

    ``interactions`` counts the environment steps of all tasks, ``task_interactions``
    those of each task (the tasks adapt together but their episodes differ in length);
    ``params`` are the task-stacked parameters that were evaluated (row k: task k).
    """

    batch: int
    interactions: int
    task_interactions: list[int]
    evaluations: list[Evaluation] = field(default_factory=list)
    params: "OrderedDict[str, torch.Tensor] | None" = None

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for ev, own in zip(self.evaluations, self.task_interactions):
            row = {"batch": self.batch, "interactions": own, "total_interactions": self.interactions,
                   **ev.as_dict()}
            row["length_ratio_benchmark"] = ev.length_ratio()
            row["length_ratio_limit"] = ev.policy.mean_length / ev.limit.mean_length
            out.append(row)
        return out


def evaluate_task_policies(policy: NormalMLPPolicy, params: "OrderedDict[str, torch.Tensor]", tasks: Sequence[Task],
                           config: Config, num_episodes: int, seed: int, stochastic: bool = False) -> list[Evaluation]:
    """Evaluate each task's policy (row k of the stacked ``params``) with the family's references."""
    env = environment_of(config)
    return [env.evaluate(policy_controller(policy, task_slice(params, k), stochastic, seed), task, num_episodes, seed)
            for k, task in enumerate(tasks)]


def adapt(policy: NormalMLPPolicy, config: Config, tasks: Sequence[Task], sampler: Sampler, num_batches: int,
          folder: Path, num_episodes: int, plot_interval: int, seed: int,
          on_evaluation: Callable[[EvaluationPoint], None] | None = None,
          progress: Callable[[int, dict[str, Any]], None] | None = None,
          should_stop: Callable[[EvaluationPoint], bool] | None = None,
          evaluation_seed: Callable[[int], int] | None = None) -> list[EvaluationPoint]:
    """Adapt ``policy`` to every task for ``num_batches`` batches; evaluate every ``plot_interval``.

    Evaluation points: before adaptation (batch 0), every ``plot_interval`` batches and
    after the last batch; ``should_stop(point)`` may end the adaptation early. The
    evaluation states are drawn with ``seed``, or with ``evaluation_seed(batch)`` when given
    (fresh states at every point). Writes
    ``metrics.jsonl`` (one row per batch),
    ``evaluations.jsonl`` (one row per task and evaluation point) and the adapted
    policies ``policies/task_<id>.th`` into ``folder``.
    """
    learner: MAMLTRPO = make_learner(config, policy)
    metrics = MetricsLog.create(folder / "metrics.jsonl")
    evaluations_log = MetricsLog.create(folder / "evaluations.jsonl")
    params = fresh_leaves(stack_params(policy.meta_parameters(), len(tasks)))
    per_task = np.zeros(len(tasks), dtype=int)
    points: list[EvaluationPoint] = []

    def checkpoint(batch: int) -> bool:
        states_seed = seed if evaluation_seed is None else evaluation_seed(batch)
        point = EvaluationPoint(batch, int(per_task.sum()), per_task.tolist(),
                                evaluate_task_policies(policy, params, tasks, config, num_episodes, states_seed),
                                OrderedDict((k, v.detach()) for k, v in params.items()))
        for row in point.rows():
            evaluations_log.append(row)
        points.append(point)
        if on_evaluation is not None:
            on_evaluation(point)
        return should_stop is not None and should_stop(point)

    stopped = checkpoint(0)
    batches_done = 0
    for batch in range(0 if stopped else num_batches):
        start = time.perf_counter()
        for round_index in range(config.num_steps):
            episodes = sampler.sample(params, tasks, batch, round_index)
            learner.prepare(episodes)
            per_task += episodes.lengths.sum(1).numpy()
            if round_index == 0:
                row = {"batch": batch + 1, "task_ids": [t.id for t in tasks],
                       **episode_statistics(episodes, "train")}
            params = fresh_leaves(learner.adapt([episodes], first_order=True, params=params))
        row.update(interactions=int(per_task.sum()), task_interactions=per_task.tolist(),
                   time_total=time.perf_counter() - start)
        metrics.append(row)
        batches_done = batch + 1
        if progress is not None:
            progress(batch + 1, row)
        if (batch + 1) % plot_interval == 0 or batch + 1 == num_batches:
            if checkpoint(batch + 1):
                break
    for k, task in enumerate(tasks):
        save_policy(folder / "policies" / f"task_{task.id}.th", policy,
                    {"task_id": task.id, "task_factors": list(task.factors), "batches": batches_done,
                     "interactions": int(per_task[k])}, state=task_slice(params, k))
    return points
