"""The face every model-based method shows, and the bookkeeping of real interactions.

A method is built from a gymnasium environment (``AwakeSteering`` with the comparison's
env-kwargs) and a seed, and then behaves like a stable-baselines3 model::

    method.learn(total_timesteps, callback=hook, eval_every=100)   # hook(method, n) -> bool
    action, _ = method.predict(obs, deterministic=True)            # obs (10,) or (B, 10)
    method.num_timesteps                                           # real interactions so far

``learn`` performs ``total_timesteps`` *further* real interactions (probes included);
``num_timesteps`` accumulates over calls. ``callback(method, n)`` runs after every
``eval_every`` real interactions (after the updates that use that step); returning
``False`` stops ``learn``. Imagined (model) steps are never counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from maml_rl.envs.dynamics import SteeringDynamics, normalise_actions

Callback = Callable[[object, int], bool]


@runtime_checkable
class InteractiveMethod(Protocol):
    """What the comparison needs from a method (RL agents from SB3 fit it as well)."""

    num_timesteps: int

    def learn(self, total_timesteps: int, callback: Callback | None = None,
              eval_every: int | None = None) -> object: ...

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]: ...


def controller_of(method: InteractiveMethod) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic controller ``obs batch -> action batch`` of a method (for ``evaluate``)."""
    return lambda obs: method.predict(np.asarray(obs), deterministic=True)[0]


def dynamics_of(env: gym.Env) -> SteeringDynamics:
    """The ``SteeringDynamics`` (action scale, threshold, reward rules) of an AWAKE environment."""
    dynamics = getattr(env.unwrapped, "dynamics", None)
    if not isinstance(dynamics, SteeringDynamics):
        raise TypeError("the model-based methods need an AwakeSteering environment (env.unwrapped.dynamics)")
    return dynamics


# A saturated reading is sign(r) + noise, clipped: with noise it lies just inside +-1.
SATURATION_SIGMAS = 5.0


def informative_readings(obs: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Which readings carry information about the orbit: (..., n) bool.

    At the aperture the environment replaces reading k and every later one by the sign of
    reading k (beam loss) and then adds the noise, clipped to [-1, 1]; such readings say
    nothing about ``R theta``. Reading i is informative iff ``|obs_k| < 1 - margin`` for
    all k <= i. Without beam loss ``margin = 0`` (only clipped readings, exactly +-1, are
    censored); after a beam loss ``next_readings_informative`` widens it to
    ``SATURATION_SIGMAS * noise_sigma``, since a saturated reading plus noise can read 0.999.
    """
    inside = np.abs(np.asarray(obs)) < 1.0 - margin
    return np.logical_and.accumulate(inside, axis=-1)


def next_readings_informative(next_obs: np.ndarray, beam_lost: bool, noise_sigma: float) -> np.ndarray:
    """``informative_readings`` of the readings after a step, given whether it lost the beam."""
    return informative_readings(next_obs, SATURATION_SIGMAS * noise_sigma if beam_lost else 0.0)


@dataclass(frozen=True)
class Transition:
    """One real step; ``action`` is the action as applied (normalised to max|a| <= 1)."""

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def episode_over(self) -> bool:
        return self.terminated or self.truncated

    @property
    def beam_lost(self) -> bool:
        return bool(self.info.get("beam_lost", False))

    def informative(self, noise_sigma: float) -> np.ndarray:
        """Readings informative both before and after the step (see ``informative_readings``)."""
        return informative_readings(self.obs) & next_readings_informative(self.next_obs, self.beam_lost, noise_sigma)


class RealEnvironment:
    """A gymnasium environment stepped by a learner: automatic resets and an interaction count.

    The first reset uses ``seed`` (initial states and observation noise follow from it);
    later resets continue the environment's own generator. Resets are free; every step is
    one real interaction.
    """

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.env = env
        self.seed = int(seed)
        self.steps = 0
        self.episodes = 0
        self._obs: np.ndarray | None = None

    @property
    def obs(self) -> np.ndarray:
        """Current observation (resets the environment if no episode is running)."""
        if self._obs is None:
            obs, _ = self.env.reset(seed=self.seed if self.episodes == 0 else None)
            self._obs = np.asarray(obs, dtype=float)
            self.episodes += 1
        return self._obs

    @property
    def episode_start(self) -> bool:
        """True if the next step is the first of an episode."""
        return self._obs is None

    def step(self, action: np.ndarray) -> Transition:
        obs = self.obs
        applied = normalise_actions(np.asarray(action, dtype=float).reshape(obs.shape))
        next_obs, reward, terminated, truncated, info = self.env.step(applied)  # float64: no rounding
        self.steps += 1
        transition = Transition(obs=obs, action=applied, next_obs=np.asarray(next_obs, dtype=float),
                                reward=float(reward), terminated=bool(terminated), truncated=bool(truncated),
                                info=info)
        self._obs = None if transition.episode_over else transition.next_obs
        return transition


class CallbackSchedule:
    """Calls ``callback(method, n)`` whenever n real interactions reach the next multiple of
    ``every`` (every interaction if ``every`` is None)."""

    def __init__(self, callback: Callback | None, every: int | None, start: int) -> None:
        if every is not None and every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {every!r}")
        self.callback = callback
        self.every = every or 1
        self.next_at = (start // self.every + 1) * self.every

    def __call__(self, method: object, interactions: int) -> bool:
        """Run the callback if due; False means stop."""
        if self.callback is None or interactions < self.next_at:
            return True
        self.next_at = (interactions // self.every + 1) * self.every
        return bool(self.callback(method, interactions))


def batch_obs(obs: np.ndarray, size: int = 10) -> tuple[np.ndarray, bool]:
    """(B, size) float64 observations and whether the input was a single (size,) vector."""
    obs = np.asarray(obs, dtype=float)
    if obs.shape[-1] != size or obs.ndim not in (1, 2):
        raise ValueError(f"obs must have shape ({size},) or (B, {size}), got {obs.shape}")
    return obs.reshape(-1, size), obs.ndim == 1
