"""Policy files and resumable training state.

A policy file (``.th``) is a torch file holding a dict with ``format``, ``policy_config``
(constructor arguments of ``NormalMLPPolicy``), ``state_dict``, free-form ``metadata`` and,
for a training run's latest policy, ``rng`` (no optimiser state exists in TRPO, so that
file is the whole training state).
Files are loaded with ``weights_only=True`` (no arbitrary code) and written atomically.
"""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maml_rl.policies.normal_mlp import NormalMLPPolicy
from maml_rl.runio import atomic_write_bytes

POLICY_FORMAT = "maml-rl-awake/policy-v1"


class PolicyLoadError(RuntimeError):
    """A policy file is missing, corrupt or incompatible."""


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_policy(path: str | Path, policy: NormalMLPPolicy, metadata: dict[str, Any] | None = None,
                state: dict[str, torch.Tensor] | None = None, rng: bool = False) -> None:
    """Write a policy file.

    ``state`` overrides the module's own parameters (e.g. adapted ones); ``rng=True`` also
    stores all global RNG states, which makes the file a resumable training state.
    """
    state_dict = {k: v.detach().clone().contiguous() for k, v in (state or policy.state_dict()).items()}
    data = {"format": POLICY_FORMAT, "policy_config": policy.config(), "state_dict": state_dict,
            "metadata": metadata or {}}
    if rng:
        data["rng"] = rng_state()
    atomic_write_bytes(Path(path), _torch_bytes(data))


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise PolicyLoadError(f"policy file not found: {path}")
    if path.is_dir():
        raise PolicyLoadError(f"policy path is a folder, not a file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PolicyLoadError(f"corrupt or unreadable policy file {path} ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != POLICY_FORMAT:
        raise PolicyLoadError(f"{path} is not a policy file of this project (format {POLICY_FORMAT})")
    return data


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The free-form ``metadata`` of a policy file (read with ``weights_only=True``).

    Raises
    ------
    PolicyLoadError
        Missing, corrupt or foreign file, or metadata that is not a dict.
    """
    path = Path(path)
    metadata = _read(path).get("metadata", {})
    if not isinstance(metadata, dict):
        raise PolicyLoadError(f"{path}: metadata is not a dict")
    return metadata


def load_policy(path: str | Path) -> NormalMLPPolicy:
    """Load a policy file into a ``NormalMLPPolicy`` in eval mode.

    Raises
    ------
    PolicyLoadError
        Missing, corrupt or incompatible file (message names the problem).
    """
    path = Path(path)
    data = _read(path)
    try:
        policy = NormalMLPPolicy(**data["policy_config"])
        policy.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise PolicyLoadError(f"incompatible policy file {path}: {first_line}") from None
    return policy.eval()


# ------------------------------------------------------------------------------ training state

def rng_state() -> dict[str, Any]:
    """All global RNG states (torch, numpy, python), in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "python": {"version": random.getstate()[0], "state": list(random.getstate()[1]),
                       "gauss": random.getstate()[2]}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


def load_training_state(path: Path) -> dict[str, Any]:
    """A policy file saved with ``rng=True`` and a ``batch`` in its metadata (see ``save_policy``)."""
    data = _read(path)
    if "rng" not in data or "batch" not in data.get("metadata", {}):
        raise PolicyLoadError(f"{path} holds no training state")
    return data
