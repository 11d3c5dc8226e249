"""Task distribution, evaluation-task files and the response-matrix figure."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from maml_rl.envs.dynamics import PLANES
from maml_rl.envs.response import QUAD_VARIABLES
from maml_rl.envs.tasks import (DEFAULT_TASK_FILE, Task, TaskFileError, is_admissible, load_evaluation_tasks,
                                main, sample_tasks, select_tasks)


def test_shipped_evaluation_tasks() -> None:
    tasks = load_evaluation_tasks()
    assert [t.id for t in tasks] == [0, 1, 2, 3, 4]
    assert tasks[0] == Task.nominal(0)
    for task in tasks:
        for matrix in task.response_matrices:
            assert np.abs(matrix).max() < 20
        assert is_admissible(task, "horizontal")
        assert all(0.75 <= f <= 1.25 for f in task.factors)


def test_sampled_tasks_are_admissible_and_reproducible() -> None:
    a = sample_tasks(np.random.default_rng(0), 40)
    b = sample_tasks(np.random.default_rng(0), 40)
    assert [t.factors for t in a] == [t.factors for t in b]
    assert [t.id for t in a] == list(range(40))
    assert all(is_admissible(t) for t in a)


@pytest.mark.parametrize("plane", PLANES)
def test_admissibility_read_in_chunks_is_the_count_over_the_whole_probe(plane: str) -> None:
    """Every kick gets the verdict it gets in one pass over the whole probe, and so every task
    the decision of counting all of it, also the tasks the first chunk cannot decide."""
    from maml_rl.envs.dynamics import admissible_initial_states
    from maml_rl.envs.tasks import MIN_PROBE_HITS, PROBE_CHUNK, PROBE_SIZE, _probe_kicks, make_tasks, sample_factors

    probe = _probe_kicks()
    tasks = make_tasks(sample_factors(np.random.default_rng(4), 300))
    undecided = 0
    for task in tasks:
        whole = admissible_initial_states(task.response(plane), probe)
        chunks = [admissible_initial_states(task.response(plane), probe[s:s + PROBE_CHUNK])
                  for s in range(0, PROBE_SIZE, PROBE_CHUNK)]
        assert np.array_equal(np.concatenate(chunks), whole)
        assert is_admissible(task, plane) == (int(whole.sum()) >= MIN_PROBE_HITS)
        undecided += int(chunks[0].sum()) < MIN_PROBE_HITS
    assert undecided >= 5  # the rest of the probe was read for some tasks


def test_admissibility_rejects_a_weak_task() -> None:
    # Scan the distribution for a task whose reset distribution is empty.
    rng = np.random.default_rng(1)
    from maml_rl.envs.tasks import make_tasks, sample_factors
    tasks = make_tasks(sample_factors(rng, 400))
    flags = [is_admissible(t) for t in tasks]
    assert 0 < flags.count(False) < 60  # a few percent are rejected


def _write(path, tasks) -> None:
    path.write_text(yaml.safe_dump({"tasks": tasks}))


def _factors(**override) -> dict:
    base = {name: 1.0 for name in QUAD_VARIABLES}
    base.update(override)
    return base


@pytest.mark.parametrize("tasks, message", [
    ([{"id": 0, "factors": _factors(kqx=1.0)}], "unknown variable"),
    ([{"id": 0, "factors": {k: 1.0 for k in QUAD_VARIABLES[:9]}}], "expected 10 factors"),
    ([{"id": 0, "factors": _factors(kqd430031=-0.5)}], "positive"),
    ([{"id": 0, "factors": _factors(kqd430031="big")}], "numbers"),
    ([{"id": 0, "factors": _factors(kqd430031=float("nan"))}], "finite"),
    ([{"id": 0, "factors": _factors()}, {"id": 0, "factors": _factors()}], "unique integer"),
    ([{"id": 0}], "exactly the keys"),
    ([], "non-empty list"),
])
def test_task_file_errors(tmp_path, tasks, message) -> None:
    path = tmp_path / "tasks.yaml"
    _write(path, tasks)
    with pytest.raises(TaskFileError, match=message):
        load_evaluation_tasks(path)


def test_select_tasks() -> None:
    tasks = load_evaluation_tasks()
    assert [t.id for t in select_tasks(tasks, [3, 1])] == [3, 1]
    with pytest.raises(TaskFileError, match=r"unknown task id\(s\) \[9\]"):
        select_tasks(tasks, [1, 9])


def test_task_file_round_trip(tmp_path) -> None:
    path = tmp_path / "t.yaml"
    assert main(["--tasks-file", str(path), "--generate", "--seed", "3"]) == 0
    tasks = load_evaluation_tasks(path)
    assert len(tasks) == 5 and tasks[0] == Task.nominal(0)
    assert main(["--tasks-file", str(path), "--generate", "--seed", "3"]) == 2  # refuses to overwrite
    assert load_evaluation_tasks(path) == tasks


def test_heat_map_figure(tmp_path) -> None:
    out = tmp_path / "tasks.png"
    assert main(["--tasks-file", str(DEFAULT_TASK_FILE), "--plot", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
