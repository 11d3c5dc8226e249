"""Run folders and their files: atomic writes, refusal to clobber, metrics as JSON lines.

Layout of a run: ``<output-folder>/<experiment-name>/<experiment-type>/`` (for example
``awake/maml/train``). Files are written to a temporary name in the same folder and
renamed, so a crash leaves either the old or the new file, never a truncated one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml


class RunFolderError(RuntimeError):
    """A run folder cannot be created, used or read."""


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (mkstemp would use 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


class MetricsLog:
    """Rows of metrics (one JSON object per line), rewritten atomically on every append."""

    def __init__(self, path: Path, rows: Iterable[dict[str, Any]] = ()) -> None:
        self.path = Path(path)
        self._lines = [json.dumps(_json_safe(row)) for row in rows]

    def append(self, row: dict[str, Any]) -> None:
        self._lines.append(json.dumps(_json_safe(row)))
        atomic_write_text(self.path, "\n".join(self._lines) + "\n")

    def __len__(self) -> int:
        return len(self._lines)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics file; a clear error if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"no metrics file at {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise RunFolderError(f"{path}: line {number} is not valid JSON") from None
    return rows


def run_folder(output_folder: str | Path, experiment_name: str, experiment_type: str) -> Path:
    """``<output-folder>/<experiment-name>/<experiment-type>``, with names checked."""
    for label, name in (("experiment name", experiment_name), ("experiment type", experiment_type)):
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise RunFolderError(f"invalid {label} {name!r}: use a plain folder name")
    return Path(output_folder) / experiment_name / experiment_type


def prepare_new_run(folder: Path, overwrite: bool) -> None:
    """Create an empty run folder; refuse to touch an existing non-empty one unless ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise RunFolderError(f"run folder {folder} already exists; pass --resume to continue it or "
                                 f"--overwrite to replace it")
        shutil.rmtree(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(f"cannot write to run folder {folder}: {exc.strerror or exc}") from None


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(_json_safe(data), sort_keys=False))
