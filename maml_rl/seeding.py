"""Deterministic random streams keyed by what they are for, not by who draws them.

Every episode owns a generator keyed by (seed, batch, round, task position, episode),
so an episode is the same whichever process or batch composition samples it; tasks of
a meta-batch come from a generator keyed by (seed, batch). Nothing depends on the order
in which workers run.
"""

from __future__ import annotations

import numpy as np

_LIMITS = {"seed": 1 << 40, "batch": 1 << 24, "round": 1 << 8, "task": 1 << 16, "episode": 1 << 16}
STREAM_ACTIONS, STREAM_OBS_NOISE = 0, 1


def episode_rng(seed: int, batch: int, round_index: int, task: int, episode: int,
                stream: int = STREAM_ACTIONS) -> np.random.Generator:
    """Generator of one episode (Philox, counter-based: cheap to create, independent keys)."""
    for name, value in (("seed", seed), ("batch", batch), ("round", round_index), ("task", task),
                        ("episode", episode)):
        if not 0 <= value < _LIMITS[name]:
            raise ValueError(f"{name} {value} outside [0, {_LIMITS[name]})")
    # 128-bit Philox key: (seed | batch) and (round | task | episode | stream), no overlaps.
    high = (seed << 24) | batch
    low = (((round_index << 16 | task) << 16 | episode) << 8) | (stream & 0xFF)
    return np.random.Generator(np.random.Philox(key=[high, low]))


def task_rng(seed: int, batch: int) -> np.random.Generator:
    """Generator of the tasks of meta-batch ``batch``."""
    return np.random.default_rng([seed % (1 << 64), batch, 0x7A5C])
