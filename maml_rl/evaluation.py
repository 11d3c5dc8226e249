"""AWAKE: run a policy, the benchmark and the limit controller on identical initial states.

A controller is any callable mapping a (B, 10) float32 observation batch to (B, 10)
actions; the helpers here run B episodes of one task at once on the batched environment.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from maml_rl.envs.batched import BatchedAwakeSteering
from maml_rl.envs.controllers import benchmark_action, limit_action
from maml_rl.envs.dynamics import SteeringDynamics, normalise_actions, sample_initial_kicks
from maml_rl.envs.tasks import Task
from maml_rl.evaluation_results import N_RECORDED, Controller, ControllerStats, Evaluation

__all__ = ["N_RECORDED", "Controller", "ControllerStats", "Evaluation", "evaluate", "evaluation_kicks",
           "reference_stats", "run_controller"]


def _key(task: Task) -> int:
    """Non-negative integer of a task id (ids of freshly sampled tasks may be negative)."""
    return task.id % (1 << 32)


def evaluation_kicks(task: Task, n_episodes: int, seed: int, plane: str = "horizontal") -> np.ndarray:
    """Initial corrector kicks of ``n_episodes`` evaluation episodes (fixed by seed and task id)."""
    rng = np.random.default_rng([seed, _key(task)])
    return np.stack([sample_initial_kicks(rng, task.response(plane)) for _ in range(n_episodes)])


def run_controller(controller: Controller, task: Task, initial_kicks: np.ndarray,
                   dynamics: SteeringDynamics, plane: str = "horizontal",
                   noise_seed: int = 0, record: int = N_RECORDED) -> ControllerStats:
    """Run one controller from each initial state until every episode has ended.

    The controller only sees the observations of unfinished episodes.
    """
    n = len(initial_kicks)
    env = BatchedAwakeSteering(dynamics)
    noise_rng = np.random.default_rng([noise_seed, _key(task), 1])

    def noise() -> np.ndarray | None:
        return noise_rng.standard_normal((n, 10)) if dynamics.noise_sigma > 0 else None

    responses = np.broadcast_to(task.response(plane), (n, 10, 10))
    obs = env.reset(responses, initial_kicks, noise())
    returns, success, final_reward = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    record = min(record, n)
    history: dict[str, list[np.ndarray]] = {"obs": [obs[:record]], "kicks": [env.theta[:record]],
                                            "actions": [], "rewards": []}
    while not env.done.all():
        actions = np.zeros((n, 10))
        active = ~env.done
        actions[active] = controller(obs[active])
        step = env.step(actions, noise())
        returns += step.reward
        success |= step.success
        final_reward = np.where(step.active, step.reward, final_reward)
        obs = step.obs
        history["obs"].append(obs[:record])
        history["kicks"].append(env.theta[:record])
        history["actions"].append(normalise_actions(actions[:record]))
        history["rewards"].append(step.reward[:record])
    stacked = {k: np.stack(v, axis=1) for k, v in history.items()}  # (record, T[+1], ...)
    trajectories = []
    for e in range(record):
        t = int(env.steps[e])
        trajectories.append({"obs": stacked["obs"][e, : t + 1], "kicks": stacked["kicks"][e, : t + 1],
                             "actions": stacked["actions"][e, :t], "rewards": stacked["rewards"][e, :t]})
    return ControllerStats(lengths=env.steps.copy(), returns=returns, success=success,
                           final_reward=final_reward, trajectories=trajectories)


def benchmark_controller(task: Task, plane: str, dynamics: SteeringDynamics) -> Controller:
    response = task.response(plane)
    return lambda obs: benchmark_action(response, obs, dynamics.action_scale)


def nominal_inverse_controller(task: Task, plane: str, dynamics: SteeringDynamics) -> Controller:
    """The benchmark's control law with the nominal optics' response matrix, whatever the task."""
    response = Task.nominal().response(plane)
    return lambda obs: benchmark_action(response, obs, dynamics.action_scale)


def limit_controller(task: Task, plane: str, dynamics: SteeringDynamics) -> Controller:
    response = task.response(plane)
    return lambda obs: limit_action(np.broadcast_to(response, (len(obs), 10, 10)), obs,
                                    dynamics.threshold, dynamics.action_scale)


def evaluate(policy: Controller | None, task: Task, n_episodes: int = 200, seed: int = 0,
             dynamics: SteeringDynamics | None = None, plane: str = "horizontal",
             references: bool = True, nominal: bool = False) -> Evaluation:
    """Evaluate ``policy`` (may be None) and the two references on the same initial states.

    Parameters
    ----------
    policy
        Callable (B, 10) obs -> (B, 10) actions, or ``None`` for the references only.
    task
        The task (optics).
    n_episodes, seed
        Number of episodes; the seed fixes initial states and observation noise.
    dynamics, plane
        Environment parameters (default: the standard AWAKE settings, horizontal).
    references
        Also run the benchmark and the limit controller (default True).
    nominal
        Also run the nominal-inverse controller (default False).
    """
    dynamics = dynamics or SteeringDynamics()
    kicks = evaluation_kicks(task, n_episodes, seed, plane)
    policy_stats = None
    if policy is not None:
        policy_stats = run_controller(policy, task, kicks, dynamics, plane, noise_seed=seed)
    return Evaluation(
        task=task, initial_kicks=kicks, policy=policy_stats,
        benchmark=reference_stats("benchmark", task, n_episodes, seed, dynamics, plane) if references else None,
        limit=reference_stats("limit", task, n_episodes, seed, dynamics, plane) if references else None,
        nominal=reference_stats("nominal", task, n_episodes, seed, dynamics, plane) if nominal else None)


@lru_cache(maxsize=64)
def reference_stats(name: str, task: Task, n_episodes: int, seed: int, dynamics: SteeringDynamics,
                    plane: str) -> ControllerStats:
    """A reference controller's statistics (cached: they never change)."""
    factory = {"benchmark": benchmark_controller, "limit": limit_controller,
               "nominal": nominal_inverse_controller}[name]
    kicks = evaluation_kicks(task, n_episodes, seed, plane)
    return run_controller(factory(task, plane, dynamics), task, kicks, dynamics, plane, noise_seed=seed)
