"""Tasks of the ARES-EA problem: one task = one incoming beam and one set of misalignments.

Neither is observed by the agent; both are fixed for the task. The distribution draws
every quantity independently and uniformly:

==========================  ==========================
energy                      80-160 MeV
mu_x, mu_y                  +-1 mm
mu_px, mu_py                +-0.1 mrad
sigma_x, sigma_y            10-500 um
sigma_px, sigma_py          1-50 urad
sigma_tau                   1-50 um
sigma_p                     1e-4 - 1e-3
misalignments (x, y) of     +-0.5 mm
AREAMQZM1-3 and AREABSCR1
==========================  ==========================

Evaluation tasks live in ``configs/ares_ea_evaluation_tasks.yaml`` as readable values.
This module does not need Cheetah.

Command line::

    python -m maml_rl.families.ares_ea.tasks                          # print the evaluation tasks
    python -m maml_rl.families.ares_ea.tasks --generate --seed 1      # regenerate the task file
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import yaml

# One error type and one id lookup for every family's task files (the CLI reports TaskFileError in one line).
from maml_rl.envs.tasks import TaskFileError, select_tasks  # noqa: F401  (select_tasks re-exported)
from maml_rl.families.ares_ea.segment import BEAM_PARAMETERS, MISALIGNED
from maml_rl.utils.yaml_files import load_yaml

BEAM_RANGES: dict[str, tuple[float, float]] = {
    "energy": (80e6, 160e6),
    "mu_x": (-1e-3, 1e-3), "mu_px": (-1e-4, 1e-4), "mu_y": (-1e-3, 1e-3), "mu_py": (-1e-4, 1e-4),
    "sigma_x": (1e-5, 5e-4), "sigma_px": (1e-6, 5e-5), "sigma_y": (1e-5, 5e-4), "sigma_py": (1e-6, 5e-5),
    "sigma_tau": (1e-6, 5e-5), "sigma_p": (1e-4, 1e-3),
}
MISALIGNMENT_RANGE = 5e-4
POSITIVE = ("energy", "sigma_x", "sigma_px", "sigma_y", "sigma_py", "sigma_tau", "sigma_p")
N_MISALIGNMENTS = 2 * len(MISALIGNED)
SIGNIFICANT_DIGITS = 4  # of the values written to a task file
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TASK_FILE = REPO_ROOT / "configs" / "ares_ea_evaluation_tasks.yaml"


@dataclass(frozen=True, eq=True)
class AresTask:
    """A task: an id, the incoming beam and the misalignments.

    Attributes
    ----------
    id
        Task id.
    incoming_beam
        11 values in ``BEAM_PARAMETERS`` order: energy [eV], mu_x [m], mu_px [rad], mu_y [m],
        mu_py [rad], sigma_x [m], sigma_px [rad], sigma_y [m], sigma_py [rad], sigma_tau [m],
        sigma_p [1]; an uncorrelated beam.
    misalignments
        8 values: (x, y) [m] of AREAMQZM1, AREAMQZM2, AREAMQZM3, AREABSCR1.
    """

    id: int
    incoming_beam: tuple[float, ...]
    misalignments: tuple[float, ...]

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (int, np.integer)):
            raise ValueError(f"task id must be an integer, got {self.id!r}")
        beam = np.asarray(self.incoming_beam, dtype=float)
        shifts = np.asarray(self.misalignments, dtype=float)
        if beam.shape != (len(BEAM_PARAMETERS),):
            raise ValueError(f"incoming_beam must hold {len(BEAM_PARAMETERS)} values ({', '.join(BEAM_PARAMETERS)}), "
                             f"got shape {beam.shape}")
        if shifts.shape != (N_MISALIGNMENTS,):
            raise ValueError(f"misalignments must hold {N_MISALIGNMENTS} values, got shape {shifts.shape}")
        for name, value in zip(BEAM_PARAMETERS, beam):
            if not np.isfinite(value):
                raise ValueError(f"incoming beam {name} must be finite, got {value!r}")
            if name in POSITIVE and value <= 0:
                raise ValueError(f"incoming beam {name} must be positive, got {value!r}")
        if not np.all(np.isfinite(shifts)):
            raise ValueError(f"misalignments must be finite, got {shifts.tolist()}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "incoming_beam", tuple(float(v) for v in beam))
        object.__setattr__(self, "misalignments", tuple(float(v) for v in shifts))

    @classmethod
    def nominal(cls, task_id: int = 0) -> "AresTask":
        """The centre of the task distribution: centred beam, mid-range sizes, magnets aligned."""
        centre = {name: 0.5 * (low + high) for name, (low, high) in BEAM_RANGES.items()}
        return cls(task_id, tuple(centre[name] for name in BEAM_PARAMETERS), (0.0,) * N_MISALIGNMENTS)

    @property
    def beam(self) -> dict[str, float]:
        return dict(zip(BEAM_PARAMETERS, self.incoming_beam))

    @property
    def factors(self) -> tuple[float, ...]:
        """The task's 19 numbers, incoming beam then misalignments (what metrics rows store as
        ``task_factors``, as for every family; ``from_factors`` inverts it)."""
        return self.incoming_beam + self.misalignments

    @classmethod
    def from_factors(cls, task_id: int, factors: Sequence[float]) -> "AresTask":
        """The task with ``id`` and ``factors`` (``AresTask.factors``)."""
        values = tuple(float(v) for v in factors)
        n = len(BEAM_PARAMETERS)
        if len(values) != n + N_MISALIGNMENTS:
            raise ValueError(f"an ARES-EA task has {n + N_MISALIGNMENTS} factors, got {len(values)}")
        return cls(task_id, values[:n], values[n:])

    @property
    def misalignment(self) -> dict[str, tuple[float, float]]:
        """(x, y) [m] per misaligned element."""
        return {name: (self.misalignments[2 * i], self.misalignments[2 * i + 1]) for i, name in enumerate(MISALIGNED)}

    def renumbered(self, task_id: int) -> "AresTask":
        return AresTask(task_id, self.incoming_beam, self.misalignments)

    def as_dict(self, digits: int | None = None) -> dict[str, Any]:
        """Readable form (the task-file entry); ``digits`` rounds to significant digits."""
        def r(value: float) -> float:
            return float(f"{value:.{digits - 1}e}") if digits else value
        return {"id": self.id,
                "incoming_beam": {name: r(v) for name, v in self.beam.items()},
                "misalignments": {name: [r(x), r(y)] for name, (x, y) in self.misalignment.items()}}


def task_arrays(tasks: Sequence[AresTask]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 11) incoming-beam parameters and (n, 8) misalignments of ``tasks``."""
    return (np.array([t.incoming_beam for t in tasks], dtype=float).reshape(-1, len(BEAM_PARAMETERS)),
            np.array([t.misalignments for t in tasks], dtype=float).reshape(-1, N_MISALIGNMENTS))


def sample_tasks(rng: np.random.Generator, n: int, first_id: int = 0) -> list[AresTask]:
    """Draw ``n`` tasks from the task distribution (ids ``first_id``, ``first_id + 1``, ...).

    Every task is usable: with all magnets off the beam lands within 1.2 mm (+0.5 mm screen
    offset) of the screen centre, inside the sensor (+-4.06 mm x +-2.50 mm).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of tasks must be a non-negative integer, got {n!r}")
    low = np.array([BEAM_RANGES[name][0] for name in BEAM_PARAMETERS])
    high = np.array([BEAM_RANGES[name][1] for name in BEAM_PARAMETERS])
    beams = rng.uniform(low, high, size=(n, len(BEAM_PARAMETERS)))
    shifts = rng.uniform(-MISALIGNMENT_RANGE, MISALIGNMENT_RANGE, size=(n, N_MISALIGNMENTS))
    return [AresTask(first_id + i, tuple(beams[i]), tuple(shifts[i])) for i in range(n)]


# ----------------------------------------------------------------------------- task files

def generate_evaluation_tasks(seed: int, n_random: int = 4) -> list[AresTask]:
    """Task 0 = ``AresTask.nominal``, then ``n_random`` draws, rounded to readable values."""
    drawn = sample_tasks(np.random.default_rng(seed), n_random, first_id=1)
    return [AresTask.nominal(0)] + [_task_from_entry(t.as_dict(SIGNIFICANT_DIGITS), "generated") for t in drawn]


class _Pair(list):
    """A list written in flow style ([x, y]) by ``_TaskDumper``."""


class _TaskDumper(yaml.SafeDumper):
    pass


_TaskDumper.add_representer(_Pair, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def write_task_file(tasks: Iterable[AresTask], path: Path, seed: int | None = None) -> None:
    header = (
        "# Evaluation tasks of the ARES-EA problem: incoming beam (energy [eV], mu_x, mu_y [m],\n"
        "# mu_px, mu_py [rad], sigma_x, sigma_y [m], sigma_px, sigma_py [rad], sigma_tau [m],\n"
        "# sigma_p [1]) and misalignments [x, y] [m] of the three quadrupoles and the screen.\n"
        "# Task 0 is the centre of the task distribution with aligned magnets; the others were\n"
        f"# drawn once from the distribution and rounded to {SIGNIFICANT_DIGITS} significant digits.\n"
        "# Regenerate with: python -m maml_rl.families.ares_ea.tasks --generate --seed SEED\n"
    )
    entries = []
    for task in tasks:
        entry = task.as_dict(SIGNIFICANT_DIGITS)
        entry["misalignments"] = {name: _Pair(pair) for name, pair in entry["misalignments"].items()}
        entries.append(entry)
    body = {"seed": seed, "tasks": entries}
    Path(path).write_text(header + yaml.dump(body, Dumper=_TaskDumper, sort_keys=False))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # YAML 1.1 reads 1.2e8 (exponent without a sign) as a string.
        hint = " (YAML needs a signed exponent: 1.2e+8)" if isinstance(value, str) and "e" in value.lower() else ""
        raise TaskFileError(f"{where} must be a number, got {value!r}{hint}")
    return float(value)


def _task_from_entry(entry: Any, where: str) -> AresTask:
    keys = {"id", "incoming_beam", "misalignments"}
    if not isinstance(entry, dict) or set(entry) != keys:
        raise TaskFileError(f"{where}: each task needs exactly the keys {', '.join(sorted(keys))}")
    task_id = entry["id"]
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise TaskFileError(f"{where}: id must be an integer, got {task_id!r}")
    beam, shifts = entry["incoming_beam"], entry["misalignments"]
    if not isinstance(beam, dict):
        raise TaskFileError(f"{where}: 'incoming_beam' must map parameter names to numbers")
    unknown = sorted(set(map(str, beam)) - set(BEAM_PARAMETERS))
    missing = [name for name in BEAM_PARAMETERS if name not in beam]
    if unknown:
        raise TaskFileError(f"{where}: unknown beam parameter(s) {', '.join(unknown)}")
    if missing:
        raise TaskFileError(f"{where}: missing beam parameter(s) {', '.join(missing)}")
    if not isinstance(shifts, dict):
        raise TaskFileError(f"{where}: 'misalignments' must map element names to [x, y]")
    unknown = sorted(set(map(str, shifts)) - set(MISALIGNED))
    missing = [name for name in MISALIGNED if name not in shifts]
    if unknown:
        raise TaskFileError(f"{where}: unknown misaligned element(s) {', '.join(unknown)}")
    if missing:
        raise TaskFileError(f"{where}: missing misalignment(s) of {', '.join(missing)}")
    values = [_number(beam[name], f"{where}: incoming_beam.{name}") for name in BEAM_PARAMETERS]
    offsets: list[float] = []
    for name in MISALIGNED:
        pair = shifts[name]
        if not isinstance(pair, list) or len(pair) != 2:
            raise TaskFileError(f"{where}: misalignments.{name} must be a list [x, y], got {pair!r}")
        offsets += [_number(v, f"{where}: misalignments.{name}") for v in pair]
    try:
        return AresTask(task_id, tuple(values), tuple(offsets))
    except ValueError as exc:
        raise TaskFileError(f"{where}: {exc}") from None


def load_evaluation_tasks(path: str | Path | None = None) -> list[AresTask]:
    """Read and validate an evaluation-task file.

    Raises
    ------
    TaskFileError
        Missing file, bad YAML, wrong keys, duplicate or non-integer ids, unknown or missing
        beam parameters or elements, non-numeric, non-finite or non-positive values.
    """
    path = Path(path) if path is not None else DEFAULT_TASK_FILE
    raw = load_yaml(path, TaskFileError, "evaluation-task file")
    entries = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TaskFileError(f"{path}: expected a non-empty list under 'tasks'")
    tasks: list[AresTask] = []
    for k, entry in enumerate(entries):
        task = _task_from_entry(entry, f"{path}: task #{k}")
        if any(t.id == task.id for t in tasks):
            raise TaskFileError(f"{path}: task #{k}: id {task.id} is not unique")
        tasks.append(task)
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.families.ares_ea.tasks",
                                     description="Print or (re)generate the ARES-EA evaluation tasks.")
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--generate", action="store_true", help="(re)write the task file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="allow --generate to replace a file")
    args = parser.parse_args(argv)
    try:
        if args.generate:
            if args.tasks_file.exists() and not args.overwrite:
                raise TaskFileError(f"{args.tasks_file} exists; pass --overwrite to replace it")
            write_task_file(generate_evaluation_tasks(args.seed), args.tasks_file, seed=args.seed)
            print(f"wrote {args.tasks_file}")
        for task in load_evaluation_tasks(args.tasks_file):
            b = task.beam
            print(f"task {task.id}: E = {b['energy'] / 1e6:.1f} MeV, mu = ({b['mu_x'] * 1e3:+.3f}, "
                  f"{b['mu_y'] * 1e3:+.3f}) mm, sigma = ({b['sigma_x'] * 1e6:.0f}, {b['sigma_y'] * 1e6:.0f}) um, "
                  f"misalignments [um] = {', '.join(f'{v * 1e6:+.0f}' for v in task.misalignments)}")
    except (TaskFileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
