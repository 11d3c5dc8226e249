"""Throughput benchmarks that print numbers (not timed tests).

    python -m maml_rl.benchmark optics     # response matrices of 10,000 tasks
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", default=["optics"], choices=["optics"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    if "optics" in args.what:
        bench_optics(repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
