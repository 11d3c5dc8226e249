"""The outputs of a ``tune.py`` search: results table, curves figure, best config.

``results.csv`` has one row per trial: its id and Tune status, the sampled hyper-parameters,
the meta-batches it ran and whether ASHA stopped it early, its last and best validation
scores (``val_return``, ``val_success``) and its run folder. ``curves.png`` shows every
trial's validation scores against the meta-batch. ``best_config.yaml`` is the best trial's
full training config, which ``train.py --config`` accepts (its ``num-batches`` is the
search's budget per trial: raise it for a full training).

The best trial is the one that ran the most meta-batches (ASHA keeps the promising ones
longest, and a score after more training is not comparable to one after less), then the
highest last ``val_return``, then the highest last ``val_success``.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from matplotlib.ticker import MaxNLocator

from maml_rl.distributed.search_space import flatten, key_name
from maml_rl.distributed.tune import METRIC, TRIALS_FOLDER, TUNE_FOLDER, VALIDATION_FILE, SearchSettings
from maml_rl.plotting import new_figure, save_figure
from maml_rl.runio import atomic_write_text, read_metrics, write_yaml
from maml_rl.utils.yaml_files import load_yaml

TABLE_FILE, FIGURE_FILE, BEST_FILE = "results.csv", "curves.png", "best_config.yaml"


@dataclass
class TrialRecord:
    """One trial as the outputs show it."""

    trial_id: str
    status: str
    sample: dict[str, Any]  # dimension name -> value
    batches: int  # meta-batches completed
    validation: list[dict[str, Any]]  # the rows the trial reported
    folder: Path

    def last(self, key: str) -> float | None:
        return self.validation[-1][key] if self.validation else None

    def best(self, key: str) -> float | None:
        return max(row[key] for row in self.validation) if self.validation else None

    def stopped_early(self, budget: int) -> bool:
        """Stopped by the scheduler before the budget (a finished trial with fewer batches)."""
        return self.status == "TERMINATED" and self.batches < budget


def _value(value: Any) -> Any:
    return "x".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def collect(folder: Path) -> list[TrialRecord]:
    """Every trial of the search in ``folder``, in Tune's order (pending ones with 0 batches)."""
    from ray.tune import ExperimentAnalysis

    # Its warnings about trials without results yet (pending ones) are not news here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    trials = ExperimentAnalysis(str(folder / TUNE_FOLDER)).trials
    records = []
    for trial in sorted(trials, key=lambda t: t.trial_id):
        own = folder / TRIALS_FOLDER / trial.trial_id
        metrics = own / "train" / "metrics.jsonl"
        validation = own / VALIDATION_FILE
        records.append(TrialRecord(
            trial_id=trial.trial_id, status=str(trial.status),
            sample={key_name(path): _value(v) for path, v in flatten(trial.config)},
            batches=len(read_metrics(metrics, tolerate_torn_tail=True)) if metrics.is_file() else 0,
            validation=read_metrics(validation, tolerate_torn_tail=True) if validation.is_file() else [],
            folder=own / "train"))
    return records


def finished(records: Sequence[TrialRecord], settings: SearchSettings) -> bool:
    """Whether every trial of the search has ended (an interrupted search has pending ones)."""
    return len(records) == settings.num_samples and all(r.status in ("TERMINATED", "ERROR") for r in records)


def best_trial(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The best trial with at least one score (see the module doc), or ``None``."""
    scored = [r for r in records if r.validation]
    if not scored:
        return None
    return max(scored, key=lambda r: (r.batches, r.last(METRIC), r.last("val_success")))


def write_table(records: Sequence[TrialRecord], budget: int, path: Path) -> None:
    names = list(dict.fromkeys(name for r in records for name in r.sample))
    columns = ["trial_id", "status", *names, "batches", "stopped_early", "last_val_return", "last_val_success",
               "best_val_return", "best_val_success", "run_folder"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({"trial_id": r.trial_id, "status": r.status, **r.sample, "batches": r.batches,
                         "stopped_early": r.stopped_early(budget), "last_val_return": r.last("val_return"),
                         "last_val_success": r.last("val_success"), "best_val_return": r.best("val_return"),
                         "best_val_success": r.best("val_success"), "run_folder": str(r.folder)})
    atomic_write_text(path, out.getvalue())


def curves_figure(records: Sequence[TrialRecord], best: TrialRecord | None, path: Path) -> Path:
    """Validation return and success against the meta-batch, one line per trial (the best bold)."""
    fig, (ax_return, ax_success) = new_figure(1, 2, size=(11.0, 4.5))
    for index, r in enumerate(records):
        if not r.validation:
            continue
        batches = [row["batch"] for row in r.validation]
        style = {"lw": 2.5, "zorder": 3} if r is best else {"lw": 1.0, "alpha": 0.7}
        label = f"{r.trial_id.rsplit('_', 1)[-1]}" + (" (best)" if r is best else "")
        ax_return.plot(batches, [row["val_return"] for row in r.validation], marker="o", ms=3,
                       color=f"C{index % 10}", label=label, **style)
        ax_success.plot(batches, [row["val_success"] for row in r.validation], marker="o", ms=3,
                        color=f"C{index % 10}", **style)
    for ax in (ax_return, ax_success):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_return.set(xlabel="meta-batch", ylabel="validation return after adaptation (ASHA metric)")
    ax_success.set(xlabel="meta-batch", ylabel="validation success after adaptation", ylim=(-0.02, 1.02))
    if any(r.validation for r in records):
        ax_return.legend(fontsize="small", title="trial")
    fig.suptitle(f"Ray Tune search: {len(records)} trials, ASHA on {METRIC}")
    return save_figure(fig, path)


def write_outputs(folder: Path, settings: SearchSettings) -> tuple[list[TrialRecord], TrialRecord | None]:
    """``results.csv``, ``curves.png`` and (if any trial scored) ``best_config.yaml`` in ``folder``."""
    records = collect(folder)
    best = best_trial(records)
    write_table(records, settings.num_batches, folder / TABLE_FILE)
    curves_figure(records, best, folder / FIGURE_FILE)
    if best is not None:
        write_yaml(folder / BEST_FILE, load_yaml(best.folder.parent / "config.yaml", RuntimeError, "trial config"))
    return records, best


def format_records(records: Sequence[TrialRecord], budget: int) -> str:
    """A short text table for the terminal."""
    lines = [f"{'trial':>14s} {'status':>10s} {'batches':>7s} {'early':>5s} {'val_return':>10s} {'val_success':>11s}"]
    for r in records:
        ret, success = r.last("val_return"), r.last("val_success")
        early = "yes" if r.stopped_early(budget) else "no"
        ret_text = "-" if ret is None else f"{ret:.2f}"
        success_text = "-" if success is None else f"{success:.2f}"
        lines.append(f"{r.trial_id:>14s} {r.status:>10s} {r.batches:7d} {early:>5s} {ret_text:>10s} "
                     f"{success_text:>11s}")
    return "\n".join(lines)
