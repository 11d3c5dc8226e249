"""Conjugate gradient for the TRPO natural-gradient step."""

from __future__ import annotations

from typing import Callable

import torch


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       max_iters: int = 10, residual_tol: float = 1e-10) -> tuple[torch.Tensor, int]:
    """Solve A x = b for symmetric positive definite A given only x -> A x.

    Hestenes & Stiefel (1952); Nocedal & Wright, Numerical Optimization, Alg. 5.2.
    Starts from x = 0 and stops after ``max_iters`` iterations or when r^T r < residual_tol.

    Returns
    -------
    (x, iterations)
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = float(torch.dot(r, r))
    iterations = 0
    while iterations < max_iters and rr >= residual_tol:
        ap = matvec(p)
        curvature = float(torch.dot(p, ap))
        if not curvature > 0:  # not positive definite along p (or nan): keep the current iterate
            break
        alpha = rr / curvature
        x.add_(p, alpha=alpha)  # in place with scalar coefficients: few operations per iteration
        r.add_(ap, alpha=-alpha)
        rr_new = float(torch.dot(r, r))
        p.mul_(rr_new / rr).add_(r)
        rr = rr_new
        iterations += 1
    return x.detach(), iterations
