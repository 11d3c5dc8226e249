"""Interactions each model-based method needs on the nominal optics, and the probing study.

    python -m maml_rl.baselines.model_based.study --methods rmi rmi_limit gp_mpc dyna --noise 0 0.01 --seeds 0 1 2
    python -m maml_rl.baselines.model_based.study --rmi-sweep --seeds 0 1 2

Criterion (as in the comparison): success rate >= 95 % and mean episode length <= the
benchmark's on the same fresh evaluation states, deterministic controller. Every
evaluation point draws new states (evaluation seed = 1000 * seed + point); a pass counts
once the next point, on other states, passes too ("reached at" = the first of the two).
Environment: ``configs/awake_evaluation.yaml``'s env-kwargs with ``noise_sigma`` set.
Writes ``results.jsonl`` (one run per line, with its learning curve) and ``table.md``
into ``--output``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from maml_rl.baselines.model_based.base import controller_of
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import REPO_ROOT, Task
from maml_rl.evaluation import Evaluation, evaluate

SUCCESS_CRITERION = 0.95
EVALUATION_CONFIG = REPO_ROOT / "configs" / "awake_evaluation.yaml"


def env_kwargs(noise_sigma: float) -> dict[str, Any]:
    kwargs = dict(yaml.safe_load(EVALUATION_CONFIG.read_text())["env-kwargs"])
    kwargs["noise_sigma"] = float(noise_sigma)
    return kwargs


def passes(ev: Evaluation) -> bool:
    """Success rate >= 95 % and mean episode length <= the benchmark's on the same states."""
    return ev.policy.success_rate >= SUCCESS_CRITERION and ev.policy.mean_length <= ev.benchmark.mean_length


@dataclass
class Run:
    """One method, noise level and seed."""

    method: str
    noise: float
    seed: int
    settings: dict[str, Any]
    reached_at: int | None = None
    interactions: int = 0
    learn_seconds: float = 0.0
    eval_seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)


def build(method: str, env: AwakeSteering, seed: int, settings: dict[str, Any]) -> Any:
    from maml_rl.baselines import model_based

    classes = {"rmi": model_based.ResponseMatrixIdentification, "gp_mpc": model_based.GPMPC,
               "dyna": model_based.Dyna}
    return classes[method](env, seed=seed, **settings)


def measure(method: str, noise: float, seed: int, budget: int, every: int, episodes: int,
            settings: dict[str, Any] | None = None, confirm: bool = True) -> Run:
    """Learn until the criterion is met (and confirmed) or the budget is spent, evaluating every ``every``."""
    import torch

    torch.set_num_threads(1)
    settings = settings or {}
    env = AwakeSteering(**env_kwargs(noise))
    task = Task.nominal()
    run = Run(method, noise, seed, settings)
    agent = build(method, env, seed, settings)
    pending: list[int] = []  # a pass waiting for its confirmation

    def hook(model: Any, n: int) -> bool:
        start = time.perf_counter()
        ev = evaluate(controller_of(model), task, episodes, seed=1000 * seed + len(run.curve),
                      dynamics=env.dynamics, plane=env.plane)
        point = {"interactions": n, "success": ev.policy.success_rate, "length": ev.policy.mean_length,
                 "benchmark_length": ev.benchmark.mean_length, "limit_length": ev.limit.mean_length}
        estimate = getattr(model, "response_estimate", None)
        if estimate is not None:
            point["relative_error"] = float(np.linalg.norm(estimate - env.response) / np.linalg.norm(env.response))
        run.curve.append(point)
        run.eval_seconds += time.perf_counter() - start
        if passes(ev):
            if pending or not confirm:
                run.reached_at = pending[0] if pending else n
                return False
            pending.append(n)
        else:
            pending.clear()
        return True

    start = time.perf_counter()
    agent.learn(budget, callback=hook, eval_every=every)
    run.learn_seconds = time.perf_counter() - start - run.eval_seconds
    run.interactions = int(agent.num_timesteps)
    return run


def rmi_errors(noise: float, probe_size: float, seeds: Sequence[int], probes: Sequence[int],
               mode: str = "corrector") -> dict[int, float]:
    """Mean relative Frobenius error of the estimate after each number of probes."""
    out: dict[int, list[float]] = {p: [] for p in probes}
    for seed in seeds:
        env = AwakeSteering(**env_kwargs(noise))
        agent = build("rmi", env, seed, {"probe_size": probe_size, "probe_mode": mode})
        for p in probes:
            agent.learn(p - agent.num_timesteps)
            out[p].append(float(np.linalg.norm(agent.response_estimate - env.response) / np.linalg.norm(env.response)))
    return {p: float(np.mean(v)) for p, v in out.items()}


# name: (class, settings, plan without noise, plan with noise); a plan is
# (budget, evaluation interval, episodes per evaluation point)
METHODS: dict[str, tuple[str, dict[str, Any], tuple[int, int, int], tuple[int, int, int]]] = {
    "rmi": ("rmi", {}, (200, 10, 100), (3000, 100, 50)),
    "rmi_limit": ("rmi", {"controller": "limit"}, (200, 10, 100), (200, 10, 100)),
    "gp_mpc": ("gp_mpc", {}, (60, 5, 20), (80, 5, 20)),
    "dyna": ("dyna", {}, (1500, 50, 50), (1500, 50, 50)),
}


def method_runs(methods: Sequence[str], noises: Sequence[float], seeds: Sequence[int],
                log: Callable[[Run], None]) -> list[Run]:
    runs = []
    for name in methods:
        kind, settings, clean, noisy = METHODS[name]
        for noise in noises:
            budget, every, episodes = clean if noise == 0 else noisy
            for seed in seeds:
                run = measure(kind, noise, seed, budget, every, episodes, dict(settings))
                run.method = name
                log(run)
                runs.append(run)
    return runs


def rmi_sweep(seeds: Sequence[int], log: Callable[[Run], None]) -> list[Run]:
    """Estimate error after 10/100/1000 probes and interactions to the criterion (inverse law)."""
    runs = []
    for noise in (0.0, 0.001, 0.003, 0.01):
        for probe_size in (0.25, 0.5, 1.0):
            budget, every, episodes = (100, 10, 100) if noise == 0 else (3000, 100, 50)
            for seed in seeds:
                run = measure("rmi", noise, seed, budget, every, episodes, {"probe_size": probe_size})
                run.settings["errors"] = rmi_errors(noise, probe_size, [seed], (10, 100, 1000))
                log(run)
                runs.append(run)
    for settings in ({"probe_mode": "random"}, {"structure": "causal"},
                     {"n_probes": 10, "closed_loop_updates": True}, {"controller": "limit", "probe_size": 0.25}):
        for seed in seeds:
            run = measure("rmi", 0.01, seed, 3000, 100, 50, dict(settings))
            log(run)
            runs.append(run)
    return runs


def _median(values: list[int | None]) -> str:
    reached = [v for v in values if v is not None]
    if len(reached) < len(values):
        return f"{int(np.median(reached)) if reached else '-'} ({len(values) - len(reached)} not reached)"
    return str(int(np.median(reached)))


def table(runs: Sequence[Run]) -> str:
    """Markdown: one line per (method, settings, noise): interactions to the criterion over seeds."""
    groups: dict[tuple[str, str, float], list[Run]] = {}
    for run in runs:
        shown = {k: v for k, v in run.settings.items() if k != "errors"}
        groups.setdefault((run.method, json.dumps(shown), run.noise), []).append(run)
    lines = ["| method | settings | noise | interactions to criterion (median; per seed) | learn s / run | "
             "eval s / run | last point: success, length / benchmark |",
             "|---|---|---|---|---|---|---|"]
    for (method, settings, noise), group in groups.items():
        per_seed = ", ".join("-" if r.reached_at is None else str(r.reached_at) for r in group)
        last = [r.curve[-1] for r in group if r.curve]
        summary = ", ".join(f"{p['success']:.2f} {p['length'] / p['benchmark_length']:.2f}" for p in last)
        learn, evaluation = np.mean([r.learn_seconds for r in group]), np.mean([r.eval_seconds for r in group])
        lines.append(f"| {method} | {settings} | {noise:g} | {_median([r.reached_at for r in group])}; {per_seed} | "
                     f"{learn:.1f} | {evaluation:.1f} | {summary} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=[], choices=sorted(METHODS))
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.01])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rmi-sweep", action="store_true", help="probe size x noise study of the identification")
    parser.add_argument("--output", type=Path, default=Path("awake/model_based"))
    parser.add_argument("--table", nargs="+", type=Path, metavar="RESULTS",
                        help="only print the table of existing results.jsonl files")
    args = parser.parse_args(argv)
    if args.table:
        runs = [Run(**json.loads(line)) for path in args.table for line in path.read_text().splitlines() if line]
        print(table(runs))
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    results = args.output / "results.jsonl"

    def log(run: Run) -> None:
        with results.open("a") as f:
            f.write(json.dumps(asdict(run)) + "\n")
            f.flush()
        print(f"{run.method} {run.settings} noise={run.noise} seed={run.seed}: reached at {run.reached_at} "
              f"(learn {run.learn_seconds:.1f} s, eval {run.eval_seconds:.1f} s)", flush=True)

    runs = method_runs(args.methods, args.noise, args.seeds, log)
    if args.rmi_sweep:
        runs += rmi_sweep(args.seeds, log)
    text = table(runs)
    (args.output / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
