"""Spread over training seeds: median and range of evaluation results of several runs.

One meta-training seed is one sample of what a user gets from a config. This command
reads the result files of the same evaluation applied to the policies of several seeds
and prints, for every statistic, the median and the range (min to max) over them::

    python -m maml_rl.seed_spread s1/run_maml/evaluation.json s2/... s3/...   # run_maml.py results
    python -m maml_rl.seed_spread s1/test/summary.jsonl s2/... --batch 5       # test.py, after 5 batches

Accepted files: ``evaluation.json`` of ``run_maml.py`` (distribution summary with
``--random-tasks``, else per-task results on the evaluation tasks) and ``summary.jsonl``
of ``test.py --random-tasks`` (the row of ``--batch``, by default the last one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from maml_rl.cli import run_main

STATISTICS = (("fraction_ge_95", "tasks >= 95 %", "pct"), ("fraction_100", "tasks 100 %", "pct"),
              ("worst_success", "worst task", "pct"), ("ratio_benchmark_median", "length/benchmark median", "num"),
              ("ratio_benchmark_p90", "p90", "num"), ("ratio_benchmark_max", "max", "num"))
TASK_STATISTICS = (("policy_success_rate", "success", "pct"), ("length_ratio_benchmark", "length/benchmark", "num"))


class SpreadError(ValueError):
    """A result file is missing, malformed, or the files do not describe the same evaluation."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpreadError(f"{path} is not JSON ({exc.msg}, line {exc.lineno})") from None


def read_result(path: Path, batch: int | None = None) -> dict[str, Any]:
    """``{"summary": {controller: stats}}`` or ``{"tasks": {task_id: row}}`` from one result file."""
    if path.suffix == ".jsonl":
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise SpreadError(f"{path} is not JSON lines ({exc.msg}, line {exc.lineno})") from None
        if not rows or "policy" not in rows[0]:
            raise SpreadError(f"{path} holds no distribution summaries (a test.py --random-tasks summary.jsonl?)")
        chosen = rows[-1] if batch is None else next((r for r in rows if r.get("batch") == batch), None)
        if chosen is None:
            raise SpreadError(f"{path} has no evaluation after batch {batch} (has {[r.get('batch') for r in rows]})")
        return {"summary": {k: v for k, v in chosen.items() if isinstance(v, dict)}, "batch": chosen.get("batch")}
    data = _read_json(path)
    if not isinstance(data, dict) or "tasks" not in data:
        raise SpreadError(f"{path} is not an evaluation.json of run_maml.py")
    if data.get("summary"):
        return {"summary": data["summary"]}
    return {"tasks": {int(row["task_id"]): row for row in data["tasks"]}}


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    array = np.asarray(values, dtype=float)
    return float(np.median(array)), float(array.min()), float(array.max())


def _cell(values: Sequence[float], kind: str) -> str:
    median, low, high = spread(values)
    if kind == "pct":
        return f"{100 * median:.1f} % ({100 * low:.1f}-{100 * high:.1f})"
    return f"{median:.2f} ({low:.2f}-{high:.2f})"


def _table(first: str, statistics: Sequence[tuple[str, str, str]],
           rows: Sequence[tuple[Any, Sequence[Mapping[str, float]]]]) -> str:
    """Markdown table: one row per (label, one mapping of statistics per result)."""
    lines = [f"| {first} | " + " | ".join(label for _, label, _ in statistics) + " |",
             "|---" * (len(statistics) + 1) + "|"]
    for label, per_result in rows:
        cells = [_cell([values[key] for values in per_result], kind) for key, _, kind in statistics]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per controller, cells median (min-max) over the results."""
    controllers = [c for c in results[0]["summary"] if all(c in r["summary"] for r in results)]
    return _table("controller", STATISTICS, [(c, [r["summary"][c] for r in results]) for c in controllers])


def task_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per evaluation task, cells median (min-max) over the results."""
    ids = sorted(results[0]["tasks"])
    if any(sorted(r["tasks"]) != ids for r in results):
        raise SpreadError("the files evaluate different tasks")
    return _table("task", TASK_STATISTICS, [(t, [r["tasks"][t] for r in results]) for t in ids])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="result files, one per training seed")
    parser.add_argument("--batch", type=int, default=None, help="test.py evaluation point (default: the last)")
    args = parser.parse_args(argv)
    try:
        results = [read_result(path, args.batch) for path in args.files]
        kinds = {"summary" in r for r in results}
        if len(kinds) != 1:
            raise SpreadError("mix of distribution summaries and per-task results; give files of one evaluation")
        table = summary_table(results) if kinds == {True} else task_table(results)
    except (KeyError, TypeError, ValueError) as exc:  # SpreadError, JSON errors, rows without a field
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"error: {detail}", file=sys.stderr)
        return 2
    print(f"{len(results)} results, cells: median (min-max)")
    print(table)
    return 0


if __name__ == "__main__":
    run_main(main)
