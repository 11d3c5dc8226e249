"""Deterministic random streams keyed by what they are for, not by who draws them.

Every episode owns a generator keyed by (purpose, seed, batch, round, task position,
episode),
so an episode is the same whichever process or batch composition samples it; tasks of
a meta-batch come from a generator keyed by (seed, batch). Nothing depends on the order
in which workers run. The purpose separates meta-training from test-time adaptation:
adapting with the training seed must not replay the episodes meta-training saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

_LIMITS = {"seed": 1 << 40, "batch": 1 << 24, "round": 1 << 8, "task": 1 << 16, "episode": 1 << 16,
           "purpose": 1 << 8}
STREAM_ACTIONS, STREAM_OBS_NOISE = 0, 1
PURPOSE_TRAINING, PURPOSE_ADAPTATION = 0, 1


def episode_key(seed: int, batch: int, round_index: int, task: int, episode: int,
                stream: int = STREAM_ACTIONS, purpose: int = PURPOSE_TRAINING) -> list[int]:
    """The 128-bit Philox key of one episode's stream, as two 64-bit words."""
    for name, value in (("seed", seed), ("batch", batch), ("round", round_index), ("task", task),
                        ("episode", episode), ("purpose", purpose)):
        if not 0 <= value < _LIMITS[name]:
            raise ValueError(f"{name} {value} outside [0, {_LIMITS[name]})")
    # (seed | batch) and (purpose | round | task | episode | stream), no overlaps; purpose 0
    # (training) leaves the keys of earlier versions unchanged.
    high = (seed << 24) | batch
    low = ((((purpose << 8 | round_index) << 16 | task) << 16 | episode) << 8) | (stream & 0xFF)
    return [high, low]


def episode_rng(seed: int, batch: int, round_index: int, task: int, episode: int,
                stream: int = STREAM_ACTIONS, purpose: int = PURPOSE_TRAINING) -> np.random.Generator:
    """Generator of one episode (Philox, counter-based: independent keys)."""
    return np.random.Generator(np.random.Philox(key=episode_key(seed, batch, round_index, task, episode, stream,
                                                                purpose)))


EpisodeRng = Callable[..., np.random.Generator]  # the arguments of ``episode_rng``
_FREE = threading.local()  # per thread: Philox bit generators returned by ``recycled_episode_rngs``


@contextmanager
def recycled_episode_rngs() -> Iterator[EpisodeRng]:
    """A factory with ``episode_rng``'s arguments and streams, on recycled bit generators.

    ``np.random.Philox(key=...)`` costs about 15 us on this project's machines, most of it
    drawing OS entropy for a seed sequence that the key then replaces; setting an existing
    Philox to (key, counter 0, empty buffer) costs about 3 us and gives the same stream
    (tested). A sampler round of 128 episodes makes 128-256 generators, so this was about 8 %
    of a late meta-batch. The generators handed out must not be used after the ``with``
    block: their bit generators then serve the next one (in this thread).
    """
    free: list[np.random.Philox] = _FREE.__dict__.setdefault("philox", [])
    lent: list[np.random.Philox] = []

    def make(*key_args: int, **key_kwargs: int) -> np.random.Generator:
        key = np.array(episode_key(*key_args, **key_kwargs), dtype=np.uint64)
        bit_generator = free.pop() if free else np.random.Philox(key=key)
        bit_generator.state = {"bit_generator": "Philox", "state": {"counter": np.zeros(4, np.uint64), "key": key},
                               "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        lent.append(bit_generator)
        return np.random.Generator(bit_generator)

    try:
        yield make
    finally:
        free.extend(lent)


def task_rng(seed: int, batch: int) -> np.random.Generator:
    """Generator of the tasks of meta-batch ``batch``."""
    return np.random.default_rng([seed % (1 << 64), batch, 0x7A5C])


def revisit_rng(seed: int, batch: int) -> np.random.Generator:
    """Generator choosing the revisited tasks of meta-batch ``batch`` (``maml_rl.curriculum``)."""
    return np.random.default_rng([seed % (1 << 64), batch, 0x4A2D])
