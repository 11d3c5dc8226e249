"""The conjugate-gradient study (``python -m maml_rl.benchmark cg``) and the benchmark's argument checks."""

from __future__ import annotations

import math

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
    assert all(kl > 0 and math.isfinite(kl) for rows_k in rows.values() for _, _, kl, _ in rows_k)  # full step seen

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


def test_meta_benchmark_sets_line_search_threads_for_this_checkout_only(tiny_training_config, capsys) -> None:
    """``benchmark meta --ls-threads 3 --other REPO``: this checkout's runs evaluate 3 trials at
    once, the other checkout's runs keep their own default (the driver passes 0), and both train
    the same tiny config to the same numbers (the line search's result does not depend on it)."""
    from maml_rl.training import default_ls_threads

    assert benchmark_main(["meta", "--config", str(tiny_training_config), "--batches", "2", "--ls-threads", "3",
                           "--other", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert "3 concurrent line-search trial(s) here" in out
    runs = [line for line in out.splitlines() if " run 1: " in line]
    assert len(runs) == 2 and "other / this" in out
    # Everything after the timings (interactions, return) agrees between the two runs.
    assert runs[0].split("interactions")[0].split(";")[-1] == runs[1].split("interactions")[0].split(";")[-1]
    assert runs[0].split("post-adaptation return")[1].split(";")[0] == \
        runs[1].split("post-adaptation return")[1].split(";")[0]
    assert 1 <= default_ls_threads() <= 2
