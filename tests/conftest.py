"""Shared fixtures: reference data and small helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def madx_reference() -> dict:
    """MAD-X results for the TT43 model (see tests/data/regenerate_madx_reference.py)."""
    return json.loads((DATA / "madx_reference.json").read_text())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
