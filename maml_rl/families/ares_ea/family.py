"""The ARES-EA family as the registry sees it (``family: ares_ea``, ``env-name: AresEA-v0``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from maml_rl.families.ares_ea import ENV_ID
from maml_rl.families.ares_ea.environment import AresEnvironment
from maml_rl.families.ares_ea.tasks import DEFAULT_TASK_FILE, AresTask, load_evaluation_tasks
from maml_rl.families.base import TaskFamily


def _environment(env_kwargs: Mapping[str, Any]) -> AresEnvironment:
    return AresEnvironment.from_kwargs(env_kwargs)


def _task(task_id: int, factors: Sequence[float]) -> AresTask:
    return AresTask.from_factors(task_id, factors)


def _make_env(task: AresTask | None, env_kwargs: Mapping[str, Any]) -> Any:
    from maml_rl.families.ares_ea.env import AresEA

    return AresEA(task=task, **env_kwargs)


def _tasks(path: Path | None) -> list[AresTask]:
    return load_evaluation_tasks(path)


# 10 evaluation episodes per task by default: the limit reference costs about 1.6 s per episode.
FAMILY = TaskFamily(name="ares_ea", env_id=ENV_ID, environment=_environment, load_evaluation_tasks=_tasks,
                    default_task_file=DEFAULT_TASK_FILE, task_from_factors=_task, make_env=_make_env,
                    evaluation_episodes=10)
