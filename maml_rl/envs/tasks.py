"""Tasks of the AWAKE steering problem: one task = one set of quadrupole scale factors.

The task distribution scales each of the 10 strength variables (or only the last
``num_random_quads`` of them) by an independent factor drawn from U(0.75, 1.25).
Evaluation tasks live in ``configs/evaluation_tasks.yaml`` as readable scale factors.

Command line::

    python -m maml_rl.envs.tasks --plot tasks.png          # heat maps of the evaluation tasks
    python -m maml_rl.envs.tasks --generate --seed 1        # regenerate the task file
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import yaml

from maml_rl.envs.dynamics import PLANES, RESET_KICK, admissible_initial_states
from maml_rl.envs.response import QUAD_VARIABLES, response_matrices, validate_factors
from maml_rl.utils.yaml_files import load_yaml

FACTOR_LOW, FACTOR_HIGH = 0.75, 1.25
MAX_RESPONSE_ENTRY = 20.0
# A task is admissible if at least this many of a fixed probe set of initial kicks are
# valid initial states (acceptance >~ 1e-3, so resets never exhaust their draws).
PROBE_SIZE, MIN_PROBE_HITS = 4096, 4
# The probe is read in chunks until MIN_PROBE_HITS are found: a typical task accepts about a
# third of the kicks, so the first chunk decides (about 30 us instead of 470 us per task on the
# machines of README "Speed", 5 % of a late meta-batch for its 8 draws).
PROBE_CHUNK = 256
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TASK_FILE = REPO_ROOT / "configs" / "evaluation_tasks.yaml"


class TaskFileError(ValueError):
    """An evaluation-task file is missing or malformed."""


@dataclass(frozen=True, eq=True)
class Task:
    """A task: an id and one scale factor per quadrupole variable (``QUAD_VARIABLES`` order).

    The response matrices are derived from the factors on first use and cached.
    """

    id: int
    factors: tuple[float, ...]

    def __post_init__(self) -> None:
        array, batched = validate_factors(np.asarray(self.factors, dtype=float))
        if batched:
            raise ValueError("a task holds one set of 10 factors, not a batch")
        object.__setattr__(self, "factors", tuple(float(f) for f in array[0]))
        object.__setattr__(self, "id", int(self.id))

    @classmethod
    def nominal(cls, task_id: int = 0) -> "Task":
        return cls(task_id, (1.0,) * len(QUAD_VARIABLES))

    @cached_property
    def response_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(R_h, R_v), each (10, 10) [m/rad]."""
        return response_matrices(np.asarray(self.factors))

    def response(self, plane: str = "horizontal") -> np.ndarray:
        """Response matrix of ``plane`` ("horizontal" or "vertical")."""
        if plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
        return self.response_matrices[PLANES.index(plane)]

    def renumbered(self, task_id: int) -> "Task":
        """The same optics under another id (keeps computed response matrices)."""
        task = Task(task_id, self.factors)
        if "response_matrices" in self.__dict__:
            task.__dict__["response_matrices"] = self.response_matrices
        return task

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "factors": dict(zip(QUAD_VARIABLES, self.factors))}

    def __getstate__(self) -> dict[str, Any]:
        # Keep pickles small: the cache is cheap to rebuild in a worker.
        return {"id": self.id, "factors": self.factors}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "id", state["id"])
        object.__setattr__(self, "factors", state["factors"])


@lru_cache(maxsize=1)
def _probe_kicks() -> np.ndarray:
    return np.random.default_rng(20_240_917).uniform(-RESET_KICK, RESET_KICK, size=(PROBE_SIZE, 10))


def is_admissible(task: Task, plane: str = "horizontal") -> bool:
    """Whether the reset distribution of ``task`` in ``plane`` has usable initial states.

    About 5 % of the tasks of U(0.75, 1.25)^10 (horizontal plane; more in the weaker
    vertical plane) respond so weakly or strongly that (almost) no kick in the reset box
    gives rms(obs) > 0.2 with all |obs| <= 0.95; those cannot start an episode. The probe is
    read chunk by chunk until enough kicks are admissible: the same verdict per kick (each is
    judged on its own row) and so the same decision as counting the whole probe (tested).
    """
    response, probe, hits = task.response(plane), _probe_kicks(), 0
    for start in range(0, PROBE_SIZE, PROBE_CHUNK):
        hits += int(admissible_initial_states(response, probe[start:start + PROBE_CHUNK]).sum())
        if hits >= MIN_PROBE_HITS:
            return True
    return False


def sample_factors(rng: np.random.Generator, n: int, num_random_quads: int = len(QUAD_VARIABLES)) -> np.ndarray:
    """(n, 10) factors: the last ``num_random_quads`` columns ~ U(0.75, 1.25), the rest 1."""
    if not 0 <= num_random_quads <= len(QUAD_VARIABLES):
        raise ValueError(f"num_random_quads must lie in [0, {len(QUAD_VARIABLES)}], got {num_random_quads}")
    factors = np.ones((n, len(QUAD_VARIABLES)))
    first = len(QUAD_VARIABLES) - num_random_quads
    factors[:, first:] = rng.uniform(FACTOR_LOW, FACTOR_HIGH, size=(n, num_random_quads))
    return factors


def make_tasks(factors: np.ndarray, first_id: int = 0) -> list[Task]:
    """Tasks for an (n, 10) factor array, with response matrices computed in one batch."""
    factors = np.atleast_2d(factors)
    rh, rv = response_matrices(factors)
    tasks = []
    for i, row in enumerate(factors):
        task = Task(first_id + i, tuple(row))
        task.__dict__["response_matrices"] = (rh[i], rv[i])  # prime the cached_property
        tasks.append(task)
    return tasks


def sample_tasks(rng: np.random.Generator, n: int, num_random_quads: int = len(QUAD_VARIABLES),
                 first_id: int = 0, plane: str = "horizontal") -> list[Task]:
    """Draw ``n`` admissible tasks (see ``is_admissible``) from the task distribution.

    Inadmissible draws are replaced by new draws from the same generator, i.e. the
    distribution is U(0.75, 1.25)^k conditioned on admissibility in ``plane``.
    """
    tasks: list[Task] = []
    while len(tasks) < n:
        for task in make_tasks(sample_factors(rng, n - len(tasks), num_random_quads)):
            if is_admissible(task, plane):
                tasks.append(task)
    return [t.renumbered(first_id + i) for i, t in enumerate(tasks)]


def responses_of(tasks: Sequence[Task], plane: str) -> np.ndarray:
    """(len(tasks), 10, 10) response matrices of ``plane``."""
    return np.stack([task.response(plane) for task in tasks])


# ----------------------------------------------------------------------------- task files

def generate_evaluation_tasks(seed: int, n_random: int = 4,
                              max_entry: float = MAX_RESPONSE_ENTRY) -> list[Task]:
    """Task 0 = nominal optics, then ``n_random`` admissible tasks (horizontal plane) from
    the distribution whose |R| entries (both planes) stay below ``max_entry``."""
    rng = np.random.default_rng(seed)
    tasks = [Task.nominal(0)]
    while len(tasks) < n_random + 1:
        candidate = sample_tasks(rng, 1, first_id=len(tasks))[0]
        if max(np.abs(r).max() for r in candidate.response_matrices) < max_entry:
            tasks.append(candidate)
    return tasks


def write_task_file(tasks: Iterable[Task], path: Path, seed: int | None = None) -> None:
    header = (
        "# Evaluation tasks of the AWAKE steering problem: scale factors on the quadrupole\n"
        "# strength variables (1.0 = nominal optics). Task 0 is the nominal optics; the others\n"
        "# were drawn once from the task distribution U(0.75, 1.25)^10, keeping only tasks that\n"
        "# admit initial states in the horizontal plane and whose response-matrix entries stay\n"
        f"# below {MAX_RESPONSE_ENTRY:g} in both planes.\n"
        "# Regenerate with: python -m maml_rl.envs.tasks --generate --seed SEED\n"
    )
    body = {"seed": seed, "tasks": [
        {"id": t.id, "factors": {k: round(v, 12) for k, v in t.as_dict()["factors"].items()}}
        for t in tasks]}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False))


def load_evaluation_tasks(path: str | Path | None = None) -> list[Task]:
    """Read and validate an evaluation-task file.

    Raises
    ------
    TaskFileError
        Missing file, bad YAML, duplicate or non-integer ids, unknown variable names,
        wrong number of factors, non-finite or non-positive factors.
    """
    path = Path(path) if path is not None else DEFAULT_TASK_FILE
    raw = load_yaml(path, TaskFileError, "evaluation-task file")
    entries = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TaskFileError(f"{path}: expected a non-empty list under 'tasks'")
    tasks, seen = [], set()
    for k, entry in enumerate(entries):
        where = f"{path}: task #{k}"
        if not isinstance(entry, dict) or set(entry) != {"id", "factors"}:
            raise TaskFileError(f"{where}: each task needs exactly the keys 'id' and 'factors'")
        task_id = entry["id"]
        if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id in seen:
            raise TaskFileError(f"{where}: id must be a unique integer, got {task_id!r}")
        seen.add(task_id)
        factors = entry["factors"]
        if not isinstance(factors, dict):
            raise TaskFileError(f"{where}: 'factors' must map variable names to numbers")
        unknown = sorted(set(map(str, factors)) - set(QUAD_VARIABLES))
        if unknown:
            raise TaskFileError(f"{where}: unknown variable(s) {', '.join(unknown)}")
        if len(factors) != len(QUAD_VARIABLES):
            raise TaskFileError(f"{where}: expected {len(QUAD_VARIABLES)} factors, got {len(factors)}")
        try:
            values = [factors[name] for name in QUAD_VARIABLES]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                raise ValueError("scale factors must be numbers")
            tasks.append(Task(task_id, tuple(values)))
        except ValueError as exc:
            raise TaskFileError(f"{where}: {exc}") from None
    return tasks


def select_tasks(tasks: Sequence[Task], task_ids: Sequence[int]) -> list[Task]:
    """The tasks with the given ids, in that order; a clear error for an unknown id."""
    by_id = {t.id: t for t in tasks}
    missing = [i for i in task_ids if i not in by_id]
    if missing:
        raise TaskFileError(f"unknown task id(s) {missing}; available: {sorted(by_id)}")
    return [by_id[i] for i in task_ids]


# ----------------------------------------------------------------------------- figure / CLI

def plot_response_matrices(tasks: Sequence[Task], path: Path, plane: str = "horizontal") -> None:
    """Heat maps of the tasks' response matrices, one panel per task, shared colour scale."""
    from maml_rl.plotting import new_figure, save_figure

    matrices = responses_of(tasks, plane)
    limit = float(np.abs(matrices).max())
    fig, axes = new_figure(1, len(tasks), size=(3.2 * len(tasks), 3.4))
    for ax, task, matrix in zip(np.atleast_1d(axes), tasks, matrices):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"task {task.id}")
        ax.set_xlabel("kicker")
        ax.set_ylabel("monitor")
        ax.set_xticks(range(10), [str(i + 1) for i in range(10)], fontsize=7)
        ax.set_yticks(range(10), [str(i + 2) for i in range(10)], fontsize=7)
    fig.colorbar(image, ax=list(np.atleast_1d(axes)), label=f"{plane} response [m/rad]", shrink=0.8)
    fig.suptitle(f"TT43 {plane} orbit response of the evaluation tasks")
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maml_rl.envs.tasks", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--plot", type=Path, help="write heat maps of the tasks' response matrices")
    parser.add_argument("--plane", choices=PLANES, default="horizontal")
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
        tasks = load_evaluation_tasks(args.tasks_file)
        for task in tasks:
            rh, rv = task.response_matrices
            print(f"task {task.id}: max|R_h| = {np.abs(rh).max():6.2f}  max|R_v| = {np.abs(rv).max():6.2f}  "
                  f"factors = {', '.join(f'{f:.3f}' for f in task.factors)}")
        if args.plot:
            plot_response_matrices(tasks, args.plot, args.plane)
            print(f"wrote {args.plot}")
    except (TaskFileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
