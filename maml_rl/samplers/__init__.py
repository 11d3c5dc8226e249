"""Samplers: in-process vectorised (default) and multiprocessing."""

from __future__ import annotations

from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.samplers.base import Sampler, SamplerSpec
from maml_rl.samplers.multiprocessing import MultiprocessingSampler, SamplerError
from maml_rl.samplers.vectorized import VectorizedSampler

SAMPLERS = ("vectorized", "multiprocessing")


def make_sampler(kind: str, spec: SamplerSpec, num_workers: int = 1,
                 policy: NormalMLPPolicy | None = None) -> Sampler:
    """Build a sampler by name ("vectorized" or "multiprocessing")."""
    if kind == "vectorized":
        return VectorizedSampler(spec, policy)
    if kind == "multiprocessing":
        return MultiprocessingSampler(spec, num_workers=num_workers)
    raise ValueError(f"unknown sampler {kind!r}; choose one of {SAMPLERS}")


__all__ = ["MultiprocessingSampler", "Sampler", "SamplerError", "SamplerSpec", "VectorizedSampler",
           "make_sampler", "SAMPLERS"]
