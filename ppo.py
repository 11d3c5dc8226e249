#!/usr/bin/env python
"""Single-task agents on one task (an AWAKE optics by default): PPO (default), TD3, SAC, DDPG
(stable-baselines3), NAF and PER-NAF (``maml_rl.baselines.naf``).

    python ppo.py --train                       # PPO, task 0, 50,000 steps -> awake/ppo/ppo_model.zip
    python ppo.py --train --task-id 3 --steps 20000 --seed 2 --output-file awake/ppo/task3.zip
    python ppo.py --train --task-id -1          # a freshly sampled task (drawn with --seed)
    python ppo.py --test --task-id 2            # how the saved agent does on another optics
    python ppo.py --train --algo td3 --steps 10000 --set learning_rate=3e-4 --set buffer_size=50000
    python ppo.py --test --algo naf --task-id 2 # -> awake/naf/naf_model.zip
    python ppo.py --train --config configs/ares_ea_evaluation.yaml --output-file awake/ppo/ares_ea_task0.zip

``--config`` names the task family (its ``family`` key; AWAKE by default) and the
environment options; tasks come from the family's evaluation-task file (``--tasks-file``).

Both write the verification figure next to the model and print the success-rate /
episode-length table against the benchmark and the limit controller. ``--train`` refuses to
replace an existing model file unless ``--overwrite`` is given. The model file holds the
weights and a JSON of the settings (see ``maml_rl.model_archive``); it is read without
unpickling, so stable-baselines3 archives written by ``model.save`` are refused. Every
hyper-parameter has a default in its algorithm's dataclass (``maml_rl.agents``); ``--set
key=value`` (repeatable) overrides one with ``--train``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from maml_rl.agent_settings import SettingsError, apply_overrides
from maml_rl.agents import ALGOS, LABELS, agent_controller, default_model_path, default_settings, load_agent, \
    save_agent, train_agent
from maml_rl.cli import non_negative_int, positive_int, run_main
from maml_rl.config import Config, load_config
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, TaskFileError, select_tasks
from maml_rl.plotting import enable_show, show_all
from maml_rl.training import environment_of
from maml_rl.model_archive import check_output_path
from maml_rl.ppo_baseline import ModelFileError
from maml_rl.distribution import format_summary, random_tasks
from maml_rl.tracking import check_extras, log_evaluation
from maml_rl.verification import format_overall, format_table, verification_figure

DEFAULT_MODEL = default_model_path("ppo")


def resolve_task(task_id: int, tasks_file: Path | None, seed: int, config: Config | None = None) -> Any:
    """An evaluation task of the config's family (from ``tasks_file``; ``None``: the family's
    file), or (-1) a task freshly drawn from the family's distribution with ``seed`` (AWAKE:
    admissible in the plane the agent will steer)."""
    config = config if config is not None else load_config(Path("configs/awake_evaluation.yaml"))
    if task_id == -1:
        return environment_of(config).sample_tasks(np.random.default_rng([seed, 0x990]), 1, first_id=-1)[0]
    if task_id < -1:
        raise TaskFileError(f"task id must be an evaluation task id or -1, got {task_id}")
    return select_tasks(config.task_family.load_evaluation_tasks(tasks_file), [task_id])[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="train on --task-id, then evaluate there")
    mode.add_argument("--test", action="store_true", help="evaluate the saved model on --task-id")
    parser.add_argument("--algo", choices=ALGOS, default="ppo", help="agent (default: ppo)")
    parser.add_argument("--task-id", type=int, default=0, help="evaluation task id, or -1 for a fresh task")
    parser.add_argument("--steps", type=positive_int, default=50_000, help="training steps (default: 50,000)")
    parser.add_argument("--seed", type=non_negative_int, default=1)
    parser.add_argument("--output-file", type=Path, default=None,
                        help=f"model file (default: awake/<algo>/<algo>_model.zip, for PPO {DEFAULT_MODEL})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="with --train: override a hyper-parameter of --algo (repeatable)")
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"),
                        help="task family and environment options (env-kwargs), as for MAML")
    parser.add_argument("--tasks-file", type=Path, default=None,
                        help=f"evaluation tasks (default: the family's; AWAKE: {DEFAULT_TASK_FILE.name})")
    parser.add_argument("--num-episodes", type=positive_int, default=None,
                        help="evaluation episodes (default: the family's, AWAKE 200, ARES-EA 10)")
    parser.add_argument("--random-tasks", type=positive_int, metavar="N",
                        help="with --test: evaluate on N tasks drawn from the distribution with --seed (the tasks "
                             "of test.py --random-tasks N) instead of --task-id")
    parser.add_argument("--overwrite", action="store_true", help="with --train: replace an existing model file")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--show", action="store_true", help="also open the figure in a window")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the evaluation (per task and controller) and its figure as TensorBoard "
                             "events to <model file stem>_tensorboard/ (extra 'tensorboard')")
    args = parser.parse_args(argv)
    if args.show:
        enable_show()
    torch.set_num_threads(1)
    if args.random_tasks is not None and args.train:
        parser.error("--random-tasks applies to --test (an agent trains on one task)")
    check_extras("", args.tensorboard)
    config = load_config(args.config)
    env = environment_of(config)
    tasks = (random_tasks(env, args.random_tasks, args.seed) if args.random_tasks is not None
             else [resolve_task(args.task_id, args.tasks_file, args.seed, config)])
    task = tasks[0]
    episodes = args.num_episodes if args.num_episodes is not None else config.task_family.evaluation_episodes
    label_algo = LABELS[args.algo]
    path = args.output_file if args.output_file is not None else default_model_path(args.algo)
    if args.train:
        settings = apply_overrides(default_settings(args.algo), args.overrides, args.algo)  # before training
        check_output_path(path, args.overwrite, label_algo)
        model = train_agent(args.algo, settings, config, task, args.steps, args.seed, progress=not args.no_progress)
        save_agent(args.algo, model, settings, path, {"task": task.as_dict(), "steps": args.steps,
                                                      "trained_steps": int(model.num_timesteps),  # PPO: whole rollouts
                                                      "seed": args.seed, "family": config.family,
                                                      "env_kwargs": config.env_kwargs})
        print(f"model: {path}")
        label = f"{label_algo} trained {model.num_timesteps:,} steps on task {task.id}"
        figure = path.with_name(f"{path.stem}_train_task{task.id}.png")
    else:
        if args.overrides:
            raise SettingsError("--set applies to --train; a tested model keeps the settings it was saved with")
        model, info = load_agent(args.algo, path)
        trained_family = info.get("family", "awake")
        if trained_family != config.family:
            raise ModelFileError(f"{path}: the agent was trained on the {trained_family} family, --config "
                                 f"{args.config} is {config.family}")
        trained_on = info["task"].get("id", "?") if isinstance(info.get("task"), dict) else "?"
        tested = f"{len(tasks)} random tasks" if args.random_tasks is not None else f"task {task.id}"
        label = f"{label_algo} trained on task {trained_on}, tested on {tested}"
        figure = path.with_name(f"{path.stem}_test_{'random' if args.random_tasks else 'task'}"
                                f"{len(tasks) if args.random_tasks else task.id}.png")
    labels = env.figure_style.reference_labels
    results = [env.evaluate(agent_controller(model), t, episodes, args.seed) for t in tasks]
    print(label)
    print(format_table(results, labels))
    if len(results) > 1:
        print(format_summary(results))
    print(format_overall(results, labels))
    verification_figure(results, figure, label, style=env.figure_style)
    print(f"figure: {figure}")
    if args.tensorboard:
        board_folder = path.with_name(f"{path.stem}_tensorboard")
        log_evaluation(board_folder, "train" if args.train else "test", results, figure,
                       int(model.num_timesteps) if args.train else 0)
        print(f"tensorboard: {board_folder}")
    show_all()
    return 0


if __name__ == "__main__":
    run_main(main)
