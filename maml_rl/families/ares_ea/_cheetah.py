"""Lazy import of the optional dependency Cheetah, with a one-line error naming the extra."""

from __future__ import annotations

from types import ModuleType

SUPPORTED = "0.8"
INSTALL_HINT = 'pip install -e ".[ares]"  (extra "ares": cheetah-accelerator>=0.8,<0.9)'


def import_cheetah() -> ModuleType:
    """Return the ``cheetah`` module.

    Raises
    ------
    ImportError
        If cheetah-accelerator is missing or not a 0.8.x release (0.7 renamed beam
        parameters and 0.9 may change them again; the physics tests pin 0.8).
    """
    try:
        import cheetah
    except ImportError as exc:
        raise ImportError(f"the ARES-EA family needs cheetah-accelerator, which is not installed: {INSTALL_HINT}") \
            from exc
    version = getattr(cheetah, "__version__", "unknown")
    if not str(version).startswith(SUPPORTED + "."):
        raise ImportError(f"the ARES-EA family needs cheetah-accelerator {SUPPORTED}.x, found {version}: "
                          f"{INSTALL_HINT}")
    return cheetah
