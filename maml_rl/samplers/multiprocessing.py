"""A sampler with worker processes, for environments expensive enough to parallelise.

Each worker builds its own policy copy and environment inside the process ("spawn"
start method: nothing is inherited). A round's tasks are split into contiguous chunks,
one per worker; every episode draws from its own keyed random stream, so the episodes
are identical to the vectorised sampler's whatever the number of workers. A worker that
raises reports its traceback; a worker that dies is noticed within ``poll_interval``
seconds; both surface as ``SamplerError`` in the main process, and the sampler is then
closed (every later ``sample`` raises ``SamplerError``), so no result of a failed round is
ever returned by a later one.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Mapping, Sequence

import torch

from maml_rl.episode import EpisodeBatch
from maml_rl.samplers.base import ClosingSampler, SamplerSpec
from maml_rl.samplers.rollout import RolloutKey, rollout, task_chunks


class SamplerError(RuntimeError):
    """A worker failed or died."""


def _worker(spec: SamplerSpec, conn: Connection) -> None:
    """Worker loop: build policy and environment here, then serve rollout requests."""
    torch.set_num_threads(1)
    from maml_rl.policies.normal_mlp import NormalMLPPolicy

    policy = NormalMLPPolicy(**spec.policy_config)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        try:
            params, arrays, positions, key = message
            params = {name: torch.from_numpy(p) for name, p in params.items()}
            batch = rollout(policy, params, arrays, positions, spec.episodes_per_task, spec.environment, key)
            conn.send(("ok", batch))
        except Exception:  # noqa: BLE001 - reported to the main process
            conn.send(("error", traceback.format_exc()))


class MultiprocessingSampler(ClosingSampler):
    """Sampler with ``num_workers`` spawned processes.

    Parameters
    ----------
    spec
        Environment, policy structure and seed.
    num_workers
        Number of processes (>= 1).
    poll_interval
        Seconds between liveness checks while waiting for results.
    timeout
        Give up on a round after this many seconds (``None``: wait while workers live).
    """

    def __init__(self, spec: SamplerSpec, num_workers: int = 2, poll_interval: float = 1.0,
                 timeout: float | None = None) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.spec = spec
        self.num_workers = num_workers
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._closed = False
        context = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._processes: list[Any] = []
        for index in range(num_workers):
            parent, child = context.Pipe(duplex=True)
            process = context.Process(target=_worker, args=(spec, child), daemon=True,
                                      name=f"maml-sampler-{index}")
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)

    def _check_alive(self) -> None:
        for index, process in enumerate(self._processes):
            if not process.is_alive():
                raise SamplerError(f"sampler worker {index} died (exit code {process.exitcode})")

    def _receive(self, index: int) -> EpisodeBatch:
        conn = self._conns[index]
        waited = 0.0
        while True:
            ready = wait([conn, self._processes[index].sentinel], timeout=self.poll_interval)
            if conn in ready:
                try:
                    status, payload = conn.recv()
                except EOFError:
                    self._check_alive()
                    raise SamplerError(f"sampler worker {index} closed its connection") from None
                if status == "error":
                    raise SamplerError(f"sampler worker {index} failed:\n{payload}")
                return payload
            self._check_alive()
            waited += self.poll_interval
            if self.timeout is not None and waited >= self.timeout:
                raise SamplerError(f"sampler worker {index} gave no result within {self.timeout} s")

    def sample(self, params: Mapping[str, torch.Tensor], tasks: Sequence[Any], batch: int,
               round_index: int) -> EpisodeBatch:
        if self._closed:
            raise SamplerError("sampler is closed")
        arrays = {name: p.detach().numpy() for name, p in params.items()}
        task_data = self.spec.environment.task_arrays(tasks)
        key = RolloutKey(self.spec.seed, batch, round_index, self.spec.purpose)
        chunks = task_chunks(len(tasks), self.num_workers)
        try:
            try:
                for worker, chunk in enumerate(chunks):
                    part = {name: a[chunk[0]:chunk[-1] + 1] for name, a in arrays.items()}
                    self._conns[worker].send((part, tuple(a[chunk] for a in task_data), chunk, key))
                results = [self._receive(worker) for worker in range(len(chunks))]
            except (BrokenPipeError, ConnectionResetError, OSError) as exc:
                # A killed worker's pipe can break before the process is reaped: give it a
                # moment, so that the error names the dead worker.
                deadline = time.monotonic() + self.poll_interval
                while time.monotonic() < deadline and all(p.is_alive() for p in self._processes):
                    time.sleep(0.01)
                self._check_alive()
                raise SamplerError(f"lost contact with a sampler worker: {exc}") from None
        except BaseException:
            # The other workers' results of this round are still in their pipes: a later
            # round would read them as its own (stale episodes), and a large send to a worker
            # blocked on a full pipe could deadlock. Once a round fails the sampler is closed
            # (without waiting for workers that may be blocked sending their results).
            for process in self._processes:
                if process.is_alive():
                    process.terminate()
            self.close()
            raise
        return EpisodeBatch.concatenate(results)

    def close(self) -> None:
        """Stop the workers (idempotent; never blocks for long)."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)
        for conn in self._conns:
            conn.close()
