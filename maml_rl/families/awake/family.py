"""The AWAKE family as the registry sees it (``family: awake``, ``env-name: AwakeSteering-v0``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from maml_rl.envs import ENV_ID
from maml_rl.envs.tasks import DEFAULT_TASK_FILE, Task, load_evaluation_tasks
from maml_rl.families.awake.environment import AwakeEnvironment
from maml_rl.families.base import TaskFamily


def _environment(env_kwargs: Mapping[str, Any]) -> AwakeEnvironment:
    return AwakeEnvironment.from_kwargs(env_kwargs)


def _task(task_id: int, factors: Sequence[float]) -> Task:
    return Task(task_id, tuple(factors))


def _make_env(task: Task | None, env_kwargs: Mapping[str, Any]) -> Any:
    from maml_rl.envs.awake import AwakeSteering

    return AwakeSteering(task=task, **env_kwargs)


def _tasks(path: Path | None) -> list[Task]:
    return load_evaluation_tasks(path)


FAMILY = TaskFamily(name="awake", env_id=ENV_ID, environment=_environment, load_evaluation_tasks=_tasks,
                    default_task_file=DEFAULT_TASK_FILE, task_from_factors=_task, make_env=_make_env,
                    evaluation_episodes=200)
