"""The headline comparison: environment interactions each method needs on a new optics.

    python -m maml_rl.compare                       # all evaluation tasks, default budgets
    python -m maml_rl.compare --task-ids 0 4 --ppo-steps 20000 --maml-batches 10

For every evaluation task, the number of environment interactions before the policy
reaches the criterion: success rate >= 95 % and mean episode length <= the benchmark's,
on ``--eval-episodes`` episodes with deterministic actions (same initial states as the
benchmark), evaluated periodically, for

1. PPO from scratch on that task (stable-baselines3, evaluated every ``--ppo-eval-every`` steps),
2. MAML adaptation (the test.py procedure) from a random initialisation,
3. MAML adaptation from the meta-policy (0 interactions if it already qualifies).

Writes ``comparison.png`` (success rate and episode length relative to the benchmark against
interactions, per task, with the benchmark and the limit controller as references),
``comparison.md`` (the table) and ``comparison.json`` into
``<output-folder>/<experiment-name>/compare/``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from maml_rl import load_policy
from maml_rl.adaptation import EvaluationPoint, adapt, adaptation_sampler
from maml_rl.cli import add_run_arguments, positive_int, run_main
from maml_rl.config import Config, load_config
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, Task, load_evaluation_tasks, select_tasks
from maml_rl.evaluation import Evaluation, evaluate
from maml_rl.plotting import new_figure, save_figure
from maml_rl.ppo_baseline import ppo_controller, train_ppo
from maml_rl.runio import atomic_write_text, prepare_new_run, run_folder
from maml_rl.training import environment_of, make_policy

SUCCESS_CRITERION = 0.95
METHODS = ("ppo", "maml_random", "maml_meta")
LABELS = {"ppo": "PPO from scratch", "maml_random": "MAML adaptation from random init",
          "maml_meta": "MAML adaptation from the meta-policy"}


def meets_criterion(evaluation: Evaluation) -> bool:
    """Success rate >= 95 % and mean episode length <= the benchmark's on the same states."""
    return (evaluation.policy.success_rate >= SUCCESS_CRITERION
            and evaluation.policy.mean_length <= evaluation.benchmark.mean_length)


@dataclass
class Curve:
    """One method on one task: evaluations against the interactions spent so far."""

    interactions: list[int] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    length_ratio: list[float] = field(default_factory=list)
    reached_at: int | None = None
    budget: int = 0

    def add(self, interactions: int, evaluation: Evaluation) -> None:
        self.interactions.append(int(interactions))
        self.success.append(evaluation.policy.success_rate)
        self.length_ratio.append(evaluation.length_ratio())
        if self.reached_at is None and meets_criterion(evaluation):
            self.reached_at = int(interactions)


def run_maml(policy: torch.nn.Module, config: Config, tasks: Sequence[Task], curves: dict[int, Curve],
             batches: int, episodes: int, seed: int, folder: Path) -> None:
    """test.py adaptation of all tasks together, evaluated after every batch, until all qualify."""
    sampler = adaptation_sampler(config, policy, seed)

    def record(point: EvaluationPoint) -> None:
        for ev, own in zip(point.evaluations, point.task_interactions):
            curves[ev.task.id].add(own, ev)
            curves[ev.task.id].budget = own

    prepare_new_run(folder, overwrite=True)
    adapt(policy, config, tasks, sampler, batches, folder, episodes, 1, seed, on_evaluation=record,
          should_stop=lambda point: all(curves[t.id].reached_at is not None for t in tasks))


def run_ppo(config: Config, task: Task, curve: Curve, steps: int, every: int, episodes: int, seed: int,
            progress: bool) -> None:
    """PPO from scratch on one task, evaluated every ``every`` steps, stopped once it qualifies."""
    env = environment_of(config)

    def hook(model: object, num_timesteps: int) -> bool:
        ev = evaluate(ppo_controller(model), task, episodes, seed, env.dynamics, env.plane)
        curve.add(num_timesteps, ev)
        curve.budget = num_timesteps
        return curve.reached_at is None

    train_ppo(config, task, steps, seed, progress=progress, evaluate_every=every, hook=hook)


def comparison_figure(tasks: Sequence[Task], curves: dict[str, dict[int, Curve]],
                      references: dict[int, Evaluation], path: Path) -> Path:
    fig, axes = new_figure(2, len(tasks), size=(4.2 * len(tasks), 8))
    axes = np.asarray(axes).reshape(2, len(tasks))
    colours = {"ppo": "C3", "maml_random": "C0", "maml_meta": "C2"}
    for column, task in enumerate(tasks):
        top, bottom = axes[0, column], axes[1, column]
        for method in METHODS:
            curve = curves[method][task.id]
            if not curve.interactions:
                continue
            x = np.maximum(curve.interactions, 1)
            top.plot(x, curve.success, "-o", ms=3, color=colours[method], label=LABELS[method])
            bottom.plot(x, curve.length_ratio, "-o", ms=3, color=colours[method], label=LABELS[method])
        ref = references[task.id]
        bottom.axhline(1.0, color="k", ls="--", lw=1, label="benchmark")
        bottom.axhline(ref.limit.mean_length / ref.benchmark.mean_length, color="k", ls=":", lw=1,
                       label="limit controller")
        top.axhline(SUCCESS_CRITERION, color="grey", ls="--", lw=0.8)
        top.set_title(f"task {task.id}")
        top.set_ylim(-0.02, 1.02)
        bottom.set_yscale("log")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("environment interactions (0 shown at 1)")
        top.set_ylabel("success rate")
        bottom.set_ylabel("episode length / benchmark")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle("interactions to steer a new optics: criterion success >= 95 % and length <= benchmark")
    return save_figure(fig, path)


def comparison_table(tasks: Sequence[Task], curves: dict[str, dict[int, Curve]]) -> str:
    header = "| task | " + " | ".join(LABELS[m] for m in METHODS) + " |"
    lines = [header, "|" + "---|" * (len(METHODS) + 1)]
    for task in tasks:
        cells = []
        for method in METHODS:
            curve = curves[method][task.id]
            cells.append(f"{curve.reached_at:,}" if curve.reached_at is not None
                         else f"not reached within {curve.budget:,}")
        lines.append(f"| {task.id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"))
    parser.add_argument("--policy", type=Path, default=Path("awake/pretrained_policy.th"), help="meta-policy")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--ppo-steps", type=positive_int, default=30_000, help="PPO budget per task")
    parser.add_argument("--ppo-eval-every", type=positive_int, default=2048, help="PPO evaluation period [steps]")
    parser.add_argument("--maml-batches", type=positive_int, default=20, help="adaptation budget [batches]")
    parser.add_argument("--eval-episodes", type=positive_int, default=100, help="episodes per evaluation")
    add_run_arguments(parser, experiment_type="compare", experiment_name="comparison")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing comparison folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(args.config)
    tasks = select_tasks(load_evaluation_tasks(args.tasks_file), args.task_ids)
    meta_policy = load_policy(args.policy)
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    prepare_new_run(folder, args.overwrite)
    env = environment_of(config)
    references = {t.id: evaluate(None, t, args.eval_episodes, args.seed, env.dynamics, env.plane) for t in tasks}
    curves = {m: {t.id: Curve() for t in tasks} for m in METHODS}
    print("MAML adaptation from the meta-policy ...")
    run_maml(meta_policy, config, tasks, curves["maml_meta"], args.maml_batches, args.eval_episodes, args.seed,
             folder / "maml_meta")
    print("MAML adaptation from a random initialisation ...")
    run_maml(make_policy(config, args.seed), config, tasks, curves["maml_random"], args.maml_batches,
             args.eval_episodes, args.seed, folder / "maml_random")
    for task in tasks:
        print(f"PPO from scratch on task {task.id} ...")
        run_ppo(config, task, curves["ppo"][task.id], args.ppo_steps, args.ppo_eval_every, args.eval_episodes,
                args.seed, not args.no_progress)
    table = comparison_table(tasks, curves)
    figure = comparison_figure(tasks, curves, references, folder / "comparison.png")
    atomic_write_text(folder / "comparison.md", table + "\n")
    atomic_write_text(folder / "comparison.json", json.dumps(
        {"criterion": {"success_rate": SUCCESS_CRITERION, "length": "<= benchmark"},
         "budgets": {"ppo_steps": args.ppo_steps, "maml_batches": args.maml_batches,
                     "eval_episodes": args.eval_episodes},
         "curves": {m: {str(t): asdict(c) for t, c in curves[m].items()} for m in METHODS}}, indent=1))
    print("environment interactions until success >= 95 % and episode length <= benchmark:")
    print(table)
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    run_main(main)
