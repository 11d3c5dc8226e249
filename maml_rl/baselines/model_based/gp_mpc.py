"""GP-MPC: a Gaussian-process model of the readings and a receding-horizon controller on it.

Model. Each reading's change d_i = obs'_i - obs_i is an independent exact GP in the
input z = [obs, a] (20 numbers; a is the applied action),

    d_i ~ GP(0, k_i),   k_i(z, z') = s_i^2 exp(-1/2 sum_j (z_j - z'_j)^2 / l_ij^2),

an RBF kernel with one lengthscale per input (ARD), observed with Gaussian noise
sigma_i^2. The zero prior mean says "no action, no change". Hyper-parameters
(l, s, sigma) maximise the exact marginal likelihood (Adam on gpytorch's
``ExactMarginalLogLikelihood``; Rasmussen & Williams 2006, ch. 2 and 5). The posterior at
test inputs Z* (training inputs Z, targets y, K = k(Z, Z), K* = k(Z*, Z)) is

    mean = K* (K + sigma^2 I)^-1 y,    var = k(Z*, Z*) - K* (K + sigma^2 I)^-1 K*^T,

computed here from a cached Cholesky factor (``GaussianProcessDynamics.posterior``),
differentiable in Z* for the planner and tested against these formulas and against
gpytorch's own prediction.

Controller (model predictive control, Kamthe & Deisenroth 2018, "Data-efficient
reinforcement learning with probabilistic model predictive control", AISTATS). At every
step, optimise H actions a_1..a_H in [-1, 1]^10 (projected Adam, gradients by autograd;
see ``plan_actions``) on

    J = sum_t [ rms(m_t) + kappa * sqrt(mean_i S_t,i) ] + w * sum_t,i relu(|m_t,i| - 0.95)^2,

with m_t = m_(t-1) + mean(d | m_(t-1), a_t) (the mean propagated through the GP, m_0 =
obs) and S_t = S_(t-1) + var(d | m_(t-1), a_t) (per-step variances accumulated as if
independent; no moment matching of the input uncertainty). Apply a_1, observe, refit,
repeat. The sign: J is a cost (the reward is -10 rms), and ``+ kappa * std`` makes it a
pessimistic bound (an upper confidence bound on the cost = a lower confidence bound on the
reward). Planning on the optimistic bound would pull the actions towards regions without
data, where the zero-mean GP predicts no change with large variance: unsafe next to the
aperture, and an invitation to exploit the model's ignorance. The pessimistic bound keeps
the plan where the model has been measured; exploration comes from the few random actions
at the start and from the fact that every executed plan is itself a new measurement.
The last term keeps the predicted orbit off the aperture (beam loss).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from maml_rl.baselines.model_based.base import (
    Callback, CallbackSchedule, RealEnvironment, Transition, batch_obs, dynamics_of)

APERTURE_MARGIN = 0.95


def _gpytorch() -> Any:
    """Import gpytorch on first use (an optional dependency: ``pip install -e ".[modelbased]"``)."""
    try:
        import gpytorch
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError('GP-MPC needs gpytorch: pip install -e ".[modelbased]"') from error
    return gpytorch


def _exact_gp_class() -> type:
    gpytorch = _gpytorch()

    class BatchedExactGP(gpytorch.models.ExactGP):
        """Independent GPs, one per output, as one batched ExactGP (batch = outputs)."""

        def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, likelihood: Any,
                     min_lengthscale: float) -> None:
            super().__init__(inputs, targets, likelihood)
            batch = torch.Size([targets.shape[0]])
            self.mean_module = gpytorch.means.ZeroMean(batch_shape=batch)
            rbf = gpytorch.kernels.RBFKernel(ard_num_dims=inputs.shape[-1], batch_shape=batch,
                                             lengthscale_constraint=gpytorch.constraints.GreaterThan(min_lengthscale))
            self.covar_module = gpytorch.kernels.ScaleKernel(rbf, batch_shape=batch)

        def forward(self, x: torch.Tensor) -> Any:
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    return BatchedExactGP


class GaussianProcessDynamics:
    """Independent exact GPs (RBF-ARD, zero mean) of ``output_dim`` targets given inputs.

    Parameters
    ----------
    input_dim, output_dim
        Dimensions of the inputs z and of the targets d.
    noise_floor
        Lower bound of the (standardised) noise variance, for a stable Cholesky factor.
    lengthscale
        Initial ARD lengthscale (all inputs).
    min_lengthscale
        Lower bound of the lengthscales. Readings and actions are O(1) and the dynamics are
        smooth on that scale; without a bound, maximum likelihood on a few noisy points can
        explain the noise by a lengthscale of 0.01 on one input and zero noise (observed
        with noise_sigma = 0.01 and 60 points).

    Notes
    -----
    Targets are divided by their root mean square per output before fitting (the zero
    prior mean is kept), so the hyper-parameters live on a common scale; predictions are
    scaled back.
    """

    def __init__(self, input_dim: int, output_dim: int, noise_floor: float = 1e-6, lengthscale: float = 2.0,
                 min_lengthscale: float = 0.2) -> None:
        gpytorch = _gpytorch()
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.dtype = torch.float64
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            batch_shape=torch.Size([output_dim]),
            noise_constraint=gpytorch.constraints.GreaterThan(noise_floor)).to(self.dtype)
        empty_x = torch.zeros(output_dim, 1, input_dim, dtype=self.dtype)
        self.model = _exact_gp_class()(empty_x, torch.zeros(output_dim, 1, dtype=self.dtype),
                                       self.likelihood, min_lengthscale).to(self.dtype)
        self.model.covar_module.base_kernel.lengthscale = torch.full(
            (output_dim, 1, input_dim), float(lengthscale), dtype=self.dtype)
        self.model.covar_module.outputscale = torch.ones(output_dim, dtype=self.dtype)
        self.likelihood.noise = torch.full((output_dim, 1), 1e-2, dtype=self.dtype)
        self.inputs = torch.zeros(0, input_dim, dtype=self.dtype)
        self.targets = torch.zeros(0, output_dim, dtype=self.dtype)
        self.target_scale = torch.ones(output_dim, dtype=self.dtype)
        self._cache: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ data and fit
    @property
    def n_data(self) -> int:
        return int(self.inputs.shape[0])

    def set_data(self, inputs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor,
                 rescale: bool = True) -> None:
        """Condition on (N, input_dim) inputs and (N, output_dim) targets (hyper-parameters unchanged)."""
        self.inputs = torch.as_tensor(np.asarray(inputs), dtype=self.dtype).reshape(-1, self.input_dim)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=self.dtype).reshape(-1, self.output_dim)
        if rescale:
            rms = self.targets.square().mean(0).sqrt() if self.n_data else torch.ones(self.output_dim)
            self.target_scale = torch.where(rms > 0, rms, torch.ones_like(rms)).to(self.dtype)
        self.model.set_train_data(self._batched_inputs(), self._scaled_targets(), strict=False)
        self._cache = None

    def _batched_inputs(self) -> torch.Tensor:
        return self.inputs.unsqueeze(0).expand(self.output_dim, -1, -1)

    def _scaled_targets(self) -> torch.Tensor:
        return (self.targets / self.target_scale).T.contiguous()

    def fit(self, iterations: int = 100, lr: float = 0.05) -> float:
        """Maximise the exact marginal likelihood (Adam); returns the final mean log likelihood per point."""
        gpytorch = _gpytorch()
        if self.n_data < 2:
            return float("nan")
        self.model.train()
        self.likelihood.train()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.model)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=lr)  # includes the likelihood's noise
        x, y = self._batched_inputs(), self._scaled_targets()
        value = torch.tensor(float("nan"))
        for _ in range(iterations):
            optimiser.zero_grad()
            value = mll(self.model(x), y).sum()  # per output: log p(y_i) / N
            (-value).backward()
            optimiser.step()
        self.model.eval()
        self.likelihood.eval()
        self._cache = None
        return float(value.detach()) / self.output_dim

    # ------------------------------------------------------------------ hyper-parameters
    @property
    def lengthscales(self) -> torch.Tensor:
        """(output_dim, input_dim) ARD lengthscales l_ij."""
        return self.model.covar_module.base_kernel.lengthscale.detach().reshape(self.output_dim, self.input_dim)

    @property
    def signal_variances(self) -> torch.Tensor:
        """(output_dim,) s_i^2 in target units^2."""
        return self.model.covar_module.outputscale.detach() * self.target_scale ** 2

    @property
    def noise_variances(self) -> torch.Tensor:
        """(output_dim,) sigma_i^2 in target units^2."""
        return self.likelihood.noise.detach().reshape(self.output_dim) * self.target_scale ** 2

    def set_hyperparameters(self, lengthscales: np.ndarray, signal_variances: np.ndarray,
                            noise_variances: np.ndarray) -> None:
        """Set l (output_dim, input_dim), s^2 and sigma^2 (output_dim,), in target units (after ``set_data``)."""
        scale2 = self.target_scale ** 2
        self.model.covar_module.base_kernel.lengthscale = torch.as_tensor(
            lengthscales, dtype=self.dtype).reshape(self.output_dim, 1, self.input_dim)
        self.model.covar_module.outputscale = torch.as_tensor(signal_variances, dtype=self.dtype) / scale2
        self.likelihood.noise = (torch.as_tensor(noise_variances, dtype=self.dtype) / scale2).reshape(-1, 1)
        self._cache = None

    # ------------------------------------------------------------------ posterior
    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """k_i(a, b) for all outputs: (output_dim, len(a), len(b)) in standardised units."""
        ell = self.lengthscales.unsqueeze(1)  # (O, 1, D)
        scaled_a, scaled_b = a.unsqueeze(0) / ell, b.unsqueeze(0) / ell
        sq = (scaled_a.square().sum(-1, keepdim=True) + scaled_b.square().sum(-1).unsqueeze(1)
              - 2 * scaled_a @ scaled_b.transpose(1, 2)).clamp_min(0.0)
        return self.model.covar_module.outputscale.detach().view(-1, 1, 1) * torch.exp(-0.5 * sq)

    def _factor(self) -> dict[str, torch.Tensor]:
        if self._cache is None:
            noise = self.likelihood.noise.detach().reshape(self.output_dim, 1, 1)
            gram = self._kernel(self.inputs, self.inputs) + noise * torch.eye(self.n_data, dtype=self.dtype)
            chol = torch.linalg.cholesky(gram)
            alpha = torch.cholesky_solve(self._scaled_targets().unsqueeze(-1), chol)  # (O, N, 1)
            self._cache = {"chol": chol, "alpha": alpha}
        return self._cache

    def posterior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent targets at (M, input_dim) inputs: (M, output_dim) each.

        Differentiable in ``z``. Without data: the prior (mean 0, variance s^2).
        """
        z = z.to(self.dtype)
        prior_var = self.model.covar_module.outputscale.detach()
        if self.n_data == 0:
            return (torch.zeros(len(z), self.output_dim, dtype=self.dtype),
                    (prior_var * self.target_scale ** 2).expand(len(z), -1))
        cache = self._factor()
        cross = self._kernel(z, self.inputs)  # (O, M, N)
        mean = (cross @ cache["alpha"]).squeeze(-1).T  # (M, O)
        v = torch.linalg.solve_triangular(cache["chol"], cross.transpose(1, 2), upper=False)  # (O, N, M)
        var = (prior_var.view(-1, 1) - v.square().sum(1)).clamp_min(0.0).T
        return mean * self.target_scale, var * self.target_scale ** 2

    def gpytorch_posterior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same posterior from gpytorch's own prediction (for cross-checks; slower)."""
        self.model.eval()
        with torch.no_grad():
            dist = self.model(z.to(self.dtype).unsqueeze(0).expand(self.output_dim, -1, -1))
            return dist.mean.T * self.target_scale, dist.variance.T * self.target_scale ** 2


def plan_cost(model: GaussianProcessDynamics, start: torch.Tensor, actions: torch.Tensor, kappa: float = 1.0,
              aperture_weight: float = 100.0) -> torch.Tensor:
    """J of the module docstring for B plans: start (B, n) readings, actions (B, H, n); returns (B,)."""
    readings, spread = start, torch.zeros_like(start)
    total = torch.zeros(len(start), dtype=torch.float64)
    for t in range(actions.shape[1]):
        mean, var = model.posterior(torch.cat([readings, actions[:, t]], dim=1))
        readings, spread = readings + mean, spread + var
        total = total + torch.sqrt(readings.square().mean(1) + 1e-12) + kappa * torch.sqrt(spread.mean(1) + 1e-12)
        total = total + aperture_weight * torch.relu(readings.abs() - APERTURE_MARGIN).square().sum(1)
    return total


def plan_actions(model: GaussianProcessDynamics, obs: np.ndarray, horizon: int = 3, kappa: float = 1.0,
                 aperture_weight: float = 100.0, iterations: int = 100, lr: float = 0.1,
                 decay: float = 0.97) -> np.ndarray:
    """Optimise (B, horizon, n) actions in [-1, 1] on the GP for B start readings.

    Projected Adam (Kingma & Ba 2015): from zero actions, ``iterations`` Adam steps on J
    with step size lr * decay^k, each followed by clamping onto the box [-1, 1]. The batch
    cost is a sum of independent costs and Adam's update is elementwise, so a plan does not
    depend on the other readings of the batch, and one call serves many episodes. On
    measured states the plans cost 1-3 % more than L-BFGS-B's (scipy, per reading) at
    about a fifth of its time per reading for a batch of 10.
    """
    start = torch.as_tensor(np.atleast_2d(np.asarray(obs, dtype=float)), dtype=torch.float64)
    actions = torch.zeros(start.shape[0], horizon, start.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([actions], lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    for _ in range(iterations):
        optimiser.zero_grad()
        plan_cost(model, start, actions, kappa, aperture_weight).sum().backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            actions.clamp_(-1.0, 1.0)
    return actions.detach().numpy().copy()


class GPMPC:
    """GP-MPC on an AWAKE environment, with the face of ``base.InteractiveMethod``.

    Parameters
    ----------
    env
        An ``AwakeSteering`` environment.
    seed
        Fixes initial states and noise of the environment, the random actions and torch.
    n_random
        Random actions (U(-random_scale, random_scale)^10) before the first fit.
    random_scale
        Size of the random actions.
    horizon, kappa, aperture_weight, iterations
        Planner settings (``plan_actions``).
    refit_every
        Refit the hyper-parameters after this many new samples (the posterior is updated
        after every sample with the current hyper-parameters).
    fit_iterations, lr
        Adam iterations and step size of a hyper-parameter fit (warm-started).
    max_data
        Keep the most recent ``max_data`` samples (exact GP: O(N^3) per fit).

    Notes
    -----
    Cost of ``predict``: ``iterations`` Adam steps on B * horizon * 10 variables, each
    ``horizon`` GP posteriors of B points against N training points, with gradients;
    measured in ``docs/model_based.md``.
    """

    def __init__(self, env: gym.Env, seed: int = 0, n_random: int = 5, random_scale: float = 0.5,
                 horizon: int = 3, kappa: float = 1.0, aperture_weight: float = 100.0, iterations: int = 100,
                 refit_every: int = 5, fit_iterations: int = 100, lr: float = 0.05, max_data: int = 300) -> None:
        if n_random < 1 or horizon < 1 or refit_every < 1 or max_data < 2:
            raise ValueError("n_random, horizon, refit_every must be >= 1 and max_data >= 2")
        self.env = env
        self.dynamics = dynamics_of(env)
        self.n = int(env.action_space.shape[0])
        self.n_random, self.random_scale = int(n_random), float(random_scale)
        self.horizon, self.kappa, self.aperture_weight = int(horizon), float(kappa), float(aperture_weight)
        self.iterations = int(iterations)
        self.refit_every, self.fit_iterations = int(refit_every), int(fit_iterations)
        self.lr, self.max_data = float(lr), int(max_data)
        self.real = RealEnvironment(env, seed)
        self.rng = np.random.default_rng([int(seed), 0x6B])
        torch.manual_seed(seed)
        self.model = GaussianProcessDynamics(2 * self.n, self.n)
        self.num_timesteps = 0
        self._inputs: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._since_fit = 0
        self.fitted = False

    def add_transition(self, step: Transition) -> bool:
        """Store one transition if no reading of it is saturated; True if stored."""
        if not step.informative(self.dynamics.noise_sigma).all():
            return False
        self._inputs.append(np.concatenate([step.obs, step.action]))
        self._targets.append(step.next_obs - step.obs)
        del self._inputs[:-self.max_data], self._targets[:-self.max_data]
        self._since_fit += 1
        return True

    def update_model(self, force_fit: bool = False) -> None:
        """Condition on the stored data; refit the hyper-parameters when due."""
        if not self._inputs:
            return
        refit = force_fit or not self.fitted or self._since_fit >= self.refit_every
        self.model.set_data(np.stack(self._inputs), np.stack(self._targets), rescale=refit)
        if refit and len(self._inputs) >= self.n_random:
            self.model.fit(self.fit_iterations, self.lr)
            self.fitted, self._since_fit = True, 0

    def learn(self, total_timesteps: int, callback: Callback | None = None, eval_every: int | None = None) -> "GPMPC":
        """Act (random, then MPC) for ``total_timesteps`` real interactions, updating the GP after each."""
        schedule = CallbackSchedule(callback, eval_every, self.num_timesteps)
        for _ in range(int(total_timesteps)):
            obs = self.real.obs
            if not self.fitted:
                action = self.rng.uniform(-self.random_scale, self.random_scale, self.n)
            else:
                action = self.predict(obs)[0]
            step = self.real.step(action)
            if self.add_transition(step):
                self.update_model()
            self.num_timesteps += 1
            if not schedule(self, self.num_timesteps):
                break
        return self

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """First action of the MPC plan for each observation (zeros before the first fit)."""
        batch, single = batch_obs(obs, self.n)
        if not self.fitted:
            actions = np.zeros_like(batch)
        else:
            actions = plan_actions(self.model, batch, self.horizon, self.kappa, self.aperture_weight,
                                   self.iterations)[:, 0]
        actions = actions.astype(np.float32)
        return (actions[0] if single else actions), None


__all__ = ["GaussianProcessDynamics", "GPMPC", "plan_actions"]
