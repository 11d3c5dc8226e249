"""The ARES experimental-area family (DESY): transverse beam tuning on the Cheetah simulator.

The family's face (what a registry needs):

* tasks           ``AresTask``, ``sample_tasks(rng, n)``, ``load_evaluation_tasks(path)``,
                  ``task_arrays(tasks)``
* batched episodes ``AresDynamics`` (parameters + transition), ``BatchedAresEA`` (reset/step of
                  B episodes of different tasks, one Cheetah call per step),
                  ``sample_initial_states(rngs, ...)`` (targets and settings per episode)
* environment     ``AresEA`` (gymnasium), registered here as ``AresEA-v0``
* references      ``limit`` (gradient-based, knows the task), ``nelder_mead`` (derivative-free)
* speed           ``benchmark.run()``

Importing this package does not import Cheetah (an optional dependency, extra ``ares``);
building the segment without it raises an ImportError naming the extra.
"""

import gymnasium as gym

from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
from maml_rl.families.ares_ea.dynamics import AresDynamics, AresStepResult
from maml_rl.families.ares_ea.references import LimitResult, OptimiserResult, limit, nelder_mead
from maml_rl.families.ares_ea.tasks import (AresTask, TaskFileError, load_evaluation_tasks, sample_tasks,
                                            select_tasks, task_arrays)

ENV_ID = "AresEA-v0"

if ENV_ID not in gym.registry:
    # The environment handles its own time limit (truncation), so no TimeLimit wrapper.
    gym.register(id=ENV_ID, entry_point="maml_rl.families.ares_ea.env:AresEA")

__all__ = ["ENV_ID", "AresDynamics", "AresStepResult", "AresTask", "BatchedAresEA", "LimitResult",
           "OptimiserResult", "TaskFileError", "limit", "load_evaluation_tasks", "nelder_mead",
           "sample_initial_states", "sample_tasks", "select_tasks", "task_arrays"]
