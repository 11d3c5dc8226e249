"""PPO model files that load without unpickling.

SB3's ``PPO.load`` unpickles parts of its zip, so a crafted file runs code. This project's
PPO file is the ``ppo`` case of ``maml_rl.model_archive``: a zip archive with two members,

* ``settings.json``: ``format``, the ``PPOSettings`` (architecture and hyper-parameters),
  and what the model was trained on (task, steps, seed, env-kwargs);
* ``policy.pt``: the SB3 policy's ``state_dict`` saved by ``torch.save`` and read back with
  ``torch.load(weights_only=True)`` (tensors only, no code).

Loading rebuilds an SB3 PPO model from the settings (the observation and action spaces are
those of ``AwakeSteering``) and loads the weights into it. A copy of ``settings.json`` is
written next to the model (``<name>.json``) for reading without opening the archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maml_rl.model_archive import SETTINGS_MEMBER, SUFFIX, WEIGHTS_MEMBER, file_format, first_line, read_archive
from maml_rl.model_archive import check_output_path as _check_output_path
from maml_rl.model_archive import settings_json as _settings_json
from maml_rl.model_archive import archive_bytes, write_archive
from maml_rl.ppo_baseline import ModelFileError, PPOSettings, build_model

PPO_FORMAT = file_format("ppo")
__all__ = ["PPO_FORMAT", "SETTINGS_MEMBER", "WEIGHTS_MEMBER", "SUFFIX", "check_output_path", "load_model",
           "model_bytes", "save_model", "settings_json"]


def check_output_path(path: Path, overwrite: bool) -> None:
    """Refuse before training: wrong suffix, a folder, or an existing model without ``overwrite``."""
    _check_output_path(path, overwrite, "PPO")


def model_bytes(model: Any, settings: PPOSettings, info: dict[str, Any]) -> bytes:
    """The archive of ``model`` (settings + ``info`` as JSON, policy weights as tensors)."""
    return archive_bytes("ppo", settings.as_dict(), model.policy.state_dict(), info)


def settings_json(settings: PPOSettings, info: dict[str, Any]) -> str:
    return _settings_json("ppo", settings.as_dict(), info)


def save_model(model: Any, settings: PPOSettings, path: Path, info: dict[str, Any]) -> None:
    """Write the model archive atomically (temporary file + rename), then its JSON copy."""
    write_archive(path, "ppo", settings.as_dict(), model.policy.state_dict(), info, "PPO")


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
    raw, state, info = read_archive(path, "ppo", "PPO")
    try:
        settings = PPOSettings.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad PPO settings: {exc}") from None
    model = build_model(settings, spaces_env(path, info), seed=0)
    try:
        model.policy.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the settings: {first_line(exc)}") from None
    return model, info


def spaces_env(path: Path, info: dict[str, Any]) -> Any:
    """The environment whose spaces a saved agent was built on: the nominal task of the family
    named in the archive's ``info`` (``family``; archives without it are AWAKE's)."""
    from maml_rl.families import UnknownFamilyError, get_family

    name = info.get("family", "awake")
    try:
        return get_family(name).make_env(None, {})
    except UnknownFamilyError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
