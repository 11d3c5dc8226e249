"""AWAKE's ``FamilyEnvironment``: the settings the samplers and the evaluation need.

Episodes are the batched AWAKE dynamics (``maml_rl.envs.batched``) started from initial
kicks searched with each episode's own generator; observation noise, if any, comes from a
second per-episode stream (``STREAM_OBS_NOISE``), drawn only for the episodes still
running, exactly as the sampler did before families existed (the AWAKE numbers are tested
bitwise against a recording, ``tests/test_awake_reference.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from maml_rl.envs.batched import BatchedAwakeSteering
from maml_rl.envs.dynamics import REWARD_SCALE, SteeringDynamics, StepResult, sample_initial_kicks_batch
from maml_rl.envs.response import QUAD_VARIABLES
from maml_rl.envs.tasks import Task, responses_of, sample_tasks
from maml_rl.families.base import Controller, FigureStyle, StreamFactory
from maml_rl.seeding import STREAM_OBS_NOISE

N_CHANNELS = 10  # monitors 2..11 observed, kickers 1..10 acting


class AwakeEpisodes:
    """B AWAKE episodes with their observation-noise streams (``BatchedEpisodes``)."""

    def __init__(self, env: BatchedAwakeSteering, noise_rngs: list[np.random.Generator] | None) -> None:
        self.env = env
        self.noise_rngs = noise_rngs

    @property
    def done(self) -> np.ndarray:
        return self.env.done

    @property
    def steps(self) -> np.ndarray:
        return self.env.steps

    def noise(self, active: np.ndarray) -> np.ndarray | None:
        """Standard normal draws of the observation noise of the ``active`` episodes (else 0)."""
        if self.noise_rngs is None:
            return None
        noise = np.zeros((len(active), N_CHANNELS))
        for i in np.flatnonzero(active):
            noise[i] = self.noise_rngs[i].standard_normal(N_CHANNELS)
        return noise

    def step(self, actions: np.ndarray) -> StepResult:
        return self.env.step(actions, self.noise(~self.env.done))


@dataclass(frozen=True)
class AwakeEnvironment:
    """AWAKE settings from ``env-kwargs``: dynamics, plane, which quadrupoles vary.

    Attributes
    ----------
    dynamics
        Transition parameters (``SteeringDynamics``).
    plane
        ``"horizontal"`` or ``"vertical"``.
    num_random_quads
        The task distribution scales the last k quadrupole variables.
    """

    dynamics: SteeringDynamics
    plane: str = "horizontal"
    num_random_quads: int = len(QUAD_VARIABLES)
    obs_dim: int = N_CHANNELS
    act_dim: int = N_CHANNELS

    @classmethod
    def from_kwargs(cls, env_kwargs: Mapping[str, Any]) -> "AwakeEnvironment":
        """Validate ``env-kwargs`` as ``AwakeSteering`` does (same errors) and keep its settings."""
        from maml_rl.envs.awake import AwakeSteering

        env = AwakeSteering(**env_kwargs)
        return cls(env.dynamics, env.plane, env.num_random_quads)

    @property
    def max_time(self) -> int:
        return self.dynamics.max_time

    @property
    def figure_style(self) -> FigureStyle:
        return FigureStyle(reference_labels={"benchmark": "benchmark", "limit": "limit"},
                           state_label="corrector setting [mrad]", state_scale=1e3,
                           obs_label="BPM reading [obs units, 1 = 10 mm]", success_band=self.dynamics.threshold,
                           success_reward=-REWARD_SCALE * self.dynamics.threshold)

    def sample_tasks(self, rng: np.random.Generator, n: int, first_id: int = 0) -> list[Task]:
        return sample_tasks(rng, n, self.num_random_quads, first_id=first_id, plane=self.plane)

    def task_arrays(self, tasks: Sequence[Task]) -> tuple[np.ndarray, ...]:
        return (responses_of(tasks, self.plane),)

    def start_episodes(self, arrays: tuple[np.ndarray, ...], rngs: list[np.random.Generator],
                       streams: StreamFactory) -> tuple[AwakeEpisodes, np.ndarray]:
        (responses,) = arrays
        responses = np.asarray(responses, dtype=float)
        noise_rngs = streams(STREAM_OBS_NOISE) if self.dynamics.noise_sigma > 0 else None
        kicks = sample_initial_kicks_batch(rngs, responses)
        episodes = AwakeEpisodes(BatchedAwakeSteering(self.dynamics), noise_rngs)
        obs = episodes.env.reset(responses, kicks, episodes.noise(np.ones(len(rngs), dtype=bool)))
        return episodes, obs

    def evaluate(self, controller: Controller | None, task: Task, n_episodes: int, seed: int,
                 references: bool = True) -> Any:
        from maml_rl.evaluation import evaluate

        return evaluate(controller, task, n_episodes, seed, self.dynamics, self.plane, references=references)
