"""Sampling episodes of K tasks at once on the batched environment.

One policy forward per time step serves all K x B episodes (task-stacked parameters),
and one array operation steps them all. Random draws come from per-episode generators
(``maml_rl.seeding``), so an episode does not depend on which other tasks or episodes
were sampled with it, nor on the process that sampled it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from maml_rl.envs.batched import BatchedAwakeSteering
from maml_rl.envs.dynamics import SteeringDynamics, sample_initial_kicks_batch
from maml_rl.episode import EpisodeBatch
from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.seeding import PURPOSE_TRAINING, STREAM_OBS_NOISE, episode_rng

NOISE_CHUNK = 32  # action noise is drawn 32 steps at a time per episode


@dataclass(frozen=True)
class RolloutKey:
    """Identifies the random streams of a sampling round: seed, meta-batch, round."""

    seed: int
    batch: int
    round_index: int
    purpose: int = PURPOSE_TRAINING


def rollout(policy: NormalMLPPolicy, params: Mapping[str, torch.Tensor], responses: np.ndarray,
            task_positions: Sequence[int], episodes_per_task: int, dynamics: SteeringDynamics,
            key: RolloutKey) -> EpisodeBatch:
    """Sample ``episodes_per_task`` episodes for each of K tasks.

    Parameters
    ----------
    policy
        Provides the network structure (``forward_stacked``).
    params
        Task-stacked parameters, ``params[name]`` of shape (K, ...).
    responses
        (K, 10, 10) response matrices (plane already chosen).
    task_positions
        Position of each task within its meta-batch (keys its episodes' streams).
    episodes_per_task
        B.
    dynamics
        Environment parameters.
    key
        Seed, meta-batch and round of the random streams.
    """
    k, b = len(responses), episodes_per_task
    params = {name: p.detach().contiguous() for name, p in params.items()}
    n = k * b
    rngs = [episode_rng(key.seed, key.batch, key.round_index, int(task_positions[i // b]), i % b,
                        purpose=key.purpose) for i in range(n)]
    noise_rngs = None
    if dynamics.noise_sigma > 0:
        noise_rngs = [episode_rng(key.seed, key.batch, key.round_index, int(task_positions[i // b]), i % b,
                                  STREAM_OBS_NOISE, key.purpose) for i in range(n)]
    episode_responses = np.repeat(np.asarray(responses, dtype=float), b, axis=0)
    kicks = sample_initial_kicks_batch(rngs, episode_responses)

    def obs_noise(active: np.ndarray) -> np.ndarray | None:
        if noise_rngs is None:
            return None
        noise = np.zeros((n, 10))
        for i in np.flatnonzero(active):
            noise[i] = noise_rngs[i].standard_normal(10)
        return noise

    env = BatchedAwakeSteering(dynamics)
    horizon = dynamics.max_time
    # obs_buf[t] is the observation action t is taken in; obs_buf[lengths] the one after each
    # episode's last step. Buffers hold every row; padding is zeroed once at the end.
    obs_buf = np.zeros((horizon + 1, n, 10), dtype=np.float32)
    act_buf = np.zeros((horizon, n, 10), dtype=np.float32)
    rew_buf = np.zeros((horizon, n), dtype=np.float32)
    mask_buf = np.zeros((horizon, n), dtype=np.float32)
    terminated = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    obs_buf[0] = env.reset(episode_responses, kicks, obs_noise(np.ones(n, dtype=bool)))
    eps = np.zeros((n, NOISE_CHUNK, 10), dtype=np.float32)
    t = 0
    with torch.inference_mode():  # no autograd bookkeeping on the per-step tensors
        mean_of = policy.stacked_mean_function(params)
        std = policy.stacked_std(params).unsqueeze(2)  # (K, 1, 1, act)
        while not env.done.all():
            active = ~env.done
            if t % NOISE_CHUNK == 0:
                for i in np.flatnonzero(active):
                    eps[i] = rngs[i].standard_normal((NOISE_CHUNK, 10))
                scaled_noise = std * torch.from_numpy(eps).view(k, b, NOISE_CHUNK, 10)  # sigma eps, per chunk
            mean = mean_of(torch.from_numpy(obs_buf[t].reshape(k, b, 10)))
            actions = (mean + scaled_noise[:, :, t % NOISE_CHUNK]).reshape(n, 10).numpy()
            step = env.step(actions.astype(np.float64), obs_noise(active))
            obs_buf[t + 1], act_buf[t] = step.obs, actions
            rew_buf[t], mask_buf[t] = step.reward, step.active
            terminated |= step.terminated
            success |= step.success
            t += 1
    last_obs = obs_buf[env.steps, np.arange(n)]
    obs_buf[:t] *= mask_buf[:t, :, None]  # padding is exactly zero
    act_buf[:t] *= mask_buf[:t, :, None]

    def by_task(buf: np.ndarray) -> np.ndarray:  # [T, n, ...] -> [K, T, B, ...]
        buf = buf[:t].reshape(t, k, b, *buf.shape[2:])
        return np.moveaxis(buf, 1, 0)

    return EpisodeBatch.from_numpy({
        "observations": by_task(obs_buf), "actions": by_task(act_buf), "rewards": by_task(rew_buf),
        "mask": by_task(mask_buf), "lengths": env.steps.reshape(k, b), "terminated": terminated.reshape(k, b),
        "success": success.reshape(k, b), "last_observations": last_obs.reshape(k, b, 10),
    })
