"""The headline comparison: environment interactions each method needs on a new optics.

    python -m maml_rl.compare                       # PPO and both MAML methods, all evaluation tasks, seeds 1 2 3
    python -m maml_rl.compare --task-ids 0 4 --ppo-steps 20000 --maml-batches 10 --seeds 1 2 3 4 5
    python -m maml_rl.compare --methods td3 sac naf rm-id gp-mpc dyna meta-policy --budget td3=5000 \\
        --eval-every td3=250 --noise-sigma 0.01

For every evaluation task and seed, the number of environment interactions (and episodes)
before the policy meets the criterion: success rate >= 95 % and mean episode length <= the
benchmark's on the same ``--eval-episodes`` initial states, deterministic actions. Methods
(``--methods``, any subset of ``compare_report.REGISTRY``; default ``ppo maml-random
meta-policy``):

1. single-task agents from scratch on that task, through ``maml_rl.agents`` with the
   settings ``ppo.py`` uses by default: ``ppo``, ``td3``, ``sac``, ``ddpg`` (stable-baselines3),
   ``naf``, ``per-naf``; evaluated before training, after the updates of the first step at or
   past every ``--eval-every`` steps (PPO: after the first update, i.e. whole rollouts) and
   after the last update, with a policy updated with exactly the steps it is labelled with;
2. MAML adaptation (the test.py procedure) from a random initialisation (``maml-random``) or
   from the meta-policy (``meta-policy``: 0 interactions if it already qualifies), evaluated
   after every adaptation batch;
3. model-based control (``maml_rl.baselines.model_based``): response-matrix identification
   (``rm-id``, probes + recursive least squares, the inverse or ``--rm-controller limit``
   law on the estimate), ``gp-mpc`` and ``dyna``. Every real step counts: probes, the
   random starting actions of GP-MPC, Dyna's real steps; Dyna's imagined steps do not.

``--noise-sigma`` sets the observation noise of the environment for training, probing and
evaluation (the benchmark reads the same noisy readings). Every evaluation point draws fresh
initial states (keyed by seed, point and purpose; the benchmark runs on the same states), and
a pass counts as "reached" only if the same policy also passes on a second, independent set
of fresh states. Evaluation episodes are not counted as interactions. Every method runs its
whole budget, so that each curve has the same points for every seed. The tables report the
median over ``--seeds`` with the range and the number of seeds that reached the criterion
(see ``maml_rl.compare_report``), next to what meta-training the meta-policy cost, read from
its file's metadata (``meta_training_interactions``, ``meta_training_wall_time``).

Writes ``comparison.png`` (median and min-max over seeds of the success rate and the episode
length relative to the benchmark against interactions, per task), ``learning_curves.png``
(mean return and episode length against interactions, with the benchmark's and the limit
controller's), ``comparison.md`` (the interactions table, the meta-training cost, and the
per-method table of interactions and episodes) and ``comparison.json`` (every seed's curve,
the aggregated curves, the summaries and the wall time of every run) into
``<output-folder>/<experiment-name>/compare/``, and each adaptation run into
``seed_<seed>/maml_meta`` and ``seed_<seed>/maml_random`` there.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import time
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from maml_rl import load_policy
from maml_rl.adaptation import EvaluationPoint, adapt, adaptation_sampler, policy_controller
from maml_rl.checkpoint import read_metadata
from maml_rl.cli import add_run_arguments, non_negative_int, positive_int, run_main
from maml_rl.agent_settings import SettingsError, settings_to_dict
from maml_rl.agents import agent_controller, default_settings, train_agent
from maml_rl.baselines.counting import EpisodeCounter
from maml_rl.compare_report import (DEFAULT_METHODS, REGISTRY, SUCCESS_CRITERION, Curve, aggregate,
                                    comparison_figure, comparison_table, learning_curve_figure, method_table,
                                    summary)
from maml_rl.config import Config, load_config, require_family
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, Task, load_evaluation_tasks, select_tasks
from maml_rl.families.awake.environment import AwakeEnvironment
from maml_rl.evaluation import Controller, Evaluation, evaluate, reference_stats
from maml_rl.policies import NormalMLPPolicy
from maml_rl.ppo_baseline import PPOSettings
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


def recorder(curve: Curve, task: Task, episodes: int, seed: int, env: AwakeEnvironment,
             controller: Callable[[Any], Controller], counter: EpisodeCounter) -> Callable[[Any, int], bool]:
    """A hook ``(model, interactions) -> True`` that evaluates ``controller(model)`` on fresh
    states against the benchmark and records the point (with the episodes ``counter`` has
    seen) in ``curve``; a pass is confirmed on a second fresh set."""
    index = itertools.count()

    def hook(model: Any, interactions: int) -> bool:
        point, policy = next(index), controller(model)
        check = against_benchmark(policy, task, episodes, evaluation_seed(seed, point, "check"), env)
        curve.add(point, interactions, check, functools.partial(
            against_benchmark, policy, task, episodes, evaluation_seed(seed, point, "confirm"), env),
            episodes=counter.episodes)
        return True

    return hook


def run_maml(policy: NormalMLPPolicy, config: Config, tasks: Sequence[Task], curves: dict[int, Curve],
             batches: int, episodes: int, seed: int, folder: Path) -> None:
    """test.py adaptation of all tasks together for ``batches`` batches, evaluated after every batch.

    A batch samples ``fast-batch-size`` episodes per task ``num-steps`` times.
    """
    env = environment_of(config)
    sampler = adaptation_sampler(config, policy, seed)
    episodes_per_batch = config.fast_batch_size * config.num_steps

    def record(point: EvaluationPoint) -> None:
        for k, (check, own) in enumerate(zip(point.evaluations, point.task_interactions)):
            controller = policy_controller(policy, task_slice(point.params, k))
            confirm = functools.partial(against_benchmark, controller, check.task, episodes,
                                        evaluation_seed(seed, point.batch, "confirm"), env)
            curves[check.task.id].add(point.batch, own, check, confirm, episodes=point.batch * episodes_per_batch)

    prepare_new_run(folder, overwrite=True)
    try:
        adapt(policy, config, tasks, sampler, batches, folder, episodes, 1, seed, on_evaluation=record,
              evaluation_seed=lambda batch: evaluation_seed(seed, batch, "check"))
    finally:
        sampler.close()


def run_agent(algo: str, config: Config, task: Task, curve: Curve, steps: int, every: int, episodes: int,
              seed: int, settings: Any, progress: bool) -> None:
    """A single-task agent of ``maml_rl.agents`` from scratch on one task for ``steps`` steps,
    evaluated before training, after the updates at every ``every`` steps and at the end."""
    counter = EpisodeCounter(config.task_family.make_env(task, config.env_kwargs))
    hook = recorder(curve, task, episodes, seed, environment_of(config), agent_controller, counter)
    train_agent(algo, settings, config, task, steps, seed, progress=progress, evaluate_every=every, hook=hook,
                env=counter)


MODEL_BASED_CLASSES = {"rm-id": "ResponseMatrixIdentification", "gp-mpc": "GPMPC", "dyna": "Dyna"}


def run_model_based(name: str, config: Config, task: Task, curve: Curve, steps: int, every: int, episodes: int,
                    seed: int, settings: dict[str, Any]) -> None:
    """A model-based method (``maml_rl.baselines.model_based``) on one task for ``steps`` real
    interactions (probes and random actions included), evaluated before the first and after
    every ``every`` interactions and at the end."""
    from maml_rl.baselines import model_based
    from maml_rl.baselines.model_based.base import controller_of

    torch.manual_seed(seed)
    counter = EpisodeCounter(config.task_family.make_env(task, config.env_kwargs))
    method = getattr(model_based, MODEL_BASED_CLASSES[name])(counter, seed=seed, **settings)
    hook = recorder(curve, task, episodes, seed, environment_of(config), controller_of, counter)
    hook(method, 0)
    method.learn(steps, callback=hook, eval_every=every)
    if steps % every:
        hook(method, method.num_timesteps)


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


def _method_values(text: str) -> tuple[str, int]:
    """``NAME=N`` of ``--budget`` / ``--eval-every``."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected METHOD=N, got {text!r}")
    return name.strip(), positive_int(value)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/awake_evaluation.yaml"))
    parser.add_argument("--policy", type=Path, default=Path("awake/pretrained_policy.th"), help="meta-policy")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                        help=f"any of {', '.join(REGISTRY)} (default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=None,
                        help="one run of every method per seed (default: 1 2 3; --seed S means --seeds S)")
    parser.add_argument("--noise-sigma", type=float, default=None,
                        help="observation noise of the environment (readings + N(0, sigma^2)), for training, "
                             "probing and evaluation alike (default: the config's env-kwargs, 0 if absent)")
    defaults = ", ".join(f"{m}={i.budget}" for m, i in REGISTRY.items())
    parser.add_argument("--budget", type=_method_values, nargs="+", default=[], metavar="METHOD=N",
                        help=f"budget per method: interactions, MAML: adaptation batches (default: {defaults})")
    periods = ", ".join(f"{m}={i.eval_every}" for m, i in REGISTRY.items())
    parser.add_argument("--eval-every", type=_method_values, nargs="+", default=[], metavar="METHOD=N",
                        help=f"evaluation period per method, same units (default: {periods}; PPO: after the "
                             "first update at or past every multiple)")
    parser.add_argument("--ppo-steps", type=positive_int, default=None,
                        help="PPO budget per task, rounded up to whole rollouts (= --budget ppo=N)")
    parser.add_argument("--ppo-eval-every", type=positive_int, default=None,
                        help="PPO evaluation period [steps] (= --eval-every ppo=N)")
    parser.add_argument("--ppo-n-steps", type=positive_int, default=2048,
                        help="PPO rollout length, i.e. steps between updates (default: SB3's 2048)")
    parser.add_argument("--maml-batches", type=positive_int, default=None,
                        help="adaptation budget [batches] of both MAML methods (= --budget maml-random=N "
                             "meta-policy=N)")
    parser.add_argument("--rm-controller", choices=("inverse", "limit"), default="inverse",
                        help="law of rm-id on its estimate: the benchmark's inverse (default) or the limit "
                             "controller's")
    parser.add_argument("--eval-episodes", type=positive_int, default=100, help="episodes per evaluation")
    add_run_arguments(parser, experiment_type="compare", experiment_name="comparison")
    parser.set_defaults(seed=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing comparison folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in REGISTRY]
    if unknown:  # one "error:" line through run_main, as for every other user mistake
        raise SettingsError(f"--methods: unknown method {unknown[0]!r} (one of {', '.join(REGISTRY)})")
    if len(set(args.methods)) != len(args.methods):
        parser.error(f"--methods must be distinct, got {args.methods}")
    if args.noise_sigma is not None and not (np.isfinite(args.noise_sigma) and args.noise_sigma >= 0):
        parser.error(f"--noise-sigma must be a finite number >= 0, got {args.noise_sigma}")
    args.budgets = {m: info.budget for m, info in REGISTRY.items()}
    args.periods = {m: info.eval_every for m, info in REGISTRY.items()}
    legacy_budgets = {"ppo": args.ppo_steps, "maml-random": args.maml_batches, "meta-policy": args.maml_batches}
    for option, table, legacy in (("--budget", args.budgets, legacy_budgets),
                                  ("--eval-every", args.periods, {"ppo": args.ppo_eval_every})):
        table.update({m: v for m, v in legacy.items() if v is not None})
        given = getattr(args, option[2:].replace("-", "_"))
        for name, value in given:
            if name not in REGISTRY:
                raise SettingsError(f"{option}: unknown method {name!r} (one of {', '.join(REGISTRY)})")
            table[name] = value
    if args.seed is not None and args.seeds is not None:
        parser.error("give either --seed or --seeds")
    if args.seeds is None:  # --seed S (from the shared run options) means --seeds S
        args.seeds = [1, 2, 3] if args.seed is None else [args.seed]
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    return args


def method_settings(name: str, args: argparse.Namespace) -> Any:
    """Hyper-parameters of a method: ``maml_rl.agents``' defaults (PPO with ``--ppo-n-steps``),
    the model-based classes' defaults (rm-id with ``--rm-controller``)."""
    if name == "ppo":
        return PPOSettings(n_steps=args.ppo_n_steps, batch_size=min(64, args.ppo_n_steps))
    if REGISTRY[name].family == "agent":
        return default_settings(name)
    return {"controller": args.rm_controller} if name == "rm-id" else {}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    config = require_family(load_config(args.config), "awake", "python -m maml_rl.compare")
    if args.noise_sigma is not None:
        config = replace(config, env_kwargs={**config.env_kwargs, "noise_sigma": args.noise_sigma})
    noise_sigma = float(config.env_kwargs.get("noise_sigma", 0.0))
    tasks = select_tasks(load_evaluation_tasks(args.tasks_file), args.task_ids)
    # registry order; MAML first (all tasks at once), as the comparison always ran
    names = sorted(args.methods, key=lambda m: (REGISTRY[m].family != "maml", m != "meta-policy",
                                                list(REGISTRY).index(m)))
    methods = [REGISTRY[m].key for m in args.methods]
    if "meta-policy" in args.methods:
        load_policy(args.policy)  # a bad file fails here, before any work; each seed loads its own copy
    cost = meta_training_cost(args.policy) if "meta-policy" in args.methods else None
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    prepare_new_run(folder, args.overwrite)
    settings = {m: method_settings(m, args) for m in args.methods}
    runs = {REGISTRY[m].key: {t.id: {s: Curve() for s in args.seeds} for t in tasks} for m in args.methods}
    progress = not args.no_progress
    timings: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}  # wall time of every run, evaluation included
    for seed in args.seeds:
        for name in names:
            info, budget, every = REGISTRY[name], args.budgets[name], args.periods[name]
            if info.family == "maml":
                print(f"seed {seed}: {info.label} ...", flush=True)
                begin = time.perf_counter()
                policy = load_policy(args.policy) if name == "meta-policy" else make_policy(config, seed)
                run_maml(policy, config, tasks, {t.id: runs[info.key][t.id][seed] for t in tasks}, budget,
                         args.eval_episodes, seed, folder / f"seed_{seed}" / info.key)
                timings[info.key].append({"seed": seed, "tasks": [t.id for t in tasks],
                                          "seconds": time.perf_counter() - begin})
                print(f"  {timings[info.key][-1]['seconds']:.0f} s", flush=True)
                continue
            for task in tasks:
                print(f"seed {seed}: {info.label} on task {task.id} ...", flush=True)
                begin = time.perf_counter()
                curve = runs[info.key][task.id][seed]
                if info.family == "agent":
                    run_agent(name, config, task, curve, budget, every, args.eval_episodes, seed, settings[name],
                              progress)
                else:
                    run_model_based(name, config, task, curve, budget, every, args.eval_episodes, seed,
                                    settings[name])
                timings[info.key].append({"seed": seed, "tasks": [task.id], "seconds": time.perf_counter() - begin})
                print(f"  {timings[info.key][-1]['seconds']:.0f} s", flush=True)
    env = environment_of(config)
    references = {t.id: evaluate(None, t, args.eval_episodes, evaluation_seed(args.seeds[0], 0, "check"),
                                 env.dynamics, env.plane) for t in tasks}
    limit_ratio = {k: ev.limit.mean_length / ev.benchmark.mean_length for k, ev in references.items()}
    curves = {m: {t.id: aggregate(list(runs[m][t.id].values())) for t in tasks} for m in methods}
    seeds_text = " ".join(map(str, args.seeds))
    noise_text = "" if noise_sigma == 0 else f", observation noise sigma = {noise_sigma:g}"
    note = (f"interactions per task until success >= 95 % and episode length <= benchmark (confirmed on fresh "
            f"states): median (min to max) over seeds {seeds_text}, seeds reached / seeds; \"> N\": not reached "
            f"within N{noise_text}")
    per_method = (f"interactions and episodes (begun by the method; MAML: sampled) until the criterion, per "
                  f"method{noise_text}:\n\n{method_table(tasks, runs, methods)}")
    figure = comparison_figure(tasks, curves, limit_ratio, args.seeds, folder / "comparison.png", methods)
    learning = learning_curve_figure(tasks, curves, references, args.seeds, folder / "learning_curves.png", methods,
                                     noise_sigma)
    wall_time = time.perf_counter() - start
    report = f"{note}\n\n{comparison_table(tasks, runs, methods)}\n\n"
    if "meta-policy" in args.methods:
        report += f"{cost_line(args.policy, cost)}\n\n"
    report += f"{per_method}\n"
    atomic_write_text(folder / "comparison.md", report)
    atomic_write_text(folder / "comparison.json", json.dumps(
        {"criterion": {"success_rate": SUCCESS_CRITERION, "length": "<= benchmark",
                       "states": "fresh at every evaluation point, pass confirmed on a second fresh set"},
         "seeds": args.seeds, "methods": args.methods, "noise_sigma": noise_sigma,
         "budgets": {"ppo_steps": args.budgets["ppo"], "ppo_eval_every": args.periods["ppo"],
                     "ppo_settings": settings["ppo"].as_dict() if "ppo" in settings else None,
                     "maml_batches": args.budgets["meta-policy"], "eval_episodes": args.eval_episodes,
                     "per_method": {m: {"budget": args.budgets[m], "eval_every": args.periods[m]}
                                    for m in args.methods}},
         "settings": {m: settings_to_dict(v) if is_dataclass(v) else v for m, v in settings.items()},
         "meta_policy": str(args.policy), "meta_training_cost": cost, "wall_time": wall_time,
         "run_wall_times": timings,
         "summary": {m: {str(t): summary(list(runs[m][t].values())) for t in runs[m]} for m in methods},
         "summary_episodes": {m: {str(t): summary(list(runs[m][t].values()), "episodes") for t in runs[m]}
                              for m in methods},
         "curves": {m: {str(t): c for t, c in curves[m].items()} for m in methods},
         "runs": {m: {str(t): {str(s): asdict(c) for s, c in runs[m][t].items()} for t in runs[m]}
                  for m in methods}}, indent=1))
    print(report, end="")
    print(f"figures: {figure}, {learning}")
    print(f"wall time: {wall_time:.0f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
