"""Learning curve of NAF or PER-NAF on one AWAKE task: interactions to the criterion.

    python -m maml_rl.baselines.learning_curve --algo naf --task-id 0 --steps 10000

Trains on the task with the environment options of ``--config`` and, every
``--eval-every`` steps, runs the deterministic policy and the benchmark on
``--eval-episodes`` fresh initial states (a different evaluation seed at every point, so a
lucky draw of states cannot be passed twice). The criterion is success >= 95 % and mean
episode length <= the benchmark's on the same states; the first pass is reported, with
whether the next evaluation (new states) confirms it. One JSON line per evaluation is
appended to ``--metrics`` if given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from maml_rl.baselines.naf import NAF, NAFConfig, naf_controller
from maml_rl.config import load_config
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, load_evaluation_tasks, select_tasks
from maml_rl.evaluation import evaluate
from maml_rl.runio import MetricsLog

SUCCESS_CRITERION = 0.95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.baselines.learning_curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["naf", "per-naf"], default="naf")
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"))
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--task-id", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10_000, help="environment steps")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--eval-seed", type=int, default=10_000, help="first evaluation seed (+1 per point)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="override NAFConfig fields")
    parser.add_argument("--metrics", type=Path, help="append one JSON line per evaluation here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    naf_config = NAFConfig.from_dict(overrides)
    (task,) = select_tasks(load_evaluation_tasks(args.tasks_file), [args.task_id])
    env = AwakeSteering(task=task, **load_config(args.config).env_kwargs)
    agent = NAF(env, naf_config, seed=args.seed, prioritized=args.algo == "per-naf")
    log = MetricsLog.create(args.metrics) if args.metrics else None
    rows: list[dict] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def evaluate_now(agent: NAF, steps: int) -> bool:
        t0 = time.perf_counter()
        ev = evaluate(naf_controller(agent), task, args.eval_episodes, seed=args.eval_seed + len(rows),
                      dynamics=env.dynamics, plane=env.plane)
        clock["eval"] += time.perf_counter() - t0
        row = {"steps": steps, "episodes": agent.episode_count, **ev.as_dict(),
               "train_seconds": time.perf_counter() - clock["start"] - clock["eval"]}
        row["passed"] = (row["policy_success_rate"] >= SUCCESS_CRITERION
                         and row["policy_mean_length"] <= row["benchmark_mean_length"])
        rows.append(row)
        if log is not None:
            log.append(row)
        print(f"{steps:7d} steps {agent.episode_count:5d} episodes  success {row['policy_success_rate']:.2f}  "
              f"length {row['policy_mean_length']:6.2f} (benchmark {row['benchmark_mean_length']:.2f})  "
              f"return {row['policy_mean_return']:8.1f}  {'PASS' if row['passed'] else ''}", flush=True)
        return True

    evaluate_now(agent, 0)
    agent.learn(args.steps, evaluate_now, args.eval_every)
    passes = [i for i, r in enumerate(rows) if r["passed"]]
    if passes:
        first = rows[passes[0]]
        confirmed = passes[0] + 1 < len(rows) and rows[passes[0] + 1]["passed"]
        print(f"criterion first met after {first['steps']} steps / {first['episodes']} episodes "
              f"({'confirmed' if confirmed else 'not confirmed'} at the next evaluation)")
    else:
        print(f"criterion not met within {args.steps} steps")
    print(f"wall time: training {rows[-1]['train_seconds']:.0f} s, evaluation {clock['eval']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
