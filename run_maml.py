#!/usr/bin/env python
"""Evaluate stored policies on evaluation tasks without adapting them.

    python run_maml.py                                     # awake/pretrained_policy.th, tasks 0-4
    python run_maml.py --policy awake/maml/train/policy.th --task-ids 0 3
    python run_maml.py --task-policies awake/maml/test     # the per-task policies a test.py run saved
    python run_maml.py --random-tasks 200                  # 200 tasks drawn from the task distribution

Prints, per task, success rate, mean episode length and mean return of the policy, of
the benchmark and of the limit controller on the same initial states, and writes the
verification figure. With --random-tasks N the policy is evaluated on N tasks drawn from
the training distribution (--seed draws them, from a stream meta-training never uses),
beside the nominal-inverse controller, and the distribution over tasks is summarised
(fractions of tasks at >= 95 % and 100 % success, worst task, median / p90 / max of the
length ratio to the benchmark and to the limit) and drawn as CDFs (distribution.png).
Deterministic (mean) actions unless --stochastic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from maml_rl import load_policy
from maml_rl.adaptation import policy_controller
from maml_rl.cli import add_run_arguments, positive_int, run_main
from maml_rl.config import ConfigError, load_config, require_family
from maml_rl.distribution import distribution_figure, format_summary, random_evaluation_tasks, summary_dict
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, load_evaluation_tasks, select_tasks
from maml_rl.evaluation import evaluate
from maml_rl.plotting import enable_show, show_all
from maml_rl.runio import atomic_write_text, prepare_new_run, run_folder
from maml_rl.training import environment_of
from maml_rl.verification import format_table, verification_figure

DEFAULT_POLICY = Path("awake/pretrained_policy.th")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--policy", type=Path, help=f"one policy for every task (default: {DEFAULT_POLICY})")
    source.add_argument("--task-policies", type=Path, help="a test.py run folder with policies/task_<id>.th")
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"),
                        help="environment options (env-kwargs) of the evaluation")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="evaluation tasks")
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE, help="evaluation-task file")
    parser.add_argument("--random-tasks", type=positive_int, metavar="N",
                        help="evaluate on N tasks drawn from the task distribution instead of --task-ids")
    parser.add_argument("--num-episodes", type=positive_int, default=200, help="episodes per task (default: 200)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    add_run_arguments(parser, experiment_type="run_maml")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--show", action="store_true", help="also open the figure in a window")
    args = parser.parse_args(argv)
    if args.show:
        enable_show()
    config = require_family(load_config(args.config), "awake", "run_maml.py")
    env = environment_of(config)
    if args.random_tasks is not None and args.task_policies is not None:
        raise ConfigError("--random-tasks needs one policy for every task (--policy), not --task-policies")
    if args.random_tasks is not None:
        tasks = random_evaluation_tasks(args.random_tasks, args.seed, env.plane, env.num_random_quads)
    else:
        tasks = select_tasks(load_evaluation_tasks(args.tasks_file), args.task_ids)
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    if args.task_policies is not None:
        policies = {t.id: load_policy(args.task_policies / "policies" / f"task_{t.id}.th") for t in tasks}
        source = str(args.task_policies)
    else:
        path = args.policy or DEFAULT_POLICY
        shared = load_policy(path)
        policies = {t.id: shared for t in tasks}
        source = str(path)
    prepare_new_run(folder, args.overwrite)  # refuse before the work, never replace silently
    distribution = args.random_tasks is not None
    evaluations = [evaluate(policy_controller(policies[t.id], stochastic=args.stochastic, seed=args.seed), t,
                            args.num_episodes, args.seed, env.dynamics, env.plane, nominal=distribution)
                   for t in tasks]
    print(f"policy: {source} ({'stochastic' if args.stochastic else 'deterministic'} actions, "
          f"{args.num_episodes} episodes per task, seed {args.seed})")
    if len(evaluations) <= 20:
        print(format_table(evaluations))
    if distribution:
        print(f"{len(tasks)} tasks drawn from the task distribution (seed {args.seed}):")
        print(format_summary(evaluations))
        cdf = distribution_figure(evaluations, folder / "distribution.png", f"{source} without adaptation")
        print(f"figure: {cdf}")
    figure = verification_figure(evaluations, folder / "verification.png", f"{source} without adaptation",
                                 threshold=env.dynamics.threshold)
    atomic_write_text(folder / "evaluation.json", json.dumps(
        {"policy": source, "stochastic": args.stochastic, "seed": args.seed, "num_episodes": args.num_episodes,
         "random_tasks": args.random_tasks,
         "summary": summary_dict(evaluations) if distribution else None,
         "tasks": [ev.as_dict() | {"length_ratio_benchmark": ev.length_ratio(), "factors": list(ev.task.factors)}
                   for ev in evaluations]}, indent=1))
    print(f"figure: {figure}")
    show_all()
    return 0


if __name__ == "__main__":
    run_main(main)
