"""Figure of ``controller_table`` runs: success, steps and final distance of every controller.

    python -m maml_rl.families.ares_ea.controller_figure awake/ares_ea/controllers \\
        awake/ares_ea_random/controllers --titles "5 evaluation tasks" "20 held-out tasks" \\
        --output docs/ares_ea_controllers.png

One column per run folder; rows: success rate, mean steps (a failure counts ``max_time``)
and median final distance O (log scale, below 1 um drawn at 1 um), one bar or marker per success tolerance.
Single-task agents are drawn at the median over agents with a bar from the best to the
worst agent; the limit (knows the task) is drawn like every other controller.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from maml_rl.cli import run_main
from maml_rl.families.ares_ea.controller_table import read_records, summarise
from maml_rl.plotting import new_figure, save_figure

FLOOR_UM = 1.0  # final distances below 1 um are drawn at 1 um
ROWS = (("success rate [%]", 0, 100.0), ("mean steps", 1, 1.0), ("median final O [um]", 2, 1.0))


def tick_label(name: str) -> str:
    """A controller's name on lines of at most 13 characters (neighbouring labels do not overlap)."""
    return "\n".join(line for part in name.split(", ") for line in textwrap.wrap(part, 13, break_on_hyphens=False))


def controller_figure(runs: Sequence[list[dict]], titles: Sequence[str], path: Path) -> Path:
    """Draw the summaries of ``runs`` (the records of each ``controller_table`` run) into ``path``."""
    fig, axes = new_figure(len(ROWS), len(runs), size=(4.6 * len(runs), 7.2))
    axes = np.asarray(axes).reshape(len(ROWS), len(runs))
    for col, (records, title) in enumerate(zip(runs, titles)):
        thresholds = list(dict.fromkeys(r["threshold_um"] for r in records))
        names = list(dict.fromkeys(r["controller"] for r in records))
        width = 0.8 / len(thresholds)
        for j, um in enumerate(thresholds):
            summary = {name: runs_ for name, _, runs_ in summarise(records, um)}
            x = np.arange(len(names)) + (j - (len(thresholds) - 1) / 2) * width
            for row, (_label, index, scale) in enumerate(ROWS):
                ax = axes[row, col]
                values = [np.array([run[index] for run in summary.get(name, [])]) * scale for name in names]
                centre = np.array([np.median(v) if len(v) else np.nan for v in values])
                low = np.array([centre[i] - v.min() if len(v) > 1 else 0.0 for i, v in enumerate(values)])
                high = np.array([v.max() - centre[i] if len(v) > 1 else 0.0 for i, v in enumerate(values)])
                if row == 2:  # the limit often lands exactly (O ~ 1e-12 um): drawn at the 1 um floor
                    centre = np.maximum(centre, FLOOR_UM)
                    low = np.minimum(low, centre - FLOOR_UM)
                    ax.errorbar(x, centre, yerr=[low, high], fmt="o", color=f"C{j}", capsize=3, ms=4,
                                label=f"success within {um:g} um")
                    ax.axhline(um, color=f"C{j}", lw=0.6, ls="--")
                else:
                    ax.bar(x, centre, width * 0.9, yerr=[low, high], color=f"C{j}", capsize=3,
                           label=f"success within {um:g} um")
        for row, (label, _, _) in enumerate(ROWS):
            ax = axes[row, col]
            ax.set_xticks(np.arange(len(names)), [tick_label(n) for n in names], fontsize=7)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
        axes[0, col].set_title(title, fontsize=9)
        axes[0, col].set_ylim(0, 105)
        axes[2, col].set_yscale("log")
        axes[2, col].set_ylim(bottom=FLOOR_UM * 0.7)
        axes[0, col].legend(fontsize=7)
    return save_figure(fig, path, dpi=80)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.families.ares_ea.controller_figure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="controller_table run folders")
    parser.add_argument("--titles", nargs="+", help="one title per folder (default: the folder names)")
    parser.add_argument("--output", type=Path, required=True, help="PNG file")
    args = parser.parse_args(argv)
    titles = args.titles or [str(f) for f in args.folders]
    if len(titles) != len(args.folders):
        parser.error(f"--titles needs one title per folder ({len(args.folders)}), got {len(titles)}")
    controller_figure([read_records(f) for f in args.folders], titles, args.output)
    print(f"figure: {args.output}")
    return 0


if __name__ == "__main__":
    run_main(main)
