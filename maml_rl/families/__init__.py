"""Task families: one sub-package per family of accelerator-steering tasks, and their registry.

A family is a folder ``maml_rl/families/<name>/`` whose module ``family.py`` defines
``FAMILY``, a ``maml_rl.families.base.TaskFamily``; the config names it (key ``family``,
default ``awake``). The registry finds families by their folders, so adding one needs no
edit here. Importing this package imports no family; ``get_family`` imports only the one
asked for, so a family's optional dependencies (Cheetah for ARES) are needed only when it
is used.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path

from maml_rl.families.base import TaskFamily

DEFAULT_FAMILY = "awake"
_HERE = Path(__file__).resolve().parent


class UnknownFamilyError(ValueError):
    """No task family of that name."""


def family_names() -> list[str]:
    """Names of the available families (folders holding a ``family.py``), sorted."""
    return sorted(p.parent.name for p in _HERE.glob("*/family.py"))


@lru_cache(maxsize=None)
def get_family(name: str) -> TaskFamily:
    """The family registered as ``name``.

    Raises
    ------
    UnknownFamilyError
        If no folder ``maml_rl/families/<name>/`` with a ``family.py`` exists.
    """
    if not isinstance(name, str) or name not in family_names():
        raise UnknownFamilyError(f"unknown task family {name!r}; known: {', '.join(family_names())}")
    family = importlib.import_module(f"maml_rl.families.{name}.family").FAMILY
    if not isinstance(family, TaskFamily) or family.name != name:
        raise TypeError(f"maml_rl/families/{name}/family.py must define FAMILY = TaskFamily(name={name!r}, ...)")
    return family


__all__ = ["DEFAULT_FAMILY", "TaskFamily", "UnknownFamilyError", "family_names", "get_family"]
