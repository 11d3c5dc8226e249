"""Response-matrix identification: probe the correctors, fit R by least squares, steer with it.

The classic method of accelerator operation. Between two readings the dynamics are linear,

    obs' - obs = G a,    G = 100 * action_scale * R,

for the applied (normalised) action a, as long as no reading touches the aperture. So each
step is one sample (x = a, y = obs' - obs) of a multi-output linear regression, and row i
of G is the least-squares solution over the steps whose reading i is informative (see
``informative_readings``: saturated readings say nothing about R). Observation noise of
standard deviation sigma enters y twice (two readings), so for probes of size p the
estimate error scales like sigma / p.

* ``least_squares_response``: the batch estimate (optionally exponentially weighted).
* ``RecursiveLeastSquares``: the same estimate updated at every step in O(n^2) per row
  (covariance form with a forgetting factor, exactly initialised from the first
  full-rank batch; Ljung & Soederstroem 1983, "Theory and Practice of Recursive
  Identification", ch. 2).
* ``ResponseMatrixIdentification``: the method. ``learn`` probes from the episode's
  initial state (one corrector at a time, or random offsets of size ``probe_size``) and
  re-estimates after every probe; optionally it then steers with the estimate and keeps
  updating from the controller's own steps. ``predict`` is the inverse of the estimate (the
  benchmark's law, ``benchmark_action``) or the limit controller on the estimate. Every
  probe is a real interaction.

Closed-loop bias. A step of the controller is feedback on a noisy reading: a_k depends on
the noise n_k of obs_k, and y_k = obs_(k+1) - obs_k = G a_k + n_(k+1) - n_k contains -n_k.
So least squares on closed-loop steps is biased when ``noise_sigma`` > 0 (near the
target, a_k = -G^-1 (x_k + n_k) makes the fit drift towards 2 G); probes are open-loop and
unbiased. Hence steering steps enter the estimate only with ``closed_loop_updates=True``
(exact without noise; the bias is measured in ``docs/model_based.md``).
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np

from maml_rl.baselines.model_based.base import (
    Callback, CallbackSchedule, RealEnvironment, batch_obs, dynamics_of, informative_readings,
    next_readings_informative)
from maml_rl.envs.controllers import benchmark_action, limit_action
from maml_rl.envs.dynamics import READING_SCALE

ProbeMode = Literal["corrector", "random"]
ControllerKind = Literal["inverse", "limit"]
Structure = Literal["full", "causal"]
# A row counts as identified once its information matrix is this well conditioned.
MIN_RECIPROCAL_CONDITION = 1e-10


def causal_structure(n: int = 10) -> np.ndarray:
    """Free entries of R for the AWAKE layout: monitor i (2..11) sees kicker j (1..10) iff i >= j.

    A monitor upstream of a kicker reads zero for every optics (tested against the
    response matrices), so a fit may leave those entries at zero: 55 instead of 100 unknowns.
    """
    return np.tril(np.ones((n, n), dtype=bool))


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative Frobenius error ||estimate - truth||_F / ||truth||_F."""
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def _weights(valid: np.ndarray, forgetting: float) -> np.ndarray:
    """lambda^(n - k) for the k-th of n valid samples of a row (0 for invalid samples)."""
    order = np.cumsum(valid)  # 1-based index among the row's valid samples
    return np.where(valid, forgetting ** (order[-1] - order if len(order) else 0), 0.0)


def least_squares_gain(inputs: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None,
                       structure: np.ndarray | None = None, forgetting: float = 1.0) -> np.ndarray:
    """Row-wise (weighted) least squares for targets ~ inputs @ G.T.

    Row i solves  min_g  sum_k w_ik (y_ki - g . x_k)^2  over its free entries, where
    w_ik = lambda^(n_i - k) over the n_i samples valid for row i (0 for the others).

    Parameters
    ----------
    inputs
        (N, n_in) regressors x_k (here: applied actions).
    targets
        (N, n_out) responses y_k (here: changes of the readings).
    valid
        (N, n_out) which target entries enter the fit (default all).
    structure
        (n_out, n_in) bool, free entries of G (default all); the others are 0.
    forgetting
        lambda in (0, 1].

    Returns
    -------
    ndarray
        (n_out, n_in) estimate G (NaN rows where the data do not determine the row).
    """
    inputs, targets = np.asarray(inputs, float), np.asarray(targets, float)
    n_out, n_in = targets.shape[1], inputs.shape[1]
    valid = np.ones_like(targets, dtype=bool) if valid is None else np.asarray(valid, bool)
    structure = np.ones((n_out, n_in), bool) if structure is None else np.asarray(structure, bool)
    gain = np.full((n_out, n_in), np.nan)
    for i in range(n_out):
        free = structure[i]
        sqrt_w = np.sqrt(_weights(valid[:, i], forgetting))
        design = inputs[:, free] * sqrt_w[:, None]
        solution, _, rank, _ = np.linalg.lstsq(design, targets[:, i] * sqrt_w, rcond=None)
        if rank == free.sum():
            gain[i] = 0.0
            gain[i, free] = solution
    return gain


def least_squares_response(actions: np.ndarray, delta_readings: np.ndarray, valid: np.ndarray | None = None,
                           structure: np.ndarray | None = None, forgetting: float = 1.0,
                           action_scale: float = 1e-4) -> np.ndarray:
    """Batch estimate of R from applied actions (N, 10) and reading changes (N, 10).

    R = G / (100 action_scale), G from ``least_squares_gain``.
    """
    return least_squares_gain(actions, delta_readings, valid, structure, forgetting) / (READING_SCALE * action_scale)


class RecursiveLeastSquares:
    """Row-wise recursive least squares with a forgetting factor for y = G x (+ noise).

    After n_i valid samples of row i, the estimate is exactly the minimiser of
    sum_k lambda^(n_i - k) (y_ki - g . x_k)^2 (``least_squares_gain``). Until the row's
    information matrix A_i = sum_k lambda^(n_i - k) x_k x_k^T is invertible on the free
    entries, A_i and b_i = sum_k lambda^(n_i - k) x_k y_ki are accumulated; then
    P_i = A_i^-1, g_i = P_i b_i, and every further sample updates (Sherman-Morrison)

        e = y - g . x,   k = P x / (lambda + x^T P x),   g <- g + k e,
        P <- (P - k x^T P) / lambda.

    A zero-precision prior (P_0 = I / delta with delta -> 0) would instead lose about
    log10(1 / delta) digits to cancellation; the exact start keeps machine precision.
    With lambda < 1 and poorly exciting data (a converged controller) P grows in the
    unexcited directions ("wind-up"); lambda = 1 (default) is the plain least squares.

    Parameters
    ----------
    n_outputs, n_inputs
        Shape of G.
    forgetting
        lambda in (0, 1].
    structure
        (n_outputs, n_inputs) bool, free entries (default all); the others stay 0.
    """

    def __init__(self, n_outputs: int, n_inputs: int, forgetting: float = 1.0,
                 structure: np.ndarray | None = None) -> None:
        if not 0 < forgetting <= 1:
            raise ValueError(f"forgetting must lie in (0, 1], got {forgetting!r}")
        self.forgetting = float(forgetting)
        self.structure = np.ones((n_outputs, n_inputs), bool) if structure is None else np.asarray(structure, bool)
        if self.structure.shape != (n_outputs, n_inputs):
            raise ValueError(f"structure must have shape {(n_outputs, n_inputs)}")
        self.gain = np.zeros((n_outputs, n_inputs))
        self.covariance = np.zeros((n_outputs, n_inputs, n_inputs))  # P_i, zero outside free entries
        self.samples = np.zeros(n_outputs, dtype=int)
        self.row_identified = np.zeros(n_outputs, dtype=bool)
        self._information = np.zeros((n_outputs, n_inputs, n_inputs))
        self._moment = np.zeros((n_outputs, n_inputs))

    @property
    def identified(self) -> bool:
        """Every row determined by the data."""
        return bool(self.row_identified.all())

    def update(self, x: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one sample: regressor x (n_inputs,), targets y (n_outputs,), valid rows (n_outputs,)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        rows = np.ones(len(y), bool) if valid is None else np.asarray(valid, bool)
        lam = self.forgetting
        for i in np.flatnonzero(rows):
            free = self.structure[i]
            xi = np.where(free, x, 0.0)
            self.samples[i] += 1
            if self.row_identified[i]:
                p = self.covariance[i]
                px = p @ xi
                k = px / (lam + xi @ px)
                self.gain[i] += k * (y[i] - self.gain[i] @ xi)
                p = (p - np.outer(k, px)) / lam
                self.covariance[i] = 0.5 * (p + p.T)
                continue
            self._information[i] = lam * self._information[i] + np.outer(xi, xi)
            self._moment[i] = lam * self._moment[i] + xi * y[i]
            if self.samples[i] >= free.sum():
                self._try_initialise(i)

    def _try_initialise(self, i: int) -> None:
        free = self.structure[i]
        block = self._information[i][np.ix_(free, free)]
        eigenvalues = np.linalg.eigvalsh(block)
        if eigenvalues[0] <= MIN_RECIPROCAL_CONDITION * eigenvalues[-1]:
            return
        inverse = np.linalg.inv(block)
        self.covariance[i][np.ix_(free, free)] = 0.5 * (inverse + inverse.T)
        self.gain[i] = 0.0
        self.gain[i, free] = np.linalg.solve(block, self._moment[i][free])
        self.row_identified[i] = True


def steering_action(response: np.ndarray, obs: np.ndarray, kind: ControllerKind = "inverse",
                    threshold: float = 0.1, action_scale: float = 1e-4) -> np.ndarray:
    """Actions (B, n) of a controller that takes ``response`` for the truth, for (B, n) readings.

    ``"inverse"``: ``benchmark_action`` (a = -100 R^-1 obs, rescaled to max|a| <= 1; the
    pseudo-inverse if R is exactly singular). ``"limit"``: ``limit_action``.
    """
    obs = np.asarray(obs, dtype=float)
    if kind == "limit":
        return limit_action(np.broadcast_to(response, (len(obs),) + response.shape), obs, threshold, action_scale)
    try:
        return benchmark_action(response, obs, action_scale)
    except np.linalg.LinAlgError:
        full = -obs @ np.linalg.pinv(response).T / (READING_SCALE * action_scale)
        return full / np.maximum(np.max(np.abs(full), axis=-1, keepdims=True), 1.0)


class ResponseMatrixIdentification:
    """Probe, estimate R by recursive least squares, steer with the estimate.

    Parameters
    ----------
    env
        An ``AwakeSteering`` environment (gymnasium 1.x API); the method steps it.
    seed
        Fixes the environment's initial states and noise (first reset) and random probes.
    probe_size
        p in (0, 1]: each probe displaces the correctors by at most p (action units,
        ``action_scale`` rad each) from the episode's initial kicks.
    probe_mode
        ``"corrector"``: cycles of 11 probes: probe j < 10 of a cycle sets corrector j to
        +p and the previous one back (the action is p e_j - p e_(j-1)), probe 10 returns
        to the initial kicks. The orbit never moves more than one probe away from the
        initial state, the first 10 probes determine R, and every cycle excites all
        directions (a cycle of 10 would not: its actions would sum to zero, leaving the
        response to all correctors together to the first probe of each episode).
        ``"random"``: offsets p u_k from the initial kicks, u_k ~ U(-1, 1)^10.
    n_probes
        Probing steps, after which ``learn`` steers with the estimate; ``None`` (default):
        ``learn`` probes at every step, the most informative use of an interaction when only
        the final controller counts. Probing goes on until R is determined.
    closed_loop_updates
        Also update the estimate from the controller's own steps (biased under observation
        noise, see the module docstring; exact without noise). Default False.
    forgetting
        Forgetting factor of the recursive least squares (1 = plain least squares).
    controller
        ``"inverse"``: the benchmark's law on the estimate, a = -100 R_est^-1 obs rescaled
        to max|a| <= 1; ``"limit"``: the limit controller on the estimate.
    structure
        ``"full"``: all 100 entries of R are unknown; ``"causal"``: entries of monitors
        upstream of a kicker are known zeros (``causal_structure``).

    Notes
    -----
    ``predict`` returns zero actions until R is determined. Cost per ``predict`` call: one
    10x10 solve per observation (inverse, ~20 us) or a few bounded least-squares solves
    per observation (limit, ~ms).
    """

    def __init__(self, env: gym.Env, seed: int = 0, probe_size: float = 1.0, probe_mode: ProbeMode = "corrector",
                 n_probes: int | None = None, closed_loop_updates: bool = False, forgetting: float = 1.0,
                 controller: ControllerKind = "inverse", structure: Structure = "full") -> None:
        if not 0 < probe_size <= 1:
            raise ValueError(f"probe_size must lie in (0, 1], got {probe_size!r}")
        if probe_mode not in ("corrector", "random"):
            raise ValueError(f"probe_mode must be 'corrector' or 'random', got {probe_mode!r}")
        if controller not in ("inverse", "limit"):
            raise ValueError(f"controller must be 'inverse' or 'limit', got {controller!r}")
        if structure not in ("full", "causal"):
            raise ValueError(f"structure must be 'full' or 'causal', got {structure!r}")
        if n_probes is not None and n_probes < 0:
            raise ValueError(f"n_probes must be >= 0 or None, got {n_probes!r}")
        self.env = env
        self.dynamics = dynamics_of(env)
        self.n = int(env.action_space.shape[0])
        self.probe_size = float(probe_size)
        self.probe_mode = probe_mode
        self.n_probes = n_probes
        self.closed_loop_updates = bool(closed_loop_updates)
        self.controller = controller
        self.rls = RecursiveLeastSquares(self.n, self.n, forgetting,
                                         causal_structure(self.n) if structure == "causal" else None)
        self.real = RealEnvironment(env, seed)
        self.rng = np.random.default_rng([int(seed), 0x5EED])
        self.num_timesteps = 0
        self.probes_done = 0
        self._offset = np.zeros(self.n)  # correctors relative to the episode's initial kicks [action units]

    # ------------------------------------------------------------------ estimate
    @property
    def gain_scale(self) -> float:
        """100 * action_scale: G = gain_scale * R."""
        return READING_SCALE * self.dynamics.action_scale

    @property
    def response_estimate(self) -> np.ndarray | None:
        """Current estimate of R (None until every row is determined)."""
        return self.rls.gain / self.gain_scale if self.rls.identified else None

    def observe(self, action: np.ndarray, obs: np.ndarray, next_obs: np.ndarray, beam_lost: bool = False) -> None:
        """Update the estimate with one transition (applied action, readings before and after)."""
        valid = informative_readings(obs) & next_readings_informative(next_obs, beam_lost, self.dynamics.noise_sigma)
        self.rls.update(action, np.asarray(next_obs, float) - np.asarray(obs, float), valid)

    # ------------------------------------------------------------------ probing
    @property
    def probing(self) -> bool:
        """Whether the next step of ``learn`` is a probe."""
        return self.n_probes is None or self.probes_done < self.n_probes or not self.rls.identified

    def _probe_action(self) -> np.ndarray:
        if self.probe_mode == "corrector":
            target = np.zeros(self.n)
            phase = self.probes_done % (self.n + 1)
            if phase < self.n:
                target[phase] = self.probe_size
        else:
            target = self.probe_size * self.rng.uniform(-1.0, 1.0, self.n)
        return target - self._offset

    # ------------------------------------------------------------------ face
    def learn(self, total_timesteps: int, callback: Callback | None = None,
              eval_every: int | None = None) -> "ResponseMatrixIdentification":
        """Probe (and steer) for ``total_timesteps`` real interactions, re-estimating R after each."""
        schedule = CallbackSchedule(callback, eval_every, self.num_timesteps)
        for _ in range(int(total_timesteps)):
            if self.real.episode_start:
                self._offset[:] = 0.0
            probe = self.probing
            if probe:
                action = self._probe_action()
                self.probes_done += 1
            else:
                action = self.predict(self.real.obs)[0]
            step = self.real.step(action)
            self._offset += step.action
            if probe or self.closed_loop_updates:
                self.observe(step.action, step.obs, step.next_obs, step.beam_lost)
            self.num_timesteps += 1
            if not schedule(self, self.num_timesteps):
                break
        return self

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Action(s) of the controller on the current estimate (zeros until R is determined)."""
        batch, single = batch_obs(obs, self.n)
        response = self.response_estimate
        if response is None:
            actions = np.zeros_like(batch)
        else:
            actions = steering_action(response, batch, self.controller, self.dynamics.threshold,
                                      self.dynamics.action_scale)
        actions = actions.astype(np.float32)
        return (actions[0] if single else actions), None
