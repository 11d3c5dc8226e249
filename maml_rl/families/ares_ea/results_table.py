"""Results table of ARES-EA adaptation runs (``test.py``): the policy against the references.

    python -m maml_rl.families.ares_ea.results_table awake/ares_ea/test

Reads the run's ``evaluations.jsonl`` (one row per task and evaluation point) and prints a
markdown table: for every task, the policy before adaptation (batch 0: the meta-policy
zero-shot), the policy after the last adaptation batch, the limit and Nelder-Mead, each as
success rate, mean steps (Nelder-Mead: interactions) and median final distance to the
target (the objective O = sum |b_i - t_i| at the episode's end, in um; Nelder-Mead: the best
on-screen O it measured). With several tasks a last row gives the mean success rate and
steps and the median over tasks of the per-task medians.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from maml_rl.cli import run_main
from maml_rl.runio import RunFolderError

CONTROLLERS = (("policy", "zero-shot"), ("policy", "adapted"), ("limit", "limit"), ("benchmark", "Nelder-Mead"))


def read_evaluations(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of the first (batch 0) and of the last evaluation point of a ``test.py`` run."""
    path = folder / "evaluations.jsonl"
    if not path.is_file():
        raise RunFolderError(f"{folder}: no evaluations.jsonl (not a test.py run folder?)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise RunFolderError(f"{path} holds no evaluations yet (is the run still computing the references?)")
    if "policy_median_final_distance" not in rows[0]:
        raise RunFolderError(f"{path}: no ARES-EA evaluations with final distances (rerun test.py on this version)")
    first, last = min(r["batch"] for r in rows), max(r["batch"] for r in rows)
    return [r for r in rows if r["batch"] == first], [r for r in rows if r["batch"] == last]


def _cells(row: dict[str, Any], name: str) -> list[float]:
    return [row[f"{name}_success_rate"], row[f"{name}_mean_length"], row[f"{name}_median_final_distance"] * 1e6]


def table(folder: Path) -> str:
    """The markdown table of one run folder (see the module docstring)."""
    before, after = read_evaluations(folder)
    batch, interactions = after[0]["batch"], sum(r["interactions"] for r in after)
    header = ["task"] + [f"{label}: {what}" for _, label in CONTROLLERS
                         for what in ("success", "steps", "final O [um]")]
    lines = [f"after {batch} adaptation batches ({interactions} interactions over {len(after)} tasks)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    values = []
    for start, end in zip(before, after):
        row = []
        for (name, _), source in zip(CONTROLLERS, (start, end, end, end)):
            row += _cells(source, name)
        values.append(row)
        lines.append(_format(str(start["task_id"]), row))
    if len(values) > 1:
        array = np.array(values)
        summary = [float(np.median(array[:, i])) if i % 3 == 2 else float(np.mean(array[:, i]))
                   for i in range(array.shape[1])]
        lines.append(_format(f"all {len(values)}", summary))
    return "\n".join(lines)


def _format(label: str, row: Sequence[float]) -> str:
    cells = []
    for i, v in enumerate(row):
        cells.append(f"{v:.0%}" if i % 3 == 0 else f"{v:.1f}" if i % 3 == 1 else f"{v:.0f}")
    return "| " + " | ".join([label] + cells) + " |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="test.py run folders")
    args = parser.parse_args(argv)
    for folder in args.folders:
        print(f"{folder}: {table(folder)}\n")
    return 0


if __name__ == "__main__":
    run_main(main)
