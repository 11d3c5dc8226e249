"""Transition, reward and termination of the ARES-EA tuning problem, on batches of episodes.

This is the only implementation of the problem's semantics; the gymnasium environment
(``AresEA``, a batch of one) and the batched environment both call it. The physics
enters through a ``track`` callable, settings (B, 5) -> screen beam (B, 4), so the logic
here is plain array code (and can be tested with any map in place of Cheetah).

* state      magnet settings m (B, 5) in ``MAGNETS`` order, within +-``MAGNET_LIMITS`` L
* action     a in [-1, 1]^5 (clipped component-wise);
             ``direct``: m <- a L;  ``delta``: m <- clip(m + 0.1 a L, -L, L)
* beam       b = (mu_x, sigma_x, mu_y, sigma_y) on the screen, target t of the same form
* objective  O(b, t) = sum_i w_i |b_i - t_i|    (a weighted L1 distance, metres)
* reward     ``"objective"``:   r_k = -O_k / O_0
             ``"improvement"``: r_k = (O_{k-1} - O_k) / O_0
             minus ``step_penalty`` every step, minus ``off_screen_penalty`` on the step
             that loses the screen; O_0 is the objective at reset
* success    |b_i - t_i| < threshold_i for all i on ``success_steps`` consecutive steps:
             terminated
* off screen |mu_x| > X/2 or |mu_y| > Y/2 (sensor half-sizes, screen coordinates):
             terminated (a failure)
* time limit step count == ``max_time``: truncated (not terminated)
* observation clip((b / s, m / L, t / s), -1, 1) with s = (X/2, X/2, Y/2, Y/2); float32,
             13 values. Never the incoming beam nor the misalignments (they are the task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from maml_rl.families.ares_ea.segment import MAGNET_LIMITS, MAGNETS, SCREEN_BEAM, SCREEN_HALF_SIZE

ACTION_MODES = ("direct", "delta")
REWARD_MODES = ("objective", "improvement")
DELTA_FRACTION = 0.1
N_MAGNETS = len(MAGNETS)
N_BEAM = len(SCREEN_BEAM)
OBS_SIZE = N_BEAM + N_MAGNETS + N_BEAM
# Scale of (mu_x, sigma_x, mu_y, sigma_y): the sensor half-size of the plane.
BEAM_SCALE = np.array([SCREEN_HALF_SIZE[0], SCREEN_HALF_SIZE[0], SCREEN_HALF_SIZE[1], SCREEN_HALF_SIZE[1]])

# Target distribution of ``target=None`` (uniform; metres). Chosen inside what the magnets
# can reach for most tasks; see docs/ares_ea.md.
TARGET_MU_X, TARGET_MU_Y = 1.0e-3, 1.0e-3
TARGET_SIGMA = (2.0e-5, 3.0e-4)
DEFAULT_THRESHOLDS = (2.0e-5, 2.0e-5, 2.0e-5, 2.0e-5)

Track = Callable[[np.ndarray], np.ndarray]


def objective(beam: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """O = sum_i w_i |b_i - t_i| over the last axis [m]."""
    return np.sum(np.asarray(weights) * np.abs(np.asarray(beam) - np.asarray(target)), axis=-1)


def within_thresholds(beam: np.ndarray, target: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Whether every |b_i - t_i| < threshold_i (strict)."""
    return np.all(np.abs(np.asarray(beam) - np.asarray(target)) < np.asarray(thresholds), axis=-1)


def on_screen(beam: np.ndarray) -> np.ndarray:
    """Whether the beam centroid lies on the sensor: |mu_x| <= X/2 and |mu_y| <= Y/2."""
    beam = np.asarray(beam)
    return (np.abs(beam[..., 0]) <= SCREEN_HALF_SIZE[0]) & (np.abs(beam[..., 2]) <= SCREEN_HALF_SIZE[1])


def observation(beam: np.ndarray, magnets: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(B, 13) float32: clip((b / s, m / L, t / s), -1, 1) (see module docstring)."""
    raw = np.concatenate([np.asarray(beam) / BEAM_SCALE, np.asarray(magnets) / MAGNET_LIMITS,
                          np.asarray(target) / BEAM_SCALE], axis=-1)
    return np.clip(raw, -1.0, 1.0).astype(np.float32)


def sample_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) targets: mu_x ~ U(+-1 mm), mu_y ~ U(+-1 mm), sigma_x, sigma_y ~ U(20, 300) um."""
    out = np.empty((n, N_BEAM))
    out[:, 0] = rng.uniform(-TARGET_MU_X, TARGET_MU_X, n)
    out[:, 1] = rng.uniform(*TARGET_SIGMA, n)
    out[:, 2] = rng.uniform(-TARGET_MU_Y, TARGET_MU_Y, n)
    out[:, 3] = rng.uniform(*TARGET_SIGMA, n)
    return out


def validate_target(target: Sequence[float]) -> np.ndarray:
    """A target as a (4,) array; a clear error for a wrong shape, non-finite or negative sigma."""
    array = np.asarray(target, dtype=float)
    if array.shape != (N_BEAM,) or not np.all(np.isfinite(array)):
        raise ValueError(f"target must be 4 finite numbers (mu_x, sigma_x, mu_y, sigma_y) [m], got {target!r}")
    if array[1] < 0 or array[3] < 0:
        raise ValueError(f"target sigmas must be >= 0, got {target!r}")
    return array


def validate_magnets(magnets: Sequence[float]) -> np.ndarray:
    """Settings as a (5,) array; a clear error outside the limits or for a wrong shape."""
    array = np.asarray(magnets, dtype=float)
    if array.shape != (N_MAGNETS,) or not np.all(np.isfinite(array)):
        raise ValueError(f"magnet settings must be {N_MAGNETS} finite numbers ({', '.join(MAGNETS)})")
    if np.any(np.abs(array) > MAGNET_LIMITS * (1 + 1e-12)):
        raise ValueError(f"magnet settings {array.tolist()} exceed the limits {MAGNET_LIMITS.tolist()}")
    return array


@dataclass(frozen=True)
class AresStepResult:
    """Outcome of one step for B episodes (arrays of length B, or (B, 5)/(B, 4)/(B, 13))."""

    magnets: np.ndarray
    beam: np.ndarray
    obs: np.ndarray
    reward: np.ndarray
    objective: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    off_screen: np.ndarray
    hold: np.ndarray
    active: np.ndarray | None = None  # batched environment: episodes that took this step


@dataclass(frozen=True)
class AresDynamics:
    """Parameters and transition function of the ARES-EA problem.

    Attributes
    ----------
    action_mode
        ``"direct"`` (absolute settings a L) or ``"delta"`` (changes 0.1 a L per step).
    max_time
        Steps before truncation.
    thresholds
        Success tolerance of (mu_x, sigma_x, mu_y, sigma_y) [m].
    success_steps
        Consecutive steps within the thresholds that count as success.
    weights
        Weights w of the L1 objective (positive).
    reward_mode, step_penalty, off_screen_penalty
        See the module docstring.
    initial_magnet_range
        Initial settings are drawn from U(-r L, r L)^5 with this r in (0, 1] (1: the whole
        range; smaller values start every episode near the magnets-off setting).
    """

    action_mode: str = "delta"
    max_time: int = 50
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    success_steps: int = 1
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    reward_mode: str = "objective"
    step_penalty: float = 0.0
    off_screen_penalty: float = 0.0
    initial_magnet_range: float = 1.0

    def __post_init__(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        if isinstance(self.max_time, bool) or not isinstance(self.max_time, (int, np.integer)) or self.max_time < 1:
            raise ValueError(f"max_time must be a positive integer, got {self.max_time!r}")
        if (isinstance(self.success_steps, bool) or not isinstance(self.success_steps, (int, np.integer))
                or self.success_steps < 1):
            raise ValueError(f"success_steps must be a positive integer, got {self.success_steps!r}")
        for name in ("thresholds", "weights"):
            values = np.asarray(getattr(self, name), dtype=float)
            if values.shape != (N_BEAM,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError(f"{name} must be {N_BEAM} positive numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if not np.isfinite(self.step_penalty):
            raise ValueError(f"step_penalty must be finite, got {self.step_penalty!r}")
        if not np.isfinite(self.off_screen_penalty) or self.off_screen_penalty < 0:
            raise ValueError(f"off_screen_penalty must be >= 0, got {self.off_screen_penalty!r}")
        if not 0 < self.initial_magnet_range <= 1:
            raise ValueError(f"initial_magnet_range must lie in (0, 1], got {self.initial_magnet_range!r}")

    @property
    def objective_floor(self) -> float:
        """Smallest O_0 used for normalising: min_i w_i threshold_i.

        A reset drawn by ``sample_initial_magnets`` is never within the thresholds, so its
        O_0 is at least this; the floor only matters for user-given initial settings.
        """
        return float(np.min(np.multiply(self.weights, self.thresholds)))

    def objective(self, beam: np.ndarray, target: np.ndarray) -> np.ndarray:
        return objective(beam, target, np.asarray(self.weights))

    def apply_actions(self, magnets: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Settings after (B, 5) actions (clipped to [-1, 1]) from (B, 5) settings."""
        actions = np.clip(np.asarray(actions, dtype=float), -1.0, 1.0)
        if self.action_mode == "direct":
            return actions * MAGNET_LIMITS
        return np.clip(magnets + DELTA_FRACTION * actions * MAGNET_LIMITS, -MAGNET_LIMITS, MAGNET_LIMITS)

    def initial_objective(self, beam: np.ndarray, target: np.ndarray) -> np.ndarray:
        """O_0 = max(O(beam, target), ``objective_floor``)."""
        return np.maximum(self.objective(beam, target), self.objective_floor)

    def step(self, track: Track, magnets: np.ndarray, actions: np.ndarray, target: np.ndarray,
             steps_done: np.ndarray, hold: np.ndarray, initial_objective: np.ndarray,
             previous_objective: np.ndarray) -> AresStepResult:
        """Advance B episodes by one step.

        Parameters
        ----------
        track
            Settings (B, 5) -> screen beam (B, 4) of each episode's task.
        magnets
            (B, 5) settings before the step.
        actions
            (B, 5) raw actions (clipped here).
        target
            (B, 4) targets.
        steps_done
            (B,) steps taken before this one.
        hold
            (B,) consecutive steps within the thresholds before this one.
        initial_objective, previous_objective
            (B,) O_0 and O_{k-1} [m].
        """
        magnets = self.apply_actions(magnets, actions)
        beam = np.asarray(track(magnets), dtype=float)
        value = self.objective(beam, target)
        if self.reward_mode == "objective":
            reward = -value / initial_objective
        else:
            reward = (previous_objective - value) / initial_objective
        lost = ~on_screen(beam)
        reward = reward - self.step_penalty - self.off_screen_penalty * lost
        hold = np.where(within_thresholds(beam, target, np.asarray(self.thresholds)) & ~lost, hold + 1, 0)
        success = hold >= self.success_steps
        terminated = success | lost
        truncated = ~terminated & (np.asarray(steps_done) + 1 >= self.max_time)
        return AresStepResult(magnets=magnets, beam=beam, obs=observation(beam, magnets, target), reward=reward,
                              objective=value, terminated=terminated, truncated=truncated, success=success,
                              off_screen=lost, hold=hold)


# ----------------------------------------------------------------------------- reset draws

RESET_FIRST_CHUNK, RESET_MAX_CHUNK = 8, 1024
MAX_RESET_DRAWS = 100_000


def admissible_starts(beam: np.ndarray, target: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Which screen beams can start an episode: on the screen and not already within the thresholds."""
    return on_screen(beam) & ~within_thresholds(beam, target, np.asarray(thresholds))


def sample_initial_magnets(rngs: Sequence[np.random.Generator], track: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           targets: np.ndarray,
                           thresholds: Sequence[float], max_draws: int = MAX_RESET_DRAWS,
                           magnet_range: float = 1.0) -> np.ndarray:
    """Initial settings m ~ U(-r L, r L)^5 per episode (r = ``magnet_range``), redrawn until the start is admissible.

    Each episode draws candidates from its own generator in chunks of 8, 16, 32, ... (at
    most 1024) and takes the first admissible one, so the result depends only on that
    generator; the first chunk of every episode is tracked in one batched call.

    Parameters
    ----------
    rngs
        One generator per episode (B).
    track
        (settings (N, 5), episode index (N,)) -> screen beam (N, 4) of those episodes' tasks.
    targets
        (B, 4) targets.
    magnet_range
        Fraction r of the limits the settings are drawn within.

    Raises
    ------
    RuntimeError
        If an episode finds no admissible start in ``max_draws`` draws.
    """
    n = len(rngs)
    targets = np.asarray(targets, dtype=float).reshape(n, N_BEAM)
    out = np.zeros((n, N_MAGNETS))
    pending = np.arange(n)
    drawn, chunk = 0, RESET_FIRST_CHUNK
    while len(pending) and drawn < max_draws:
        candidates = np.stack([rngs[i].uniform(-1.0, 1.0, (chunk, N_MAGNETS)) for i in pending]) * (
            magnet_range * MAGNET_LIMITS)
        beam = np.asarray(track(candidates.reshape(-1, N_MAGNETS), np.repeat(pending, chunk)),
                          dtype=float).reshape(len(pending), chunk, N_BEAM)
        ok = admissible_starts(beam, targets[pending, None, :], thresholds)
        hit = ok.any(axis=1)
        out[pending[hit]] = candidates[hit, np.argmax(ok[hit], axis=1)]
        pending = pending[~hit]
        drawn += chunk
        chunk = min(2 * chunk, RESET_MAX_CHUNK)
    if len(pending):
        raise RuntimeError(f"no initial magnet setting with the beam on the screen found in {drawn} draws "
                           f"for episode(s) {pending.tolist()}")
    return out
