"""ARES-EA: every controller of the README's table on the same episodes, at several tolerances.

    python -m maml_rl.families.ares_ea.controller_table --meta-policy awake/pretrained_ares_ea_policy.th \\
        --adapted awake/ares_ea/test --agents awake/ares_ppo/*.zip --thresholds-um 100 20
    python -m maml_rl.families.ares_ea.controller_table --random-tasks 20 --num-episodes 5 \\
        --meta-policy awake/pretrained_ares_ea_policy.th --adapted awake/ares_ea_random/test \\
        --agents awake/ares_ppo/*.zip --experiment-name ares_ea_random

For every success tolerance (``--thresholds-um``: the same value for mu_x, sigma_x, mu_y and
sigma_y) the config's environment is rebuilt with that tolerance only, and on every task
each controller runs from the initial states of ``evaluate`` (``default_rng([seed, task id,
e])``, the states ``test.py`` and ``ppo.py`` use with the same seed):

* ``meta-policy, zero-shot``: the mean action of ``--meta-policy``;
* ``meta-policy, adapted``: the task's policy ``policies/task_<id>.th`` of a ``test.py`` run
  (``--adapted``; its metadata must name the same task);
* single-task agents (``--agents``, ``ppo.py`` archives, ``--algo``): on the evaluation tasks
  each agent runs on the task it was trained on; on random tasks (never seen by any agent)
  every agent runs on every task;
* the references of ``evaluate``: Nelder-Mead with ``max_time`` interactions and the limit, and
  Bayesian optimisation with the same budget on the same states.

A controller's row summarises its tasks as ``results_table`` does: mean over tasks of the
success rate and of the mean steps (a failure counts ``max_time``), median over tasks of the
per-task median final distance O. Agents are summarised one by one, then as median and
range over the agents. Writes ``records.jsonl`` (one row per tolerance, task and controller)
and ``tables.md`` into ``<output-folder>/<experiment-name>/<experiment-type>``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from maml_rl.cli import add_run_arguments, positive_int, run_main
from maml_rl.runio import MetricsLog, RunFolderError, atomic_write_text, prepare_new_run, read_metrics, run_folder

REFERENCES = ("Nelder-Mead", "Bayesian optimisation", "limit")


@dataclass(frozen=True)
class Record:
    """One controller on one task at one tolerance (distances in um)."""

    threshold_um: float
    task_id: int
    controller: str
    success_rate: float
    mean_steps: float
    median_final_distance_um: float
    agent: str | None = None
    trained_task: int | None = None
    agent_seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _record(threshold_um: float, task_id: int, controller: str, stats: Any, **agent: Any) -> Record:
    return Record(threshold_um, task_id, controller, stats.success_rate, stats.mean_length,
                  float(np.median(stats.final_distance)) * 1e6, **agent)


def with_thresholds(environment: Any, threshold: float) -> Any:
    """``environment`` (an ``AresEnvironment``) with every success tolerance set to ``threshold`` [m]."""
    return replace(environment, dynamics=replace(environment.dynamics, thresholds=(threshold,) * 4))


@dataclass(frozen=True)
class Agent:
    """A single-task agent: its controller, the task it was trained on, its seed and file."""

    name: str
    controller: Callable[[np.ndarray], np.ndarray]
    trained_task: int
    seed: int


def load_agents(algo: str, paths: Sequence[Path], family: str) -> list[Agent]:
    """``ppo.py`` archives of ``algo`` trained on ``family`` (anything else is a ``ModelFileError``)."""
    from maml_rl.agents import agent_controller, load_agent
    from maml_rl.ppo_baseline import ModelFileError

    agents = []
    for path in paths:
        model, info = load_agent(algo, path)
        if info.get("family", "awake") != family:
            raise ModelFileError(f"{path}: trained on the {info.get('family', 'awake')} family, not {family}")
        agents.append(Agent(str(path), agent_controller(model), int(info["task"]["id"]), int(info["seed"])))
    return agents


def adapted_controllers(folder: Path, tasks: Sequence[Any]) -> dict[int, Callable[[np.ndarray], np.ndarray]]:
    """The adapted policy of every task from a ``test.py`` run folder (checked against the task)."""
    from maml_rl import load_policy
    from maml_rl.adaptation import policy_controller
    from maml_rl.checkpoint import read_metadata

    out = {}
    for task in tasks:
        path = folder / "policies" / f"task_{task.id}.th"
        if not path.is_file():
            raise RunFolderError(f"{folder}: no adapted policy for task {task.id} ({path.name}); was test.py run "
                                 f"on these tasks?")
        factors = read_metadata(path).get("task_factors")
        if factors is None or not np.allclose(factors, task.factors, rtol=1e-12, atol=0.0):
            raise RunFolderError(f"{path} was adapted to another task than task {task.id} (other --seed or tasks?)")
        out[task.id] = policy_controller(load_policy(path))
    return out


def compare(environment: Any, tasks: Sequence[Any], thresholds: Sequence[float], n_episodes: int, seed: int,
            meta_policy: Callable | None = None, adapted: dict[int, Callable] | None = None,
            agents: Sequence[Agent] = (), agents_on_own_task: bool = True, agent_label: str = "PPO",
            log: Callable[[Record], None] | None = None) -> list[Record]:
    """Every controller on every task at every tolerance [m], from the same initial states
    (Bayesian optimisation, a few seconds per episode, needs the extra "modelbased")."""
    from maml_rl.families.ares_ea.evaluation import bayesopt_stats

    records = []

    def add(record: Record) -> None:
        records.append(record)
        if log is not None:
            log(record)

    for threshold in thresholds:
        env = with_thresholds(environment, threshold)
        um = round(threshold * 1e6, 6)  # 1e-4 * 1e6 is 99.99999999999999
        for task in tasks:
            ev = env.evaluate(None, task, n_episodes, seed)
            add(_record(um, task.id, "Nelder-Mead", ev.benchmark))
            add(_record(um, task.id, "Bayesian optimisation", bayesopt_stats(task, n_episodes, seed, env)))
            add(_record(um, task.id, "limit", ev.limit))
            named = [("meta-policy, zero-shot", meta_policy)] if meta_policy is not None else []
            if adapted is not None:
                named.append(("meta-policy, adapted", adapted[task.id]))
            for name, controller in named:
                stats = env.evaluate(controller, task, n_episodes, seed, references=False).policy
                add(_record(um, task.id, name, stats))
            for agent in agents:
                if agents_on_own_task and agent.trained_task != task.id:
                    continue
                stats = env.evaluate(agent.controller, task, n_episodes, seed, references=False).policy
                add(_record(um, task.id, agent_label, stats, agent=agent.name, trained_task=agent.trained_task,
                            agent_seed=agent.seed))
    return records


def _summary(rows: Sequence[dict[str, Any]]) -> tuple[float, float, float]:
    """Mean success and steps over tasks, median over tasks of the per-task median distance."""
    return (float(np.mean([r["success_rate"] for r in rows])), float(np.mean([r["mean_steps"] for r in rows])),
            float(np.median([r["median_final_distance_um"] for r in rows])))


def summarise(records: Sequence[dict[str, Any]], threshold_um: float,
              task_ids: Sequence[int] | None = None) -> list[tuple[str, int, list[tuple[float, float, float]]]]:
    """Per controller: its name, number of tasks and the summaries of its runs (one per agent;
    a single one for the other controllers), at ``threshold_um`` over ``task_ids`` (default all)."""
    mine = [r for r in records if r["threshold_um"] == threshold_um and (task_ids is None or r["task_id"] in task_ids)]
    out = []
    for name in dict.fromkeys(r["controller"] for r in mine):
        rows = [r for r in mine if r["controller"] == name]
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r.get("agent"), []).append(r)
        out.append((name, len({r["task_id"] for r in rows}), [_summary(g) for g in groups.values()]))
    return out


def _cell(values: Sequence[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.median(values)), fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def format_summary(records: Sequence[dict[str, Any]], threshold_um: float, max_time: int,
                   task_ids: Sequence[int] | None = None) -> str:
    """Markdown table: success, steps and final distance per controller (agents: median [range])."""
    lines = [f"| controller | tasks | success ({threshold_um:g} um) | mean steps (of {max_time}) | "
             "median final O [um] |", "|---|---|---|---|---|"]
    for name, n_tasks, runs in summarise(records, threshold_um, task_ids):
        label = name if len(runs) == 1 else f"{name} ({len(runs)} agents: median [range])"
        success, steps, distance = ([run[i] for run in runs] for i in range(3))
        lines.append(f"| {label} | {n_tasks} | {_cell([100 * s for s in success], '.0f')} % | {_cell(steps, '.1f')} | "
                     f"{_cell(distance, '.0f')} |")
    return "\n".join(lines)


def format_per_task(records: Sequence[dict[str, Any]], threshold_um: float) -> str:
    """Markdown table: success / steps / final O of every controller on every task (agents: median over them)."""
    mine = [r for r in records if r["threshold_um"] == threshold_um]
    names = list(dict.fromkeys(r["controller"] for r in mine))
    lines = ["| task | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for task_id in dict.fromkeys(r["task_id"] for r in mine):
        cells = []
        for name in names:
            rows = [r for r in mine if r["task_id"] == task_id and r["controller"] == name]
            cells.append("-" if not rows else
                         f"{np.median([r['success_rate'] for r in rows]):.0%} / "
                         f"{np.median([r['mean_steps'] for r in rows]):.1f} / "
                         f"{np.median([r['median_final_distance_um'] for r in rows]):.0f}")
        lines.append(f"| {task_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables(records: Sequence[dict[str, Any]], max_time: int) -> str:
    """The summary tables of every tolerance (and over the agents' tasks when they cover fewer) and
    the per-task tables."""
    parts = []
    all_tasks = list(dict.fromkeys(r["task_id"] for r in records))
    agent_tasks = sorted({r["task_id"] for r in records if r.get("agent") is not None})
    for um in dict.fromkeys(r["threshold_um"] for r in records):
        parts += [f"success within {um:g} um, {len(all_tasks)} tasks", "", format_summary(records, um, max_time), ""]
        if agent_tasks and len(agent_tasks) < len(all_tasks):
            parts += [f"the same on the agents' tasks {agent_tasks}", "",
                      format_summary(records, um, max_time, agent_tasks), ""]
        parts += ["per task: success / mean steps / median final O [um] (agents: medians over agents)", "",
                  format_per_task(records, um), ""]
    return "\n".join(parts)


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The rows of a comparison run folder's ``records.jsonl``."""
    path = Path(folder) / "records.jsonl"
    if not path.is_file():
        raise RunFolderError(f"{folder}: no records.jsonl (not a controller_table run folder?)")
    return read_metrics(path)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from maml_rl import load_policy
    from maml_rl.adaptation import policy_controller
    from maml_rl.agents import ALGOS, LABELS
    from maml_rl.config import ConfigError, load_config
    from maml_rl.distributed import require
    from maml_rl.distribution import random_tasks
    from maml_rl.envs.tasks import select_tasks
    from maml_rl.training import check_policy_fits, environment_of

    parser = argparse.ArgumentParser(prog="python -m maml_rl.families.ares_ea.controller_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/ares_ea_evaluation.yaml"),
                        help="an ares_ea config: the environment (default: configs/ares_ea_evaluation.yaml)")
    parser.add_argument("--task-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="evaluation tasks")
    parser.add_argument("--random-tasks", type=positive_int, metavar="N",
                        help="N tasks drawn with --seed (those of test.py --random-tasks N) instead of --task-ids")
    parser.add_argument("--num-episodes", type=positive_int, default=10, help="episodes per task (default: 10)")
    parser.add_argument("--thresholds-um", type=float, nargs="+", default=[100.0, 20.0],
                        help="success tolerances [um] (default: 100 20)")
    parser.add_argument("--meta-policy", type=Path, help="policy file of the meta-policy (zero-shot)")
    parser.add_argument("--adapted", type=Path, help="test.py run folder with the adapted policies of these tasks")
    parser.add_argument("--agents", type=Path, nargs="+", default=[], help="single-task agent archives (ppo.py)")
    parser.add_argument("--algo", choices=ALGOS, default="ppo", help="algorithm of --agents (default: ppo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    add_run_arguments(parser, "controllers", "ares_ea")
    args = parser.parse_args(argv)
    if any(not np.isfinite(t) or t <= 0 for t in args.thresholds_um):
        raise ConfigError(f"--thresholds-um must be positive, got {args.thresholds_um}")
    require("gpytorch", "modelbased", "the Bayesian-optimisation row")  # before any run folder is made
    torch.set_num_threads(1)
    config = load_config(args.config)
    if config.family != "ares_ea":
        raise ConfigError(f"{args.config}: family {config.family!r}; this table is for ares_ea")
    environment = environment_of(config)
    tasks = (random_tasks(environment, args.random_tasks, args.seed) if args.random_tasks is not None
             else select_tasks(config.task_family.load_evaluation_tasks(None), args.task_ids))
    meta = None
    if args.meta_policy is not None:
        policy = load_policy(args.meta_policy)
        check_policy_fits(policy, config, str(args.meta_policy))
        meta = policy_controller(policy)
    adapted = adapted_controllers(args.adapted, tasks) if args.adapted is not None else None
    agents = load_agents(args.algo, args.agents, config.family)
    folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
    prepare_new_run(folder, args.overwrite)
    log = MetricsLog.create(folder / "records.jsonl")
    start = time.perf_counter()
    compare(environment, tasks, [t * 1e-6 for t in args.thresholds_um], args.num_episodes, args.seed, meta, adapted,
            agents, agents_on_own_task=args.random_tasks is None, agent_label=LABELS[args.algo],
            log=lambda record: log.append(record.as_dict()))
    text = tables(read_records(folder), environment.max_time)
    atomic_write_text(folder / "tables.md", text + "\n")
    print(text)
    print(f"{len(tasks)} tasks x {args.num_episodes} episodes, seed {args.seed}, "
          f"{time.perf_counter() - start:.0f} s; results: {folder}")
    return 0


if __name__ == "__main__":
    run_main(main)
