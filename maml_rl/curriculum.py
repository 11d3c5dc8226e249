"""Hard-task revisiting: a meta-training curriculum over the task distribution.

MAML's outer objective is the mean post-adaptation return over tasks drawn uniformly
from the distribution, so tasks at its edges (for AWAKE: strong focusing changes that
make the response matrix ill-conditioned) carry little weight and are the ones a
meta-policy fails zero-shot. This curriculum keeps a pool of recently failed tasks and
refills a fixed fraction of every meta-batch with tasks drawn from it; a task leaves the
pool once a revisit solves it every time, both before and after adaptation. It is a
simple form of a risk-aware objective: the uniform part keeps the distribution covered,
the revisited part up-weights the tail.

The pool is a function of the metrics rows alone (task ids, factors and per-task success
rates), so a resumed run rebuilds it by replaying its ``metrics.jsonl`` and continues with
exactly the tasks an uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import numpy as np

# (task id, factors) -> task of the run's family (``TaskFamily.task_from_factors``).
TaskFactory = Callable[[int, Sequence[float]], Any]


def _default_factory() -> TaskFactory:
    """AWAKE's tasks (the family of every run made before families existed)."""
    from maml_rl.families import DEFAULT_FAMILY, get_family

    return get_family(DEFAULT_FAMILY).task_from_factors


class HardTaskPool:
    """Tasks that the meta-policy recently failed, oldest first.

    Parameters
    ----------
    capacity
        Most tasks kept; beyond it the task seen longest ago is dropped.
    make_task
        Rebuilds a task from its id and the factors a metrics row stores (default: AWAKE's).
    """

    def __init__(self, capacity: int, make_task: TaskFactory | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.make_task = make_task if make_task is not None else _default_factory()
        self._tasks: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> list[Any]:
        """The pool's tasks, the one seen longest ago first."""
        return list(self._tasks.values())

    def update(self, row: Mapping[str, Any]) -> None:
        """Take in one meta-batch's metrics row.

        A task whose success rate before or after adaptation was below 1 enters the pool
        (or moves to its young end); a task that succeeded every time leaves it.
        """
        per_task = zip(row["task_ids"], row["task_factors"], row["train_success_per_task"],
                       row["valid_success_per_task"])
        for task_id, factors, before, after in per_task:
            task_id = int(task_id)
            self._tasks.pop(task_id, None)
            if min(float(before), float(after)) < 1.0:
                self._tasks[task_id] = self.make_task(task_id, tuple(factors))
        while len(self._tasks) > self.capacity:
            self._tasks.popitem(last=False)

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``min(n, len(self))`` distinct tasks, uniformly from the pool."""
        pool = self.tasks
        n = min(n, len(pool))
        if n <= 0:
            return []
        return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def pool_from_rows(rows: Sequence[Mapping[str, Any]], capacity: int,
                   make_task: TaskFactory | None = None) -> HardTaskPool:
    """The pool after the given metrics rows (in batch order): how a resumed run rebuilds it."""
    pool = HardTaskPool(capacity, make_task)
    for row in rows:
        pool.update(row)
    return pool


def revisit_count(fraction: float, meta_batch_size: int, pool_size: int) -> int:
    """Revisited tasks in a meta-batch: ``round(fraction * M)``, at most the pool's size and
    at most M - 1 (one fresh task per batch keeps the pool supplied)."""
    return max(0, min(int(round(fraction * meta_batch_size)), pool_size, meta_batch_size - 1))
