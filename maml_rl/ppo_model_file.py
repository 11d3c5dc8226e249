"""PPO model files that load without unpickling.

SB3's ``PPO.load`` unpickles parts of its zip, so a crafted file runs code. This project's
PPO file is a zip archive with two members:

* ``settings.json``: ``format``, the ``PPOSettings`` (architecture and hyper-parameters),
  and what the model was trained on (task, steps, seed, env-kwargs);
* ``policy.pt``: the SB3 policy's ``state_dict`` saved by ``torch.save`` and read back with
  ``torch.load(weights_only=True)`` (tensors only, no code).

Loading rebuilds an SB3 PPO model from the settings (the observation and action spaces are
those of ``AwakeSteering``) and loads the weights into it. A copy of ``settings.json`` is
written next to the model (``<name>.json``) for reading without opening the archive.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from maml_rl.envs.awake import AwakeSteering
from maml_rl.ppo_baseline import ModelFileError, PPOSettings, build_model
from maml_rl.runio import atomic_write_bytes, atomic_write_text

PPO_FORMAT = "maml-rl-awake/ppo-v1"
SETTINGS_MEMBER, WEIGHTS_MEMBER = "settings.json", "policy.pt"
SUFFIX = ".zip"


def check_output_path(path: Path, overwrite: bool) -> None:
    """Refuse before training: wrong suffix, a folder, or an existing model without ``overwrite``."""
    if path.suffix != SUFFIX:
        raise ModelFileError(f"--output-file must end in {SUFFIX}, got {path}")
    if path.is_dir():
        raise ModelFileError(f"--output-file {path} is a folder")
    if path.exists() and not overwrite:
        raise ModelFileError(f"PPO model {path} already exists; pass --overwrite to replace it")


def model_bytes(model: Any, settings: PPOSettings, info: dict[str, Any]) -> bytes:
    """The archive of ``model`` (settings + ``info`` as JSON, policy weights as tensors)."""
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}, weights)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(SETTINGS_MEMBER, settings_json(settings, info))
        archive.writestr(WEIGHTS_MEMBER, weights.getvalue())
    return buffer.getvalue()


def settings_json(settings: PPOSettings, info: dict[str, Any]) -> str:
    return json.dumps({"format": PPO_FORMAT, "ppo": settings.as_dict(), **info}, indent=1)


def save_model(model: Any, settings: PPOSettings, path: Path, info: dict[str, Any]) -> None:
    """Write the model archive atomically (temporary file + rename), then its JSON copy."""
    try:
        atomic_write_bytes(path, model_bytes(model, settings, info))
        atomic_write_text(path.with_suffix(".json"), settings_json(settings, info))
    except OSError as exc:
        raise ModelFileError(f"cannot write PPO model {path}: {exc.strerror or exc}") from None


def _members(path: Path) -> tuple[bytes, bytes]:
    """Raw ``settings.json`` and ``policy.pt`` of an archive; nothing is deserialised here."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if {"data", "policy.pth"} <= names:
                raise ModelFileError(f"{path} is a stable-baselines3 archive (model.save); it is refused because "
                                     f"loading it would unpickle its contents; train one with python ppo.py --train")
            if not {SETTINGS_MEMBER, WEIGHTS_MEMBER} <= names:
                raise ModelFileError(f"{path} is not a PPO model of this project (no {SETTINGS_MEMBER} "
                                     f"and {WEIGHTS_MEMBER})")
            return archive.read(SETTINGS_MEMBER), archive.read(WEIGHTS_MEMBER)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path} is not a PPO model of this project ({exc.__class__.__name__})") from None


def load_model(path: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild a PPO model from an archive written by ``save_model``.

    Returns
    -------
    model, info
        The SB3 PPO model (CPU) and the archive's settings (``task``, ``steps``, ...).

    Raises
    ------
    ModelFileError
        Missing file, not this project's format (SB3 zips included), weights that are not
        plain tensors (refused by ``weights_only``), or weights that do not fit the settings.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"PPO model file not found: {path} (train one with python ppo.py --train)")
    settings_raw, weights_raw = _members(path)
    try:
        info = json.loads(settings_raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: {SETTINGS_MEMBER} is not valid JSON") from None
    if not isinstance(info, dict) or info.get("format") != PPO_FORMAT:
        raise ModelFileError(f"{path} is not a PPO model of this project (format {PPO_FORMAT})")
    try:
        settings = PPOSettings.from_dict(info.get("ppo"))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad PPO settings: {exc}") from None
    try:
        state = torch.load(io.BytesIO(weights_raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: {WEIGHTS_MEMBER} refused, not plain tensors or corrupt "
                             f"({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: {WEIGHTS_MEMBER} is not a state dict of tensors")
    model = build_model(settings, AwakeSteering(), seed=0)
    try:
        model.policy.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelFileError(f"{path}: weights do not fit the settings: {first_line}") from None
    return model, info
