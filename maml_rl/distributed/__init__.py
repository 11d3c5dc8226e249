"""Scale-out on Ray: a Ray sampler (``ray_sampler``), the Ray runtime (``runtime``) and a
Ray Tune search (``tune``). Importing this package does not import Ray: Ray and TensorBoard
are the optional extra ``ray`` (``pip install -e '.[ray]'``); ``require`` turns a missing
one into a one-line error."""

from __future__ import annotations

import importlib
from types import ModuleType


class ExtraMissingError(RuntimeError):
    """An optional dependency is not installed (the message names the extra to install)."""


def require(module: str, extra: str = "ray", feature: str = "this feature") -> ModuleType:
    """Import ``module`` or raise ``ExtraMissingError`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExtraMissingError(f"{feature} needs the optional extra '{extra}' ({module} is not installed: "
                                f"{exc}); install it with: pip install -e '.[{extra}]'") from None


__all__ = ["ExtraMissingError", "require"]
