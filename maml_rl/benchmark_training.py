"""One timed meta-training run, as ``train.py`` runs it (no files written), as one JSON line.

    python -m maml_rl.benchmark_training CONFIG BATCHES SEED THREADS [LS_THREADS]

Uses only functions that exist since commit 2df8b99 (``load_config``, ``make_policy``,
``make_learner``, ``make_spec``, ``batch_tasks``, ``VectorizedSampler``, ``meta_update``), so
``python -m maml_rl.benchmark meta --other PATH`` runs this same file against another
checkout's ``maml_rl`` (first on ``sys.path``) and the two are timed alike. LS_THREADS (concurrent
line-search trials, this checkout only; 0 or absent: ``train.py``'s default) is passed to
``make_learner`` only when given.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def resident_mb() -> float | None:
    """Current resident set size of this process in MB (Linux ``/proc``; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(config_path: str, batches: int | None, seed: int, threads: int, ls_threads: int = 0) -> dict[str, Any]:
    """Meta-train for ``batches`` batches; per-batch wall and CPU seconds, phases, interactions, RSS."""
    import torch

    from maml_rl.config import load_config
    from maml_rl.metalearners import meta_update
    from maml_rl.samplers import VectorizedSampler
    from maml_rl.training import batch_tasks, environment_of, make_learner, make_policy, make_spec

    torch.set_num_threads(threads)
    config = load_config(Path(config_path))
    env = environment_of(config)
    batches = batches or config.num_batches
    policy = make_policy(config, seed)
    learner = make_learner(config, policy, ls_threads) if ls_threads else make_learner(config, policy)
    sampler = VectorizedSampler(make_spec(config, policy, seed), policy)
    out: dict[str, Any] = {"wall": [], "cpu": [], "sampling": [], "adaptation": [], "trpo": [],
                           "interactions": [], "cg_iterations": [], "valid_return": [], "rss_mb": []}
    for batch in range(batches):
        wall, cpu = time.perf_counter(), time.process_time()
        row = meta_update(learner, sampler, batch_tasks(config, env, seed, batch), batch)
        out["wall"].append(time.perf_counter() - wall)
        out["cpu"].append(time.process_time() - cpu)
        for phase in ("sampling", "adaptation", "trpo"):
            out[phase].append(row[f"time_{phase}"])
        for key in ("interactions", "cg_iterations", "valid_return"):
            out[key].append(row[key])
        out["rss_mb"].append(resident_mb())
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    out["torch"] = torch.__version__
    out["ls_threads"] = getattr(learner, "ls_threads", 1)
    return out


if __name__ == "__main__":
    config_arg, batches_arg, seed_arg, threads_arg = sys.argv[1:5]
    ls_arg = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    print(json.dumps(run(config_arg, int(batches_arg) or None, int(seed_arg), int(threads_arg), ls_arg)))
