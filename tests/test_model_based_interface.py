"""The face shared by the model-based methods: learn/predict/num_timesteps, callbacks, seeds."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest
import torch

from maml_rl.baselines.model_based.base import (
    CallbackSchedule, InteractiveMethod, informative_readings, next_readings_informative)
from maml_rl.envs.awake import AwakeSteering

ENV_KWARGS = {"beam_loss_penalty": 200.0, "max_time": 100, "noise_sigma": 0.01}


def response_matrix(env: AwakeSteering, seed: int) -> Any:
    from maml_rl.baselines.model_based import ResponseMatrixIdentification
    return ResponseMatrixIdentification(env, seed=seed, probe_mode="random")


def gp_mpc(env: AwakeSteering, seed: int) -> Any:
    from maml_rl.baselines.model_based import GPMPC
    return GPMPC(env, seed=seed, n_random=4, horizon=2, fit_iterations=10, iterations=20, refit_every=4)


def dyna(env: AwakeSteering, seed: int) -> Any:
    from maml_rl.baselines.model_based import Dyna
    return Dyna(env, seed=seed, n_random=4, imagined_steps=3, real_every=2, real_gradient_steps=2,
                sac_kwargs={"learning_starts": 4, "batch_size": 16})


@pytest.mark.parametrize("build", [response_matrix, gp_mpc, dyna], ids=["rmi", "gp_mpc", "dyna"])
def test_methods_share_the_face_and_a_seed_fixes_everything(build: Callable[[AwakeSteering, int], Any]) -> None:
    torch.set_num_threads(1)
    runs = []
    for _ in range(2):
        env = AwakeSteering(**ENV_KWARGS)
        method = build(env, 3)
        assert isinstance(method, InteractiveMethod)
        calls: list[int] = []
        method.learn(12, callback=lambda m, n, calls=calls: calls.append(n) or n < 10, eval_every=5)
        assert calls == [5, 10] and method.num_timesteps == 10  # stopped by the callback
        method.learn(2)
        assert method.num_timesteps == 12
        obs = np.random.default_rng(0).uniform(-0.8, 0.8, (4, 10)).astype(np.float32)
        single, state = method.predict(obs[0])
        batch, _ = method.predict(obs)
        assert state is None and single.shape == (10,) and batch.shape == (4, 10)
        assert np.all(np.abs(batch) <= 1.0 + 1e-6)
        np.testing.assert_allclose(batch[0], single, atol=1e-6)  # a plan does not depend on the batch
        runs.append(batch)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_callback_schedule() -> None:
    seen: list[int] = []
    schedule = CallbackSchedule(lambda m, n: seen.append(n) or n < 9, every=3, start=4)
    assert [schedule(None, n) for n in range(5, 11)] == [True, True, True, True, False, True]
    assert seen == [6, 9]
    every_step = CallbackSchedule(lambda m, n: seen.append(n) or True, every=None, start=0)
    assert all(every_step(None, n) for n in (1, 2, 3)) and seen[-3:] == [1, 2, 3]
    assert CallbackSchedule(None, 5, 0)(None, 5)
    with pytest.raises(ValueError):
        CallbackSchedule(None, 0, 0)


def test_saturated_readings_are_not_informative() -> None:
    obs = np.array([[0.2, -0.99, 1.0, 0.3], [1.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.3, -1.0]])
    np.testing.assert_array_equal(informative_readings(obs), [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    # after a beam loss, saturated readings plus noise read just inside the aperture
    after_loss = np.array([0.2, -0.5, -0.9995, -0.9991])
    np.testing.assert_array_equal(next_readings_informative(after_loss, False, 0.001), [1, 1, 1, 1])
    np.testing.assert_array_equal(next_readings_informative(after_loss, True, 0.001), [1, 1, 0, 0])


def test_importing_the_package_does_not_load_gpytorch() -> None:
    code = ("import sys, maml_rl, maml_rl.baselines.model_based as mb, maml_rl.baselines.model_based.gp_mpc; "
            "assert 'gpytorch' not in sys.modules; mb.GPMPC; assert 'gpytorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_study_confirms_a_pass_on_fresh_states(tmp_path) -> None:  # noqa: ANN001
    from maml_rl.baselines.model_based import study

    run = study.measure("rmi", 0.0, seed=0, budget=50, every=10, episodes=5)
    # exact after one probe cycle (10); confirmed at 20 on other states, then stopped
    assert run.reached_at == 10 and run.interactions == 20 and len(run.curve) == 2
    assert run.curve[0]["relative_error"] < 1e-5
    never = study.measure("rmi", 0.0, seed=0, budget=30, every=5, episodes=5)  # 5 probes: no estimate
    assert never.reached_at == 10 and [p["success"] for p in never.curve][:1] == [0.0]
    assert "| rmi | {} | 0 | 10; 10, 10 |" in study.table([run, never])
