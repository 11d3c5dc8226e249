"""Progress figures from the metrics files of run folders (``read_out_train.py``, ``test.py``).

* ``training_figure``: returns (raw and rolling mean), episode lengths and success rates
  per batch before and after adaptation, per-task curves; total interactions in the title.
* ``compare_figure``: several runs overlaid against environment interactions.
* ``adaptation_progress_figure``: from the evaluations of ``test.py`` runs, success rate
  and episode length relative to the benchmark per task against interactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.ticker import FuncFormatter

from maml_rl.plotting import new_figure, save_figure
from maml_rl.runio import RunFolderError, read_metrics

ROLLING = 20


def rolling_mean(values: Sequence[float], window: int = ROLLING) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def _series(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def load_rows(folder: Path) -> list[dict[str, Any]]:
    rows = read_metrics(Path(folder) / "metrics.jsonl")
    if not rows:
        raise RunFolderError(f"{folder / 'metrics.jsonl'} has no rows yet")
    return rows


def training_figure(folder: Path, path: Path) -> Path:
    """Progress of one run (training or test-time adaptation) to ``path``."""
    rows = load_rows(folder)
    batches = _series(rows, "batch")
    fig, axes = new_figure(2, 2, size=(14, 9))
    has_valid = "valid_return" in rows[0]
    panels = [("return", axes[0, 0], "return per episode"), ("length", axes[0, 1], "episode length [steps]"),
              ("success", axes[1, 0], "success rate")]
    for key, ax, label in panels:
        for prefix, colour, name in (("train", "C0", "before adaptation"), ("valid", "C1", "after adaptation")):
            if f"{prefix}_{key}" not in rows[0]:
                continue
            values = _series(rows, f"{prefix}_{key}")
            ax.plot(batches, values, color=colour, alpha=0.3, lw=0.8)
            ax.plot(batches, rolling_mean(values), color=colour, lw=2,
                    label=f"{name if has_valid else 'sampled episodes'} (rolling mean of {ROLLING})")
        ax.set_xlabel("batch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1, 1]
    prefix = "valid" if has_valid else "train"
    per_task = [r.get(f"{prefix}_return_per_task", []) for r in rows]
    fixed_tasks = len({tuple(r.get("task_ids", [])) for r in rows}) == 1
    if fixed_tasks:  # test-time adaptation: the same tasks in every batch -> one curve per task
        for k, task_id in enumerate(rows[0]["task_ids"]):
            ax.plot(batches, rolling_mean([p[k] for p in per_task], 5), label=f"task {task_id}")
        ax.legend(fontsize=8)
        ax.set_title("per-task return (rolling mean of 5)", fontsize=9)
    else:  # meta-training: new tasks every batch -> their spread
        xs = np.concatenate([[b] * len(p) for b, p in zip(batches, per_task)])
        ax.plot(xs, np.concatenate(per_task), ".", ms=2, alpha=0.4, color="C1")
        ax.set_title(f"per-task return {'after adaptation' if has_valid else ''} (each dot one task)", fontsize=9)
    ax.set_xlabel("batch")
    ax.set_ylabel("mean return of the task's episodes")
    ax.grid(alpha=0.3)
    interactions = int(np.nansum(_series(rows, "interactions"))) if has_valid else int(rows[-1]["interactions"])
    fig.suptitle(f"{folder} - {len(rows)} batches - total environment interactions: {interactions:,}")
    return save_figure(fig, path)


def _cumulative_interactions(rows: list[dict[str, Any]]) -> np.ndarray:
    values = _series(rows, "interactions")
    # Training rows count interactions per batch, adaptation rows cumulatively.
    return np.cumsum(values) if "valid_return" in rows[0] else values


def compare_figure(folders: Sequence[Path], path: Path, labels: Sequence[str] | None = None) -> Path:
    """Overlay several runs: return, episode length and success rate against interactions."""
    fig, axes = new_figure(1, 3, size=(18, 5.5))
    labels = list(labels) if labels else [str(f) for f in folders]
    for folder, label in zip(folders, labels):
        rows = load_rows(folder)
        prefix = "valid" if "valid_return" in rows[0] else "train"
        x = _cumulative_interactions(rows)
        for ax, key in zip(axes, ("return", "length", "success")):
            ax.plot(x, rolling_mean(_series(rows, f"{prefix}_{key}")), lw=1.8, label=label)
    for ax, label in zip(axes, ("return per episode", "episode length [steps]", "success rate")):
        ax.set_xlabel("environment interactions")
        ax.set_ylabel(f"{label} (rolling mean of {ROLLING})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("comparison of runs")
    return save_figure(fig, path)


MANY_TASKS = 12  # above this, one line per task gives way to statistics over tasks


def _distribution_progress(axes, rows: list[dict[str, Any]], label: str, colour: str,
                           limit_ratios: dict[int, float]) -> None:
    """Many tasks: fraction of tasks at >= 95 % success; median and 10-90 % band of the length ratio."""
    points = sorted({r["batch"] for r in rows})
    x, solved, median, low, high = [], [], [], [], []
    for batch in points:
        at = [r for r in rows if r["batch"] == batch]
        ratios = np.array([r["length_ratio_benchmark"] for r in at])
        x.append(float(np.median([r["interactions"] for r in at])))
        solved.append(float(np.mean([r["policy_success_rate"] >= 0.95 for r in at])))
        median.append(float(np.median(ratios)))
        low.append(float(np.percentile(ratios, 10)))
        high.append(float(np.percentile(ratios, 90)))
    tasks = len({r["task_id"] for r in rows})
    axes[0].plot(x, solved, "-o", color=colour, ms=4, label=f"{label}: fraction of {tasks} tasks at >= 95 %")
    axes[1].plot(x, median, "-o", color=colour, ms=4, label=f"{label}: median over tasks (band 10-90 %)")
    axes[1].fill_between(x, low, high, color=colour, alpha=0.2)
    for r in rows:
        limit_ratios[r["task_id"]] = r["limit_mean_length"] / r["benchmark_mean_length"]


def adaptation_progress_figure(folders: Sequence[Path], path: Path, labels: Sequence[str] | None = None,
                               reference_labels: Mapping[str, str] | None = None) -> Path:
    """Success rate and episode length / benchmark per task against interactions (test.py runs).

    With more than ``MANY_TASKS`` tasks in a run, its lines show statistics over tasks (per
    task interactions: median) instead of one line per task. ``reference_labels`` names the
    family's ``benchmark`` and ``limit`` references (``FigureStyle.reference_labels``).
    """
    names = {"benchmark": "benchmark", "limit": "limit controller", **(reference_labels or {})}
    fig, axes = new_figure(1, 2, size=(15, 5.5))
    labels = list(labels) if labels else [Path(f).parent.name + "/" + Path(f).name for f in folders]
    styles = ["-o", "--s", ":^", "-.v"]
    limit_ratios: dict[int, float] = {}
    for index, (folder, label) in enumerate(zip(folders, labels)):
        rows = read_metrics(Path(folder) / "evaluations.jsonl")
        if len({r["task_id"] for r in rows}) > MANY_TASKS:
            _distribution_progress(axes, rows, label, f"C{index}", limit_ratios)
            continue
        for k, task_id in enumerate(sorted({r["task_id"] for r in rows})):
            task_rows = [r for r in rows if r["task_id"] == task_id]
            x = [r["interactions"] for r in task_rows]
            style = styles[index % len(styles)]
            axes[0].plot(x, [r["policy_success_rate"] for r in task_rows], style, color=f"C{k}", ms=4,
                         label=f"{label} task {task_id}")
            axes[1].plot(x, [r["length_ratio_benchmark"] for r in task_rows], style, color=f"C{k}", ms=4)
            limit_ratios[task_id] = task_rows[-1]["limit_mean_length"] / task_rows[-1]["benchmark_mean_length"]
    axes[1].axhline(1.0, color="k", ls="--", lw=1, label=names["benchmark"])
    if limit_ratios:
        axes[1].axhline(float(np.mean(list(limit_ratios.values()))), color="k", ls=":", lw=1,
                        label=f"{names['limit']} (mean over tasks)")
    axes[0].set_ylabel("success rate (many tasks: fraction of tasks at >= 95 %)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylabel(f"mean episode length / {names['benchmark']}'s")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("environment interactions during adaptation")
        ax.grid(alpha=0.3, which="both")
        ax.set_xscale("symlog", linthresh=1000)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))  # not 6.489x10^2
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].legend(fontsize=8)
    fig.suptitle("adaptation progress (deterministic actions)")
    return save_figure(fig, path)
