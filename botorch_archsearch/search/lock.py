r"""One process per run directory: :class:`RunDirectoryLock` holds ``<run dir>/.lock`` with
``flock`` for as long as a search writes there, so a second search or resume of the same
directory is refused instead of appending duplicates to its journal.

The kernel releases an ``flock`` when the last descriptor of the file closes, also when its
process is killed (``kill -9``): a lock left by a dead search is simply taken by the next one.
The file is never deleted (deleting it could let two processes lock two different files); it
names the holder (PID, host, start time) for the error that a refused process prints.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from botorch_archsearch.exceptions import ArchSearchError, RunDirectoryLockedError

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is then not taken (see RunDirectoryLock)
    fcntl = None

LOCK_NAME = ".lock"


class RunDirectoryLock:
    r"""An exclusive, non-blocking lock on a run directory (``<run_dir>/.lock``, ``flock``).

    Only one :class:`RunDirectoryLock` of a directory can be held at a time, across processes and
    within one process. On a platform without ``fcntl`` (Windows) nothing is locked.

    Example:
        >>> with RunDirectoryLock(run_dir):  # what compress(..., run_dir=run_dir) holds while it runs
        ...     journal = read_journal(run_dir / "journal.jsonl")
    """

    def __init__(self, run_dir: str | Path) -> None:
        r"""Prepare the lock (:meth:`acquire` or ``with`` takes it).

        Args:
            run_dir: An existing run directory.
        """
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        r"""Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        r"""Take the lock and write this process's PID, host and start time into it.

        Raises:
            RunDirectoryLockedError: If another process (or another lock in this process) holds
                it, naming that process.
            ArchSearchError: If the lock file cannot be created.
        """
        if self._fd is not None:
            raise RunDirectoryLockedError(f"{str(self.run_dir)!r}: this RunDirectoryLock is already held.")
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ArchSearchError(
                f"run directory {str(self.run_dir)!r}: cannot create its lock file {LOCK_NAME} "
                f"({error.strerror or error})."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError where held; anything else also means we do not hold it
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise RunDirectoryLockedError(
                f"run directory {str(self.run_dir)!r} is in use by {holder}; only one search or resume can run in "
                "a run directory at a time: wait for it to end, or stop it and resume."
            ) from None
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        os.pwrite(fd, info + b"\n", 0)  # write first, then cut: never an empty file while held
        os.ftruncate(fd, len(info) + 1)
        self._fd = fd

    def release(self) -> None:
        r"""Release the lock (nothing happens if it is not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the file then names nobody
            fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child may share the descriptor
        finally:
            os.close(fd)

    def __enter__(self) -> RunDirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
    if pid is None:
        return "another process (it is starting; its PID is not written yet)"
    text = f"process {pid} on {host}" + (f", started {started}" if started else "")
    if host == socket.gethostname() and not _alive(pid):
        text += f" (process {pid} has ended; a process it started still holds the lock)"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True  # exists but is not ours, or an odd value: do not claim it ended
    return True


__all__ = ["LOCK_NAME", "RunDirectoryLock", "RunDirectoryLockedError"]
