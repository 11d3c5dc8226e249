#!/usr/bin/env python
"""Meta-train the AWAKE steering meta-policy with MAML-TRPO.

    python train.py                                   # configs/awake.yaml -> awake/maml/train/
    python train.py --experiment-name run2 --seed 3
    python train.py --resume                          # continue an interrupted run
    python train.py --sampler ray --num-workers 4     # Ray actors (local Ray; --ray-address joins a cluster)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from maml_rl.cli import add_run_arguments, add_scale_out_arguments, positive_int, run_main
from maml_rl.runio import run_folder
from maml_rl.samplers import SamplerError
from maml_rl.training import TrainOptions, train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path,
                        help="training config (YAML; default: configs/awake.yaml, or the run's own with --resume)")
    add_run_arguments(parser, experiment_type="train")
    parser.set_defaults(seed=None)  # --resume takes the run's seed; a different one is refused
    parser.add_argument("--num-batches", type=positive_int, help="override the config's num-batches")
    add_scale_out_arguments(parser, default_workers=2)
    parser.add_argument("--save-progress-interval", type=positive_int, default=50,
                        help="keep a meta-policy checkpoint every N batches (default: 50)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--ls-threads", type=positive_int,
                        help="line-search trials evaluated at once in threads (small ones are stacked into one "
                             "pass, at least 2); the results do not depend on it (default: 2 if two cores are "
                             "usable, else 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.experiment_type != "train":
        parser.error("train.py always writes to experiment type 'train'")
    if args.ray_address is not None and args.sampler != "ray":
        parser.error("--ray-address needs --sampler ray")
    try:
        folder = train(TrainOptions(
            config=args.config, output_folder=args.output_folder, experiment_name=args.experiment_name,
            seed=args.seed, num_batches=args.num_batches, sampler=args.sampler, num_workers=args.num_workers,
            save_progress_interval=args.save_progress_interval, resume=args.resume, overwrite=args.overwrite,
            progress=not args.no_progress, threads=args.threads, ls_threads=args.ls_threads,
            ray_address=args.ray_address,
            tensorboard=args.tensorboard))
    except SamplerError as exc:  # a dead or failing worker: every completed batch is on disk
        where = run_folder(args.output_folder, args.experiment_name, "train")
        print(f"error: sampling failed: {exc}\nevery completed batch is kept in {where}; continue with "
              f"python train.py --resume --output-folder {args.output_folder} "
              f"--experiment-name {args.experiment_name}", file=sys.stderr)
        return 1
    print(f"meta-policy: {folder / 'policy.th'}\nmetrics:     {folder / 'metrics.jsonl'}")
    return 0


if __name__ == "__main__":
    run_main(main)
