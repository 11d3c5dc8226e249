"""AWAKE meta-training reproduces recorded numbers bitwise (guards refactors of the core).

``tests/data/awake_reference.json`` was written by ``tests/data/make_awake_reference.py``
before the task-family refactor (issue #11); every non-timing metric of every batch and the
final weights must be reproduced exactly. About 5 s.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import DATA


def _maker():
    spec = importlib.util.spec_from_file_location("make_awake_reference", DATA / "make_awake_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", ["tiny", "default"])
def test_awake_training_reproduces_the_recorded_metrics_and_weights(case: str) -> None:
    maker = _maker()
    recorded = json.loads((DATA / "awake_reference.json").read_text())[case]
    data, num_batches = maker.cases()[case]
    fresh = maker.run_case(data, num_batches)
    assert len(fresh["metrics"]) == len(recorded["metrics"]) == num_batches
    for batch, (new, old) in enumerate(zip(fresh["metrics"], recorded["metrics"])):
        assert set(new) == set(old), batch
        for key in old:
            assert new[key] == old[key], (batch, key, new[key], old[key])
    assert fresh["weights_sha256"] == recorded["weights_sha256"]
