"""Samplers: in-process vectorised (default), multiprocessing and Ray actors."""

from __future__ import annotations

from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.samplers.base import Sampler, SamplerSpec
from maml_rl.samplers.multiprocessing import MultiprocessingSampler, SamplerError
from maml_rl.samplers.vectorized import VectorizedSampler

SAMPLERS = ("vectorized", "multiprocessing", "ray")


def make_sampler(kind: str, spec: SamplerSpec, num_workers: int = 1,
                 policy: NormalMLPPolicy | None = None, ray_address: str | None = None) -> Sampler:
    """Build a sampler by name ("vectorized", "multiprocessing" or "ray").

    ``ray_address`` (Ray sampler only): a cluster to join (``host:port`` or ``auto``);
    ``None`` starts a local Ray with ``num_workers`` cores for the sampler's lifetime.
    The Ray sampler needs the extra ``ray`` (``maml_rl.distributed.ExtraMissingError`` otherwise).
    """
    if kind == "vectorized":
        return VectorizedSampler(spec, policy)
    if kind == "multiprocessing":
        return MultiprocessingSampler(spec, num_workers=num_workers)
    if kind == "ray":
        from maml_rl.distributed.runtime import import_ray

        import_ray()  # a missing extra is a one-line error before anything else happens
        from maml_rl.distributed.ray_sampler import RaySampler

        return RaySampler(spec, num_workers=num_workers, address=ray_address)
    raise ValueError(f"unknown sampler {kind!r}; choose one of {SAMPLERS}")


__all__ = ["MultiprocessingSampler", "Sampler", "SamplerError", "SamplerSpec", "VectorizedSampler",
           "make_sampler", "SAMPLERS"]
