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

from maml_rl.episode import EpisodeBatch
from maml_rl.families.base import FamilyEnvironment
from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.seeding import PURPOSE_TRAINING, EpisodeRng, recycled_episode_rngs

NOISE_CHUNK = 32  # action noise is drawn 32 steps at a time per episode
ALIGN = 16  # float32 values per 64 bytes


@dataclass(frozen=True)
class RolloutKey:
    """Identifies the random streams of a sampling round: seed, meta-batch, round."""

    seed: int
    batch: int
    round_index: int
    purpose: int = PURPOSE_TRAINING


def task_chunks(num_tasks: int, num_workers: int) -> list[np.ndarray]:
    """Contiguous, non-empty chunks of task positions, one per worker (at most ``num_workers``)."""
    return [c for c in np.array_split(np.arange(num_tasks), num_workers) if len(c)]


def rollout(policy: NormalMLPPolicy, params: Mapping[str, torch.Tensor], task_arrays: tuple[np.ndarray, ...],
            task_positions: Sequence[int], episodes_per_task: int, environment: FamilyEnvironment,
            key: RolloutKey) -> EpisodeBatch:
    """Sample ``episodes_per_task`` episodes for each of K tasks.

    Parameters
    ----------
    policy
        Provides the network structure (``forward_stacked``).
    params
        Task-stacked parameters, ``params[name]`` of shape (K, ...).
    task_arrays
        The K tasks as arrays with a leading task axis (``environment.task_arrays``).
    task_positions
        Position of each task within its meta-batch (keys its episodes' streams).
    episodes_per_task
        B.
    environment
        The task family's environment settings (sizes, horizon, batched episodes).
    key
        Seed, meta-batch and round of the random streams.
    """
    with recycled_episode_rngs() as episode_rng:  # the episodes' generators live only in this call
        return _sample(policy, params, task_arrays, task_positions, episodes_per_task, environment, key, episode_rng)


def _sample(policy: NormalMLPPolicy, params: Mapping[str, torch.Tensor], task_arrays: tuple[np.ndarray, ...],
            task_positions: Sequence[int], episodes_per_task: int, environment: FamilyEnvironment,
            key: RolloutKey, episode_rng: EpisodeRng) -> EpisodeBatch:
    """``rollout`` with the episodes' generators made by ``episode_rng`` (``maml_rl.seeding``)."""
    k, b = len(task_positions), episodes_per_task
    obs_dim, act_dim = environment.obs_dim, environment.act_dim
    # A copy in the standard layout: a stacked view (stride 0 along K, even for K = 1) or a worker's
    # slice would otherwise pick other matmul kernels, with other rounding, than a copy sent to a process.
    params = {name: p.detach().clone(memory_format=torch.contiguous_format) for name, p in params.items()}
    n = k * b

    def streams(stream: int) -> list[np.random.Generator]:
        return [episode_rng(key.seed, key.batch, key.round_index, int(task_positions[i // b]), i % b, stream,
                            key.purpose) for i in range(n)]

    # Episode i's own generator: the family's reset draws first, then the action noise below.
    rngs = [episode_rng(key.seed, key.batch, key.round_index, int(task_positions[i // b]), i % b,
                        purpose=key.purpose) for i in range(n)]
    episode_arrays = tuple(np.repeat(np.asarray(a), b, axis=0) for a in task_arrays)
    env, first_obs = environment.start_episodes(episode_arrays, rngs, streams)
    horizon = environment.max_time
    # obs_buf[t] is the observation action t is taken in; obs_buf[lengths] the one after each
    # episode's last step. Buffers hold every row; padding is zeroed once at the end.
    obs_buf = np.zeros((horizon + 1, n, obs_dim), dtype=np.float32)
    act_buf = np.zeros((horizon, n, act_dim), dtype=np.float32)
    rew_buf = np.zeros((horizon, n), dtype=np.float32)
    mask_buf = np.zeros((horizon, n), dtype=np.float32)
    terminated = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    obs_buf[0] = first_obs
    eps = np.zeros((n, NOISE_CHUNK, act_dim), dtype=np.float32)
    # The policy's input, each task's block starting on a 64-byte boundary: CPU matmul kernels
    # round differently for unaligned rows, and a task's offset in a view of obs_buf depends on
    # how many tasks and episodes this process steps (so episodes would depend on the worker count).
    block = -(-b * obs_dim // ALIGN) * ALIGN
    obs_in = torch.zeros(k * block).as_strided((k, b, obs_dim), (block, obs_dim, 1))
    t = 0
    with torch.inference_mode():  # no autograd bookkeeping on the per-step tensors
        mean_of = policy.stacked_mean_function(params)
        std = policy.stacked_std(params).unsqueeze(2)  # (K, 1, 1, act)
        while not env.done.all():
            if t % NOISE_CHUNK == 0:
                for i in np.flatnonzero(~env.done):
                    eps[i] = rngs[i].standard_normal((NOISE_CHUNK, act_dim))
                scaled_noise = std * torch.from_numpy(eps).view(k, b, NOISE_CHUNK, act_dim)  # sigma eps, per chunk
            obs_in.copy_(torch.from_numpy(obs_buf[t].reshape(k, b, obs_dim)))
            mean = mean_of(obs_in)
            actions = (mean + scaled_noise[:, :, t % NOISE_CHUNK]).reshape(n, act_dim).numpy()
            with torch.inference_mode(False):  # a family may step with torch (Cheetah caches need normal tensors)
                step = env.step(actions.astype(np.float64))
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
        "success": success.reshape(k, b), "last_observations": last_obs.reshape(k, b, obs_dim),
    })
