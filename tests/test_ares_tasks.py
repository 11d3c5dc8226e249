"""ARES-EA tasks: the distribution's ranges, the value object and the evaluation-task file."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import yaml

from maml_rl.families.ares_ea.segment import BEAM_PARAMETERS
from maml_rl.families.ares_ea.tasks import (BEAM_RANGES, DEFAULT_TASK_FILE, MISALIGNMENT_RANGE, AresTask,
                                            TaskFileError, load_evaluation_tasks, main, sample_tasks, select_tasks,
                                            task_arrays)


def in_ranges(beams: np.ndarray, shifts: np.ndarray) -> bool:
    low = np.array([BEAM_RANGES[name][0] for name in BEAM_PARAMETERS])
    high = np.array([BEAM_RANGES[name][1] for name in BEAM_PARAMETERS])
    return bool(np.all((beams >= low) & (beams <= high)) and np.all(np.abs(shifts) <= MISALIGNMENT_RANGE))


def test_sampled_tasks_cover_the_issue_ranges() -> None:
    tasks = sample_tasks(np.random.default_rng(0), 2000)
    beams, shifts = task_arrays(tasks)
    assert in_ranges(beams, shifts)
    assert [t.id for t in tasks] == list(range(2000))
    # Uniform draws fill each range: the extremes come within 1 % of its ends.
    low = np.array([BEAM_RANGES[name][0] for name in BEAM_PARAMETERS])
    high = np.array([BEAM_RANGES[name][1] for name in BEAM_PARAMETERS])
    span = high - low
    assert np.all(beams.min(axis=0) - low < 0.01 * span) and np.all(high - beams.max(axis=0) < 0.01 * span)
    assert shifts.min() < -0.99 * MISALIGNMENT_RANGE and shifts.max() > 0.99 * MISALIGNMENT_RANGE
    assert BEAM_RANGES["energy"] == (80e6, 160e6) and BEAM_RANGES["sigma_x"] == (1e-5, 5e-4)
    assert BEAM_RANGES["mu_px"] == (-1e-4, 1e-4) and BEAM_RANGES["sigma_p"] == (1e-4, 1e-3)
    again = sample_tasks(np.random.default_rng(0), 2000)
    assert again == tasks
    assert [t.id for t in sample_tasks(np.random.default_rng(0), 3, first_id=7)] == [7, 8, 9]
    with pytest.raises(ValueError, match="non-negative integer"):
        sample_tasks(np.random.default_rng(0), -1)


def test_task_value_object() -> None:
    nominal = AresTask.nominal()
    assert nominal.beam["energy"] == 120e6 and nominal.beam["mu_x"] == 0.0 and nominal.beam["sigma_x"] == 255e-6
    assert nominal.misalignments == (0.0,) * 8
    task = sample_tasks(np.random.default_rng(1), 1)[0]
    assert pickle.loads(pickle.dumps(task)) == task
    assert task.misalignment["AREABSCR1"] == task.misalignments[6:8]
    with pytest.raises(ValueError, match="sigma_y must be positive"):
        AresTask(0, nominal.incoming_beam[:7] + (0.0,) + nominal.incoming_beam[8:], nominal.misalignments)
    with pytest.raises(ValueError, match="11 values"):
        AresTask(0, nominal.incoming_beam[:10], nominal.misalignments)
    with pytest.raises(ValueError, match="8 values"):
        AresTask(0, nominal.incoming_beam, (0.0,) * 6)
    with pytest.raises(ValueError, match="finite"):
        AresTask(0, nominal.incoming_beam, (np.nan,) + (0.0,) * 7)


def test_shipped_evaluation_tasks() -> None:
    tasks = load_evaluation_tasks()
    assert [t.id for t in tasks] == [0, 1, 2, 3, 4]
    assert tasks[0] == AresTask.nominal(0)
    beams, shifts = task_arrays(tasks)
    assert in_ranges(beams, shifts)
    assert len({t.incoming_beam for t in tasks}) == 5
    raw = yaml.safe_load(DEFAULT_TASK_FILE.read_text())
    assert raw["seed"] == 1 and raw["tasks"][1]["misalignments"]["AREAMQZM1"] == list(tasks[1].misalignments[:2])
    assert [t.id for t in select_tasks(tasks, [3, 1])] == [3, 1]
    with pytest.raises(TaskFileError, match=r"unknown task id\(s\) \[9\]"):
        select_tasks(tasks, [1, 9])


def _entry(**changes) -> dict:
    entry = copy.deepcopy(AresTask.nominal(0).as_dict())
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = entry
        for key in keys:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return entry


@pytest.mark.parametrize("tasks, message", [
    ([_entry(incoming_beam__sigma_q=1e-4)], "unknown beam parameter.*sigma_q"),
    ([_entry(incoming_beam__sigma_p=KeyError)], "missing beam parameter.*sigma_p"),
    ([_entry(incoming_beam__energy="big")], "energy must be a number"),
    ([_entry(incoming_beam__energy="1.2e8")], "signed exponent"),
    ([_entry(incoming_beam__sigma_x=-1e-4)], "sigma_x must be positive"),
    ([_entry(incoming_beam__mu_x=float("inf"))], "mu_x must be finite"),
    ([_entry(misalignments__AREAMQZM4=[0.0, 0.0])], "unknown misaligned element.*AREAMQZM4"),
    ([_entry(misalignments__AREABSCR1=KeyError)], "missing misalignment.*AREABSCR1"),
    ([_entry(misalignments__AREAMQZM2=[1e-4])], r"AREAMQZM2 must be a list \[x, y\]"),
    ([_entry(misalignments__AREAMQZM2=[1e-4, None])], "AREAMQZM2 must be a number"),
    ([_entry(id=1.5)], "id must be an integer"),
    ([_entry(), _entry()], "id 0 is not unique"),
    ([{"id": 0, "incoming_beam": {}}], "exactly the keys"),
    ([], "non-empty list"),
])
def test_task_file_errors(tmp_path, tasks, message) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks}))
    with pytest.raises(TaskFileError, match=message):
        load_evaluation_tasks(path)


def test_task_file_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(TaskFileError, match="evaluation-task file not found"):
        load_evaluation_tasks(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [\n")
    with pytest.raises(TaskFileError, match="not valid YAML"):
        load_evaluation_tasks(bad)
    with pytest.raises(TaskFileError, match=r"bad\.yaml"):
        load_evaluation_tasks(bad)


def test_task_file_round_trip(tmp_path, capsys) -> None:
    path = tmp_path / "t.yaml"
    assert main(["--tasks-file", str(path), "--generate", "--seed", "3"]) == 0
    tasks = load_evaluation_tasks(path)
    assert len(tasks) == 5 and tasks[0] == AresTask.nominal(0)
    assert tasks[1].beam["sigma_x"] == float(f"{tasks[1].beam['sigma_x']:.3e}")  # 4 significant digits
    assert main(["--tasks-file", str(path), "--generate", "--seed", "3"]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert load_evaluation_tasks(path) == tasks
    assert main(["--tasks-file", str(path), "--generate", "--seed", "1", "--overwrite"]) == 0
    assert load_evaluation_tasks(path) == load_evaluation_tasks()   # the shipped file is seed 1
