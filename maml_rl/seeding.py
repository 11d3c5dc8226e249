"""Deterministic random streams keyed by what they are for, not by who draws them.

Every episode owns a generator keyed by (purpose, seed, batch, round, task position,
episode),
so an episode is the same whichever process or batch composition samples it; tasks of
a meta-batch come from a generator keyed by (seed, batch). Nothing depends on the order
in which workers run. The purpose separates meta-training from test-time adaptation:
adapting with the training seed must not replay the episodes meta-training saw.
"""

from __future__ import annotations

import numpy as np

_LIMITS = {"seed": 1 << 40, "batch": 1 << 24, "round": 1 << 8, "task": 1 << 16, "episode": 1 << 16,
           "purpose": 1 << 8}
STREAM_ACTIONS, STREAM_OBS_NOISE = 0, 1
PURPOSE_TRAINING, PURPOSE_ADAPTATION = 0, 1


def episode_rng(seed: int, batch: int, round_index: int, task: int, episode: int,
                stream: int = STREAM_ACTIONS, purpose: int = PURPOSE_TRAINING) -> np.random.Generator:
    """Generator of one episode (Philox, counter-based: cheap to create, independent keys)."""
    for name, value in (("seed", seed), ("batch", batch), ("round", round_index), ("task", task),
                        ("episode", episode), ("purpose", purpose)):
        if not 0 <= value < _LIMITS[name]:
            raise ValueError(f"{name} {value} outside [0, {_LIMITS[name]})")
    # 128-bit Philox key: (seed | batch) and (purpose | round | task | episode | stream), no
    # overlaps; purpose 0 (training) leaves the keys of earlier versions unchanged.
    high = (seed << 24) | batch
    low = ((((purpose << 8 | round_index) << 16 | task) << 16 | episode) << 8) | (stream & 0xFF)
    return np.random.Generator(np.random.Philox(key=[high, low]))


def task_rng(seed: int, batch: int) -> np.random.Generator:
    """Generator of the tasks of meta-batch ``batch``."""
    return np.random.default_rng([seed % (1 << 64), batch, 0x7A5C])


def revisit_rng(seed: int, batch: int) -> np.random.Generator:
    """Generator choosing the revisited tasks of meta-batch ``batch`` (``maml_rl.curriculum``)."""
    return np.random.default_rng([seed % (1 << 64), batch, 0x4A2D])
