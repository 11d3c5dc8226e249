"""Hard-task revisiting (maml_rl.curriculum): pool rules, batch composition, resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from maml_rl import training
from maml_rl.config import ConfigError, config_from_dict, load_config
from maml_rl.curriculum import HardTaskPool, pool_from_rows, revisit_count
from maml_rl.envs.tasks import sample_tasks
from maml_rl.seeding import task_rng

TIMING_KEYS = {"time_sampling", "time_adaptation", "time_trpo", "time_total", "wall_time"}


def _row(batch: int, ids: list[int], before: list[float], after: list[float]) -> dict:
    return {"batch": batch, "task_ids": ids, "task_factors": [[1.0 + 0.01 * i] * 10 for i in ids],
            "train_success_per_task": before, "valid_success_per_task": after}


def test_pool_keeps_failed_tasks_drops_solved_ones_and_the_oldest() -> None:
    pool = HardTaskPool(capacity=3)
    pool.update(_row(0, [0, 1, 2], before=[1.0, 0.5, 1.0], after=[1.0, 1.0, 0.9]))
    assert [t.id for t in pool.tasks] == [1, 2]  # failed before or after adaptation
    assert pool.tasks[0].factors == (1.01,) * 10
    pool.update(_row(1, [3, 4, 1], before=[0.0, 0.8, 0.9], after=[0.0, 1.0, 1.0]))
    # 1 failed again: moves to the young end; 2 is now the oldest and falls out at capacity 3
    assert [t.id for t in pool.tasks] == [3, 4, 1]
    pool.update(_row(2, [1, 5], before=[1.0, 1.0], after=[1.0, 1.0]))
    assert [t.id for t in pool.tasks] == [3, 4]  # solved on revisit: leaves


def test_draws_are_distinct_reproducible_and_bounded_by_the_pool() -> None:
    pool = pool_from_rows([_row(0, list(range(10)), [0.0] * 10, [0.0] * 10)], capacity=64)
    a = pool.draw(np.random.default_rng(7), 4)
    b = pool.draw(np.random.default_rng(7), 4)
    assert [t.id for t in a] == [t.id for t in b] and len({t.id for t in a}) == 4
    assert len(pool.draw(np.random.default_rng(0), 50)) == 10
    # uniform over the pool: every task drawn about equally often
    counts = np.zeros(10)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        for task in pool.draw(rng, 3):
            counts[task.id] += 1
    assert np.all(np.abs(counts / 600 - 1) < 0.15), counts


@pytest.mark.parametrize("fraction, m, pool, expected", [(0.0, 16, 10, 0), (0.25, 16, 10, 4), (0.25, 16, 2, 2),
                                                           (0.9, 4, 10, 3), (0.5, 1, 10, 0)])
def test_revisit_count(fraction, m, pool, expected) -> None:
    assert revisit_count(fraction, m, pool) == expected


def test_without_revisits_a_batch_is_the_uniform_draw_of_before() -> None:
    config = load_config(REPO / "configs" / "awake.yaml")
    env = training.environment_of(config)
    pool = pool_from_rows([_row(0, [0, 1], [0.0, 0.0], [0.0, 0.0])], 64)
    tasks = training.batch_tasks(config, env, 3, 5, pool)  # hard-task-fraction 0: the pool is ignored
    reference = sample_tasks(task_rng(3, 5), config.meta_batch_size, env.num_random_quads,
                             first_id=5 * config.meta_batch_size, plane=env.plane)
    assert tasks == reference


def test_revisited_tasks_fill_the_end_of_a_batch() -> None:
    config = dataclasses.replace(load_config(REPO / "configs" / "awake.yaml"), hard_task_fraction=0.5)
    env = training.environment_of(config)
    pool = pool_from_rows([_row(0, [0, 1, 2], [0.0] * 3, [0.0] * 3)], 64)
    tasks = training.batch_tasks(config, env, 3, 5, pool)
    m = config.meta_batch_size
    assert len(tasks) == m
    assert [t.id for t in tasks[:m - 3]] == list(range(5 * m, 5 * m + m - 3))
    assert sorted(t.id for t in tasks[m - 3:]) == [0, 1, 2]


def test_config_checks_the_curriculum_keys() -> None:
    raw = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    with pytest.raises(ConfigError, match="hard-task-fraction"):
        config_from_dict({**raw, "hard-task-fraction": 1.0})
    with pytest.raises(ConfigError, match="hard-task-pool"):
        config_from_dict({**raw, "hard-task-pool": 0})


def test_resume_rebuilds_the_pool_and_reproduces_the_uninterrupted_run(tmp_path) -> None:
    data = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    data.update({"hidden-sizes": [8], "fast-batch-size": 3, "num-steps": 1, "meta-batch-size": 4,
                 "num-batches": 5, "cg-iters": 3, "ls-max-steps": 3, "hard-task-fraction": 0.5})
    data["env-kwargs"]["max_time"] = 10
    config = tmp_path / "curriculum.yaml"
    config.write_text(yaml.safe_dump(data))
    common = dict(config=config, progress=False)
    full = training.train(training.TrainOptions(output_folder=tmp_path / "full", **common))
    training.train(training.TrainOptions(output_folder=tmp_path / "part", num_batches=2, **common))
    part = training.train(training.TrainOptions(output_folder=tmp_path / "part", resume=True, progress=False,
                                                num_batches=5))
    rows = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    revisited = [i for r in rows for i in r["task_ids"] if i < r["batch"] * 4]
    assert revisited, "the curriculum never revisited a task: the test would not test it"
    assert [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows] == \
        [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in resumed]
    a = torch.load(full / "policy.th", weights_only=True)["state_dict"]
    b = torch.load(part / "policy.th", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
