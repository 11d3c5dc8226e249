"""The conjugate-gradient study (``python -m maml_rl.benchmark cg``) and the benchmark's argument checks."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from conftest import REPO
from maml_rl.benchmark import main as benchmark_main
from maml_rl.benchmark_cg import run as cg_study


def test_cg_study_leaves_the_trajectory_alone_and_measures_rounding(tiny_training_config, capsys) -> None:
    from maml_rl.config import load_config
    from maml_rl.metalearners.maml_trpo import meta_update
    from maml_rl.samplers import VectorizedSampler
    from maml_rl.training import batch_tasks, environment_of, make_learner, make_policy, make_spec

    rows, final = cg_study(tiny_training_config, seed=3, threads=1, study_batches=(0, 2), iterations=(1, 4))
    out = capsys.readouterr().out
    assert [line.split("|")[0].strip() for line in out.splitlines()[2:]] == ["1", "4"]
    assert set(rows) == {1, 4} and all(len(r) == 2 for r in rows.values())
    # One iteration is the gradient itself in both precisions: no rounding beyond float32's.
    assert all(distance < 1e-5 for *_, distance in rows[1])
    assert all(change <= 0 for change, *_ in rows[4])  # the line search accepts only improvements (or no step)

    # The same three batches without the study: identical meta-parameters.
    config = load_config(tiny_training_config)
    env = environment_of(config)
    policy = make_policy(config, 3)
    learner = make_learner(config, policy)
    sampler = VectorizedSampler(make_spec(config, policy, 3), policy)
    for batch in range(3):
        meta_update(learner, sampler, batch_tasks(config, env, 3, batch), batch)
    assert torch.equal(parameters_to_vector(policy.parameters()).detach(), final)


def test_other_config_needs_other_checkout(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["meta", "--other-config", str(REPO / "configs" / "awake.yaml")])
    assert exit_info.value.code == 2
    assert "--other-config" in capsys.readouterr().err
