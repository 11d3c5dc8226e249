"""Shared fixtures: reference data and small helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import maml_rl  # noqa: F401  (sets MKL_CBWR before any matrix product runs; see maml_rl/__init__.py)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def madx_reference() -> dict:
    """MAD-X results for the TT43 model (see tests/data/regenerate_madx_reference.py)."""
    return json.loads((DATA / "madx_reference.json").read_text())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="module")
def evaluation_config():
    """configs/awake_evaluation.yaml, with one torch thread (single-task agent tests)."""
    import torch

    from maml_rl.config import load_config

    torch.set_num_threads(1)
    return load_config(REPO / "configs" / "awake_evaluation.yaml")


@pytest.fixture(scope="module")
def evaluation_task():
    """Evaluation task 1 (a non-nominal optics)."""
    from maml_rl.envs.tasks import load_evaluation_tasks

    return load_evaluation_tasks()[1]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """configs/awake_evaluation.yaml with a tiny policy, 3 episodes x 1 step per adaptation batch and
    episodes of at most 15 steps (the comparison's tests); one torch thread."""
    import torch
    import yaml

    torch.set_num_threads(1)
    data = yaml.safe_load((REPO / "configs" / "awake_evaluation.yaml").read_text())
    data.update({"hidden-sizes": [16, 16], "fast-batch-size": 3, "num-steps": 1})
    data["env-kwargs"]["max_time"] = 15
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def tiny_training_config(tmp_path_factory) -> Path:
    """configs/awake.yaml shrunk to seconds: hidden [16, 16], 2 tasks x 3 episodes, one inner step,
    3 batches, max_time 15 (the scripts' and the CG study's tests)."""
    import yaml

    data = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    data.update({"hidden-sizes": [16, 16], "fast-batch-size": 3, "num-steps": 1, "meta-batch-size": 2,
                 "num-batches": 3, "cg-iters": 5, "ls-max-steps": 5})
    data["env-kwargs"]["max_time"] = 15
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
