"""ARES-EA: run a policy and the references on identical initial states of one task.

The initial states (target and settings) of evaluation episode e of a task are drawn from
``default_rng([seed, task id, e])`` (``sample_initial_states``), so every controller and
every evaluation point with the same seed meets the same episodes. The references fill the
two slots of an ``Evaluation``:

* ``limit``: the gradient-based limit of ``references.limit`` (knows the task), computed per
  episode with a reduced budget (``LIMIT_SETTINGS``: about 1.6 s per episode instead of 6.6 s
  with the defaults of the reference table), then its plan is replayed in the environment;
  an episode for which no setting within the thresholds was found counts as a failure of
  ``max_time`` steps. With a smaller budget the optimiser can miss a shorter plan, so the
  lengths are an upper bound of the full limit's (still a lower bound of what any
  controller needs only as far as the optimiser finds it).
* ``benchmark``: Nelder-Mead on the measured objective (``references.nelder_mead``), the
  classic derivative-free tuning procedure, with a budget of ``max_time`` interactions; its
  length is the interaction at which it first reached the thresholds (else ``max_time``,
  failed), its return the sum of -O_k / O_0 over those interactions (off-screen readings,
  which end an environment episode but not Nelder-Mead, are left out).
  ``bayesopt_stats`` measures Bayesian optimisation (``bayesopt.bayesian_optimisation``)
  the same way on the same states (an extra reference of the controller table).

Every ``ControllerStats`` carries ``final_distance``: the objective O [m] at the end of each
episode (Nelder-Mead: the best on-screen O it measured within its interactions).

Both are cached per (task, episodes, seed, settings): they never change during an adaptation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from maml_rl.evaluation_results import N_RECORDED, Controller, ControllerStats, Evaluation
from maml_rl.families.ares_ea.batched import BatchedAresEA, sample_initial_states
from maml_rl.families.ares_ea.dynamics import N_MAGNETS
from maml_rl.families.ares_ea.environment import AresEnvironment, shared_segment
from maml_rl.families.ares_ea.references import OptimiserResult, limit, nelder_mead
from maml_rl.families.ares_ea.segment import MAGNET_LIMITS
from maml_rl.families.ares_ea.tasks import AresTask, task_arrays

LIMIT_SETTINGS = {"starts": 4, "iterations": 20, "polish_iterations": 0}
# Acts on the observations of the active episodes and their indices in the batch.
Actor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _key(task: AresTask) -> int:
    return task.id % (1 << 32)


def evaluation_states(task: AresTask, n_episodes: int, seed: int,
                      environment: AresEnvironment) -> tuple[np.ndarray, np.ndarray]:
    """Targets (n, 4) and initial settings (n, 5) of the evaluation episodes of ``task``."""
    rngs = [np.random.default_rng([seed, _key(task), e]) for e in range(n_episodes)]
    beams, shifts = (np.repeat(a, n_episodes, axis=0) for a in task_arrays([task]))
    return sample_initial_states(rngs, beams, shifts, environment.dynamics, shared_segment(), environment.target)


def _run(act: Actor, task: AresTask, targets: np.ndarray, magnets: np.ndarray, environment: AresEnvironment,
         record: int = N_RECORDED) -> ControllerStats:
    """Run episodes from the given states until all have ended; ``act`` sees the active ones only."""
    n = len(magnets)
    beams, shifts = (np.repeat(a, n, axis=0) for a in task_arrays([task]))
    env = BatchedAresEA(environment.dynamics, shared_segment())
    obs = env.reset(beams, shifts, magnets, targets)
    returns, success, final_reward = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    record = min(record, n)
    history: dict[str, list[np.ndarray]] = {"obs": [obs[:record]], "kicks": [env.magnets[:record] / MAGNET_LIMITS],
                                            "actions": [], "rewards": []}
    while not env.done.all():
        active = ~env.done
        actions = np.zeros((n, N_MAGNETS))
        actions[active] = act(obs[active], np.flatnonzero(active))
        step = env.step(actions)
        returns += step.reward
        success |= step.success
        final_reward = np.where(step.active, step.reward, final_reward)
        obs = step.obs
        history["obs"].append(obs[:record])
        history["kicks"].append(env.magnets[:record] / MAGNET_LIMITS)
        history["actions"].append(np.clip(actions[:record], -1.0, 1.0))
        history["rewards"].append(step.reward[:record])
    stacked = {k: np.stack(v, axis=1) for k, v in history.items()}
    trajectories = []
    for e in range(record):
        t = int(env.steps[e])
        trajectories.append({"obs": stacked["obs"][e, : t + 1], "kicks": stacked["kicks"][e, : t + 1],
                             "actions": stacked["actions"][e, :t], "rewards": stacked["rewards"][e, :t]})
    return ControllerStats(lengths=env.steps.copy(), returns=returns, success=success, final_reward=final_reward,
                           trajectories=trajectories, final_distance=env.objective.copy())


def run_controller(controller: Controller, task: AresTask, targets: np.ndarray, magnets: np.ndarray,
                   environment: AresEnvironment) -> ControllerStats:
    """A controller (obs batch -> action batch) from the given states."""
    return _run(lambda obs, _: controller(obs), task, targets, magnets, environment)


@lru_cache(maxsize=64)
def limit_stats(task: AresTask, n_episodes: int, seed: int, environment: AresEnvironment) -> ControllerStats:
    """The limit's plans (one optimisation per episode), replayed in the environment."""
    targets, magnets = evaluation_states(task, n_episodes, seed, environment)
    dynamics = environment.dynamics
    plans = []
    for e in range(n_episodes):
        result = limit(shared_segment(), task, targets[e], magnets[e], dynamics,
                       np.random.default_rng([seed, _key(task), e, 0x11]), **LIMIT_SETTINGS)
        plans.append(result.actions(magnets[e], dynamics.action_mode) if result.steps is not None
                     else np.zeros((0, N_MAGNETS)))
    taken = np.zeros(n_episodes, dtype=int)

    def act(obs: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        # Open loop: step k of the plan, then hold (a zero delta) if the plan did not end the episode.
        out = np.zeros((len(episodes), N_MAGNETS))
        for row, e in enumerate(episodes):
            if taken[e] < len(plans[e]):
                out[row] = plans[e][taken[e]]
            taken[e] += 1
        return out

    return _run(act, task, targets, magnets, environment)


@lru_cache(maxsize=64)
def nelder_mead_stats(task: AresTask, n_episodes: int, seed: int, environment: AresEnvironment) -> ControllerStats:
    """Nelder-Mead with ``max_time`` interactions per episode (see the module docstring)."""
    return optimiser_stats(lambda *episode, e: nelder_mead(*episode, max_interactions=environment.max_time),
                           task, n_episodes, seed, environment)


@lru_cache(maxsize=64)
def bayesopt_stats(task: AresTask, n_episodes: int, seed: int, environment: AresEnvironment) -> ControllerStats:
    """Bayesian optimisation with ``max_time`` interactions per episode, seeded by (seed, episode)."""
    # Imported here: gpytorch is the extra "modelbased", not needed by the rest of the ARES evaluation.
    from maml_rl.families.ares_ea.bayesopt import bayesian_optimisation

    return optimiser_stats(lambda *episode, e: bayesian_optimisation(*episode, max_interactions=environment.max_time,
                                                                     seed=seed * 100_003 + e),
                           task, n_episodes, seed, environment)


def optimiser_stats(run: Callable[..., OptimiserResult], task: AresTask, n_episodes: int, seed: int,
                    environment: AresEnvironment) -> ControllerStats:
    """Statistics of a derivative-free optimiser on the evaluation states, as the benchmark's.

    ``run(segment, task, target, magnets, dynamics, e=episode)`` returns its trace.
    """
    targets, magnets = evaluation_states(task, n_episodes, seed, environment)
    dynamics, budget = environment.dynamics, environment.max_time
    beams, shifts = (np.repeat(a, n_episodes, axis=0) for a in task_arrays([task]))
    segment = shared_segment()
    start = segment.screen_beam_numpy(magnets, segment.incoming_beam(beams), shifts)
    scale = dynamics.initial_objective(start, targets)
    lengths, returns = np.zeros(n_episodes, dtype=int), np.zeros(n_episodes)
    success, final = np.zeros(n_episodes, dtype=bool), np.zeros(n_episodes)
    best = np.zeros(n_episodes)
    for e in range(n_episodes):
        result = run(segment, task, targets[e], magnets[e], dynamics, e=e)
        success[e] = result.success_interaction is not None
        lengths[e] = result.success_interaction if success[e] else budget
        values = result.objectives[: lengths[e]] / scale[e]
        returns[e] = -float(np.nansum(values))
        finite = values[np.isfinite(values)]
        final[e] = -float(finite[-1]) if len(finite) else np.nan
        # What an operator would keep: the best on-screen setting within the interactions used.
        best[e] = float(np.min(finite)) * scale[e] if len(finite) else np.inf
    return ControllerStats(lengths=lengths, returns=returns, success=success, final_reward=final, final_distance=best)


def evaluate(controller: Controller | None, task: AresTask, n_episodes: int, seed: int,
             environment: AresEnvironment, references: bool = True) -> Evaluation:
    """``controller`` (may be None), Nelder-Mead (benchmark slot) and the limit on the same states."""
    targets, magnets = evaluation_states(task, n_episodes, seed, environment)
    stats = None if controller is None else run_controller(controller, task, targets, magnets, environment)
    return Evaluation(task=task, initial_kicks=np.hstack([magnets, targets]), policy=stats,
                      benchmark=nelder_mead_stats(task, n_episodes, seed, environment) if references else None,
                      limit=limit_stats(task, n_episodes, seed, environment) if references else None)
