"""Throughput benchmarks that print numbers (not timed tests).

    python -m maml_rl.benchmark optics                  # response matrices of 10,000 tasks
    python -m maml_rl.benchmark meta                    # full default meta-training, per-phase split
    python -m maml_rl.benchmark meta --batches 100 --repeats 3

``meta`` runs the meta-training of ``configs/awake.yaml`` exactly as ``train.py`` does
(same sampler, learner and tasks; no files written) and prints the wall time of the run,
the median time per meta-batch and where the time goes (sampling, adaptation = baseline
fits + inner steps, TRPO = surrogate, conjugate gradient, line search).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_optics(n_tasks: int = 10_000, repeats: int = 7) -> None:
    from maml_rl.envs.response import response_matrices

    factors = np.random.default_rng(0).uniform(0.75, 1.25, size=(n_tasks, 10))
    median, times = median_time(lambda: response_matrices(factors), repeats)
    print(f"response matrices (R_h and R_v) of {n_tasks} tasks: median {median * 1e3:.1f} ms "
          f"over {repeats} runs (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); "
          f"{n_tasks / median:,.0f} tasks/s")


def bench_meta(config_path: Path, batches: int | None, repeats: int, seed: int, threads: int) -> None:
    import torch

    from maml_rl.config import load_config
    from maml_rl.metalearners import meta_update
    from maml_rl.samplers import VectorizedSampler
    from maml_rl.training import batch_tasks, environment_of, make_learner, make_policy, make_spec

    torch.set_num_threads(threads)
    config = load_config(config_path)
    env = environment_of(config)
    batches = batches or config.num_batches
    totals, medians = [], []
    phases = ("time_sampling", "time_adaptation", "time_trpo")
    for repeat in range(repeats):
        policy = make_policy(config, seed)
        learner = make_learner(config, policy)
        sampler = VectorizedSampler(make_spec(config, policy, seed), policy)
        rows = []
        start = time.perf_counter()
        for batch in range(batches):
            begin = time.perf_counter()
            row = meta_update(learner, sampler, batch_tasks(config, env, seed, batch), batch)
            row["time_batch"] = time.perf_counter() - begin
            rows.append(row)
        total = time.perf_counter() - start
        per_batch = [r["time_batch"] for r in rows]
        totals.append(total)
        medians.append(statistics.median(per_batch))
        split = {p: sum(r[p] for r in rows) for p in phases}
        other = total - sum(split.values())
        print(f"run {repeat + 1}/{repeats}: {batches} meta-batches in {total:.1f} s; per batch median "
              f"{medians[-1]:.3f} s, mean {total / batches:.3f} s, max {max(per_batch):.3f} s; "
              f"interactions {sum(r['interactions'] for r in rows):,}")
        print("  split: " + ", ".join(f"{p[5:]} {split[p]:.1f} s ({100 * split[p] / total:.0f} %)" for p in phases)
              + f", other {other:.1f} s ({100 * other / total:.0f} %)")
        quarter = max(1, batches // 4)
        print("  median per batch by quarter of the run: " + ", ".join(
            f"{statistics.median(per_batch[i:i + quarter]):.3f} s" for i in range(0, batches, quarter)))
    print(f"meta-training ({config_path}, {batches} batches, {threads} thread(s), {repeats} run(s)): "
          f"median total {statistics.median(totals):.1f} s, median of per-batch medians "
          f"{statistics.median(medians):.3f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", help="optics and/or meta (default: both)")
    parser.add_argument("--repeats", type=int, default=None, help="runs (default: 7 for optics, 1 for meta)")
    parser.add_argument("--config", type=Path, default=Path("configs/awake.yaml"))
    parser.add_argument("--batches", type=int, default=None, help="meta-batches (default: the config's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as train.py)")
    args = parser.parse_args(argv)
    args.what = args.what or ["optics", "meta"]
    unknown = set(args.what) - {"optics", "meta"}
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose optics and/or meta")
    print(f"machine: {machine()}")
    if "optics" in args.what:
        bench_optics(repeats=args.repeats or 7)
    if "meta" in args.what:
        bench_meta(args.config, args.batches, args.repeats or 1, args.seed, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
