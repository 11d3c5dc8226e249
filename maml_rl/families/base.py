"""What a task family supplies to the meta-learning core.

The core (samplers, training, adaptation, evaluation, figures) sees a family only through
two small faces:

* ``TaskFamily`` (one per family, found by name in the registry ``maml_rl.families``):
  the gymnasium id, how to build the family's ``FamilyEnvironment`` from the config's
  ``env-kwargs``, the evaluation-task file and its loader, and how to rebuild a task from
  the numbers a metrics row stores (``task_factors``).
* ``FamilyEnvironment`` (a picklable, frozen value built from ``env-kwargs``; a sampler
  sends it to its worker processes): observation and action sizes, the horizon, the task
  distribution, the tasks as arrays, batched episodes of different tasks (reset with
  per-episode random streams, then step), and the evaluation of a controller with the
  family's reference controllers on identical initial states.

Every task object has an integer ``id`` and ``factors``, a tuple of floats that together
with the id defines the task (``TaskFamily.task_from_factors`` inverts it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

# A controller maps a (B, obs_dim) float32 observation batch to (B, act_dim) actions.
Controller = Callable[[np.ndarray], np.ndarray]
# Random streams of the episodes of a rollout for a stream index (maml_rl.seeding), one per episode.
StreamFactory = Callable[[int], list[np.random.Generator]]


class BatchedStep(Protocol):
    """What the rollout reads of one batched step (arrays over the B episodes)."""

    obs: np.ndarray          # (B, obs_dim) float32, the observation after the step
    reward: np.ndarray       # (B,), 0 for episodes that had already ended
    active: np.ndarray       # (B,) bool, episodes that took this step
    terminated: np.ndarray   # (B,) bool, ended by success or failure at this step
    success: np.ndarray      # (B,) bool, succeeded at this step


class BatchedEpisodes(Protocol):
    """B episodes of (possibly) different tasks; finished episodes are frozen."""

    done: np.ndarray   # (B,) bool
    steps: np.ndarray  # (B,) int, steps taken

    def step(self, actions: np.ndarray) -> BatchedStep:
        """Advance every unfinished episode with its row of the (B, act_dim) float64 ``actions``."""
        ...


@dataclass(frozen=True)
class FigureStyle:
    """How the family's quantities are named in the figures.

    Attributes
    ----------
    reference_labels
        Legend names of the ``benchmark`` and ``limit`` slots of an ``Evaluation``.
    state_label, state_scale
        Axis label of the recorded state trajectory (``trajectories[i]["kicks"]``) and the
        factor it is multiplied by for plotting.
    obs_label
        Axis label of the recorded observations.
    success_band
        Half-width of the band of successful observations, or ``None``.
    success_reward
        Reward at the success threshold (a line in the final-reward panel), or ``None``.
    """

    reference_labels: Mapping[str, str] = field(default_factory=lambda: {"benchmark": "benchmark",
                                                                          "limit": "limit"})
    state_label: str = "state"
    state_scale: float = 1.0
    obs_label: str = "observation"
    success_band: float | None = None
    success_reward: float | None = None


class FamilyEnvironment(Protocol):
    """A family's environment settings (from ``env-kwargs``); frozen and picklable."""

    obs_dim: int
    act_dim: int

    @property
    def max_time(self) -> int:
        """Steps before truncation (the rollout's horizon)."""
        ...

    @property
    def figure_style(self) -> FigureStyle:
        ...

    def sample_tasks(self, rng: np.random.Generator, n: int, first_id: int = 0) -> list[Any]:
        """``n`` tasks of the distribution with ids ``first_id``, ``first_id + 1``, ..."""
        ...

    def task_arrays(self, tasks: Sequence[Any]) -> tuple[np.ndarray, ...]:
        """The tasks as arrays with a leading task axis (what the episodes need; sent to workers)."""
        ...

    def start_episodes(self, arrays: tuple[np.ndarray, ...], rngs: list[np.random.Generator],
                       streams: StreamFactory) -> tuple[BatchedEpisodes, np.ndarray]:
        """Start B episodes: ``arrays`` hold one row per episode (``task_arrays`` repeated);
        ``rngs[i]`` is episode i's own generator (its reset draws, then the rollout's action
        noise); ``streams(s)`` gives further per-episode generators. Returns the episodes and
        their (B, obs_dim) float32 first observations. Episode i must depend only on its
        row and its generators (never on the other episodes of the batch)."""
        ...

    def evaluate(self, controller: Controller | None, task: Any, n_episodes: int, seed: int,
                 references: bool = True) -> Any:
        """An ``maml_rl.evaluation_results.Evaluation`` of ``controller`` and the references
        on ``n_episodes`` initial states fixed by ``seed`` and the task id."""
        ...


@dataclass(frozen=True)
class TaskFamily:
    """A task family as the registry knows it.

    Attributes
    ----------
    name
        Registry name (the folder ``maml_rl/families/<name>/``, the config's ``family``).
    env_id
        gymnasium id; the config's ``env-name`` must equal it.
    environment
        ``env-kwargs`` -> ``FamilyEnvironment``; raises ``TypeError`` for an unknown option and
        ``ValueError`` for a bad value (reported as a ``ConfigError`` naming the file).
    load_evaluation_tasks
        Path (``None``: ``default_task_file``) -> tasks; raises ``TaskFileError``.
    default_task_file
        The evaluation-task file of the family.
    task_from_factors
        (id, factors) -> task, the inverse of ``task.factors`` (metrics rows store factors).
    make_env
        (task or ``None`` for the family's nominal task, ``env-kwargs``) -> the single-task
        ``gymnasium.Env`` of the family (what ``ppo.py``'s agents train on).
    evaluation_episodes
        Default number of evaluation episodes per task (``test.py --num-episodes``).
    """

    name: str
    env_id: str
    environment: Callable[[Mapping[str, Any]], FamilyEnvironment]
    load_evaluation_tasks: Callable[[Path | None], list[Any]]
    default_task_file: Path
    task_from_factors: Callable[[int, Sequence[float]], Any]
    make_env: Callable[[Any, Mapping[str, Any]], Any]
    evaluation_episodes: int = 200
