"""Figure helpers: headless by default, atomic PNG writes, optional interactive display.

Figures are built as ``matplotlib.figure.Figure`` objects (no pyplot state, no display
needed). ``enable_show()`` switches to pyplot figures so ``show_all()`` can open windows;
nothing ever waits for a key press.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

_SHOW = False


def enable_show() -> None:
    """Create later figures through pyplot so that ``show_all`` can display them."""
    global _SHOW
    _SHOW = True


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (8.0, 5.0),
               **subplot_kw: Any) -> tuple[Figure, Any]:
    """A figure with a grid of axes (``squeeze`` as in matplotlib)."""
    if _SHOW:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size, layout="constrained")
    else:
        fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=True, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` atomically (temporary file, then rename); format from the suffix."""
    from maml_rl.runio import atomic_write_bytes

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def show_all() -> None:
    """Open windows for the figures created since ``enable_show`` (non-blocking if possible)."""
    if not _SHOW:
        return
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() == "agg":
        return
    plt.show()
