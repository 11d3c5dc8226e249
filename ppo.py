#!/usr/bin/env python
"""Single-task agents on one AWAKE optics: PPO (default), TD3, SAC, DDPG (stable-baselines3),
NAF and PER-NAF (``maml_rl.baselines.naf``).

    python ppo.py --train                       # PPO, task 0, 50,000 steps -> awake/ppo/ppo_model.zip
    python ppo.py --train --task-id 3 --steps 20000 --seed 2 --output-file awake/ppo/task3.zip
    python ppo.py --train --task-id -1          # a freshly sampled task (drawn with --seed)
    python ppo.py --test --task-id 2            # how the saved agent does on another optics
    python ppo.py --train --algo td3 --steps 10000 --set learning_rate=3e-4 --set buffer_size=50000
    python ppo.py --test --algo naf --task-id 2 # -> awake/naf/naf_model.zip

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
from typing import Sequence

import numpy as np
import torch

from maml_rl.agent_settings import SettingsError, apply_overrides
from maml_rl.agents import ALGOS, LABELS, agent_controller, default_model_path, default_settings, load_agent, \
    save_agent, train_agent
from maml_rl.cli import non_negative_int, positive_int, run_main
from maml_rl.config import load_config, require_family
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, Task, TaskFileError, load_evaluation_tasks, sample_tasks, select_tasks
from maml_rl.evaluation import evaluate
from maml_rl.plotting import enable_show, show_all
from maml_rl.training import environment_of
from maml_rl.model_archive import check_output_path
from maml_rl.verification import format_table, verification_figure

DEFAULT_MODEL = default_model_path("ppo")


def resolve_task(task_id: int, tasks_file: Path, seed: int, plane: str = "horizontal") -> Task:
    """An evaluation task, or (-1) a task freshly drawn from the distribution with ``seed``
    (admissible in ``plane``, the plane the agent will steer)."""
    if task_id == -1:
        return sample_tasks(np.random.default_rng([seed, 0x990]), 1, first_id=-1, plane=plane)[0]
    if task_id < -1:
        raise TaskFileError(f"task id must be an evaluation task id or -1, got {task_id}")
    return select_tasks(load_evaluation_tasks(tasks_file), [task_id])[0]


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
                        help="environment options (env-kwargs), as for MAML")
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--num-episodes", type=positive_int, default=200, help="evaluation episodes (default: 200)")
    parser.add_argument("--overwrite", action="store_true", help="with --train: replace an existing model file")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--show", action="store_true", help="also open the figure in a window")
    args = parser.parse_args(argv)
    if args.show:
        enable_show()
    torch.set_num_threads(1)
    config = require_family(load_config(args.config), "awake", "ppo.py")
    task = resolve_task(args.task_id, args.tasks_file, args.seed, environment_of(config).plane)
    label_algo = LABELS[args.algo]
    path = args.output_file if args.output_file is not None else default_model_path(args.algo)
    if args.train:
        settings = apply_overrides(default_settings(args.algo), args.overrides, args.algo)  # before training
        check_output_path(path, args.overwrite, label_algo)
        model = train_agent(args.algo, settings, config, task, args.steps, args.seed, progress=not args.no_progress)
        save_agent(args.algo, model, settings, path, {"task": task.as_dict(), "steps": args.steps,
                                                      "trained_steps": int(model.num_timesteps),  # PPO: whole rollouts
                                                      "seed": args.seed, "env_kwargs": config.env_kwargs})
        print(f"model: {path}")
        label = f"{label_algo} trained {model.num_timesteps:,} steps on task {task.id}"
        figure = path.with_name(f"{path.stem}_train_task{task.id}.png")
    else:
        if args.overrides:
            raise SettingsError("--set applies to --train; a tested model keeps the settings it was saved with")
        model, info = load_agent(args.algo, path)
        trained_on = info["task"].get("id", "?") if isinstance(info.get("task"), dict) else "?"
        label = f"{label_algo} trained on task {trained_on}, tested on task {task.id}"
        figure = path.with_name(f"{path.stem}_test_task{task.id}.png")
    env = environment_of(config)
    result = evaluate(agent_controller(model), task, args.num_episodes, args.seed, env.dynamics, env.plane)
    print(label)
    print(format_table([result]))
    verification_figure([result], figure, label, threshold=env.dynamics.threshold)
    print(f"figure: {figure}")
    show_all()
    return 0


if __name__ == "__main__":
    run_main(main)
