"""Reference controllers of the ARES-EA problem: the limit and the classic tuning baseline.

* ``limit``: knowing the task, the best settings reachable within the magnet limits,
  found by gradient-based optimisation through Cheetah (differentiable: projected
  Levenberg-Marquardt with autograd Jacobians, then Adam) from several starts at once,
  and the fewest steps any controller can need under the action bounds. In ``delta`` mode
  each step moves every magnet by at most 0.1 L_i, so the settings reachable in k steps
  from m0 are the box B_k = [m0 - 0.1 k L, m0 + 0.1 k L] intersected with [-L, L] (moving
  along the straight segment reaches any point of it). The limit is the smallest k for
  which the optimiser finds a point of B_k within the success thresholds, plus
  ``success_steps - 1`` steps of holding it; in ``direct`` mode any setting is one step
  away. It is a lower bound as good as the optimiser: a local optimiser can miss a
  better point, never invent one.
* ``nelder_mead``: derivative-free tuning on the measured objective (scipy's
  Nelder-Mead in the normalised settings x = m / L, bounded to [-1, 1]^5), counted in
  interactions: each objective evaluation sets the magnets and reads the screen once.

* ``bayesopt.bayesian_optimisation``: Gaussian-process Bayesian optimisation with
  expected improvement on the same measured objective and interaction count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.optimize import minimize

from maml_rl.families.ares_ea.dynamics import (DELTA_FRACTION, N_MAGNETS, AresDynamics, on_screen,
                                               within_thresholds)
from maml_rl.families.ares_ea.segment import MAGNET_LIMITS, AresSegment
from maml_rl.families.ares_ea.tasks import AresTask, task_arrays

# Success is the strict |b - t| < threshold: aim a little inside.
SUCCESS_MARGIN = 1.0 - 1e-6
# Value of a Nelder-Mead evaluation with the beam off the screen (a failed measurement),
# in units of the objective at the start.
OFF_SCREEN_VALUE = 1e3
MAX_DELTA_STEPS = math.ceil(2.0 / DELTA_FRACTION - 1e-9)  # any setting is reachable in 20 steps


def screen_beam_of(segment: AresSegment, task: AresTask, n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Map (n, 5) settings tensor -> (n, 4) screen beam of ``task`` (differentiable)."""
    beams, shifts = task_arrays([task])
    incoming = segment.incoming_beam(np.repeat(beams, n, axis=0))
    shifts = torch.as_tensor(np.repeat(shifts, n, axis=0), dtype=segment.dtype)
    return lambda magnets: segment.screen_beam(magnets, incoming, shifts)


def projected_adam(loss_fn: Callable[[torch.Tensor], torch.Tensor], starts: np.ndarray, lower: np.ndarray,
                   upper: np.ndarray, iterations: int, lr: float = 0.05, final_lr: float = 5e-4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Minimise N independent problems at once by Adam steps projected onto boxes.

    The variables are the normalised settings x = m / L; after every step x is clipped to
    [lower, upper] (also normalised). The step size decays as lr (final_lr / lr)^(i / n).
    The best point seen by each problem is returned (the loss is not monotone under Adam).

    Parameters
    ----------
    loss_fn
        (N, 5) settings m [k1, angle units] -> (N,) losses (each row its own problem).
    starts, lower, upper
        (N, 5) settings.

    Returns
    -------
    (settings, losses)
        (N, 5) best settings and their (N,) losses.
    """
    scale = torch.as_tensor(MAGNET_LIMITS, dtype=torch.float64)
    lo = torch.as_tensor(lower, dtype=torch.float64) / scale
    hi = torch.as_tensor(upper, dtype=torch.float64) / scale
    x = (torch.as_tensor(starts, dtype=torch.float64) / scale).clamp(lo, hi).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    decay = (final_lr / lr) ** (1.0 / max(iterations, 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    best_x, best_loss = x.detach().clone(), torch.full((len(x),), math.inf, dtype=torch.float64)
    for i in range(iterations + 1):
        loss = loss_fn(x * scale)
        with torch.no_grad():
            better = loss < best_loss
            best_x[better], best_loss[better] = x[better], loss[better]
        if i == iterations:
            break
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    return (best_x * scale).numpy(), best_loss.numpy()


def projected_levenberg_marquardt(residual_fn: Callable[[torch.Tensor], torch.Tensor], starts: np.ndarray,
                                  lower: np.ndarray, upper: np.ndarray, iterations: int
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """Minimise N independent sums of squares |r(m)|^2 at once, each within its box.

    Levenberg-Marquardt in the normalised settings x = m / L with the Jacobian J = dr/dx
    from autograd through Cheetah (one backward pass per residual component):

        (J^T J + lambda diag(J^T J)) dx = -J^T r,    x <- clip(x + dx, lower, upper),

    a trial is accepted if it lowers |r|^2 (then lambda /= 3), else lambda *= 4.

    Parameters
    ----------
    residual_fn
        (N, 5) settings -> (N, R) residuals (row n depends only on setting n).
    starts, lower, upper
        (N, 5) settings.

    Returns
    -------
    (settings, costs)
        (N, 5) final settings and their (N,) |r|^2.
    """
    scale = torch.as_tensor(MAGNET_LIMITS, dtype=torch.float64)
    lo = torch.as_tensor(lower, dtype=torch.float64) / scale
    hi = torch.as_tensor(upper, dtype=torch.float64) / scale
    x = (torch.as_tensor(starts, dtype=torch.float64) / scale).clamp(lo, hi)
    damping = torch.full((len(x),), 1e-2, dtype=torch.float64)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    for _ in range(iterations):
        x.requires_grad_(True)
        r = residual_fn(x * scale)
        jac = torch.stack([torch.autograd.grad(r[:, i].sum(), x, retain_graph=i < r.shape[1] - 1)[0]
                           for i in range(r.shape[1])], dim=1)                       # (N, R, 5)
        x, r = x.detach(), r.detach()
        cost = (r ** 2).sum(-1)
        jtj = jac.mT @ jac
        diag = torch.diagonal(jtj, dim1=-2, dim2=-1).clamp_min(1e-12 * jtj.diagonal(dim1=-2, dim2=-1).sum(-1,
                                                                                                keepdim=True))
        system = jtj + damping[:, None, None] * torch.diag_embed(diag) + 1e-15 * eye
        step = torch.linalg.solve(system, -(jac.mT @ r[..., None]))[..., 0]
        trial = torch.maximum(torch.minimum(x + step, hi), lo)
        with torch.no_grad():
            trial_cost = (residual_fn(trial * scale) ** 2).sum(-1)
        better = trial_cost < cost
        x = torch.where(better[:, None], trial, x)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
    with torch.no_grad():
        cost = (residual_fn(x * scale) ** 2).sum(-1)
    return (x * scale).numpy(), cost.numpy()


def _objective_loss(target: torch.Tensor, weights: torch.Tensor, beam_fn: Callable) -> Callable:
    return lambda m: (weights * (beam_fn(m) - target).abs()).sum(-1)


@dataclass(frozen=True)
class LimitResult:
    """What a controller that knows the task can achieve from one initial state.

    Attributes
    ----------
    best_settings, best_beam, best_objective
        Best settings found in the whole box (minimising the objective), their screen beam
        and objective O [m].
    steps
        Fewest steps to success under the action bounds (None: no setting within the
        thresholds found).
    plan
        (steps, 5) settings after each step of a straight path reaching success (empty if
        ``steps`` is None).
    path_on_screen
        Whether the beam stays on the screen along ``plan`` (if not, ``steps`` is still a
        lower bound but that path would end the episode).
    """

    best_settings: np.ndarray
    best_beam: np.ndarray
    best_objective: float
    steps: int | None
    plan: np.ndarray
    path_on_screen: bool

    def actions(self, initial_magnets: np.ndarray, action_mode: str) -> np.ndarray:
        """(steps, 5) actions that follow ``plan`` from ``initial_magnets``."""
        if action_mode == "direct":
            return self.plan / MAGNET_LIMITS
        previous = np.vstack([initial_magnets, self.plan[:-1]]) if len(self.plan) else self.plan
        return (self.plan - previous) / (DELTA_FRACTION * MAGNET_LIMITS)


def limit(segment: AresSegment, task: AresTask, target: np.ndarray, initial_magnets: np.ndarray,
          dynamics: AresDynamics, rng: np.random.Generator, starts: int = 8, iterations: int = 40,
          polish_iterations: int = 100, max_steps: int = MAX_DELTA_STEPS) -> LimitResult:
    """The limit reference from one initial state (see the module docstring).

    1. Best objective: Levenberg-Marquardt on the residuals (b - t) / threshold over the
       whole box from the initial settings and ``starts - 1`` random starts, then Adam on
       the L1 objective itself from those solutions (it only matters when the target is not
       reachable exactly; the best point seen is kept).
    2. Fewest steps: Levenberg-Marquardt in every box B_k (k = 1..``max_steps``; one box in
       ``direct`` mode) from m0, the best setting of 1 clipped into B_k and random points of
       B_k, all boxes in one batch; success iff max_i |b_i - t_i| / threshold_i < 1. Among
       the successful settings of the smallest k, one whose straight path keeps the beam on
       the screen is preferred.

    Parameters
    ----------
    segment
        The Cheetah model.
    task, target, initial_magnets
        The episode: task, (4,) target [m], (5,) settings at reset.
    dynamics
        Action mode, thresholds, weights and ``success_steps`` of the environment.
    rng
        Draws the random starts.
    starts
        Starts per box (>= 2).
    iterations, polish_iterations
        Levenberg-Marquardt and Adam iterations.
    max_steps
        Largest k searched in ``delta`` mode (default 20: every setting is reachable).
    """
    if starts < 2 or iterations < 1 or polish_iterations < 0 or not 1 <= max_steps <= MAX_DELTA_STEPS:
        raise ValueError(f"need starts >= 2, iterations >= 1, polish_iterations >= 0 and 1 <= max_steps <= "
                         f"{MAX_DELTA_STEPS}; got {starts}, {iterations}, {polish_iterations}, {max_steps}")
    target_np, m0 = np.asarray(target, dtype=float), np.asarray(initial_magnets, dtype=float)
    tgt = torch.as_tensor(target_np)
    weights, thresholds = torch.as_tensor(dynamics.weights), torch.as_tensor(dynamics.thresholds)
    beams, shifts = task_arrays([task])

    def track(settings: np.ndarray) -> np.ndarray:
        return segment.screen_beam_numpy(settings, np.repeat(beams, len(settings), 0),
                                         np.repeat(shifts, len(settings), 0))

    # 1. Best objective in the whole box.
    full_lo, full_hi = np.tile(-MAGNET_LIMITS, (starts, 1)), np.tile(MAGNET_LIMITS, (starts, 1))
    x0 = np.vstack([m0, rng.uniform(-1, 1, (starts - 1, N_MAGNETS)) * MAGNET_LIMITS])
    beam_fn = screen_beam_of(segment, task, starts)
    settings, _ = projected_levenberg_marquardt(lambda m: (beam_fn(m) - tgt) / thresholds, x0, full_lo, full_hi,
                                                iterations)
    if polish_iterations:
        settings, _ = projected_adam(_objective_loss(tgt, weights, beam_fn), settings, full_lo, full_hi,
                                     polish_iterations, lr=1e-2, final_lr=1e-5)
    values = dynamics.objective(track(settings), target_np)
    best = settings[int(np.argmin(values))]
    best_beam = track(best[None])[0]
    best_objective = float(dynamics.objective(best_beam, target_np))

    # 2. Fewest steps to success: boxes reachable in k = 1..K steps, all in one batch.
    ks = [1] if dynamics.action_mode == "direct" else list(range(1, max_steps + 1))
    lo, hi, x0 = [], [], []
    for k in ks:
        radius = np.inf if dynamics.action_mode == "direct" else k * DELTA_FRACTION * MAGNET_LIMITS
        box_lo, box_hi = np.maximum(m0 - radius, -MAGNET_LIMITS), np.minimum(m0 + radius, MAGNET_LIMITS)
        random = box_lo + (box_hi - box_lo) * rng.uniform(0, 1, (starts - 2, N_MAGNETS))
        x0 += [m0, np.clip(best, box_lo, box_hi), *random]
        lo += [box_lo] * starts
        hi += [box_hi] * starts
    beam_fn = screen_beam_of(segment, task, len(x0))
    settings, _ = projected_levenberg_marquardt(lambda m: (beam_fn(m) - tgt) / thresholds, np.array(x0),
                                                np.array(lo), np.array(hi), iterations)
    deviation = (np.abs(track(settings) - target_np) / np.asarray(dynamics.thresholds)).max(axis=1)
    deviation, settings = deviation.reshape(len(ks), starts), settings.reshape(len(ks), starts, N_MAGNETS)
    feasible = np.flatnonzero(deviation.min(axis=1) < SUCCESS_MARGIN)
    if len(feasible) == 0:
        return LimitResult(best, best_beam, best_objective, None, np.zeros((0, N_MAGNETS)), False)
    k = ks[feasible[0]]
    candidates = settings[feasible[0]][np.argsort(deviation[feasible[0]])]
    candidates = candidates[np.sort(deviation[feasible[0]]) < SUCCESS_MARGIN]
    fractions = np.arange(1, k + 1)[:, None, None] / k
    paths = m0 + (candidates[None] - m0) * fractions if dynamics.action_mode == "delta" else candidates[None]
    along = on_screen(track(paths.reshape(-1, N_MAGNETS))).reshape(len(paths), len(candidates)).all(axis=0)
    choice = int(np.argmax(along))  # the first (smallest deviation) with an on-screen path, else the first
    goal, path = candidates[choice], paths[:, choice]
    plan = np.vstack([path, np.repeat(goal[None], dynamics.success_steps - 1, axis=0)])
    return LimitResult(best, best_beam, best_objective, len(plan), plan, bool(along[choice]))


@dataclass(frozen=True)
class OptimiserResult:
    """Trace of a derivative-free optimiser run (Nelder-Mead, Bayesian optimisation), one entry per
    interaction (objective evaluation).

    Attributes
    ----------
    objectives
        O [m] measured at each interaction (NaN where the beam was off the screen).
    best_objective, best_settings
        Best on-screen objective [m] and its settings.
    success_interaction
        1-based index of the first interaction within the thresholds (None if none).
    """

    objectives: np.ndarray
    best_objective: float
    best_settings: np.ndarray
    success_interaction: int | None

    @property
    def interactions(self) -> int:
        return len(self.objectives)

    def best_so_far(self) -> np.ndarray:
        """Best on-screen objective after each interaction (NaN before the first)."""
        values = np.where(np.isnan(self.objectives), np.inf, self.objectives)
        best = np.minimum.accumulate(values)
        return np.where(np.isinf(best), np.nan, best)


class MeasuredObjective:
    """The measured objective of one episode, counted in interactions (shared by the optimisers).

    Calling it with normalised settings x in [-1, 1]^5 sets the magnets m = x L, reads the
    screen once and returns O / O_0 (O_0: the objective at the first call, floored), or
    ``OFF_SCREEN_VALUE`` with the beam off the screen. It raises ``BudgetExhausted`` once
    ``max_interactions`` evaluations are made; ``result()`` gives the trace.
    """

    def __init__(self, segment: AresSegment, task: AresTask, target: np.ndarray, initial_magnets: np.ndarray,
                 dynamics: AresDynamics, max_interactions: int) -> None:
        if max_interactions < 1:
            raise ValueError(f"max_interactions must be >= 1, got {max_interactions}")
        self.segment, self.dynamics, self.max_interactions = segment, dynamics, max_interactions
        self.target = np.asarray(target, dtype=float)
        beams, self.shifts = task_arrays([task])
        self.incoming = segment.incoming_beam(beams)
        self.thresholds = np.asarray(dynamics.thresholds)
        self.trace: list[float] = []
        self.best_objective, self.best_settings = math.inf, np.asarray(initial_magnets, dtype=float)
        self.success: int | None = None
        self.scale: float | None = None
        # The optimisers' start: the episode's initial settings, normalised.
        self.x0 = np.clip(np.asarray(initial_magnets, dtype=float) / MAGNET_LIMITS, -1.0, 1.0)

    def __call__(self, x: np.ndarray) -> float:
        if len(self.trace) >= self.max_interactions:
            raise BudgetExhausted
        magnets = np.clip(np.asarray(x, dtype=float), -1.0, 1.0) * MAGNET_LIMITS
        beam = self.segment.screen_beam_numpy(magnets[None], self.incoming, self.shifts)[0]
        value = float(self.dynamics.objective(beam, self.target))
        if self.scale is None:
            self.scale = max(value, self.dynamics.objective_floor)
        if not on_screen(beam):
            self.trace.append(math.nan)
            return OFF_SCREEN_VALUE
        self.trace.append(value)
        if value < self.best_objective:
            self.best_objective, self.best_settings = value, magnets
        if self.success is None and within_thresholds(beam, self.target, self.thresholds):
            self.success = len(self.trace)
        return value / self.scale

    def result(self) -> OptimiserResult:
        return OptimiserResult(np.array(self.trace), float(self.best_objective), np.asarray(self.best_settings),
                               self.success)


def nelder_mead(segment: AresSegment, task: AresTask, target: np.ndarray, initial_magnets: np.ndarray,
                dynamics: AresDynamics, max_interactions: int = 150, initial_step: float = 0.1) -> OptimiserResult:
    """Bounded Nelder-Mead on the measured objective from the episode's initial settings.

    The initial simplex is x0 and x0 +- ``initial_step`` along each axis of the normalised
    settings (the size of one ``delta`` action; the sign points into the box). The measured
    value is O / O_0 (O_0: the objective at ``initial_magnets``), or ``OFF_SCREEN_VALUE``
    with the beam off the screen. Every evaluation, including the first one at x0, counts
    as one interaction.
    """
    measure = MeasuredObjective(segment, task, target, initial_magnets, dynamics, max_interactions)
    x0 = measure.x0
    simplex = [x0]
    for i in range(N_MAGNETS):
        step = initial_step if x0[i] + initial_step <= 1.0 else -initial_step
        simplex.append(x0 + step * np.eye(N_MAGNETS)[i])
    try:
        minimize(measure, x0, method="Nelder-Mead", bounds=[(-1.0, 1.0)] * N_MAGNETS,
                 options={"maxfev": max_interactions, "initial_simplex": np.array(simplex), "xatol": 1e-9,
                          "fatol": 1e-12})
    except BudgetExhausted:  # scipy may evaluate a few points past maxfev within an iteration
        pass
    return measure.result()


class BudgetExhausted(Exception):
    """Raised by ``MeasuredObjective`` to stop an optimiser at exactly ``max_interactions``."""
