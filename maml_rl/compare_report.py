"""Spread over seeds of the comparison (``maml_rl.compare``): cells, table, curves, figure.

A method's result on one task and seed is the number of interactions at which it first
met the criterion (confirmed on fresh states), or "not reached" within its budget. Over
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
METHODS = ("ppo", "maml_random", "maml_meta")
LABELS = {"ppo": "PPO from scratch", "maml_random": "MAML adaptation from random init",
          "maml_meta": "MAML adaptation from the meta-policy"}
COLOURS = {"ppo": "C3", "maml_random": "C0", "maml_meta": "C2"}


def meets_criterion(evaluation: Evaluation) -> bool:
    """Success rate >= 95 % and mean episode length <= the benchmark's on the same states."""
    return (evaluation.policy.success_rate >= SUCCESS_CRITERION
            and evaluation.policy.mean_length <= evaluation.benchmark.mean_length)


@dataclass
class Curve:
    """One method on one task with one seed: evaluations against the interactions spent.

    ``index`` numbers the evaluation points (MAML: adaptation batch; PPO: evaluation
    count); each point's states are fresh. ``confirmations`` lists, for every point that
    met the criterion before it was reached, the result on a second independent set.
    """

    index: list[int] = field(default_factory=list)
    interactions: list[int] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    length_ratio: list[float] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    reached_at: int | None = None
    budget: int = 0

    def add(self, index: int, interactions: int, check: Evaluation, confirm: Any) -> None:
        """Record the point; if it meets the criterion, ``confirm()`` evaluates fresh states."""
        self.index.append(int(index))
        self.interactions.append(int(interactions))
        self.success.append(check.policy.success_rate)
        self.length_ratio.append(check.length_ratio())
        self.budget = int(interactions)
        if self.reached_at is None and meets_criterion(check):
            second: Evaluation = confirm()
            passed = meets_criterion(second)
            self.confirmations.append({"index": int(index), "interactions": int(interactions), "passed": passed,
                                       "success": second.policy.success_rate,
                                       "length_ratio": second.length_ratio()})
            if passed:
                self.reached_at = int(interactions)


@dataclass(frozen=True)
class Entry:
    """Interactions to the criterion of one seed, or a lower bound (its budget)."""

    value: int
    reached: bool

    def rank(self) -> tuple[int, int]:
        return (0 if self.reached else 1, self.value)

    def __str__(self) -> str:
        return f"{self.value:,}" if self.reached else f"> {self.value:,}"


def entries(curves: Sequence[Curve]) -> list[Entry]:
    """One entry per seed, sorted by rank."""
    out = [Entry(c.reached_at, True) if c.reached_at is not None else Entry(c.budget, False) for c in curves]
    return sorted(out, key=Entry.rank)


def summary(curves: Sequence[Curve]) -> dict[str, Any]:
    """Median, smallest and largest entry over seeds, and the number of seeds that reached."""
    ranked = entries(curves)
    median = ranked[(len(ranked) - 1) // 2]
    return {"median": str(median), "min": str(ranked[0]), "max": str(ranked[-1]),
            "reached": sum(e.reached for e in ranked), "seeds": len(ranked),
            "reached_at": [c.reached_at for c in curves], "budgets": [c.budget for c in curves]}


def cell(curves: Sequence[Curve]) -> str:
    s = summary(curves)
    return f"{s['median']} ({s['min']} to {s['max']}), {s['reached']}/{s['seeds']}"


Runs = Mapping[str, Mapping[int, Mapping[int, Curve]]]  # method -> task id -> seed -> curve


def comparison_table(tasks: Sequence[Task], runs: Runs) -> str:
    """Markdown table: per task and method, "median (min to max), seeds reached / seeds"."""
    header = "| task | " + " | ".join(LABELS[m] for m in METHODS) + " |"
    lines = [header, "|" + "---|" * (len(METHODS) + 1)]
    for task in tasks:
        cells = [cell(list(runs[m][task.id].values())) for m in METHODS]
        lines.append(f"| {task.id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate(curves: Sequence[Curve]) -> dict[str, list[float]]:
    """Median and min-max over seeds at every evaluation point that all seeds have."""
    common = sorted(set.intersection(*(set(c.index) for c in curves)))
    out: dict[str, list[float]] = {"index": [float(i) for i in common]}
    for name in ("interactions", "success", "length_ratio"):
        table = np.array([[getattr(c, name)[c.index.index(i)] for i in common] for c in curves], dtype=float)
        out[f"{name}_median"] = np.median(table, axis=0).tolist()
        out[f"{name}_min"] = table.min(axis=0).tolist()
        out[f"{name}_max"] = table.max(axis=0).tolist()
    out["interactions"] = out["interactions_median"]
    return out


def comparison_figure(tasks: Sequence[Task], curves: Mapping[str, Mapping[int, dict[str, list[float]]]],
                      limit_ratio: Mapping[int, float], seeds: Sequence[int], path: Path) -> Path:
    """Success rate and length / benchmark against interactions: median line, min-max band."""
    fig, axes = new_figure(2, len(tasks), size=(4.2 * len(tasks), 8))
    axes = np.asarray(axes).reshape(2, len(tasks))
    for column, task in enumerate(tasks):
        top, bottom = axes[0, column], axes[1, column]
        for method in METHODS:
            curve = curves[method][task.id]
            x = np.maximum(curve["interactions_median"], 1)
            for ax, name in ((top, "success"), (bottom, "length_ratio")):
                ax.plot(x, curve[f"{name}_median"], "-o", ms=2.5, color=COLOURS[method], label=LABELS[method])
                ax.fill_between(x, curve[f"{name}_min"], curve[f"{name}_max"], color=COLOURS[method], alpha=0.2,
                                lw=0)
        bottom.axhline(1.0, color="k", ls="--", lw=1, label="benchmark")
        bottom.axhline(limit_ratio[task.id], color="k", ls=":", lw=1, label="limit controller")
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
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle("interactions to steer a new optics: criterion success >= 95 % and length <= benchmark\n"
                 f"line: median, band: min-max over seeds {', '.join(map(str, seeds))}; "
                 "fresh evaluation states at every point")
    return save_figure(fig, path)
