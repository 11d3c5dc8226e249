"""Throughput of the ARES-EA environments (env steps per second), printed, not a timed test.

    python -m maml_rl.families.ares_ea.benchmark                      # batch 1, 128, 1024
    python -m maml_rl.families.ares_ea.benchmark --batch-sizes 1 64 --steps 50

For each batch size B: B episodes of B different tasks are reset and stepped ``steps``
times with random ``delta`` actions (uniform in +-0.2, so most episodes stay alive); one
step of the batch is one Cheetah call. Reported: the median over ``repeats`` runs of
B x steps / wall time (a finished episode is frozen but still tracked, so it costs the
same), and the gymnasium environment ``AresEA`` (batch of one, with its checks) for
comparison. Resets are not timed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Sequence

import numpy as np


def batched_steps_per_second(batch_size: int, steps: int = 50, repeats: int = 3, seed: int = 0) -> float:
    """Median env steps per second of ``BatchedAresEA`` at ``batch_size``."""
    from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
    from maml_rl.families.ares_ea.dynamics import AresDynamics
    from maml_rl.families.ares_ea.segment import AresSegment
    from maml_rl.families.ares_ea.tasks import sample_tasks, task_arrays

    rng = np.random.default_rng(seed)
    segment, dynamics = AresSegment(), AresDynamics(max_time=steps + 1)
    beams, shifts = task_arrays(sample_tasks(rng, batch_size))
    targets, magnets = sample_initial_states([np.random.default_rng([seed, i]) for i in range(batch_size)], beams,
                                             shifts, dynamics, segment)
    env = BatchedAresEA(dynamics, segment)
    actions = rng.uniform(-0.2, 0.2, (steps, batch_size, 5))
    rates = []
    for _ in range(repeats + 1):  # the first run warms up
        env.reset(beams, shifts, magnets, targets)
        start = time.perf_counter()
        for t in range(steps):
            env.step(actions[t])
        rates.append(batch_size * steps / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def gym_steps_per_second(steps: int = 200, seed: int = 0) -> float:
    """Env steps per second of ``AresEA`` (one episode after another, random actions)."""
    import gymnasium as gym

    import maml_rl.families.ares_ea  # noqa: F401  (registers AresEA-v0)

    env = gym.make("AresEA-v0")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.step(env.action_space.sample())  # warm-up
    done, start = 0, time.perf_counter()
    while done < steps:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done += 1
        if terminated or truncated:
            elapsed = time.perf_counter() - start
            env.reset()
            start = time.perf_counter() - elapsed  # resets are not timed
    return steps / (time.perf_counter() - start)


def run(batch_sizes: Sequence[int] = (1, 128, 1024), steps: int = 50, repeats: int = 3, threads: int = 1,
        gym_steps: int = 200) -> dict[str, float]:
    """Measure and print the throughput; returns {"batch B": steps/s, ..., "gym": steps/s}.

    The entry point for ``python -m maml_rl.benchmark`` (no argument parsing here).
    """
    import torch

    torch.set_num_threads(threads)
    print(f"ARES-EA throughput ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} thread(s), float64)")
    rates: dict[str, float] = {}
    for batch_size in batch_sizes:
        rate = rates[f"batch {batch_size}"] = batched_steps_per_second(batch_size, steps, repeats)
        print(f"  batched env, batch {batch_size:5d}: {rate:10,.0f} env steps/s  "
              f"({batch_size / rate * 1e3:7.2f} ms per batched step)")
    rates["gym"] = gym_steps_per_second(gym_steps)
    print(f"  gymnasium AresEA-v0 (batch 1):  {rates['gym']:10,.0f} env steps/s")
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.families.ares_ea.benchmark",
                                     description="Env steps per second of the ARES-EA environments.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 128, 1024])
    parser.add_argument("--steps", type=int, default=50, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--gym-steps", type=int, default=200, help="steps of the gymnasium environment")
    args = parser.parse_args(argv)
    run(args.batch_sizes, args.steps, args.repeats, args.threads, args.gym_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
