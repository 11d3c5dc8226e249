"""Shared command-line plumbing: common options and one-line errors for user mistakes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from maml_rl.agent_settings import SettingsError
from maml_rl.checkpoint import PolicyLoadError
from maml_rl.config import ConfigError
from maml_rl.distributed import ExtraMissingError
from maml_rl.envs.lattice import LatticeError
from maml_rl.envs.tasks import TaskFileError
from maml_rl.ppo_baseline import ModelFileError
from maml_rl.runio import RunFolderError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, TaskFileError, PolicyLoadError, RunFolderError,
                                                LatticeError, ModelFileError, SettingsError, ExtraMissingError)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser, experiment_type: str, experiment_name: str = "maml") -> None:
    """--output-folder, --experiment-name, --experiment-type, --seed."""
    group = parser.add_argument_group("run folder (<output-folder>/<experiment-name>/<experiment-type>)")
    group.add_argument("--output-folder", type=Path, default=Path("awake"), help="root of run folders (default: awake)")
    group.add_argument("--experiment-name", default=experiment_name, help=f"default: {experiment_name}")
    group.add_argument("--experiment-type", default=experiment_type, help=f"default: {experiment_type}")
    parser.add_argument("--seed", type=non_negative_int, default=1, help="seed of everything random (default: 1)")


def add_scale_out_arguments(parser: argparse.ArgumentParser, default_workers: int, default_sampler: str | None
                            = "vectorized", sampler_default_help: str = "vectorized") -> None:
    """--sampler, --num-workers, --ray-address, --tensorboard (train.py, test.py)."""
    from maml_rl.samplers import SAMPLERS

    parser.add_argument("--sampler", choices=SAMPLERS, default=default_sampler,
                        help=f"in-process vectorised, multiprocessing, or ray (extra 'ray'); default: "
                             f"{sampler_default_help}")
    parser.add_argument("--num-workers", type=positive_int, default=default_workers,
                        help=f"processes or Ray actors of the multiprocessing/ray sampler (default: {default_workers})")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="Ray sampler: join this cluster (host:port, or auto); default: start a local Ray "
                             "with --num-workers cores for the run")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files to <run folder>/tensorboard (extra 'tensorboard')")


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: what went wrong and on which path(s)."""
    reason = (exc.strerror or exc.__class__.__name__).lower()
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else f"{reason} ({exc})"


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a CLI entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        code = main(argv)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a user path that is a file, a folder, missing, read-only, full, ...
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)
