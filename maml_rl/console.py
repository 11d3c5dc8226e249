"""Progress reporting that suits where the output goes.

In a terminal a tqdm bar redraws one line in place. Anywhere else (a log file, CI, a batch
job) those carriage-return redraws would pile up in one ever-growing line, so a plain
line is printed every ``every`` steps instead (about 20 lines per run by default).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_LINES = 20  # lines per run when not in a terminal


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``write`` / ``close`` as plain lines on ``stream``."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "it",
                 every: int | None = None, stream: TextIO | None = None) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.every = every or max(1, total // PLAIN_LINES)
        self.stream = stream or sys.stderr
        self.postfix: dict[str, Any] = {}
        self._start = time.perf_counter()
        self._start_n = initial
        self._last_printed = initial

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = False, **kwargs: Any) -> None:
        self.postfix = {**(values or {}), **kwargs}

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n % self.every == 0 or self.n >= self.total:
            self._print()

    def _print(self) -> None:
        elapsed = time.perf_counter() - self._start
        done = self.n - self._start_n
        rate = f"{elapsed / done:.2f} s/{self.unit}" if done else ""
        extra = "  ".join(f"{k} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc}: {self.n}/{self.total} {self.unit}  {elapsed:.0f} s  {rate}  {extra}".rstrip()
                          + "\n")
        self.stream.flush()
        self._last_printed = self.n

    def write(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.n != self._last_printed and self.n > self._start_n:
            self._print()


def progress(total: int, initial: int = 0, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar in a terminal, ``PlainProgress`` lines elsewhere, nothing if not ``enabled``."""
    if enabled and sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
    if enabled:
        return PlainProgress(total, initial, desc, unit)
    return tqdm(total=total, initial=initial, disable=True)


def say(message: str) -> None:
    """A line of output that does not break a running tqdm bar."""
    tqdm.write(message)
