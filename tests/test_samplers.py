"""Samplers: identical episodes for any sampler and worker count, failures surface quickly."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from maml_rl.envs.dynamics import SteeringDynamics
from maml_rl.envs.tasks import sample_tasks
from maml_rl.families.awake.environment import AwakeEnvironment
from maml_rl.metalearners import MAMLTRPO, meta_update
from maml_rl.policies import NormalMLPPolicy
from maml_rl.samplers import MultiprocessingSampler, SamplerError, SamplerSpec, VectorizedSampler
from maml_rl.seeding import task_rng
from maml_rl.utils.torch_utils import stack_params


def make_spec(policy: NormalMLPPolicy, episodes: int = 4, max_time: int = 30) -> SamplerSpec:
    return SamplerSpec(AwakeEnvironment(SteeringDynamics(max_time=max_time), "horizontal"), episodes, seed=5,
                       policy_config=policy.config())


@pytest.fixture(scope="module")
def policy() -> NormalMLPPolicy:
    torch.manual_seed(3)
    return NormalMLPPolicy(10, 10, hidden_sizes=(32, 32))


def assert_same_episodes(a, b) -> None:
    """Bitwise equal: what README promises ("the same episodes")."""
    for name in ("lengths", "terminated", "success", "observations", "actions", "rewards", "mask",
                 "last_observations"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_vectorized_and_multiprocessing_produce_the_same_episodes(policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 5)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, len(tasks))
    reference = VectorizedSampler(spec, policy).sample(params, tasks, batch=3, round_index=1)
    assert reference.num_tasks == 5 and reference.episodes_per_task == 4
    for workers in (1, 2, 3):
        with MultiprocessingSampler(spec, num_workers=workers) as sampler:
            assert_same_episodes(sampler.sample(params, tasks, batch=3, round_index=1), reference)


def test_episodes_do_not_depend_on_batch_composition(policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 1), 3)
    sampler = VectorizedSampler(spec, policy)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 3)
    full = sampler.sample(params, tasks, batch=0, round_index=0)
    alone = sampler.sample({n: p[:1] for n, p in params.items()}, tasks[:1], batch=0, round_index=0)
    assert_same_episodes(full.select_tasks([0]), alone)
    other_round = sampler.sample(params, tasks, batch=0, round_index=1)
    assert not torch.equal(other_round.observations[:, 0], full.observations[:, 0])


def _training_curve(sampler_factory, batches: int = 2) -> list[dict]:
    torch.manual_seed(11)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(32, 32))
    learner = MAMLTRPO(policy, fast_lr=0.01, num_steps=2, first_order=True, gamma=1.0, gae_lambda=0.99,
                       max_kl=1e-3, cg_iters=10, cg_damping=1e-5, ls_max_steps=10, ls_backtrack_ratio=0.6)
    rows = []
    with sampler_factory(make_spec(policy, episodes=4, max_time=30), policy) as sampler:
        for batch in range(batches):
            rows.append(meta_update(learner, sampler, sample_tasks(task_rng(5, batch), 4), batch))
    return rows


def test_training_curve_is_independent_of_the_number_of_workers() -> None:
    reference = _training_curve(lambda spec, policy: VectorizedSampler(spec, policy))
    for workers in (1, 2):
        curve = _training_curve(lambda spec, policy, n=workers: MultiprocessingSampler(spec, num_workers=n))
        assert len(curve) == len(reference)
        for a, b in zip(reference, curve):  # every logged number identical, timings aside
            assert {k: v for k, v in a.items() if not k.startswith("time_")} == \
                {k: v for k, v in b.items() if not k.startswith("time_")}


def test_dead_worker_is_reported_within_seconds(policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 2)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 2)
    sampler = MultiprocessingSampler(spec, num_workers=2, poll_interval=0.2)
    try:
        sampler.sample(params, tasks, 0, 0)
        os.kill(sampler._processes[1].pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(SamplerError, match="worker 1 died"):
            sampler.sample(params, tasks, 0, 1)
        assert time.monotonic() - start < 5
        with pytest.raises(SamplerError, match="closed"):  # unusable, never half a round
            sampler.sample(params, tasks, 0, 2)
    finally:
        sampler.close()
        sampler.close()  # idempotent


def test_failing_worker_reports_its_error(policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 2)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters() if n != "mu.bias"}, 2)
    with MultiprocessingSampler(spec, num_workers=1) as sampler:
        with pytest.raises(SamplerError, match="KeyError"):
            sampler.sample(params, tasks, 0, 0)
    with pytest.raises(SamplerError, match="closed"):
        sampler.sample(params, tasks, 0, 0)


def test_no_stale_episodes_after_one_worker_fails(policy) -> None:
    # Worker 0 finishes its share while worker 1 fails: worker 0's episodes stay in its pipe.
    # A later round must never return them as its own; the sampler is closed instead.
    import numpy as np

    spec = make_spec(policy, episodes=16, max_time=100)
    tasks = sample_tasks(task_rng(5, 0), 4)
    for task in tasks[2:]:  # no admissible initial state: reset fails in worker 1
        task.__dict__["response_matrices"] = (np.eye(10) * 1e-3, np.eye(10) * 1e-3)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 4)
    sampler = MultiprocessingSampler(spec, num_workers=2, poll_interval=0.2)
    try:
        with pytest.raises(SamplerError, match="worker 1 failed"):
            sampler.sample(params, tasks, 0, 0)
        start = time.monotonic()
        with pytest.raises(SamplerError, match="closed"):
            sampler.sample({n: p[:2] for n, p in params.items()}, tasks[:2], 0, 1)
        assert time.monotonic() - start < 1  # refused at once, no waiting on any worker
        assert not any(process.is_alive() for process in sampler._processes)
    finally:
        sampler.close()


def test_adaptation_draws_from_its_own_streams(policy) -> None:
    # Same seed, batch, round and task positions: meta-training and test-time adaptation must not
    # sample the same episodes (initial states and action noise).
    import dataclasses

    import numpy as np

    from maml_rl.seeding import PURPOSE_ADAPTATION, episode_rng

    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 2)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 2)
    training = VectorizedSampler(spec, policy).sample(params, tasks, 0, 0)
    adaptation = VectorizedSampler(dataclasses.replace(spec, purpose=PURPOSE_ADAPTATION), policy).sample(
        params, tasks, 0, 0)
    assert not torch.equal(training.observations[:, 0], adaptation.observations[:, 0])
    # Training keys are those of earlier versions (purpose 0 adds nothing to the key).
    legacy = np.random.Generator(np.random.Philox(key=[(5 << 24) | 3, ((((2 << 16) | 4) << 16 | 6) << 8)]))
    assert episode_rng(5, 3, 2, 4, 6).random() == legacy.random()
    assert episode_rng(5, 3, 2, 4, 6, purpose=PURPOSE_ADAPTATION).random() != episode_rng(5, 3, 2, 4, 6).random()


def test_recycled_episode_generators_give_the_streams_of_fresh_ones() -> None:
    """``recycled_episode_rngs`` reuses bit generators left in any state (partly used buffers,
    a pending 32-bit half) and must still give, draw for draw, the streams of ``episode_rng``."""
    import numpy as np

    from maml_rl.seeding import PURPOSE_ADAPTATION, STREAM_OBS_NOISE, episode_rng, recycled_episode_rngs

    def draws(g: np.random.Generator) -> list[np.ndarray]:
        return [g.standard_normal(37), g.integers(0, 2**31, size=3, dtype=np.uint32), g.uniform(-1, 1, (5, 2)),
                g.standard_normal((2, 3)), np.asarray(g.integers(0, 7)), g.random(3)]

    keys = [(5, 3, r, t, e, stream, purpose) for r in (0, 4) for t in (0, 2) for e in (0, 15)
            for stream, purpose in ((0, 0), (STREAM_OBS_NOISE, PURPOSE_ADAPTATION))]
    for _ in range(3):  # the second and third rounds run on the first round's bit generators
        with recycled_episode_rngs() as make:
            recycled = [draws(make(*key)) for key in keys]
        for key, values in zip(keys, recycled):
            fresh = draws(episode_rng(*key))
            assert all(np.array_equal(a, b) for a, b in zip(values, fresh)), key
        keys = keys[::-1]  # other keys on the recycled generators
    with recycled_episode_rngs() as make, pytest.raises(ValueError, match="episode 65536 outside"):
        make(5, 3, 0, 0, 1 << 16)


@pytest.mark.parametrize("hidden,episodes", [(16, 3), (20, 3)])
def test_episodes_do_not_depend_on_how_tasks_are_split(hidden, episodes) -> None:
    # Regression: with 3 episodes per task a task's observations started at an unaligned offset
    # of the shared buffer, and the matmul kernels rounded them differently than in a worker
    # stepping that task alone (episodes differed in the last bits between worker counts).

    from maml_rl.episode import EpisodeBatch
    from maml_rl.samplers.rollout import RolloutKey, rollout, task_chunks

    torch.manual_seed(hidden)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(hidden, hidden))
    spec = make_spec(policy, episodes=episodes, max_time=20)
    tasks = sample_tasks(task_rng(5, 2), 5)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 5)
    arrays, key = spec.environment.task_arrays(tasks), RolloutKey(5, 0, 0)
    whole = VectorizedSampler(spec, policy).sample(params, tasks, 0, 0)
    for workers in (2, 3, 5):
        parts = [rollout(policy, {n: p[c[0]:c[-1] + 1] for n, p in params.items()}, tuple(a[c] for a in arrays), c,
                         episodes, spec.environment, key) for c in task_chunks(5, workers)]
        assert_same_episodes(EpisodeBatch.concatenate(parts), whole)
