"""Linear feature baseline (Duan et al. 2016, "Benchmarking Deep RL for Continuous Control").

V(s_t) = w^T phi(s_t, t),  phi = [s, s^2, t, t^2, t^3, 1],  t = step / 100,

fitted per task by ridge-regularised least squares on the valid (unpadded) steps:
w = (X^T X + c I)^-1 X^T y. If the Cholesky factorisation fails or gives non-finite
weights the regularisation c is multiplied by 10, up to ``max_tries`` times.
"""

from __future__ import annotations

import torch

TIME_SCALE = 100.0


class BaselineFitError(RuntimeError):
    """The normal equations stayed singular even with the largest regularisation."""


class LinearFeatureBaseline:
    """One linear value function per task, fitted in float64.

    Parameters
    ----------
    obs_dim
        Observation dimension d (features: 2 d + 4).
    reg_coeff
        Initial ridge coefficient c.
    max_tries
        Number of escalations (x10 each) before giving up.
    """

    def __init__(self, obs_dim: int, reg_coeff: float = 1e-5, max_tries: int = 5) -> None:
        self.obs_dim = obs_dim
        self.reg_coeff = reg_coeff
        self.max_tries = max_tries
        self.weights: torch.Tensor | None = None  # [K, F]

    @property
    def feature_size(self) -> int:
        return 2 * self.obs_dim + 4

    def features(self, obs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """phi for observations [..., d] at step indices [...] -> [..., 2 d + 4] (float64)."""
        obs = obs.double()
        t = steps.double().unsqueeze(-1) / TIME_SCALE
        return torch.cat([obs, obs ** 2, t, t ** 2, t ** 3, torch.ones_like(t)], dim=-1)

    def fit(self, obs: torch.Tensor, steps: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor) -> None:
        """Fit one weight vector per task.

        Parameters
        ----------
        obs
            [K, T, B, d] observations.
        steps, mask, returns
            [K, T, B] step indices, validity mask, regression targets.
        """
        k = obs.shape[0]
        valid = mask.reshape(k, -1) > 0  # padded rows never enter the fit
        x = self.features(obs.reshape(k, -1, obs.shape[-1])[valid], steps.reshape(k, -1)[valid])
        y = returns.reshape(k, -1)[valid].double().unsqueeze(-1)
        counts = valid.sum(1).tolist()  # rows are task-major: task k's rows are the k-th run
        xs, ys = torch.split(x, counts), torch.split(y, counts)
        xtx = torch.stack([a.T @ a for a in xs])
        xty = torch.stack([a.T @ b for a, b in zip(xs, ys)])
        eye = torch.eye(self.feature_size, dtype=torch.float64)
        reg = torch.full((k,), self.reg_coeff, dtype=torch.float64)
        weights = torch.zeros(k, self.feature_size, dtype=torch.float64)
        pending = torch.ones(k, dtype=torch.bool)
        for _ in range(self.max_tries):
            a = xtx[pending] + reg[pending, None, None] * eye
            chol, info = torch.linalg.cholesky_ex(a)
            solution = torch.cholesky_solve(xty[pending], chol).squeeze(-1)
            ok = (info == 0) & torch.isfinite(solution).all(-1)
            index = pending.nonzero().squeeze(-1)
            weights[index[ok]] = solution[ok]
            pending[index[ok]] = False
            if not pending.any():
                self.weights = weights
                return
            reg[pending] *= 10.0
        raise BaselineFitError(
            f"linear baseline fit failed for {int(pending.sum())} task(s): normal equations singular "
            f"or non-finite even with regularisation {float(reg.max()):.1e}")

    def predict(self, obs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Values [K, T, B] (float32) for observations [K, T, B, d] at step indices [K, T, B]."""
        if self.weights is None:
            raise RuntimeError("baseline used before fit")
        # w^T phi without materialising phi: linear and quadratic terms in obs, Horner in t.
        d, w = self.obs_dim, self.weights
        o = obs.double()
        t = steps.double() / TIME_SCALE
        shape = (w.shape[0],) + (1,) * (t.dim() - 1)
        values = torch.einsum("k...d,kd->k...", o, w[:, :d]) + torch.einsum("k...d,kd->k...", o * o, w[:, d:2 * d])
        coef = [w[:, 2 * d + i].view(shape) for i in range(4)]  # t, t^2, t^3, 1
        values = values + (t * (coef[0] + t * (coef[1] + t * coef[2])) + coef[3])
        return values.float()
