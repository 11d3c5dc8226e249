#!/usr/bin/env python
"""Adapt a policy to the evaluation tasks and show its progress against the references.

    python test.py --use-meta-policy                 # adapt awake/pretrained_policy.th
    python test.py                                   # adapt a randomly initialised policy
    python test.py --use-meta-policy --policy awake/maml/train/policy.th --task-ids 0 2 --num-batches 20
    python test.py --use-meta-policy --random-tasks 100 --num-batches 5   # tasks drawn from the distribution
    python test.py --use-meta-policy --config configs/ares_ea_evaluation.yaml --policy awake/ares_ea/train/policy.th

The config names the task family (key ``family``, default awake); the evaluation tasks,
the references and the default --num-episodes are the family's.

Every --plot-interval batches each task policy is evaluated (deterministic action) for
--num-episodes episodes; figures go to awake/<experiment-name>/<experiment-type>/figures/.
With --random-tasks N, N tasks are drawn from the training distribution (--seed draws
them, from a stream meta-training never uses) and every evaluation point also reports the
distribution over tasks (summary.jsonl, figures/distribution_batch_NNNN.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from maml_rl import load_policy
from maml_rl.adaptation import EvaluationPoint, adapt, adaptation_sampler
from maml_rl.cli import add_run_arguments, add_scale_out_arguments, positive_int, run_main
from maml_rl.config import load_config
from maml_rl.console import progress, say
from maml_rl.distribution import distribution_figure, format_summary, random_tasks, summary_dict
from maml_rl.envs.tasks import select_tasks
from maml_rl.plotting import enable_show, show_all
from maml_rl.progress import adaptation_progress_figure
from maml_rl.runio import MetricsLog, prepare_new_run, run_folder, write_yaml
from maml_rl.tracking import check_extras, open_log
from maml_rl.training import check_policy_fits, environment_of, make_policy
from maml_rl.verification import verification_figure

DEFAULT_POLICY = Path("awake/pretrained_policy.th")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"),
                        help="adaptation config (default: configs/awake_evaluation.yaml)")
    parser.add_argument("--use-meta-policy", action="store_true", help="start from the meta-policy (else random)")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                        help=f"meta-policy file (default: {DEFAULT_POLICY})")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="evaluation tasks")
    parser.add_argument("--tasks-file", type=Path, help="evaluation-task file (default: the family's, AWAKE: "
                        "configs/evaluation_tasks.yaml, ARES-EA: configs/ares_ea_evaluation_tasks.yaml)")
    parser.add_argument("--random-tasks", type=positive_int, metavar="N",
                        help="adapt to N tasks drawn from the task distribution instead of --task-ids")
    parser.add_argument("--num-batches", type=positive_int, default=20, help="adaptation batches (default: 20)")
    parser.add_argument("--num-episodes", type=positive_int,
                        help="episodes per evaluation (default: the family's, AWAKE 200, ARES-EA 10)")
    parser.add_argument("--plot-interval", type=positive_int, default=5, help="evaluate every N batches (default: 5)")
    add_run_arguments(parser, experiment_type="test")
    add_scale_out_arguments(parser, default_workers=1, default_sampler=None,
                            sampler_default_help="vectorised for 1 worker, multiprocessing for more")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--show", action="store_true", help="also open the figures in windows")
    args = parser.parse_args(argv)
    if args.show:
        enable_show()
    if args.ray_address is not None and args.sampler != "ray":
        parser.error("--ray-address needs --sampler ray")
    check_extras(args.sampler or "", args.tensorboard)  # before any file is written
    config = load_config(args.config)
    family, env = config.task_family, environment_of(config)
    style = env.figure_style
    num_episodes = args.num_episodes or family.evaluation_episodes
    if args.random_tasks is not None:
        tasks = random_tasks(env, args.random_tasks, args.seed)
    else:
        tasks = select_tasks(family.load_evaluation_tasks(args.tasks_file), args.task_ids)
    policy = load_policy(args.policy) if args.use_meta_policy else make_policy(config, args.seed)
    check_policy_fits(policy, config, str(args.policy))
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    prepare_new_run(folder, args.overwrite)
    write_yaml(folder / "config.yaml", {"config": config.to_yaml_dict(), "seed": args.seed,
                                        "start": str(args.policy) if args.use_meta_policy else "random",
                                        "task_ids": [t.id for t in tasks], "random_tasks": args.random_tasks,
                                        "num_batches": args.num_batches})
    summary_log = MetricsLog.create(folder / "summary.jsonl") if args.random_tasks is not None else None
    start = "meta-policy" if args.use_meta_policy else "random initialisation"
    board = open_log(args.tensorboard, folder)

    def on_evaluation(point: EvaluationPoint) -> None:
        verification_figure(point.evaluations, folder / "figures" / f"verification_batch_{point.batch:04d}.png",
                            f"{start}, after {point.batch} adaptation batches", point.interactions,
                            style=style)
        adaptation_progress_figure([folder], folder / "figures" / "adaptation_progress.png",
                                   reference_labels=style.reference_labels)
        if board is not None:
            board.image("figures/verification", folder / "figures" / f"verification_batch_{point.batch:04d}.png",
                        point.batch)
            board.image("figures/adaptation_progress", folder / "figures" / "adaptation_progress.png", point.batch)
            for ev in point.evaluations:
                board.row(f"evaluation/task_{ev.task.id}", {"success": ev.policy.success_rate,
                                                           "mean_length": ev.policy.mean_length,
                                                           "length_ratio_benchmark": ev.length_ratio(),
                                                           "interactions": point.interactions}, point.batch)
        if summary_log is not None:
            summary_log.append({"batch": point.batch, "interactions": point.interactions,
                                **summary_dict(point.evaluations)})
            distribution_figure(point.evaluations, folder / "figures" / f"distribution_batch_{point.batch:04d}.png",
                                f"{start}, after {point.batch} adaptation batches", style.reference_labels)
            say(f"batch {point.batch:4d}  interactions {point.interactions:7d}\n{format_summary(point.evaluations)}")
            return
        summary = "  ".join(f"task {ev.task.id}: {ev.policy.success_rate:.0%} {ev.length_ratio():.2f}x"
                            for ev in point.evaluations)
        say(f"batch {point.batch:4d}  interactions {point.interactions:7d}  {summary}")

    def on_batch(batch: int, row: dict) -> None:
        bar.set_postfix(ret=f"{row['train_return']:.2f}")
        bar.update(1)
        if board is not None:
            board.row("adaptation", row, batch)

    sampler = adaptation_sampler(config, policy, args.seed, args.num_workers, args.sampler, args.ray_address)
    bar = progress(args.num_batches, desc="adaptation", unit="batch")
    try:
        adapt(policy, config, tasks, sampler, args.num_batches, folder, num_episodes, args.plot_interval,
              args.seed, on_evaluation=on_evaluation, progress=on_batch)
    finally:
        bar.close()
        sampler.close()
        if board is not None:
            board.close()
    print(f"results: {folder}")
    show_all()
    return 0


if __name__ == "__main__":
    run_main(main)
