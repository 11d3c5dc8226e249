"""Spread over seeds of the comparison (``maml_rl.compare``): methods, cells, tables, curves, figures.

A method's result on one task and seed is the number of interactions (and of episodes) at
which it first met the criterion (confirmed on fresh states), or "not reached" within its
budget. Over
seeds, entries are ranked with every "not reached" above every reached value (its true
value is larger than its budget) and among themselves by budget; the table shows the
median entry (the lower of the two middle ones for an even number of seeds), the smallest
and largest entry, and how many seeds reached the criterion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from maml_rl.envs.tasks import Task
from maml_rl.evaluation import Evaluation
from maml_rl.plotting import new_figure, save_figure

SUCCESS_CRITERION = 0.95


@dataclass(frozen=True)
class MethodInfo:
    """A method of the comparison: its key in the outputs, how it runs, label, colour and
    default budget and evaluation interval (MAML: in adaptation batches; the others: in
    environment interactions)."""

    key: str
    family: str  # "agent" (maml_rl.agents), "maml" (test.py's adaptation) or "model-based"
    label: str
    colour: str
    budget: int
    eval_every: int


# Command-line name -> method. Off-policy budgets: the 10,000 steps of README's single-task
# numbers; the model-based budgets are a few times what they needed on the nominal optics
# (docs/model_based.md: 10 / 10 / 200-800 interactions).
REGISTRY: dict[str, MethodInfo] = {
    "ppo": MethodInfo("ppo", "agent", "PPO from scratch", "C3", 30_000, 2048),
    "td3": MethodInfo("td3", "agent", "TD3 from scratch", "C1", 10_000, 500),
    "sac": MethodInfo("sac", "agent", "SAC from scratch", "C4", 10_000, 500),
    "ddpg": MethodInfo("ddpg", "agent", "DDPG from scratch", "C5", 10_000, 500),
    "naf": MethodInfo("naf", "agent", "NAF from scratch", "C6", 10_000, 500),
    "per-naf": MethodInfo("per_naf", "agent", "PER-NAF from scratch", "C7", 10_000, 500),
    "maml-random": MethodInfo("maml_random", "maml", "MAML adaptation from random init", "C0", 20, 1),
    "meta-policy": MethodInfo("maml_meta", "maml", "MAML adaptation from the meta-policy", "C2", 20, 1),
    "rm-id": MethodInfo("rm_id", "model-based", "response-matrix identification", "C8", 50, 5),
    "gp-mpc": MethodInfo("gp_mpc", "model-based", "GP-MPC", "C9", 30, 5),
    "dyna": MethodInfo("dyna", "model-based", "Dyna (SAC on a model ensemble)", "k", 1000, 50),
}
DEFAULT_METHODS = ("ppo", "maml-random", "meta-policy")
METHODS = tuple(REGISTRY[m].key for m in DEFAULT_METHODS)  # ("ppo", "maml_random", "maml_meta")
LABELS = {info.key: info.label for info in REGISTRY.values()}
COLOURS = {info.key: info.colour for info in REGISTRY.values()}


def meets_criterion(evaluation: Evaluation) -> bool:
    """Success rate >= 95 % and mean episode length <= the benchmark's on the same states."""
    return (evaluation.policy.success_rate >= SUCCESS_CRITERION
            and evaluation.policy.mean_length <= evaluation.benchmark.mean_length)


@dataclass
class Curve:
    """One method on one task with one seed: evaluations against the interactions spent.

    ``index`` numbers the evaluation points (MAML: adaptation batch; the others: evaluation
    count); each point's states are fresh. ``episodes`` are the episodes the method had
    finished at the point, ``mean_return`` and ``mean_length`` the evaluation's.
    ``confirmations`` lists, for every point that met the criterion before it was reached,
    the result on a second independent set.
    """

    index: list[int] = field(default_factory=list)
    interactions: list[int] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    length_ratio: list[float] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    reached_at: int | None = None
    budget: int = 0
    episodes: list[int] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    mean_length: list[float] = field(default_factory=list)
    reached_at_episodes: int | None = None
    budget_episodes: int = 0

    def add(self, index: int, interactions: int, check: Evaluation, confirm: Any, episodes: int = 0) -> None:
        """Record the point; if it meets the criterion, ``confirm()`` evaluates fresh states."""
        self.index.append(int(index))
        self.interactions.append(int(interactions))
        self.episodes.append(int(episodes))
        self.success.append(check.policy.success_rate)
        self.length_ratio.append(check.length_ratio())
        self.mean_return.append(check.policy.mean_return)
        self.mean_length.append(check.policy.mean_length)
        self.budget, self.budget_episodes = int(interactions), int(episodes)
        if self.reached_at is None and meets_criterion(check):
            second: Evaluation = confirm()
            passed = meets_criterion(second)
            self.confirmations.append({"index": int(index), "interactions": int(interactions), "passed": passed,
                                       "success": second.policy.success_rate,
                                       "length_ratio": second.length_ratio()})
            if passed:
                self.reached_at, self.reached_at_episodes = int(interactions), int(episodes)


@dataclass(frozen=True)
class Entry:
    """Interactions to the criterion of one seed, or a lower bound (its budget)."""

    value: int
    reached: bool

    def rank(self) -> tuple[int, int]:
        return (0 if self.reached else 1, self.value)

    def __str__(self) -> str:
        return f"{self.value:,}" if self.reached else f"> {self.value:,}"


# Unit of a result -> the Curve fields holding where it was reached and its budget.
UNIT_FIELDS = {"interactions": ("reached_at", "budget"), "episodes": ("reached_at_episodes", "budget_episodes")}


def entries(curves: Sequence[Curve], unit: str = "interactions") -> list[Entry]:
    """One entry per seed (in ``unit``: "interactions" or "episodes"), sorted by rank."""
    reached, budget = UNIT_FIELDS[unit]
    out = [Entry(getattr(c, reached), True) if c.reached_at is not None else Entry(getattr(c, budget), False)
           for c in curves]
    return sorted(out, key=Entry.rank)


def summary(curves: Sequence[Curve], unit: str = "interactions") -> dict[str, Any]:
    """Median, smallest and largest entry over seeds, and the number of seeds that reached."""
    ranked = entries(curves, unit)
    median = ranked[(len(ranked) - 1) // 2]
    reached, budget = UNIT_FIELDS[unit]
    return {"median": str(median), "min": str(ranked[0]), "max": str(ranked[-1]),
            "reached": sum(e.reached for e in ranked), "seeds": len(ranked),
            "reached_at": [getattr(c, reached) for c in curves], "budgets": [getattr(c, budget) for c in curves]}


def cell(curves: Sequence[Curve], unit: str = "interactions") -> str:
    s = summary(curves, unit)
    return f"{s['median']} ({s['min']} to {s['max']}), {s['reached']}/{s['seeds']}"


Runs = Mapping[str, Mapping[int, Mapping[int, Curve]]]  # method -> task id -> seed -> curve


def comparison_table(tasks: Sequence[Task], runs: Runs, methods: Sequence[str] = METHODS) -> str:
    """Markdown table: per task and method (keys), "median (min to max), seeds reached / seeds"."""
    header = "| task | " + " | ".join(LABELS[m] for m in methods) + " |"
    lines = [header, "|" + "---|" * (len(methods) + 1)]
    for task in tasks:
        cells = [cell(list(runs[m][task.id].values())) for m in methods]
        lines.append(f"| {task.id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_table(tasks: Sequence[Task], runs: Runs, methods: Sequence[str]) -> str:
    """Markdown table, one row per method (keys): interactions and episodes to the criterion
    on every task, each "median (min to max), seeds reached / seeds"."""
    header = "| method | " + " | ".join(f"task {t.id}: interactions | task {t.id}: episodes" for t in tasks) + " |"
    lines = [header, "|" + "---|" * (2 * len(tasks) + 1)]
    for method in methods:
        cells = [cell(list(runs[method][t.id].values()), unit) for t in tasks for unit in ("interactions", "episodes")]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate(curves: Sequence[Curve]) -> dict[str, list[float]]:
    """Median and min-max over seeds at every evaluation point that all seeds have."""
    common = sorted(set.intersection(*(set(c.index) for c in curves)))
    out: dict[str, list[float]] = {"index": [float(i) for i in common]}
    for name in ("interactions", "episodes", "success", "length_ratio", "mean_return", "mean_length"):
        table = np.array([[getattr(c, name)[c.index.index(i)] for i in common] for c in curves], dtype=float)
        out[f"{name}_median"] = np.median(table, axis=0).tolist()
        out[f"{name}_min"] = table.min(axis=0).tolist()
        out[f"{name}_max"] = table.max(axis=0).tolist()
    out["interactions"] = out["interactions_median"]
    return out


def _curve_grid(tasks: Sequence[Task], curves: Mapping[str, Mapping[int, dict[str, list[float]]]],
                methods: Sequence[str], rows: tuple[str, str], ylabels: tuple[str, str], width: float) -> Any:
    """Figure with one column per task and two rows: the aggregated quantities ``rows``
    against the interactions (log x, 0 shown at 1), median line and min-max band per method."""
    fig, axes = new_figure(2, len(tasks), size=(width, 8))
    axes = np.asarray(axes).reshape(2, len(tasks))
    for column, task in enumerate(tasks):
        for method in methods:
            curve = curves[method][task.id]
            x = np.maximum(curve["interactions_median"], 1)
            for ax, name in zip(axes[:, column], rows):
                ax.plot(x, curve[f"{name}_median"], "-o", ms=2.5, color=COLOURS[method], label=LABELS[method])
                ax.fill_between(x, curve[f"{name}_min"], curve[f"{name}_max"], color=COLOURS[method], alpha=0.2,
                                lw=0)
        axes[0, column].set_title(f"task {task.id}")
        axes[1, column].set_yscale("log")
        for ax, ylabel in zip(axes[:, column], ylabels):
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("environment interactions (0 shown at 1)")
            ax.set_ylabel(ylabel)
    return fig, axes


def _finish(fig: Any, axes: Any, title: str, path: Path) -> Path:
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=9, frameon=False)
    fig.suptitle(title)
    return save_figure(fig, path)


def comparison_figure(tasks: Sequence[Task], curves: Mapping[str, Mapping[int, dict[str, list[float]]]],
                      limit_ratio: Mapping[int, float], seeds: Sequence[int], path: Path,
                      methods: Sequence[str] = METHODS) -> Path:
    """Success rate and length / benchmark against interactions: median line, min-max band."""
    fig, axes = _curve_grid(tasks, curves, methods, ("success", "length_ratio"),
                            ("success rate", "episode length / benchmark"), 4.2 * len(tasks))
    for column, task in enumerate(tasks):
        top, bottom = axes[0, column], axes[1, column]
        bottom.axhline(1.0, color="k", ls="--", lw=1, label="benchmark")
        bottom.axhline(limit_ratio[task.id], color="k", ls=":", lw=1, label="limit controller")
        top.axhline(SUCCESS_CRITERION, color="grey", ls="--", lw=0.8)
        top.set_ylim(-0.02, 1.02)
    return _finish(fig, axes, "interactions to steer a new optics: criterion success >= 95 % and length <= benchmark\n"
                   f"line: median, band: min-max over seeds {', '.join(map(str, seeds))}; "
                   "fresh evaluation states at every point", path)


def learning_curve_figure(tasks: Sequence[Task], curves: Mapping[str, Mapping[int, dict[str, list[float]]]],
                          references: Mapping[int, Evaluation], seeds: Sequence[int], path: Path,
                          methods: Sequence[str], noise_sigma: float) -> Path:
    """Learning curves as in the AWAKE lecture's plot: the evaluation's mean return (top) and
    mean episode length (bottom) against the interactions spent, median line and min-max band
    over seeds, with the benchmark's and the limit controller's values (``references``: both
    on one fixed set of states per task) as horizontal lines."""
    fig, axes = _curve_grid(tasks, curves, methods, ("mean_return", "mean_length"),
                            ("mean return", "mean episode length [steps]"), max(4.2 * len(tasks), 10))
    for column, task in enumerate(tasks):
        reference = references[task.id]
        for stats, style, label in ((reference.benchmark, "--", "benchmark"),
                                    (reference.limit, ":", "limit controller")):
            axes[0, column].axhline(stats.mean_return, color="k", ls=style, lw=1, label=label)
            axes[1, column].axhline(stats.mean_length, color="k", ls=style, lw=1, label=label)
    return _finish(fig, axes, f"learning curves on new optics (observation noise sigma = {noise_sigma:g})\n"
                   f"line: median, band: min-max over seeds {', '.join(map(str, seeds))}; "
                   "deterministic actions on fresh evaluation states at every point", path)
