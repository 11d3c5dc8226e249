"""Bayesian optimisation baseline of ARES-EA: EI, GP posterior, optimisation on known functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maml_rl.families.ares_ea.bayesopt import bayesian_optimisation, expected_improvement, fit_gp, minimise, posterior
from maml_rl.families.ares_ea.dynamics import AresDynamics
from maml_rl.families.ares_ea.env import AresEA
from maml_rl.families.ares_ea.references import OFF_SCREEN_VALUE
from maml_rl.families.ares_ea.segment import AresSegment
from maml_rl.families.ares_ea.tasks import load_evaluation_tasks


def test_expected_improvement_matches_monte_carlo_and_finite_differences() -> None:
    rng = np.random.default_rng(0)
    for mu, sigma, best in [(0.3, 0.5, 0.0), (-1.0, 0.2, -0.5), (0.0, 2.0, 1.0)]:
        samples = rng.normal(mu, sigma, 2_000_000)
        mc = np.maximum(best - samples, 0).mean()
        ei = float(expected_improvement(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma,
                                                                                              dtype=torch.float64),
                                        best))
        assert ei == pytest.approx(mc, rel=5e-3, abs=1e-5)
    mean = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    std = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    expected_improvement(mean, std, 0.1).sum().backward()
    h = 1e-6
    with torch.no_grad():
        fd_mu = (expected_improvement(mean + h, std, 0.1) - expected_improvement(mean - h, std, 0.1)) / (2 * h)
        fd_sd = (expected_improvement(mean, std + h, 0.1) - expected_improvement(mean, std - h, 0.1)) / (2 * h)
    assert float(mean.grad) == pytest.approx(fd_mu.item(), rel=1e-6)
    assert float(std.grad) == pytest.approx(fd_sd.item(), rel=1e-6)
    # dEI/dmu = -Phi(z), dEI/dsigma = phi(z)
    z = (0.1 - 0.3) / 0.7
    assert float(mean.grad) == pytest.approx(-0.5 * (1 + math.erf(z / math.sqrt(2))), rel=1e-9)
    assert float(std.grad) == pytest.approx(math.exp(-z * z / 2) / math.sqrt(2 * math.pi), rel=1e-9)


def _matern52(a: np.ndarray, b: np.ndarray, lengthscale: np.ndarray, outputscale: float) -> np.ndarray:
    r = np.sqrt((((a[:, None, :] - b[None, :, :]) / lengthscale) ** 2).sum(-1))
    return outputscale * (1 + math.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-math.sqrt(5) * r)


def test_gp_posterior_matches_the_gp_equations() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (12, 5))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    model = fit_gp(torch.as_tensor(x), torch.as_tensor(y), steps=10)
    ls = model.covar_module.base_kernel.lengthscale.detach().numpy()[0]
    os_ = float(model.covar_module.outputscale.detach())
    noise = float(model.likelihood.noise.detach())
    c = float(model.mean_module.constant.detach())
    xs = rng.uniform(-1, 1, (7, 5))
    k = _matern52(x, x, ls, os_) + noise * np.eye(len(x))
    ks = _matern52(xs, x, ls, os_)
    mean = c + ks @ np.linalg.solve(k, y - c)
    var = os_ - np.einsum("ij,ji->i", ks, np.linalg.solve(k, ks.T))
    mu, sd = posterior(model, torch.as_tensor(xs))
    np.testing.assert_allclose(mu.detach().numpy(), mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sd.detach().numpy() ** 2, var, rtol=1e-5, atol=1e-8)


def _quadratic(centre: np.ndarray):
    return lambda x: float(((np.asarray(x) - centre) ** 2).sum())


def test_bo_finds_the_minimum_of_a_quadratic_and_beats_random_search() -> None:
    bo_best, random_best = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        centre = rng.uniform(-0.6, 0.6, 5)
        f = _quadratic(centre)
        _, ys = minimise(f, np.zeros(5), 30, torch.Generator().manual_seed(seed), fit_steps=40)
        assert len(ys) == 30
        bo_best.append(ys.min())
        random_best.append(min(f(x) for x in rng.uniform(-1, 1, (30, 5))))
    assert max(bo_best) < 0.05          # f(0) is ~0.6 on average; the optimum is 0
    assert np.mean(bo_best) < 0.25 * np.mean(random_best)


def test_off_screen_values_do_not_wreck_the_model() -> None:
    centre = np.full(5, 0.3)

    def f(x):  # fails (off screen) beyond a radius, like a beam leaving the screen
        d = float(((np.asarray(x) - centre) ** 2).sum())
        return OFF_SCREEN_VALUE if np.abs(x).max() > 0.7 else d

    _, ys = minimise(f, np.zeros(5), 25, torch.Generator().manual_seed(0), fit_steps=40)
    regular = ys[ys < OFF_SCREEN_VALUE]
    assert len(regular) > len(ys) / 2          # it learns where measurements fail
    assert regular.min() < 0.35 * f(np.zeros(5))


@pytest.fixture(scope="module")
def episode() -> tuple:
    task = load_evaluation_tasks()[1]
    target = np.array([3e-4, 1e-4, -2e-4, 8e-5])
    _, info = AresEA(task=task, target=target).reset(seed=2)
    return AresSegment(), task, target, info["magnets"]


def test_bo_on_ares_improves_stops_at_budget_and_is_deterministic(episode: tuple) -> None:
    segment, task, target, m0 = episode
    a = bayesian_optimisation(segment, task, target, m0, AresDynamics(), max_interactions=15, seed=3, fit_steps=30)
    b = bayesian_optimisation(segment, task, target, m0, AresDynamics(), max_interactions=15, seed=3, fit_steps=30)
    assert a.interactions == 15
    np.testing.assert_array_equal(a.objectives, b.objectives)
    assert a.best_objective < 0.8 * a.objectives[0]
    c = bayesian_optimisation(segment, task, target, m0, AresDynamics(), max_interactions=1, seed=3)
    assert c.interactions == 1 and c.objectives[0] == a.objectives[0]
    with pytest.raises(ValueError):
        bayesian_optimisation(segment, task, target, m0, AresDynamics(), max_interactions=0)
