"""Experiment tracking with TensorBoard (``--tensorboard`` of train.py, test.py, ppo.py, Tune trials).

The metrics files (JSON lines) stay the record of a run; TensorBoard is a view of the
same numbers while a run goes: every numeric field of a metrics row becomes a scalar
``<group>/<field>`` at the row's step (returns, success, episode lengths, KL, line-search
step, phase timings ``time_*``, interactions), and figures the run writes (adaptation
progress, verification) are added as images. Needs TensorBoard (extra ``tensorboard``,
also part of extra ``ray``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from maml_rl.distributed import require

TENSORBOARD_FOLDER = "tensorboard"


def scalar_fields(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric scalars of a metrics row (lists, strings and missing values left out)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, (bool, np.bool_)):
            out[key] = float(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            out[key] = float(value)
    return out


class TensorBoardLog:
    """Event files in ``folder`` (``torch.utils.tensorboard.SummaryWriter``)."""

    def __init__(self, folder: Path) -> None:
        require("tensorboard", "tensorboard", "--tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self._writer = SummaryWriter(log_dir=str(self.folder))

    def row(self, group: str, row: Mapping[str, Any], step: int) -> None:
        """Every numeric field of ``row`` as the scalar ``<group>/<field>`` at ``step``."""
        for key, value in scalar_fields(row).items():
            self._writer.add_scalar(f"{group}/{key}", value, step)
        self._writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """A figure file (PNG) as an image at ``step``."""
        import matplotlib.image

        pixels = matplotlib.image.imread(str(png))
        if pixels.dtype != np.uint8:
            pixels = (np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
        self._writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def check_extras(sampler: str, tensorboard: bool) -> None:
    """Raise ``ExtraMissingError`` (one line naming the extra) before a run starts if the Ray
    sampler or TensorBoard is asked for and not installed."""
    if sampler == "ray":
        from maml_rl.distributed.runtime import import_ray

        import_ray()
    if tensorboard:
        require("tensorboard", "tensorboard", "--tensorboard")


def open_log(enabled: bool, folder: Path) -> TensorBoardLog | None:
    """A ``TensorBoardLog`` in ``folder/tensorboard`` if ``enabled``, else ``None``."""
    return TensorBoardLog(Path(folder) / TENSORBOARD_FOLDER) if enabled else None


def log_evaluation(folder: Path, group: str, evaluations: Sequence[Any], figure: Path, step: int) -> None:
    """Per task and controller (policy, benchmark, limit): success rate, mean length and
    return of ``evaluations`` (``maml_rl.evaluation_results.Evaluation``) as scalars
    ``<group>/task_<id>/<controller>_<field>`` at ``step``, and ``figure`` as an image."""
    board = TensorBoardLog(folder)
    try:
        for ev in evaluations:
            fields = {}
            for name in ("policy", "benchmark", "limit"):
                stats = getattr(ev, name, None)
                if stats is not None:
                    fields.update({f"{name}_{k}": v for k, v in stats.summary().items()})
            board.row(f"{group}/task_{ev.task.id}", fields, step)
        board.image(f"{group}/figure", figure, step)
    finally:
        board.close()
