"""Model-based methods for one optics, with the face of an SB3 model (``base.InteractiveMethod``).

``response_matrix``
    Response-matrix identification: probes, (recursive) least squares, the inverse or the
    limit controller on the estimate.
``gp_mpc``
    A Gaussian-process model of the readings (gpytorch) and model predictive control on it.
``ensemble``, ``model_env``, ``dyna``
    Bootstrap ensembles of learned models, an imagined environment on them, and Dyna with
    SB3's SAC.

The classes are imported on first use, so importing this package loads neither gpytorch
nor stable-baselines3.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_CLASSES = {"ResponseMatrixIdentification": "response_matrix", "GPMPC": "gp_mpc", "Dyna": "dyna"}
__all__ = list(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
