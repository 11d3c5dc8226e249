"""GP-MPC: the GP posterior against the closed form, the fit, the planner's bounds, a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maml_rl.baselines.model_based.base import controller_of
from maml_rl.baselines.model_based.gp_mpc import GaussianProcessDynamics, GPMPC, plan_actions
from maml_rl.envs.awake import AwakeSteering
from maml_rl.evaluation import evaluate


def rbf(a: np.ndarray, b: np.ndarray, lengthscales: np.ndarray, variance: float) -> np.ndarray:
    d = (a[:, None, :] - b[None, :, :]) / lengthscales
    return variance * np.exp(-0.5 * np.sum(d ** 2, axis=-1))


def closed_form(x: np.ndarray, y: np.ndarray, xs: np.ndarray, ell: np.ndarray, s2: float,
                noise: float) -> tuple[np.ndarray, np.ndarray]:
    """mean = K* (K + s^2 I)^-1 y, var = k** - K* (K + s^2 I)^-1 K*^T (diagonal)."""
    gram = rbf(x, x, ell, s2) + noise * np.eye(len(x))
    cross = rbf(xs, x, ell, s2)
    mean = cross @ np.linalg.solve(gram, y)
    cov = rbf(xs, xs, ell, s2) - cross @ np.linalg.solve(gram, cross.T)
    return mean, np.diag(cov)


def log_marginal_likelihood(x: np.ndarray, y: np.ndarray, ell: np.ndarray, s2: float, noise: float) -> float:
    gram = rbf(x, x, ell, s2) + noise * np.eye(len(x))
    _, logdet = np.linalg.slogdet(gram)
    return float(-0.5 * y @ np.linalg.solve(gram, y) - 0.5 * logdet - 0.5 * len(x) * np.log(2 * np.pi))


@pytest.fixture
def tiny() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (6, 3))
    y = np.column_stack([np.sin(2 * x[:, 0]) + x[:, 1], 0.05 * x[:, 2] ** 2])
    return {"x": x, "y": y, "xs": rng.uniform(-1.5, 1.5, (5, 3)),
            "ell": np.array([[0.7, 1.3, 2.0], [1.1, 0.4, 0.9]]), "s2": np.array([1.5, 0.02]),
            "noise": np.array([1e-2, 1e-5])}


def test_posterior_equals_the_closed_form(tiny: dict[str, np.ndarray]) -> None:
    gp = GaussianProcessDynamics(3, 2)
    gp.set_data(tiny["x"], tiny["y"])
    gp.set_hyperparameters(tiny["ell"], tiny["s2"], tiny["noise"])
    mean, var = gp.posterior(torch.as_tensor(tiny["xs"]))
    reference_mean, reference_var = gp.gpytorch_posterior(torch.as_tensor(tiny["xs"]))
    for i in range(2):
        m, v = closed_form(tiny["x"], tiny["y"][:, i], tiny["xs"], tiny["ell"][i], tiny["s2"][i], tiny["noise"][i])
        np.testing.assert_allclose(mean[:, i].numpy(), m, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(var[:, i].numpy(), v, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(reference_mean[:, i].numpy(), m, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(reference_var[:, i].numpy(), v, rtol=1e-5, atol=1e-10)
    # at a training input with little noise the posterior reproduces the target
    at_data, _ = gp.posterior(torch.as_tensor(tiny["x"][:1]))
    assert at_data[0, 1].item() == pytest.approx(tiny["y"][0, 1], abs=1e-3 * abs(tiny["y"][0, 1]) + 1e-6)


def test_marginal_likelihood_fit_improves_the_evidence_and_finds_the_relevant_inputs() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (40, 4))
    y = np.column_stack([0.1 * x[:, 2] - 0.05 * x[:, 3], 0.2 * np.tanh(x[:, 0])]) + 1e-3 * rng.normal(size=(40, 2))
    gp = GaussianProcessDynamics(4, 2)
    gp.set_data(x, y)

    def evidence() -> np.ndarray:
        return np.array([log_marginal_likelihood(x, y[:, i], gp.lengthscales[i].numpy(),
                                                 float(gp.signal_variances[i]), float(gp.noise_variances[i]))
                         for i in range(2)])

    before = evidence()
    gp.fit(iterations=150, lr=0.1)
    after = evidence()
    assert np.all(after > before + 10)
    ell = gp.lengthscales.numpy()
    assert ell[0, [2, 3]].max() < ell[0, [0, 1]].min()  # output 0 depends on inputs 2, 3 only
    assert ell[1, 0] < ell[1, 1:].min()  # output 1 on input 0 only
    assert np.all(gp.noise_variances.numpy() < 1e-4)


def test_planner_keeps_the_actions_inside_the_bounds() -> None:
    rng = np.random.default_rng(2)
    obs = rng.uniform(-1, 1, (60, 2))
    actions = rng.uniform(-1, 1, (60, 2))
    gp = GaussianProcessDynamics(4, 2)
    gp.set_data(np.hstack([obs, actions]), 0.2 * actions)  # d = 0.2 a: from 0.9 it takes 4.5 units
    gp.fit(iterations=100, lr=0.1)
    start = np.array([[0.9, -0.9], [0.05, 0.0]])
    plan = plan_actions(gp, start, horizon=2, kappa=0.0)
    assert plan.shape == (2, 2, 2)
    assert np.all(np.abs(plan) <= 1.0)
    np.testing.assert_allclose(plan[0], [[-1, 1], [-1, 1]], atol=1e-6)  # the bound is active
    # inside the bounds the optimiser finds the interior optimum: a = -obs / 0.2, shared over the horizon
    np.testing.assert_allclose(plan[1].sum(axis=0) * 0.2, -start[1], atol=0.01)


def test_gp_mpc_steers_the_nominal_task_after_a_few_episodes() -> None:
    torch.set_num_threads(1)
    env = AwakeSteering(beam_loss_penalty=200.0, max_time=100)
    method = GPMPC(env, seed=0, n_random=5, fit_iterations=60, refit_every=5)
    method.learn(15)
    assert method.num_timesteps == method.real.steps == 15
    ev = evaluate(controller_of(method), env.get_task(), 5, seed=3, dynamics=env.dynamics)
    assert ev.policy.success_rate == 1.0
    assert ev.policy.mean_length <= 2 * ev.benchmark.mean_length
