"""Reference controllers that know the response matrix.

* ``benchmark_action``: the earlier implementation's reference, a = -100 R^-1 obs,
  rescaled so that max|a| <= 1. It always moves straight towards the centred orbit at
  the largest admissible speed of its slowest corrector.
* ``limit_action``: the fewest steps any controller can need under the per-step bound
  max|a| <= 1. The readings after a total correction D (in action units) are
  obs + 0.01 R D (dynamics: theta += 1e-4 a, readings = 100 R theta), so success in
  k steps is possible iff some D with ||D||_inf <= k gives ||obs + 0.01 R D||_2 <=
  threshold * sqrt(10). The controller finds the smallest such k by box-constrained least
  squares (scipy ``lsq_linear``, BVLS) and takes the step D / k; it re-plans every step.
  Moving along the straight segment keeps every intermediate reading between its start
  and end value, so no intermediate state leaves the aperture.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import lsq_linear

from maml_rl.envs.dynamics import READING_SCALE, normalise_actions

# Aim slightly inside the success ball: success is the strict rms < threshold.
TARGET_MARGIN = 1.0 - 1e-6


def benchmark_action(response: np.ndarray, obs: np.ndarray, action_scale: float = 1e-4) -> np.ndarray:
    """Benchmark action(s) a = -R^-1 obs / (100 * action_scale), rescaled to max|a| <= 1.

    Parameters
    ----------
    response
        (10, 10) or (B, 10, 10) response matrices.
    obs
        (10,) or (B, 10) observations.
    """
    full = -np.linalg.solve(response, np.asarray(obs, dtype=float)[..., None])[..., 0]
    return normalise_actions(full / (READING_SCALE * action_scale))


def _min_residual(gain: np.ndarray, obs: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
    """argmin_{|D|_inf <= bound} ||obs + gain D||_2 and the minimum."""
    solution = lsq_linear(gain, -obs, bounds=(-bound, bound), method="bvls", tol=1e-12)
    correction = solution.x
    return correction, float(np.linalg.norm(obs + gain @ correction))


def limit_steps_and_action(response: np.ndarray, obs: np.ndarray, threshold: float = 0.1,
                           action_scale: float = 1e-4) -> tuple[int, np.ndarray]:
    """Fewest steps k to success from ``obs`` and the first action of a k-step plan.

    Parameters
    ----------
    response
        (10, 10) response matrix.
    obs
        (10,) current observation.

    Returns
    -------
    (k, action)
        k >= 1 (0 if already successful, with a zero action).
    """
    obs = np.asarray(obs, dtype=float)
    radius = threshold * math.sqrt(obs.size) * TARGET_MARGIN
    if np.linalg.norm(obs) < radius:
        return 0, np.zeros_like(obs)
    gain = READING_SCALE * action_scale * np.asarray(response, dtype=float)
    # The exact solution bounds the search: ceil(|D*|_inf) steps always suffice.
    exact = -np.linalg.solve(gain, obs)
    upper = max(1, math.ceil(np.max(np.abs(exact)) - 1e-12))
    best = (upper, exact / upper)
    low, high = 1, upper  # smallest feasible k lies in [low, high]
    while low < high:
        mid = (low + high) // 2
        correction, residual = _min_residual(gain, obs, float(mid))
        if residual <= radius:
            high, best = mid, (mid, correction / mid)
        else:
            low = mid + 1
    return best


def limit_action(response: np.ndarray, obs: np.ndarray, threshold: float = 0.1,
                 action_scale: float = 1e-4) -> np.ndarray:
    """Action(s) of the limit controller for (10, 10)/(10,) or batched (B, 10, 10)/(B, 10)."""
    response, obs = np.asarray(response, dtype=float), np.asarray(obs, dtype=float)
    if obs.ndim == 1:
        return limit_steps_and_action(response, obs, threshold, action_scale)[1]
    return np.stack([limit_steps_and_action(r, o, threshold, action_scale)[1]
                     for r, o in zip(response, obs)])
