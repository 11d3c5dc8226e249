"""Connecting to Ray: an embedded local instance, or an existing cluster.

Without an address a local Ray is started with the cores asked for (``num_cpus``) in a
fresh temporary folder, and shut down (folder removed) when the session closes, so no
state leaks from one run to the next. With an address (``host:port`` or ``auto``) the
driver joins a running cluster (``ray start --head`` on one machine, ``ray start --address``
on the others) and only disconnects at the end. If Ray is already initialised (inside a
Ray Tune trial, or by the caller) that connection is used and left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from types import ModuleType

from maml_rl.distributed import require

# Quiet and fast: no usage-stats prompt, no dashboard, workers' output not mirrored.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}


def import_ray(feature: str = "the Ray sampler") -> ModuleType:
    """``ray``, or ``ExtraMissingError`` naming the extra ``ray``."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    return require("ray", "ray", feature)


@dataclass
class RaySession:
    """A connection to Ray that knows whether it must be shut down.

    Attributes
    ----------
    owned
        True when this session called ``ray.init`` (and so calls ``ray.shutdown``).
    temp_dir
        The embedded instance's temporary folder (removed at ``close``), or ``None``.
    """

    owned: bool
    temp_dir: str | None = None

    @classmethod
    def connect(cls, address: str | None, num_cpus: float, feature: str = "the Ray sampler") -> "RaySession":
        """Join ``address``, or start a local Ray with ``num_cpus`` cores (see module doc)."""
        ray = import_ray(feature)
        if ray.is_initialized():
            return cls(owned=False)
        if address is not None:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            return cls(owned=True)
        # A short path: Ray's socket paths below it must stay under the 107-character limit.
        temp_dir = tempfile.mkdtemp(prefix="maml-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
        try:
            ray.init(num_cpus=max(1, int(round(num_cpus))), include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _temp_dir=temp_dir)
        except BaseException:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        return cls(owned=True, temp_dir=temp_dir)

    def close(self) -> None:
        """Shut Ray down if this session started or joined it (idempotent)."""
        if self.owned:
            self.owned = False
            import ray

            ray.shutdown()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
