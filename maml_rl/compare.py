"""The headline comparison: environment interactions each method needs on a new optics.

    python -m maml_rl.compare                       # all evaluation tasks, seeds 1 2 3
    python -m maml_rl.compare --task-ids 0 4 --ppo-steps 20000 --maml-batches 10 --seeds 1 2 3 4 5

For every evaluation task and seed, the number of environment interactions before the
policy meets the criterion: success rate >= 95 % and mean episode length <= the
benchmark's on the same ``--eval-episodes`` initial states, deterministic actions, for

1. PPO from scratch on that task (stable-baselines3), evaluated after the first update at or
   past every ``--ppo-eval-every`` steps (and before training and after the last update),
   with a policy updated with exactly the steps it is labelled with,
2. MAML adaptation (the test.py procedure) from a random initialisation,
3. MAML adaptation from the meta-policy (0 interactions if it already qualifies),

each evaluated after every adaptation batch. Every evaluation point draws fresh initial
states (keyed by seed, point and purpose; the benchmark runs on the same states), and a
pass counts as "reached" only if the same policy also passes on a second, independent set
of fresh states. Evaluation episodes are not counted as interactions. Every method runs its
whole budget, so that each curve has the same points for every seed. The table reports the
median over ``--seeds`` with the range and the number of seeds that reached the criterion
(see ``maml_rl.compare_report``), next to what meta-training the meta-policy cost, read from
its file's metadata (``meta_training_interactions``, ``meta_training_wall_time``).

Writes ``comparison.png`` (median and min-max over seeds of the success rate and the episode
length relative to the benchmark against interactions, per task), ``comparison.md`` (the
table and the meta-training cost) and ``comparison.json`` (every seed's curve, the
aggregated curves and the summary) into ``<output-folder>/<experiment-name>/compare/``, and
each adaptation run into ``seed_<seed>/maml_meta`` and ``seed_<seed>/maml_random`` there.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from maml_rl import load_policy
from maml_rl.adaptation import EvaluationPoint, adapt, adaptation_sampler, policy_controller
from maml_rl.checkpoint import read_metadata
from maml_rl.cli import add_run_arguments, non_negative_int, positive_int, run_main
from maml_rl.compare_report import (METHODS, SUCCESS_CRITERION, Curve, aggregate, comparison_figure,
                                    comparison_table, summary)
from maml_rl.config import Config, load_config, require_family
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, Task, load_evaluation_tasks, select_tasks
from maml_rl.families.awake.environment import AwakeEnvironment
from maml_rl.evaluation import Controller, Evaluation, evaluate, reference_stats
from maml_rl.policies import NormalMLPPolicy
from maml_rl.ppo_baseline import PPOSettings, ppo_controller, train_ppo
from maml_rl.runio import atomic_write_text, prepare_new_run, run_folder
from maml_rl.training import environment_of, make_policy
from maml_rl.utils.torch_utils import task_slice

PURPOSES = {"check": 0, "confirm": 1}
_STATES_KEY = 0xE7A1  # separates evaluation-state seeds from every other use of the seed


def evaluation_seed(seed: int, index: int, purpose: str) -> int:
    """Seed of the evaluation states at evaluation point ``index`` of a run with ``seed``.

    ``purpose`` is "check" (the states the criterion is tested on) or "confirm" (the second,
    independent set a pass must be confirmed on). Distinct arguments give independent states.
    """
    return int(np.random.SeedSequence([seed, index, PURPOSES[purpose], _STATES_KEY]).generate_state(1)[0])


def against_benchmark(controller: Controller, task: Task, episodes: int, seed: int,
                      env: AwakeEnvironment) -> Evaluation:
    """The controller and the benchmark on the same ``episodes`` initial states (drawn with ``seed``)."""
    evaluation = evaluate(controller, task, episodes, seed, env.dynamics, env.plane, references=False)
    evaluation.benchmark = reference_stats("benchmark", task, episodes, seed, env.dynamics, env.plane)
    return evaluation


def run_maml(policy: NormalMLPPolicy, config: Config, tasks: Sequence[Task], curves: dict[int, Curve],
             batches: int, episodes: int, seed: int, folder: Path) -> None:
    """test.py adaptation of all tasks together for ``batches`` batches, evaluated after every batch."""
    env = environment_of(config)
    sampler = adaptation_sampler(config, policy, seed)

    def record(point: EvaluationPoint) -> None:
        for k, (check, own) in enumerate(zip(point.evaluations, point.task_interactions)):
            controller = policy_controller(policy, task_slice(point.params, k))
            confirm = functools.partial(against_benchmark, controller, check.task, episodes,
                                        evaluation_seed(seed, point.batch, "confirm"), env)
            curves[check.task.id].add(point.batch, own, check, confirm)

    prepare_new_run(folder, overwrite=True)
    try:
        adapt(policy, config, tasks, sampler, batches, folder, episodes, 1, seed, on_evaluation=record,
              evaluation_seed=lambda batch: evaluation_seed(seed, batch, "check"))
    finally:
        sampler.close()


def run_ppo(config: Config, task: Task, curve: Curve, steps: int, every: int, episodes: int, seed: int,
            settings: PPOSettings, progress: bool) -> None:
    """PPO from scratch on one task for ``steps`` steps, evaluated after updates."""
    env = environment_of(config)
    counter = itertools.count()

    def hook(model: Any, trained_steps: int) -> None:
        index = next(counter)
        controller = ppo_controller(model)
        check = against_benchmark(controller, task, episodes, evaluation_seed(seed, index, "check"), env)
        curve.add(index, trained_steps, check, functools.partial(
            against_benchmark, controller, task, episodes, evaluation_seed(seed, index, "confirm"), env))

    train_ppo(config, task, steps, seed, progress=progress, evaluate_every=every, hook=hook, settings=settings)


def meta_training_cost(path: Path) -> dict[str, Any] | None:
    """Interactions and wall time of the meta-training, from the policy file's metadata, or None."""
    metadata = read_metadata(path)
    interactions, wall = metadata.get("meta_training_interactions"), metadata.get("meta_training_wall_time")
    if (isinstance(interactions, int) and not isinstance(interactions, bool) and interactions >= 0
            and isinstance(wall, (int, float)) and not isinstance(wall, bool) and np.isfinite(wall) and wall >= 0):
        return {"interactions": interactions, "wall_time": float(wall)}
    return None


def cost_line(path: Path, cost: dict[str, Any] | None) -> str:
    if cost is None:
        return f"meta-training cost: not recorded in {path}"
    return (f"meta-training cost: {cost['interactions']:,} interactions and {cost['wall_time']:,.0f} s of wall "
            f"time (once, for all tasks; from {path})")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"))
    parser.add_argument("--policy", type=Path, default=Path("awake/pretrained_policy.th"), help="meta-policy")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=None,
                        help="one run of every method per seed (default: 1 2 3; --seed S means --seeds S)")
    parser.add_argument("--ppo-steps", type=positive_int, default=30_000,
                        help="PPO budget per task (rounded up to whole rollouts)")
    parser.add_argument("--ppo-eval-every", type=positive_int, default=2048, help="PPO evaluation period [steps]")
    parser.add_argument("--ppo-n-steps", type=positive_int, default=2048,
                        help="PPO rollout length, i.e. steps between updates (default: SB3's 2048)")
    parser.add_argument("--maml-batches", type=positive_int, default=20, help="adaptation budget [batches]")
    parser.add_argument("--eval-episodes", type=positive_int, default=100, help="episodes per evaluation")
    add_run_arguments(parser, experiment_type="compare", experiment_name="comparison")
    parser.set_defaults(seed=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing comparison folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        parser.error("give either --seed or --seeds")
    if args.seeds is None:  # --seed S (from the shared run options) means --seeds S
        args.seeds = [1, 2, 3] if args.seed is None else [args.seed]
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    config = require_family(load_config(args.config), "awake", "python -m maml_rl.compare")
    tasks = select_tasks(load_evaluation_tasks(args.tasks_file), args.task_ids)
    load_policy(args.policy)  # a bad file fails here, before any work; each seed loads its own copy
    cost = meta_training_cost(args.policy)
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    prepare_new_run(folder, args.overwrite)
    settings = PPOSettings(n_steps=args.ppo_n_steps, batch_size=min(64, args.ppo_n_steps))
    runs = {m: {t.id: {s: Curve() for s in args.seeds} for t in tasks} for m in METHODS}
    for seed in args.seeds:
        print(f"seed {seed}: MAML adaptation from the meta-policy ...")
        run_maml(load_policy(args.policy), config, tasks, {t.id: runs["maml_meta"][t.id][seed] for t in tasks},
                 args.maml_batches, args.eval_episodes, seed, folder / f"seed_{seed}" / "maml_meta")
        print(f"seed {seed}: MAML adaptation from a random initialisation ...")
        run_maml(make_policy(config, seed), config, tasks, {t.id: runs["maml_random"][t.id][seed] for t in tasks},
                 args.maml_batches, args.eval_episodes, seed, folder / f"seed_{seed}" / "maml_random")
        for task in tasks:
            print(f"seed {seed}: PPO from scratch on task {task.id} ...")
            run_ppo(config, task, runs["ppo"][task.id][seed], args.ppo_steps, args.ppo_eval_every,
                    args.eval_episodes, seed, settings, not args.no_progress)
    env = environment_of(config)
    references = {t.id: evaluate(None, t, args.eval_episodes, evaluation_seed(args.seeds[0], 0, "check"),
                                 env.dynamics, env.plane) for t in tasks}
    limit_ratio = {k: ev.limit.mean_length / ev.benchmark.mean_length for k, ev in references.items()}
    curves = {m: {t.id: aggregate(list(runs[m][t.id].values())) for t in tasks} for m in METHODS}
    table = comparison_table(tasks, runs)
    seeds_text = " ".join(map(str, args.seeds))
    note = (f"interactions per task until success >= 95 % and episode length <= benchmark (confirmed on fresh "
            f"states): median (min to max) over seeds {seeds_text}, seeds reached / seeds; \"> N\": not reached "
            f"within N")
    cost_text = cost_line(args.policy, cost)
    figure = comparison_figure(tasks, curves, limit_ratio, args.seeds, folder / "comparison.png")
    wall_time = time.perf_counter() - start
    report = f"{note}\n\n{table}\n\n{cost_text}\n"
    atomic_write_text(folder / "comparison.md", report)
    atomic_write_text(folder / "comparison.json", json.dumps(
        {"criterion": {"success_rate": SUCCESS_CRITERION, "length": "<= benchmark",
                       "states": "fresh at every evaluation point, pass confirmed on a second fresh set"},
         "seeds": args.seeds,
         "budgets": {"ppo_steps": args.ppo_steps, "ppo_eval_every": args.ppo_eval_every,
                     "ppo_settings": settings.as_dict(), "maml_batches": args.maml_batches,
                     "eval_episodes": args.eval_episodes},
         "meta_policy": str(args.policy), "meta_training_cost": cost, "wall_time": wall_time,
         "summary": {m: {str(t): summary(list(runs[m][t].values())) for t in runs[m]} for m in METHODS},
         "curves": {m: {str(t): c for t, c in curves[m].items()} for m in METHODS},
         "runs": {m: {str(t): {str(s): asdict(c) for s, c in runs[m][t].items()} for t in runs[m]}
                  for m in METHODS}}, indent=1))
    print(report, end="")
    print(f"figure: {figure}")
    print(f"wall time: {wall_time:.0f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
