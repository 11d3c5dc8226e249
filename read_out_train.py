#!/usr/bin/env python
"""Plot the progress of a run from its metrics file.

    python read_out_train.py                                  # awake/maml/train
    python read_out_train.py --experiment-name run2 --follow  # live view of a running training
    python read_out_train.py --compare awake/maml/test awake/random/test

Writes <run folder>/progress.png (or --output). --follow re-reads the metrics every
--interval seconds until interrupted. --compare overlays several run folders in one figure.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Sequence

from maml_rl.cli import add_run_arguments, run_main
from maml_rl.plotting import enable_show, show_all
from maml_rl.progress import adaptation_progress_figure, compare_figure, training_figure
from maml_rl.runio import RunFolderError, run_folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, experiment_type="train")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="RUN", help="run folders to overlay")
    parser.add_argument("--labels", nargs="+", help="legend labels for --compare")
    parser.add_argument("--output", type=Path, help="figure file (default: in the run folder)")
    parser.add_argument("--follow", action="store_true", help="keep refreshing while the run writes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes (default: 10)")
    parser.add_argument("--show", action="store_true", help="also open the figure in a window")
    args = parser.parse_args(argv)
    if args.show:
        enable_show()
    if args.labels and (not args.compare or len(args.labels) != len(args.compare)):
        parser.error("--labels needs one label per --compare run")

    def draw() -> Path:
        if args.compare:
            output = args.output or Path("comparison.png")
            if all((folder / "evaluations.jsonl").is_file() for folder in args.compare):
                adaptation_progress_figure(args.compare, output.with_name(output.stem + "_evaluations.png"),
                                           args.labels)
            return compare_figure(args.compare, output, args.labels)
        folder = run_folder(args.output_folder, args.experiment_name, args.experiment_type)
        if not folder.is_dir():
            raise RunFolderError(f"no run folder at {folder}")
        return training_figure(folder, args.output or folder / "progress.png")

    figure = draw()
    print(f"figure: {figure}")
    if args.follow:
        # Ctrl-C sets a flag instead of raising: a KeyboardInterrupt raised inside matplotlib's
        # drawing can be swallowed by library code (seen under load), and the loop never ended.
        interrupted: list[int] = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
        try:
            while not interrupted:
                time.sleep(args.interval)
                if interrupted:
                    break
                draw()
                if args.show:
                    import matplotlib.pyplot as plt

                    plt.pause(0.1)
        finally:
            signal.signal(signal.SIGINT, previous)
        print("stopped following")
        return 0
    show_all()
    return 0


if __name__ == "__main__":
    run_main(main)
