#!/usr/bin/env python
"""Search meta-training hyper-parameters with Ray Tune (ASHA early stopping).

    python tune.py                                          # 8 trials x 100 batches -> awake/maml/tune/
    python tune.py --num-samples 16 --num-batches 200 --max-concurrent 4 --experiment-name search1
    python tune.py --search-space my_space.yaml --config configs/awake.yaml
    python tune.py --resume --experiment-name search1       # continue an interrupted search
    python tune.py --ray-address auto                       # run the trials on a running Ray cluster

Every trial meta-trains the base config (--config) with the sampled hyper-parameters in its
own run folder (<search>/trials/<trial id>/train); every --eval-every batches it adapts the
meta-policy to --validation-tasks fixed tasks drawn from the task distribution with --seed
(never the evaluation tasks) and reports val_return and val_success. ASHA stops trials on
val_return. Outputs: <search>/results.csv, curves.png, best_config.yaml (for train.py --config).
Needs the extra 'ray' (pip install -e '.[ray]').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from maml_rl.cli import add_run_arguments, positive_int, run_main
from maml_rl.config import load_config
from maml_rl.runio import run_folder

DEFAULT_CONFIG = Path("configs/awake.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"base training config the trials vary (default: {DEFAULT_CONFIG})")
    parser.add_argument("--search-space", type=Path, metavar="YAML",
                        help="search space file (default: maml_rl/distributed/search_space.py DEFAULT_SPACE, "
                             "centred on configs/awake.yaml)")
    add_run_arguments(parser, experiment_type="tune")
    parser.add_argument("--num-samples", type=positive_int, default=8, help="trials (default: 8)")
    parser.add_argument("--num-batches", type=positive_int, default=100,
                        help="meta-batches per trial, the budget (default: 100)")
    parser.add_argument("--max-concurrent", type=positive_int, default=2,
                        help="trials at once, one core each (default: 2)")
    parser.add_argument("--validation-tasks", type=positive_int, default=8, metavar="N",
                        help="validation tasks (default: 8)")
    parser.add_argument("--validation-episodes", type=positive_int, default=20,
                        help="evaluation episodes per validation task (default: 20)")
    parser.add_argument("--eval-every", type=positive_int, default=10, metavar="R",
                        help="score and report every R meta-batches and after the last (default: 10)")
    parser.add_argument("--grace-period", type=positive_int,
                        help="ASHA: meta-batches before a trial can be stopped (default: --eval-every)")
    parser.add_argument("--reduction-factor", type=int, default=3,
                        help="ASHA: keep the best 1/factor at every rung (default: 3)")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="join this Ray cluster (host:port or auto); default: a local Ray with "
                             "--max-concurrent cores for the search")
    parser.add_argument("--tensorboard", action="store_true",
                        help="every trial also writes TensorBoard events (training and validation scores)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted search in the search folder (Tune's restore; the search's "
                             "stored settings apply, the options above except --ray-address are ignored)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing search folder")
    args = parser.parse_args(argv)
    if args.experiment_type != "tune":
        parser.error("tune.py always writes to experiment type 'tune'")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    from maml_rl.distributed.runtime import import_ray

    import_ray("tune.py")  # one error line naming the extra, before any file is written
    from maml_rl.distributed import require

    require("ray.tune", "ray", "tune.py")
    from maml_rl.distributed.search_space import DEFAULT_SPACE, load_space, space_to_dict
    from maml_rl.distributed.tune import SearchSettings, prepare_search, run_search
    from maml_rl.distributed.tune_report import finished, format_records, write_outputs
    from maml_rl.tracking import check_extras

    check_extras("", args.tensorboard)
    folder = run_folder(args.output_folder, args.experiment_name, "tune")
    settings = None
    if not args.resume:
        space = load_space(args.search_space) if args.search_space is not None else DEFAULT_SPACE
        settings = SearchSettings(
            base=load_config(args.config).to_yaml_dict(), space=space_to_dict(space), num_samples=args.num_samples,
            num_batches=args.num_batches, max_concurrent=args.max_concurrent, seed=args.seed,
            validation_tasks=args.validation_tasks, validation_episodes=args.validation_episodes,
            eval_every=args.eval_every, grace_period=args.grace_period or args.eval_every,
            reduction_factor=args.reduction_factor, tensorboard=args.tensorboard)
    settings = prepare_search(settings, folder, args.resume, args.overwrite)
    where = run_search(settings, folder, resume=args.resume, ray_address=args.ray_address)
    records, best = write_outputs(where, settings)
    print(format_records(records, settings.num_batches))
    print(f"results: {where / 'results.csv'}\ncurves:  {where / 'curves.png'}")
    if best is not None:
        print(f"best:    {where / 'best_config.yaml'} (trial {best.trial_id})")
    if not finished(records, settings):
        print(f"the search was interrupted; continue it with python tune.py --resume --output-folder "
              f"{args.output_folder} --experiment-name {args.experiment_name}", file=sys.stderr)
        return 130
    failed = [r.trial_id for r in records if r.status == "ERROR"]
    if failed:
        print(f"error: trial(s) {', '.join(failed)} failed; see their error files in {where / 'ray'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
