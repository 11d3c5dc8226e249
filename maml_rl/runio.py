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
from typing import Any, Callable

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
    """Rows of metrics, one JSON object per line, appended and fsynced one row at a time.

    Appending keeps a long run linear in its length (rewriting the whole file at every
    batch is quadratic: about 3 GB of writes for 1500 batches). A crash can leave at most
    one torn last line; ``resume`` drops it together with any row beyond the last batch
    whose training state was saved.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path) -> "MetricsLog":
        """A new, empty log (replaces a file of that name)."""
        log = cls(path)
        atomic_write_text(log.path, "")
        return log

    @classmethod
    def resume(cls, path: Path, keep: Callable[[dict[str, Any]], bool]) -> tuple["MetricsLog", list[dict[str, Any]]]:
        """Reopen a log after an interruption, keeping the complete rows for which ``keep`` is true.

        The file is rewritten once (atomically) with exactly those rows; a torn last line
        (a crash during an append) is dropped, a malformed line elsewhere is an error.
        """
        log = cls(path)
        rows = [row for row in read_metrics(path, tolerate_torn_tail=True) if keep(row)]
        atomic_write_text(log.path, "".join(json.dumps(_json_safe(row)) + "\n" for row in rows))
        return log, rows

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(_json_safe(row)) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def read_metrics(path: Path, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Rows of a metrics file; a clear error if it is missing or unreadable.

    With ``tolerate_torn_tail`` an unterminated, unparsable last line (an append cut by a
    crash) is ignored instead of being an error.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"no metrics file at {path}")
    text = path.read_text()
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if tolerate_torn_tail and number == len(lines) and not text.endswith("\n"):
                break
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
