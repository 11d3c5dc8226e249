"""Bayesian optimisation of the measured ARES-EA objective (a tuning baseline).

A Gaussian process (gpytorch ``ExactGP``: constant mean, scaled Matern-5/2 kernel with
one lengthscale per magnet, Gaussian likelihood) models the measured value y = O / O_0
over the normalised settings x = m / L in [-1, 1]^5. Off-screen points get the worst value
seen so far plus the spread (a pessimistic but not scale-destroying stand-in for
``OFF_SCREEN_VALUE``);
outputs are standardised before each fit. The first point is the episode's initial
setting; each next point maximises expected improvement (Jones, Schonlau & Welch 1998)
over the box: random candidates and Gaussian perturbations (scale ~0.1, one ``delta``
action) of the incumbent, the best few polished by projected Adam ascent. Every
evaluation is one interaction (``references.MeasuredObjective``).
"""

from __future__ import annotations

import math
from typing import Callable

import gpytorch
import numpy as np
import torch

from maml_rl.families.ares_ea.dynamics import AresDynamics
from maml_rl.families.ares_ea.references import OFF_SCREEN_VALUE, BudgetExhausted, MeasuredObjective, OptimiserResult
from maml_rl.families.ares_ea.segment import AresSegment
from maml_rl.families.ares_ea.tasks import AresTask

_SQRT2 = math.sqrt(2.0)


def expected_improvement(mean: torch.Tensor, std: torch.Tensor, best: float) -> torch.Tensor:
    """Analytic expected improvement for minimisation (Jones et al. 1998).

        EI(x) = E[max(best - f(x), 0)] = (best - mu) Phi(z) + sigma phi(z),  z = (best - mu) / sigma,

    with f(x) ~ N(mu, sigma^2), Phi and phi the standard normal CDF and density.
    """
    std = std.clamp_min(1e-12)
    z = (best - mean) / std
    cdf = 0.5 * (1.0 + torch.erf(z / _SQRT2))
    pdf = torch.exp(-0.5 * z ** 2) / math.sqrt(2.0 * math.pi)
    return (best - mean) * cdf + std * pdf


class _GP(gpytorch.models.ExactGP):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, likelihood: gpytorch.likelihoods.GaussianLikelihood):
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(
            gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=x.shape[-1],
                                          lengthscale_constraint=gpytorch.constraints.Interval(0.01, 10.0)),
            outputscale_constraint=gpytorch.constraints.Interval(0.05, 20.0))

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def fit_gp(x: torch.Tensor, y: torch.Tensor, steps: int = 60, lr: float = 0.1) -> _GP:
    """Fit the GP's hyper-parameters to (x, y) by Adam on the exact marginal log-likelihood.

    The noise is bounded to [1e-6, 0.1] (standardised units: the measurement is nearly
    exact), the lengthscales to [0.01, 10] and the output scale to [0.05, 20].
    """
    likelihood = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=gpytorch.constraints.Interval(1e-6, 0.1)).double()
    model = _GP(x, y, likelihood).double()
    model.covar_module.base_kernel.lengthscale = 0.5
    likelihood.noise = 1e-3
    model.train()
    likelihood.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        optimiser.step()
    model.eval()
    likelihood.eval()
    return model


def posterior(model: _GP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation of the latent f at x (differentiable in x)."""
    with gpytorch.settings.fast_pred_var(False), gpytorch.settings.max_cholesky_size(10_000):
        dist = model(x)
        return dist.mean, dist.variance.clamp_min(1e-18).sqrt()


def propose(model: _GP, best_y: float, incumbent: torch.Tensor, generator: torch.Generator,
            n_random: int = 512, n_local: int = 512, local_scale: float = 0.1, n_polish: int = 4,
            polish_steps: int = 20) -> torch.Tensor:
    """Maximiser of expected improvement over [-1, 1]^d (candidates then projected Adam)."""
    d = incumbent.shape[-1]
    random = torch.rand(n_random, d, generator=generator, dtype=torch.float64) * 2 - 1
    local = incumbent + local_scale * torch.randn(n_local, d, generator=generator, dtype=torch.float64)
    candidates = torch.cat([random, local.clamp(-1, 1)])
    with torch.no_grad():
        ei = expected_improvement(*posterior(model, candidates), best_y)
    x = candidates[torch.topk(ei, n_polish).indices].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=0.02)
    best_x, best_ei = x.detach().clone(), torch.full((n_polish,), -math.inf, dtype=torch.float64)
    for i in range(polish_steps + 1):
        value = expected_improvement(*posterior(model, x), best_y)
        with torch.no_grad():
            better = value > best_ei
            best_x[better], best_ei[better] = x[better], value[better]
        if i == polish_steps:
            break
        optimiser.zero_grad()
        (-value.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    return best_x[int(torch.argmax(best_ei))]


def bayesian_optimisation(segment: AresSegment, task: AresTask, target: np.ndarray, initial_magnets: np.ndarray,
                          dynamics: AresDynamics, max_interactions: int = 150, seed: int = 0,
                          fit_steps: int = 60) -> OptimiserResult:
    """Bayesian optimisation with expected improvement from the episode's initial settings.

    Same interface and result as ``references.nelder_mead`` (plus ``seed``, which fixes the
    acquisition's random candidates). The first interaction measures x0 = m0 / L, every
    further one the EI maximiser of a GP fitted to all measurements so far.
    """
    measure = MeasuredObjective(segment, task, target, initial_magnets, dynamics, max_interactions)
    generator = torch.Generator().manual_seed(int(seed))
    minimise(measure, measure.x0, max_interactions, generator, fit_steps)
    return measure.result()


def minimise(fn: Callable[[np.ndarray], float], x0: np.ndarray, budget: int, generator: torch.Generator,
             fit_steps: int = 60, off_value: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``fn`` over [-1, 1]^d with ``budget`` evaluations, starting at ``x0``.

    Values >= ``off_value`` (failed measurements; default ``references.OFF_SCREEN_VALUE``)
    are replaced, for the model, by the worst regular value seen plus the spread of the
    regular values (at least 1), so they stay the worst without dominating the scale. Stops early if ``fn``
    raises ``BudgetExhausted``. Returns the evaluated points and values.
    """
    off_value = OFF_SCREEN_VALUE if off_value is None else off_value
    xs, ys = [np.asarray(x0, dtype=float)], []
    try:
        ys.append(float(fn(xs[0])))
        while len(ys) < budget:
            x = torch.as_tensor(np.array(xs))
            y = np.array(ys)
            regular = y < off_value
            # A failed measurement is worse than every regular one by the spread of those (at least 1 = O_0).
            finite = y[regular] if regular.any() else np.ones(1)
            y = np.where(regular, y, finite.max() + max(float(np.ptp(finite)), 1.0))
            if y.std() > 0:
                ystd = torch.as_tensor((y - y.mean()) / y.std())
            else:
                ystd = torch.zeros(len(y), dtype=torch.float64)
            model = fit_gp(x, ystd, steps=fit_steps)
            incumbent = x[int(np.argmin(y))]
            nxt = propose(model, float(ystd.min()), incumbent, generator).detach().numpy()
            xs.append(nxt)
            ys.append(float(fn(nxt)))
    except BudgetExhausted:
        xs = xs[: len(ys)]
    return np.array(xs), np.array(ys)


__all__ = ["bayesian_optimisation", "expected_improvement", "fit_gp", "minimise", "posterior", "propose"]
