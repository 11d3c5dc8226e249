"""Steering dynamics of the AWAKE line, on batches of episodes.

This is the only implementation of the physics; the gymnasium environment
(``AwakeSteering``, a batch of one) and the batched environment used by the samplers
both call it. Semantics (kept from the earlier implementation so results compare):

* readings   r = 100 R theta  (theta: corrector kicks [rad]; readings in units of 10 mm)
* action     a in [-1, 1]^10; if max|a| > 1, a <- a / max|a| (direction kept);
             theta <- theta + action_scale * a
* beam loss  first monitor k with |r_k| >= 1: readings k.. set to sign(r_k); terminated
* reward     -10 rms(obs) (``reward_mode="rms"``), or 10 (rms_before - rms_after)
             (``"improvement"``), minus ``step_penalty``, minus ``beam_loss_penalty`` on
             the step that loses the beam (shaping options; defaults 0)
* success    rms(obs) < threshold: terminated
* time limit step count == max_time: truncated (not terminated)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

READING_SCALE = 100.0
REWARD_SCALE = 10.0
REWARD_MODES = ("rms", "improvement")
PLANES = ("horizontal", "vertical")


def rms(values: np.ndarray) -> np.ndarray:
    """Root mean square over the last axis."""
    values = np.asarray(values)
    if values.dtype == np.float64:  # np.mean's own reduction and division, without its Python overhead
        return np.sqrt(np.square(values).sum(axis=-1) / values.shape[-1])
    return np.sqrt(np.mean(np.square(values), axis=-1))


def normalise_actions(actions: np.ndarray) -> np.ndarray:
    """Divide each action whose largest absolute component exceeds 1 by that component."""
    actions = np.asarray(actions, dtype=float)
    peak = np.abs(actions).max(axis=-1, keepdims=True)
    return actions / np.maximum(peak, 1.0)


def saturate(readings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the aperture: from the first monitor with |r| >= 1 on, readings = sign of that one.

    Returns
    -------
    (obs, lost)
        Observations (B, 10) in [-1, 1] and a (B,) flag of beam loss.
    """
    outside = np.abs(readings) >= 1.0
    lost = outside.any(axis=-1)
    if not lost.any():  # the common case: nothing to saturate
        return readings, lost
    first = np.where(lost, np.argmax(outside, axis=-1), readings.shape[-1])
    after = np.arange(readings.shape[-1])[None, :] >= first[:, None]
    sign = np.sign(np.take_along_axis(readings, np.minimum(first, readings.shape[-1] - 1)[:, None], -1))
    obs = np.where(after, sign, readings)
    return obs, lost


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step for a batch of B episodes (arrays of length B or (B, 10))."""

    theta: np.ndarray
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    beam_lost: np.ndarray
    rms: np.ndarray
    active: np.ndarray | None = None  # batched environment: episodes that took this step


@dataclass(frozen=True)
class SteeringDynamics:
    """Parameters and transition function of the steering problem.

    Attributes
    ----------
    max_time
        Steps before truncation.
    noise_sigma
        Standard deviation of Gaussian noise on the returned readings (units of obs).
        Reward and success use the noisy readings, as the control room would; beam loss
        uses the true orbit.
    action_scale
        Kick per unit action [rad].
    threshold
        Success when rms(obs) < threshold.
    reward_mode, step_penalty, beam_loss_penalty
        See module docstring. With the default reward and gamma = 1, losing the beam on
        purpose can return more than steering slowly (one saturated reading costs less
        than a few steps at rms 0.3); ``beam_loss_penalty`` removes that incentive.
    """

    max_time: int = 100
    noise_sigma: float = 0.0
    action_scale: float = 1e-4
    threshold: float = 0.1
    reward_mode: str = "rms"
    step_penalty: float = 0.0
    beam_loss_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_time, (int, np.integer)) or self.max_time < 1:
            raise ValueError(f"max_time must be a positive integer, got {self.max_time!r}")
        if not np.isfinite(self.noise_sigma) or self.noise_sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma!r}")
        if not np.isfinite(self.action_scale) or self.action_scale <= 0:
            raise ValueError(f"action_scale must be > 0, got {self.action_scale!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold!r}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if not np.isfinite(self.step_penalty):
            raise ValueError(f"step_penalty must be finite, got {self.step_penalty!r}")
        if not np.isfinite(self.beam_loss_penalty) or self.beam_loss_penalty < 0:
            raise ValueError(f"beam_loss_penalty must be >= 0, got {self.beam_loss_penalty!r}")

    def readings(self, response: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """True monitor readings 100 R theta for (B, 10, 10) R and (B, 10) theta."""
        return READING_SCALE * np.einsum("bij,bj->bi", response, theta)

    def observe(self, response: np.ndarray, theta: np.ndarray,
                noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Observations (with aperture and optional noise) and beam-loss flags."""
        obs, lost = saturate(self.readings(response, theta))
        if self.noise_sigma > 0 and noise is not None:
            obs = np.clip(obs + self.noise_sigma * noise, -1.0, 1.0)
        return obs, lost

    def step(self, response: np.ndarray, theta: np.ndarray, actions: np.ndarray,
             steps_done: np.ndarray, previous_rms: np.ndarray,
             noise: np.ndarray | None = None) -> StepResult:
        """Advance B episodes by one step.

        Parameters
        ----------
        response
            (B, 10, 10) response matrices of the chosen plane.
        theta
            (B, 10) corrector kicks before the step.
        actions
            (B, 10) raw actions (normalised here).
        steps_done
            (B,) number of steps taken before this one.
        previous_rms
            (B,) rms of the previous observation (used by ``reward_mode="improvement"``).
        noise
            (B, 10) standard normal draws for the observation noise, if any.
        """
        theta = theta + self.action_scale * normalise_actions(actions)
        obs, lost = self.observe(response, theta, noise)
        current = rms(obs)
        if self.reward_mode == "rms":
            reward = -REWARD_SCALE * current
        else:
            reward = REWARD_SCALE * (previous_rms - current)
        if self.step_penalty:  # subtracting a zero penalty changes nothing: skip the array operations
            reward = reward - self.step_penalty
        if self.beam_loss_penalty:
            reward = reward - self.beam_loss_penalty * lost
        success = (current < self.threshold) & ~lost
        terminated = success | lost
        truncated = ~terminated & (np.asarray(steps_done) >= self.max_time - 1)
        return StepResult(theta=theta, obs=obs, reward=reward, terminated=terminated,
                          truncated=truncated, success=success, beam_lost=lost, rms=current)


RESET_KICK = 5e-4
RESET_MAX_READING = 0.95
RESET_MIN_RMS = 0.2
RESET_FIRST_CHUNK, RESET_MAX_CHUNK = 8, 4096
MAX_RESET_DRAWS = 1_000_000


def admissible_initial_states(response: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Which candidate kicks (K, 10) give all |readings| <= 0.95 and rms(readings) > 0.2.

    Also for stacks: responses (P, 10, 10) and candidates (P, K, 10) give (P, K); each slice is
    computed exactly as the unstacked call.
    """
    readings = READING_SCALE * theta @ np.swapaxes(np.asarray(response), -1, -2)
    return (np.abs(readings).max(axis=-1) <= RESET_MAX_READING) & (rms(readings) > RESET_MIN_RMS)


def sample_initial_kicks(rng: np.random.Generator, response: np.ndarray,
                         max_draws: int = MAX_RESET_DRAWS, first_chunk: int = RESET_FIRST_CHUNK) -> np.ndarray:
    """Draw theta ~ U(-5e-4, 5e-4)^10 until all |readings| <= 0.95 and rms(readings) > 0.2.

    Candidates are drawn in chunks of 8, 16, 32, ... (at most 4096) and the first
    admissible one is taken, so the result depends only on the generator's state; typical
    tasks accept about a third of the candidates, weak ones (vertical plane) 1e-4.

    Parameters
    ----------
    rng
        Generator of this episode.
    response
        (10, 10) response matrix of the episode's task and plane.
    first_chunk
        Size of the first chunk (to continue a search whose first chunk was drawn elsewhere).

    Raises
    ------
    RuntimeError
        If no admissible state is found in ``max_draws`` draws (task too weak or too strong).
    """
    n = response.shape[-1]
    drawn, chunk = first_chunk - RESET_FIRST_CHUNK, first_chunk  # 8 + 16 + ... + c/2 = c - 8 drawn before
    while drawn < max_draws:
        theta = rng.uniform(-RESET_KICK, RESET_KICK, size=(chunk, n))
        ok = admissible_initial_states(response, theta)
        if ok.any():
            return theta[int(np.argmax(ok))]
        drawn += chunk
        chunk = min(2 * chunk, RESET_MAX_CHUNK)
    raise RuntimeError(
        f"no initial state with |obs| <= {RESET_MAX_READING} and rms(obs) > {RESET_MIN_RMS} "
        f"found in {max_draws} draws; the task's response matrix is unsuitable")


def sample_initial_kicks_batch(rngs: list[np.random.Generator], responses: np.ndarray,
                               max_draws: int = MAX_RESET_DRAWS) -> np.ndarray:
    """``sample_initial_kicks`` for B episodes at once (identical results).

    Every episode draws the same chunks from its own generator (8, 16, 32, ...); each round
    of chunks is checked with one array pass over the episodes still searching.
    """
    n = responses.shape[-1]
    first = np.stack([rng.uniform(-RESET_KICK, RESET_KICK, size=(RESET_FIRST_CHUNK, n)) for rng in rngs])
    readings = READING_SCALE * np.einsum("bij,bkj->bki", responses, first)
    ok = (np.max(np.abs(readings), axis=-1) <= RESET_MAX_READING) & (rms(readings) > RESET_MIN_RMS)
    out = first[np.arange(len(rngs)), np.argmax(ok, axis=1)]
    pending = np.flatnonzero(~ok.any(axis=1))
    drawn, chunk = RESET_FIRST_CHUNK, 2 * RESET_FIRST_CHUNK
    while len(pending) and drawn < max_draws:
        theta = np.stack([rngs[b].uniform(-RESET_KICK, RESET_KICK, size=(chunk, n)) for b in pending])
        ok = admissible_initial_states(responses[pending], theta)
        hit = ok.any(axis=1)
        out[pending[hit]] = theta[hit, np.argmax(ok[hit], axis=1)]
        pending = pending[~hit]
        drawn += chunk
        chunk = min(2 * chunk, RESET_MAX_CHUNK)
    if len(pending):
        raise RuntimeError(
            f"no initial state with |obs| <= {RESET_MAX_READING} and rms(obs) > {RESET_MIN_RMS} "
            f"found in {max_draws} draws for episode(s) {pending.tolist()}; the task's response matrix is unsuitable")
    return out
