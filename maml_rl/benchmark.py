"""Throughput benchmarks that print numbers (not timed tests).

    python -m maml_rl.benchmark                         # optics, fvp and meta (the whole default training)
    python -m maml_rl.benchmark optics                  # response matrices of 10,000 tasks
    python -m maml_rl.benchmark fvp                     # Fisher-vector product vs forward+backward
    python -m maml_rl.benchmark cg                      # TRPO steps with 10-160 CG iterations (why 40)
    python -m maml_rl.benchmark meta --repeats 3        # default meta-training, three runs
    python -m maml_rl.benchmark meta --batches 20 --repeats 3 --other ../base   # side by side, same config
    python -m maml_rl.benchmark meta --repeats 3 --other ../base --other-config ../base/configs/awake.yaml
    python -m maml_rl.benchmark ares                    # ARES-EA env steps/s at batch 1, 128, 1024 (extra "ares")
    python -m maml_rl.benchmark samplers                # samples/s: vectorised, multiprocessing, Ray; 0 and 5 ms/step

``meta`` runs the meta-training of ``configs/awake.yaml`` exactly as ``train.py`` does (same
sampler, learner and tasks; no files written), each run in a fresh process
(``maml_rl.benchmark_training``), and prints the wall time of the run, the mean time per
meta-batch over the first 20 and the last 100 batches, where the time goes (sampling,
adaptation = baseline fits + advantages + inner steps, TRPO = surrogate, conjugate gradient,
line search), the peak memory and the resident memory over the run. ``--other PATH`` runs
the same driver against the checkout at PATH, alternating with this one, and prints the
ratios. ``fvp`` times one Fisher-vector product of the conjugate gradient against one
forward+backward pass of the policy's log-likelihood over the same validation steps. ``cg``
takes the TRPO step with several conjugate-gradient iteration counts from the same
parameters and episodes (``maml_rl.benchmark_cg``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "benchmark_training.py"


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
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_optics(n_tasks: int = 10_000, repeats: int = 7) -> None:
    from maml_rl.envs.response import response_matrices

    factors = np.random.default_rng(0).uniform(0.75, 1.25, size=(n_tasks, 10))
    median, times = median_time(lambda: response_matrices(factors), repeats)
    print(f"response matrices (R_h and R_v) of {n_tasks} tasks: median {median * 1e3:.1f} ms "
          f"over {repeats} runs (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); "
          f"{n_tasks / median:,.0f} tasks/s")


def in_process_training(config_path: Path, seed: int, threads: int) -> tuple[Any, Any, Any, Any, Any]:
    """(config, environment, policy, learner, vectorised sampler) of ``train.py`` in this process."""
    import torch

    from maml_rl.config import load_config
    from maml_rl.samplers import VectorizedSampler
    from maml_rl.training import environment_of, make_learner, make_policy, make_spec

    torch.set_num_threads(threads)
    config = load_config(config_path)
    policy = make_policy(config, seed)
    return (config, environment_of(config), policy, make_learner(config, policy),
            VectorizedSampler(make_spec(config, policy, seed), policy))


# ---------------------------------------------------------------------------- Fisher product
def bench_fvp(config_path: Path, seed: int, threads: int, batches: Sequence[int] = (0, 10), repeats: int = 30) -> None:
    """Fisher-vector product of the conjugate gradient vs one forward+backward pass.

    Both over the validation steps of a sampled meta-batch, in the learner's block layout:
    the forward+backward pass is the weighted log-likelihood sum_gm w_gm log pi(a|s) of the
    task-stacked adapted policies and its gradient with respect to their parameters
    (what one gradient of the surrogate costs without the adaptation). Timed alternately
    in this process; medians of ``repeats``.
    """
    import torch

    from maml_rl.policies.normal_mlp import gaussian_log_prob
    from maml_rl.training import batch_tasks

    config, env, policy, learner, sampler = in_process_training(config_path, seed, threads)
    vector = torch.randn(sum(p.numel() for p in policy.parameters()), generator=torch.Generator().manual_seed(0))
    for batch in batches:
        train, valid = learner.sample(sampler, batch_tasks(config, env, seed, batch), batch)
        current = learner.surrogate(train, valid)
        fisher = learner.kl_hessian_product(valid, current)
        steps = learner.steps(valid)
        adapted = {n: p.detach().clone().requires_grad_(True) for n, p in current.adapted.items()}
        weights = steps.task_mean_weights() / steps.num_tasks

        def forward_backward(steps=steps, adapted=adapted, weights=weights) -> object:  # bound per batch
            mean, log_std = policy.stacked_mean_log_std(steps.observations, steps.gather(adapted))
            loss = (gaussian_log_prob(steps.actions, mean, log_std) * weights).sum()
            return torch.autograd.grad(loss, list(adapted.values()))

        times: dict[str, list[float]] = {"fvp": [], "fb": []}
        fisher(vector), forward_backward()  # warm-up
        for _ in range(repeats):
            for name, fn in (("fvp", lambda fisher=fisher: fisher(vector)), ("fb", forward_backward)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        fvp, fb = statistics.median(times["fvp"]), statistics.median(times["fb"])
        rows = steps.mask.numel()
        flops = fvp_flops(rows, [policy.input_size, *policy.hidden_sizes, policy.output_size])
        hidden = policy.hidden_sizes[-1]
        gemm = gemm_gflops(rows, hidden, repeats)
        print(f"batch {batch}: {int(steps.mask.sum())} validation steps of {steps.num_tasks} tasks "
              f"({steps.mask.shape[0]} blocks of {steps.mask.shape[1]}): Fisher-vector product "
              f"{fvp * 1e3:.2f} ms, forward+backward {fb * 1e3:.2f} ms, ratio {fvp / fb:.2f} "
              f"(medians of {repeats}, one process)")
        print(f"  arithmetic: {flops / 1e6:.1f} MFlop per product = {flops / fvp / 1e9:.0f} GFlop/s; one "
              f"({rows} x {hidden}) @ ({hidden} x {hidden}) product alone runs at {gemm:.0f} GFlop/s here; "
              f"{learner.cg_iters + 1} products at that rate take at least "
              f"{(learner.cg_iters + 1) * flops / gemm / 1e9 * 1e3:.0f} ms per TRPO step")
    print(f"  reference: 1024 x 1024 float32 matrix product {gemm_gflops(1024, 1024, 5):.0f} GFlop/s "
          f"({threads} thread(s))")


def fvp_flops(rows: int, widths: Sequence[int]) -> float:
    """Floating-point operations of one Fisher-vector product over ``rows`` block rows.

    Per row and layer l (d_{l-1} -> d_l): the forward tangent costs one product of the
    parameter direction (d_{l-1} d_l) and, after the first layer, one through the layer's
    weights (d_{l-1} d_l); the reverse pass one product for the weight gradient and, except
    for the first layer, one to carry the cotangent back: 2 * sum of those multiply-adds.
    """
    macs = 0
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        per_layer = fan_in * fan_out
        macs += per_layer * (2 if index == 0 else 4)
    return 2.0 * rows * macs


def gemm_gflops(rows: int, width: int, repeats: int) -> float:
    """Measured GFlop/s of one float32 (rows x width) @ (width x width) product (median)."""
    import torch

    a, b = torch.randn(rows, width), torch.randn(width, width)
    median, _ = median_time(lambda: torch.mm(a, b), max(repeats, 5))
    return 2.0 * rows * width * width / median / 1e9


# ---------------------------------------------------------------------------- meta-training
def run_training(checkout: Path, config_path: Path, batches: int | None, seed: int, threads: int,
                 ls_threads: int = 0) -> dict[str, Any]:
    """One run of ``benchmark_training`` in a fresh process with ``checkout``'s ``maml_rl`` first on the path
    (``ls_threads`` 0: that checkout's default)."""
    code = ("import runpy, sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS=str(threads))
    args = [str(config_path.resolve()), str(batches or 0), str(seed), str(threads), str(ls_threads)]
    result = subprocess.run([sys.executable, "-c", code, str(DRIVER), *args], cwd=checkout, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark run in {checkout} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(run: dict[str, Any]) -> dict[str, float]:
    """Totals and per-batch means of one run."""
    wall, n = run["wall"], len(run["wall"])
    total = sum(wall)
    return {"total": total, "cpu": sum(run["cpu"]), "first20": float(np.mean(wall[:20])),
            "last100": float(np.mean(wall[-100:])), "batches": n, "interactions": sum(run["interactions"]),
            **{phase: sum(run[phase]) / total for phase in ("sampling", "adaptation", "trpo")},
            "maxrss": run["maxrss_mb"], "return100": float(np.mean(run["valid_return"][-100:]))}


def report(name: str, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Print the runs of one checkout and their medians; return the medians."""
    rows = [summary(r) for r in runs]
    for i, s in enumerate(rows):
        other = 1 - s["sampling"] - s["adaptation"] - s["trpo"]
        print(f"  {name} run {i + 1}: {s['batches']} batches in {s['total']:.1f} s (CPU {s['cpu']:.1f} s); "
              f"per batch: first 20 {s['first20']:.3f} s, last 100 {s['last100']:.3f} s; "
              f"sampling {100 * s['sampling']:.0f} %, adaptation {100 * s['adaptation']:.0f} %, "
              f"TRPO {100 * s['trpo']:.0f} %, other {100 * other:.0f} %; {s['interactions']:,} interactions; "
              f"post-adaptation return (last 100 batches) {s['return100']:.2f}; peak RSS {s['maxrss']:.0f} MB")
    med = {key: statistics.median(s[key] for s in rows) for key in rows[0]}
    rss = [x for x in runs[0]["rss_mb"] if x is not None]
    if rss:
        marks = sorted({0, min(19, len(rss) - 1), len(rss) // 2, len(rss) - 1})
        print(f"  {name} resident memory after batch " + ", ".join(f"{i + 1}: {rss[i]:.0f} MB" for i in marks)
              + f" (run 1; max {max(rss):.0f} MB)")
    print(f"  {name} median of {len(rows)}: total {med['total']:.1f} s (CPU {med['cpu']:.1f} s), "
          f"first 20 {med['first20']:.3f} s/batch, last 100 {med['last100']:.3f} s/batch, "
          f"TRPO {100 * med['trpo']:.0f} % of the time")
    return med


def bench_meta(config_path: Path, batches: int | None, repeats: int, seed: int, threads: int,
               other: Path | None, other_config: Path | None = None, ls_threads: int = 0) -> None:
    """The default meta-training, timed; with ``other`` alternating with another checkout, which
    trains ``other_config`` (default: the same config file as this one). ``ls_threads`` (0:
    ``train.py``'s default) applies to this checkout only."""
    checkouts = {"this": REPO} if other is None else {"this": REPO, "other": other.resolve()}
    configs = {"this": config_path, "other": other_config or config_path}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for repeat in range(repeats):  # alternate, so both see the same machine load
        order = list(checkouts.items()) if repeat % 2 == 0 else list(checkouts.items())[::-1]
        for name, path in order:
            runs[name].append(run_training(path, configs[name], batches, seed, threads,
                                           ls_threads if name == "this" else 0))
    print(f"meta-training (seed {seed}, {threads} torch thread(s), {runs['this'][0]['ls_threads']} concurrent "
          f"line-search trial(s) here, {repeats} run(s) per checkout, each in a fresh process; wall times):")
    medians = {}
    for name, path in checkouts.items():
        print(f" {name}: {path}, config {configs[name]}")
        medians[name] = report(name, runs[name])
    if other is not None:
        a, b = medians["other"], medians["this"]
        print(f" other / this (medians): total {a['total'] / b['total']:.2f} x, first 20 batches "
              f"{a['first20'] / b['first20']:.2f} x, last 100 batches {a['last100'] / b['last100']:.2f} x, "
              f"CPU {a['cpu'] / b['cpu']:.2f} x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*",
                        help="optics, fvp, meta, cg, ares and/or samplers (default: optics, fvp and meta)")
    parser.add_argument("--repeats", type=int, default=None, help="runs (default: 7 for optics, 1 for meta)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "awake.yaml")
    parser.add_argument("--batches", type=int, default=None, help="meta-batches (default: the config's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as train.py)")
    parser.add_argument("--ls-threads", type=int, default=0,
                        help="concurrent line-search trials of this checkout (default: train.py's)")
    parser.add_argument("--other", type=Path, default=None,
                        help="another checkout (e.g. a git worktree of an older commit) to time side by side")
    parser.add_argument("--other-config", type=Path, default=None,
                        help="config the --other checkout trains (default: --config; e.g. ../base/configs/awake.yaml "
                             "to compare each commit's own default)")
    args = parser.parse_args(argv)
    args.what = args.what or ["optics", "fvp", "meta"]
    unknown = set(args.what) - {"optics", "fvp", "meta", "cg", "ares", "samplers"}
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose optics, fvp, meta, cg, ares and/or samplers")
    if args.other is not None and not (args.other / "maml_rl").is_dir():
        parser.error(f"--other {args.other}: no maml_rl package there")
    if args.other_config is not None and (args.other is None or not args.other_config.is_file()):
        parser.error(f"--other-config {args.other_config}: needs --other and an existing config file")
    print(f"machine: {machine()}")
    if "optics" in args.what:
        bench_optics(repeats=args.repeats or 7)
    if "fvp" in args.what:
        bench_fvp(args.config, args.seed, args.threads)
    if "meta" in args.what:
        bench_meta(args.config, args.batches, args.repeats or 1, args.seed, args.threads, args.other,
                   args.other_config, args.ls_threads)
    if "cg" in args.what:
        from maml_rl.benchmark_cg import run as bench_cg

        bench_cg(args.config, args.seed, args.threads)
    if "ares" in args.what:
        try:
            from maml_rl.families.ares_ea.benchmark import run as bench_ares
        except ImportError as exc:  # cheetah-accelerator is the optional extra "ares"
            print(f"error: the ARES benchmark needs the extra 'ares' (pip install -e '.[ares]'): {exc}",
                  file=sys.stderr)
            return 2
        bench_ares(repeats=args.repeats or 3, threads=args.threads)
    if "samplers" in args.what:
        from maml_rl.benchmark_samplers import run as bench_samplers

        bench_samplers(rounds=args.repeats or 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
