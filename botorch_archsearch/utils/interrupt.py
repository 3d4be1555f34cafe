r"""Ctrl-C that is never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT arrives.
Where that is a finalizer (``__del__``), a weakref callback or a library's ``except BaseException``,
the exception is printed as "ignored" or swallowed, and the program goes on as if nothing had
happened: a search would then run to its end. :func:`interruptible` remembers the interrupt, and
:func:`check_interrupt`, called by the search after each record, raises it again.

Example:
    >>> with interruptible():
    ...     for step in steps:
    ...         run(step)
    ...         check_interrupt()  # a Ctrl-C swallowed during the step is raised here
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_interrupted = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    r"""Within the block, Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` as usual and is remembered
    until the block ends, so :func:`check_interrupt` raises it again if it was swallowed. Outside the
    main thread (where no signal handler can be set), or where SIGINT has a handler of the caller's
    own, the block changes nothing."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _interrupted.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupted.clear()


def check_interrupt() -> None:
    r"""Raise ``KeyboardInterrupt`` if Ctrl-C was pressed within :func:`interruptible` (again, where
    the first one was swallowed); otherwise do nothing."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


__all__ = ["check_interrupt", "interruptible"]
