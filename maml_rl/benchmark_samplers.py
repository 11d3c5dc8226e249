"""Sampler throughput: vectorised, multiprocessing and Ray, 1 and 2 workers, with and without a
simulated step cost (``python -m maml_rl.benchmark samplers``).

Each setting samples ``rounds`` rounds of a meta-batch (``tasks`` tasks x ``episodes``
episodes, AWAKE, horizon ``max_time``) with one policy, after one warm-up round, and prints
environment steps per second (wall time, sampler start-up excluded). The step cost is
``maml_rl.families.step_cost`` (a busy-wait per episode step standing in for a simulator).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from maml_rl.distributed import ExtraMissingError


def run(tasks: int = 4, episodes: int = 4, max_time: int = 30, rounds: int = 3,
        costs_ms: tuple[float, ...] = (0.0, 5.0)) -> None:
    from maml_rl.envs.dynamics import SteeringDynamics
    from maml_rl.envs.tasks import sample_tasks
    from maml_rl.families.awake.environment import AwakeEnvironment
    from maml_rl.families.step_cost import with_step_cost
    from maml_rl.policies import NormalMLPPolicy
    from maml_rl.samplers import SamplerSpec, make_sampler
    from maml_rl.seeding import task_rng
    from maml_rl.utils.torch_utils import stack_params

    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(64, 64))
    base = SamplerSpec(AwakeEnvironment(SteeringDynamics(max_time=max_time), "horizontal"), episodes, seed=1,
                       policy_config=policy.config())
    batch_tasks = sample_tasks(task_rng(1, 0), tasks)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, tasks)
    print(f"sampler throughput: {tasks} tasks x {episodes} episodes, horizon {max_time}, {rounds} rounds after "
          f"one warm-up, env steps per second (wall time)")
    print(f"{'sampler':16s} {'workers':>7s} " + " ".join(f"{f'{c:g} ms/step':>12s}" for c in costs_ms))
    for kind, workers in (("vectorized", 1), ("multiprocessing", 1), ("multiprocessing", 2), ("ray", 1), ("ray", 2)):
        cells = []
        for cost in costs_ms:
            spec = replace(base, environment=with_step_cost(base.environment, cost))
            try:
                sampler = make_sampler(kind, spec, workers, policy)
            except ExtraMissingError:
                cells.append("(no ray)")
                continue
            try:
                sampler.sample(params, batch_tasks, 0, 0)
                steps, start = 0, time.perf_counter()
                for r in range(rounds):
                    steps += int(sampler.sample(params, batch_tasks, 1, r).lengths.sum())
                cells.append(f"{steps / (time.perf_counter() - start):12,.0f}")
            finally:
                sampler.close()
        print(f"{kind:16s} {workers:7d} " + " ".join(f"{c:>12s}" for c in cells), flush=True)
