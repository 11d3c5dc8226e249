"""Agent model files that load without unpickling, for every single-task algorithm.

A model file is a zip archive with two members:

* ``settings.json``: ``format`` (``maml-rl-awake/<algo>-v1``, which names the algorithm),
  the algorithm's settings under the key ``<algo>`` (hyper-parameters and network
  architecture), and what the model was trained on (task, steps, seed, env-kwargs);
* ``policy.pt``: a flat ``state_dict`` of tensors saved by ``torch.save`` and read back
  with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
  containers, so no code in the file ever runs.

This module only reads and writes archives; rebuilding a model from the settings and the
tensors is the algorithm's business (``maml_rl.agents``). A copy of ``settings.json`` is
written next to the model (``<name>.json``) for reading without opening the archive. The
PPO file of ``maml_rl.ppo_model_file`` is the case ``algo = "ppo"``.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from maml_rl.ppo_baseline import ModelFileError
from maml_rl.runio import atomic_write_bytes, atomic_write_text

SETTINGS_MEMBER, WEIGHTS_MEMBER = "settings.json", "policy.pt"
SUFFIX = ".zip"
FORMAT_PREFIX, FORMAT_SUFFIX = "maml-rl-awake/", "-v1"


def file_format(algo: str) -> str:
    """The ``format`` entry of an ``algo`` model file, e.g. ``maml-rl-awake/td3-v1``."""
    return f"{FORMAT_PREFIX}{algo}{FORMAT_SUFFIX}"


def check_output_path(path: Path, overwrite: bool, label: str = "PPO") -> None:
    """Refuse before training: wrong suffix, a folder, or an existing model without ``overwrite``."""
    if path.suffix != SUFFIX:
        raise ModelFileError(f"--output-file must end in {SUFFIX}, got {path}")
    if path.is_dir():
        raise ModelFileError(f"--output-file {path} is a folder")
    if path.exists() and not overwrite:
        raise ModelFileError(f"{label} model {path} already exists; pass --overwrite to replace it")


def settings_json(algo: str, settings: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """``settings.json`` of an archive: format, the algorithm's settings, then ``info``."""
    return json.dumps({"format": file_format(algo), algo: dict(settings), **info}, indent=1)


def archive_bytes(algo: str, settings: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                  info: Mapping[str, Any]) -> bytes:
    """The archive: settings + ``info`` as JSON, ``state`` as detached CPU tensors."""
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, weights)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(SETTINGS_MEMBER, settings_json(algo, settings, info))
        archive.writestr(WEIGHTS_MEMBER, weights.getvalue())
    return buffer.getvalue()


def write_archive(path: Path, algo: str, settings: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                  info: Mapping[str, Any], label: str) -> None:
    """Write the archive atomically (temporary file + rename), then its JSON copy."""
    try:
        atomic_write_bytes(path, archive_bytes(algo, settings, state, info))
        atomic_write_text(path.with_suffix(".json"), settings_json(algo, settings, info))
    except OSError as exc:
        raise ModelFileError(f"cannot write {label} model {path}: {exc.strerror or exc}") from None


def _members(path: Path, label: str) -> tuple[bytes, bytes]:
    """Raw ``settings.json`` and ``policy.pt`` of an archive; nothing is deserialised here."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if {"data", "policy.pth"} <= names:
                raise ModelFileError(f"{path} is a stable-baselines3 archive (model.save); it is refused because "
                                     f"loading it would unpickle its contents; train one with python ppo.py --train")
            if not {SETTINGS_MEMBER, WEIGHTS_MEMBER} <= names:
                raise ModelFileError(f"{path} is not a {label} model of this project (no {SETTINGS_MEMBER} "
                                     f"and {WEIGHTS_MEMBER})")
            return archive.read(SETTINGS_MEMBER), archive.read(WEIGHTS_MEMBER)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path} is not a {label} model of this project ({exc.__class__.__name__})") from None


def _algo_of(fmt: Any) -> str | None:
    if isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX) and fmt.endswith(FORMAT_SUFFIX):
        return fmt[len(FORMAT_PREFIX):-len(FORMAT_SUFFIX)] or None
    return None


def read_archive(path: Path, algo: str, label: str) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """Settings, tensors and the whole ``settings.json`` of an ``algo`` archive.

    Returns
    -------
    settings, state, info
        The (unvalidated) JSON value under the key ``algo``, the state dict of tensors, and
        the parsed ``settings.json``.

    Raises
    ------
    ModelFileError
        Missing file, not an archive of this project (SB3 zips included), another
        algorithm's archive, or weights that are not plain tensors (refused by
        ``weights_only``).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{label} model file not found: {path} (train one with python ppo.py --train"
                             f"{'' if algo == 'ppo' else ' --algo ' + algo})")
    settings_raw, weights_raw = _members(path, label)
    try:
        info = json.loads(settings_raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: {SETTINGS_MEMBER} is not valid JSON") from None
    if not isinstance(info, dict) or info.get("format") != file_format(algo):
        other = _algo_of(info.get("format")) if isinstance(info, dict) else None
        if other is not None and other != algo:
            raise ModelFileError(f"{path} is a {other} model, not {algo} (pass --algo {other})")
        raise ModelFileError(f"{path} is not a {label} model of this project (format {file_format(algo)})")
    try:
        state = torch.load(io.BytesIO(weights_raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: {WEIGHTS_MEMBER} refused, not plain tensors or corrupt "
                             f"({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelFileError(f"{path}: {WEIGHTS_MEMBER} is not a state dict of tensors")
    return info.get(algo), state, info


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's load_state_dict errors are long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
