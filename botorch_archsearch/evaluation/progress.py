r"""Terminal progress for long training loops: one line redrawn in place on a terminal, a line per
epoch when asked for in a log, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    r"""Progress output for a training loop.

    ``enabled=None`` (the default) shows progress only when ``stream`` is a terminal; then the
    current line is redrawn as batches go by. With ``enabled=True`` on a non-terminal (a log
    file, CI) only whole-epoch lines are written, so logs stay short. ``enabled=False`` is quiet.

    Example:
        >>> progress = Progress("distill", total_epochs=10)
        >>> progress.batch(epoch=1, batch=5, num_batches=100, status="loss 0.31")
        >>> progress.epoch(epoch=1, status="best val 0.912")
        >>> progress.close()
    """

    def __init__(
        self, label: str, total_epochs: int, enabled: bool | None = None, stream: TextIO | None = None
    ) -> None:
        r"""Create the progress display.

        Args:
            label: Prefix of every line (e.g. ``"distill 8 students"``).
            total_epochs: Number of epochs, for the ``epoch e/E`` counter.
            enabled: ``None``: only on a terminal; ``True``: always; ``False``: never.
            stream: Where to write (default: ``sys.stderr``).
        """
        self.stream = sys.stderr if stream is None else stream
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.interactive if enabled is None else bool(enabled)
        self.label, self.total_epochs = label, total_epochs
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._dirty = False

    def batch(self, epoch: int, batch: int, num_batches: int, status: str = "") -> None:
        r"""Report a finished batch (redrawn at most 10 times a second, on a terminal only)."""
        if not (self.enabled and self.interactive):
            return
        now = time.perf_counter()
        if now - self._last_draw < 0.1 and batch < num_batches:
            return
        self._last_draw = now
        line = f"{self.label}: epoch {epoch}/{self.total_epochs} batch {batch}/{num_batches}"
        self._write(f"\r{line}{' | ' + status if status else ''} | {self._elapsed()}\x1b[K")
        self._dirty = True

    def epoch(self, epoch: int, status: str = "") -> None:
        r"""Report a finished epoch (a line of its own)."""
        if not self.enabled:
            return
        line = f"{self.label}: epoch {epoch}/{self.total_epochs}{' | ' + status if status else ''} | {self._elapsed()}"
        self._write(("\r" if self.interactive else "") + line + ("\x1b[K" if self.interactive else "") + "\n")
        self._dirty = False

    def close(self) -> None:
        r"""End a line left open by :meth:`batch`."""
        if self.enabled and self._dirty:
            self._write("\n")
            self._dirty = False

    def _elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


__all__ = ["Progress"]
