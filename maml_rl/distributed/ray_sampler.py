"""A sampler of stateful Ray actors: the multiprocessing sampler's design on a Ray cluster.

Each actor builds its own policy copy and environment inside its process (the
``SamplerSpec`` is sent once, when the actor starts). Every round the task-stacked policy
parameters are put into Ray's object store once (``ray.put``); each actor reads them and
steps its contiguous share of the tasks with the shared batched rollout
(``maml_rl.samplers.rollout``) and the same keyed random streams, and returns its padded
episodes. Because an episode depends only on its key (seed, batch, round, task position,
episode), the concatenated episodes equal the vectorised sampler's bit for bit whatever
the number of actors or the machines they run on.

Failures: an actor that raises reports its traceback, an actor whose process dies is
noticed within ``poll_interval`` seconds (Ray marks its pending call failed); both become
``SamplerError`` and close the sampler (actors are killed, never restarted: a restarted
actor could only replay the round), so no later round can return part of a failed one.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from maml_rl.episode import EpisodeBatch
from maml_rl.samplers.base import ClosingSampler, SamplerSpec
from maml_rl.samplers.multiprocessing import SamplerError
from maml_rl.samplers.rollout import RolloutKey, rollout, task_chunks


class RolloutWorker:
    """The body of one Ray actor: a policy copy and the environment, built in the actor."""

    def __init__(self, spec: SamplerSpec) -> None:
        torch.set_num_threads(1)
        from maml_rl.policies.normal_mlp import NormalMLPPolicy

        self.spec = spec
        self.policy = NormalMLPPolicy(**spec.policy_config)

    def pid(self) -> int:
        """The actor's process id (tests kill it)."""
        return os.getpid()

    def rollout(self, params: Mapping[str, np.ndarray], chunk: np.ndarray, task_arrays: tuple[np.ndarray, ...],
                key: RolloutKey) -> tuple[str, Any]:
        """Episodes of the tasks at positions ``chunk``; ``("error", traceback)`` on failure."""
        try:
            # Object-store arrays are read-only views: copy the actor's rows before torch uses them.
            rows = slice(int(chunk[0]), int(chunk[-1]) + 1)
            own = {name: torch.from_numpy(np.array(p[rows])) for name, p in params.items()}
            return "ok", rollout(self.policy, own, task_arrays, chunk, self.spec.episodes_per_task,
                                 self.spec.environment, key)
        except Exception:  # noqa: BLE001 - reported to the driver
            return "error", traceback.format_exc()


class RaySampler(ClosingSampler):
    """Sampler with ``num_workers`` Ray actors.

    Parameters
    ----------
    spec
        Environment, policy structure and seed.
    num_workers
        Number of actors (>= 1).
    address
        Ray cluster to join (``host:port`` or ``auto``); ``None`` starts a local Ray with
        ``num_workers`` cores, shut down by ``close`` (``maml_rl.distributed.runtime``).
        If Ray is already initialised (a Tune trial) that connection is used.
    cpus_per_worker
        Cores each actor reserves. Fractions let actors share cores with Ray Tune trials
        (actors holding whole cores can starve a search of its trials).
    poll_interval
        Seconds between checks while waiting for results.
    timeout
        Give up on a round after this many seconds (``None``: wait while the actors live).
    """

    def __init__(self, spec: SamplerSpec, num_workers: int = 2, address: str | None = None,
                 cpus_per_worker: float = 1.0, poll_interval: float = 0.2, timeout: float | None = None) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        from maml_rl.distributed.runtime import RaySession, import_ray

        self._ray = import_ray()
        self.spec = spec
        self.num_workers = num_workers
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._closed = False
        self._actors: list[Any] = []
        self._session = RaySession.connect(address, num_cpus=num_workers * cpus_per_worker)
        try:
            actor = self._ray.remote(num_cpus=cpus_per_worker, max_restarts=0, max_task_retries=0)(RolloutWorker)
            self._actors = [actor.remote(spec) for _ in range(num_workers)]
            self.pids = self._ray.get([a.pid.remote() for a in self._actors])  # actors are up
        except BaseException:
            self.close()
            raise

    def _gather(self, refs: list[Any]) -> list[EpisodeBatch]:
        ray = self._ray
        index = {ref: worker for worker, ref in enumerate(refs)}
        results: dict[int, EpisodeBatch] = {}
        pending, waited = list(refs), 0.0
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=self.poll_interval)
            for ref in ready:
                worker = index[ref]
                try:
                    status, payload = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    raise SamplerError(f"ray sampler worker {worker} died ({type(exc).__name__})") from None
                except ray.exceptions.RayError as exc:
                    raise SamplerError(f"ray sampler worker {worker} failed: {exc}") from None
                if status == "error":
                    raise SamplerError(f"ray sampler worker {worker} failed:\n{payload}")
                results[worker] = payload
            waited += self.poll_interval
            if pending and self.timeout is not None and waited >= self.timeout:
                raise SamplerError(f"ray sampler workers gave no result within {self.timeout} s")
        return [results[w] for w in range(len(refs))]

    def sample(self, params: Mapping[str, torch.Tensor], tasks: Sequence[Any], batch: int,
               round_index: int) -> EpisodeBatch:
        if self._closed:
            raise SamplerError("sampler is closed")
        task_data = self.spec.environment.task_arrays(tasks)
        key = RolloutKey(self.spec.seed, batch, round_index, self.spec.purpose)
        try:
            # Once per round into the object store; each actor reads it (once per node).
            params_ref = self._ray.put({name: p.detach().numpy() for name, p in params.items()})
            refs = [actor.rollout.remote(params_ref, chunk, tuple(a[chunk] for a in task_data), key)
                    for actor, chunk in zip(self._actors, task_chunks(len(tasks), self.num_workers))]
            results = self._gather(refs)
        except BaseException:
            self.close()  # never half a round: the other actors' results are dropped with them
            raise
        return EpisodeBatch.concatenate(results)

    def close(self) -> None:
        """Kill the actors and leave Ray if this sampler connected to it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead, or Ray gone
                pass
        self._actors = []
        self._session.close()
