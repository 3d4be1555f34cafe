r"""Terminal progress for long training loops, drawn by tqdm: a bar redrawn in place on a terminal,
a line per epoch when asked for in a log, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    r"""Progress output for a training loop.

    ``enabled=None`` (the default) shows progress only when ``stream`` is a terminal; then a tqdm
    bar of the current epoch's batches is redrawn in place (at most 10 times a second) and each
    finished epoch leaves a line of its own. With ``enabled=True`` on a non-terminal (a log file, CI)
    only the whole-epoch lines are written, so logs stay short. ``enabled=False`` is quiet.

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
        self._bar: _Bar | None = None
        self._bar_epoch: int | None = None

    def batch(self, epoch: int, batch: int, num_batches: int, status: str = "") -> None:
        r"""Report a finished batch (redrawn at most 10 times a second, on a terminal only)."""
        if not (self.enabled and self.interactive):
            return
        if self._bar is None or self._bar_epoch != epoch or self._bar.total != num_batches:
            self._close_bar()
            self._bar = _Bar(
                total=num_batches, desc=f"{self.label}: epoch {epoch}/{self.total_epochs}", file=self.stream,
                leave=False, mininterval=0.1, dynamic_ncols=True, bar_format=_BAR_FORMAT,
            )
            self._bar_epoch = epoch
        self._bar.set_postfix_str(status, refresh=False)
        self._bar.update(batch - self._bar.n)
        if batch >= num_batches:  # the last batch is always drawn
            self._bar.refresh()

    def epoch(self, epoch: int, status: str = "") -> None:
        r"""Report a finished epoch (a line of its own)."""
        if not self.enabled:
            return
        self._close_bar()
        line = f"{self.label}: epoch {epoch}/{self.total_epochs}{' | ' + status if status else ''}"
        tqdm.write(f"{line} | {tqdm.format_interval(time.perf_counter() - self.start)}", file=self.stream)
        self.stream.flush()

    def close(self) -> None:
        r"""End a bar left open by :meth:`batch` (it stays on the screen)."""
        if self._bar is not None:
            self._bar.leave = True
            self._bar.close()
            self._bar = self._bar_epoch = None

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()  # leave=False: the line is cleared for what comes next
            self._bar = self._bar_epoch = None


class _Bar(tqdm):
    # No monitor thread: training loops may fork worker processes.
    monitor_interval = 0


_BAR_FORMAT = "{desc} |{bar}| batch {n_fmt}/{total_fmt}{postfix} [{elapsed}<{remaining}]"


__all__ = ["Progress"]
