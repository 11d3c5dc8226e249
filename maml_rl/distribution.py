"""Evaluation on the task distribution, not only on the five evaluation tasks.

Five tasks are a small sample: a policy can be excellent on all five and fail on one task
in ten. ``random_evaluation_tasks`` draws N tasks from the training distribution with a
generator that can never coincide with meta-training's task draws, and
``summarise`` reports across tasks what a user meets: the fraction of tasks solved in at
least 95 % and in 100 % of the episodes, the worst task's success rate, and the median,
90th percentile and maximum of the mean episode length relative to the benchmark and to
the limit controller (same initial states). The nominal-inverse controller (the
benchmark's law with the nominal optics, which ignores the task) is the named reference
that needs no model of today's optics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from maml_rl.envs.tasks import Task, sample_tasks
from maml_rl.evaluation_results import ControllerStats, Evaluation
from maml_rl.plotting import new_figure, save_figure

# Meta-training draws the tasks of batch b from default_rng([seed, b, 0x7A5C]) with
# b < 2**24; this key's second word is >= 2**24, so the two streams never coincide.
EVALUATION_STREAM = 0xE7A15EED
RANDOM_TASK_FIRST_ID = 1_000_000  # ids (they key evaluation states) apart from training's
# Validation tasks of a hyper-parameter search (tune.py): another stream of the same kind and
# other ids, so a search never selects on the tasks test.py --random-tasks reports.
VALIDATION_STREAM = 0x5A11DA7E
VALIDATION_TASK_FIRST_ID = 2_000_000
SUCCESS_GOOD = 0.95
RATIO_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 30.0, 50.0, 100.0)
CONTROLLERS = ("policy", "nominal", "benchmark", "limit")
LABELS = {"policy": "policy", "nominal": "nominal-inverse (ignores the task)",
          "benchmark": "benchmark (inverse of the task's R)", "limit": "limit controller"}
COLOURS = {"policy": "C0", "nominal": "C1", "benchmark": "k", "limit": "C2"}


def random_evaluation_tasks(n: int, seed: int, plane: str = "horizontal", num_random_quads: int = 10) -> list[Task]:
    """``n`` tasks from the training distribution (admissible in ``plane``) for evaluation."""
    if n < 1:
        raise ValueError(f"need at least one random task, got {n}")
    rng = np.random.default_rng([seed, EVALUATION_STREAM, 0])
    return sample_tasks(rng, n, num_random_quads, first_id=RANDOM_TASK_FIRST_ID, plane=plane)


def random_tasks(environment: Any, n: int, seed: int) -> list[Any]:
    """``n`` tasks of any family's distribution (``FamilyEnvironment.sample_tasks``) for
    evaluation, from the stream of ``random_evaluation_tasks`` (the same AWAKE tasks)."""
    if n < 1:
        raise ValueError(f"need at least one random task, got {n}")
    rng = np.random.default_rng([seed, EVALUATION_STREAM, 0])
    return environment.sample_tasks(rng, n, first_id=RANDOM_TASK_FIRST_ID)


def validation_tasks(environment: Any, n: int, seed: int) -> list[Any]:
    """``n`` tasks of the distribution on which a hyper-parameter search selects (``tune.py``):
    fixed by ``seed``, disjoint streams from meta-training's and from ``random_tasks``'."""
    if n < 1:
        raise ValueError(f"need at least one validation task, got {n}")
    rng = np.random.default_rng([seed, VALIDATION_STREAM, 0])
    return environment.sample_tasks(rng, n, first_id=VALIDATION_TASK_FIRST_ID)


@dataclass(frozen=True)
class ControllerSummary:
    """One controller across tasks (per-task success rates and mean lengths summarised)."""

    tasks: int
    fraction_ge_95: float
    fraction_100: float
    worst_success: float
    ratio_benchmark_median: float
    ratio_benchmark_p90: float
    ratio_benchmark_max: float
    ratio_limit_median: float
    ratio_limit_p90: float
    ratio_limit_max: float


def _stats(evaluations: Sequence[Evaluation], name: str) -> list[ControllerStats]:
    return [getattr(ev, name) for ev in evaluations]


def length_ratios(evaluations: Sequence[Evaluation], name: str, reference: str = "benchmark") -> np.ndarray:
    """Per task: mean episode length of ``name`` / that of ``reference`` (same initial states)."""
    return np.array([getattr(ev, name).mean_length / getattr(ev, reference).mean_length for ev in evaluations])


def success_rates(evaluations: Sequence[Evaluation], name: str) -> np.ndarray:
    return np.array([s.success_rate for s in _stats(evaluations, name)])


def summarise(evaluations: Sequence[Evaluation], name: str = "policy") -> ControllerSummary:
    """Distribution summary of controller ``name`` over the evaluated tasks."""
    success = success_rates(evaluations, name)
    bench, limit = length_ratios(evaluations, name, "benchmark"), length_ratios(evaluations, name, "limit")
    return ControllerSummary(
        tasks=len(evaluations), fraction_ge_95=float(np.mean(success >= SUCCESS_GOOD)),
        fraction_100=float(np.mean(success >= 1.0)), worst_success=float(success.min()),
        ratio_benchmark_median=float(np.median(bench)), ratio_benchmark_p90=float(np.percentile(bench, 90)),
        ratio_benchmark_max=float(bench.max()), ratio_limit_median=float(np.median(limit)),
        ratio_limit_p90=float(np.percentile(limit, 90)), ratio_limit_max=float(limit.max()))


def summaries(evaluations: Sequence[Evaluation]) -> dict[str, ControllerSummary]:
    """Summaries of every controller present in all evaluations."""
    return {name: summarise(evaluations, name) for name in CONTROLLERS
            if all(getattr(ev, name) is not None for ev in evaluations)}


def format_summary(evaluations: Sequence[Evaluation]) -> str:
    """A table: one row per controller, the distribution statistics as columns."""
    header = ("controller | tasks | success >= 95 % | success 100 % | worst success | "
              "length/benchmark median p90 max | length/limit median p90 max")
    lines = [header, "-" * len(header)]
    for name, s in summaries(evaluations).items():
        lines.append(f"{name:<10} | {s.tasks:5d} | {s.fraction_ge_95:15.1%} | {s.fraction_100:13.1%} | "
                     f"{s.worst_success:13.1%} | {s.ratio_benchmark_median:10.2f} {s.ratio_benchmark_p90:5.2f} "
                     f"{s.ratio_benchmark_max:6.2f} | {s.ratio_limit_median:6.2f} {s.ratio_limit_p90:5.2f} "
                     f"{s.ratio_limit_max:6.2f}")
    return "\n".join(lines)


def summary_dict(evaluations: Sequence[Evaluation]) -> dict[str, dict[str, float]]:
    return {name: asdict(s) for name, s in summaries(evaluations).items()}


def _ecdf(ax, values: np.ndarray, **kwargs) -> None:
    x = np.sort(values)
    ax.step(np.concatenate([[x[0]], x]), np.arange(len(x) + 1) / len(x), where="post", **kwargs)


def distribution_figure(evaluations: Sequence[Evaluation], path: Path, title: str,
                        reference_labels: Mapping[str, str] | None = None) -> Path:
    """CDFs over tasks of the length ratio to the benchmark and of the success rate.

    One curve per controller (policy, nominal-inverse, benchmark, limit); readable for any
    number of tasks. ``reference_labels`` renames the family's references
    (``FigureStyle.reference_labels``; ARES-EA: Nelder-Mead in the benchmark slot).
    """
    labels = {**LABELS, **(reference_labels or {})}
    fig, (ax_ratio, ax_success) = new_figure(1, 2, size=(13, 5))
    names = list(summaries(evaluations))
    for name in names:
        style = dict(color=COLOURS[name], lw=2 if name == "policy" else 1.3,
                     ls="--" if name in ("benchmark", "limit") else "-")
        _ecdf(ax_ratio, length_ratios(evaluations, name), label=labels[name], **style)
        _ecdf(ax_success, success_rates(evaluations, name), label=labels[name], **style)
    ax_ratio.set_xscale("log")
    # plain numbers at readable ticks: a log axis labels only decades (often just "1" here) or
    # overlapping minor ticks (3x10^-1 4x10^-1 ...)
    low, high = ax_ratio.get_xlim()
    ax_ratio.set_xticks([v for v in RATIO_TICKS if low <= v <= high])
    ax_ratio.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax_ratio.xaxis.set_minor_formatter(NullFormatter())
    reference = (reference_labels or {}).get("benchmark", "benchmark")
    ax_ratio.set_xlabel(f"mean episode length / {reference}'s (per task, same initial states)")
    ax_ratio.set_ylabel("fraction of tasks <= x")
    ax_ratio.axvline(1.0, color="grey", lw=0.8)
    ax_success.set_xlabel("success rate (per task)")
    ax_success.set_ylabel("fraction of tasks <= x")
    ax_success.axvline(SUCCESS_GOOD, color="grey", lw=0.8, ls=":")
    # zoom to the successes that occur: when every controller is above 90 %, the whole
    # [0, 1] axis would squeeze the curves onto the right edge
    lowest = min(float(success_rates(evaluations, name).min()) for name in names)
    ax_success.set_xlim(min(0.9, lowest) - 0.01, 1.005)
    for ax in (ax_ratio, ax_success):
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{title} ({len(evaluations)} tasks)")
    return save_figure(fig, path)
