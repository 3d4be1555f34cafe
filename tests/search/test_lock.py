r"""Tests of botorch_archsearch/search/lock.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search import RunDirectoryLock, RunDirectoryLockedError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


def _holder(run_dir):
    """A separate process that takes the lock and waits (until it is killed)."""
    code = textwrap.dedent(f"""
        import time
        from botorch_archsearch.search import RunDirectoryLock
        with RunDirectoryLock({str(run_dir)!r}):
            print("held", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_holder_is_named_and_a_second_lock_is_refused(tmp_path):
    with RunDirectoryLock(tmp_path) as lock:
        assert lock.held
        holder = json.loads((tmp_path / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] and holder["started"]
        with pytest.raises(RunDirectoryLockedError, match=rf"is in use by process {os.getpid()} on "):
            RunDirectoryLock(tmp_path).acquire()  # also within one process
    assert not lock.held and (tmp_path / ".lock").read_text() == ""  # released: the file names nobody
    with RunDirectoryLock(tmp_path):  # and can be taken again
        pass


@pytest.mark.slow  # a subprocess holds the lock
def test_another_process_is_refused_and_a_killed_holders_lock_is_taken_over(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(RunDirectoryLockedError, match=rf"in use by process {proc.pid} on .*only one search"):
            RunDirectoryLock(tmp_path).acquire()
        os.kill(proc.pid, signal.SIGKILL)  # a kill -9 runs no clean-up: the file still names it
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == proc.pid
    deadline = time.monotonic() + 10
    while True:  # the kernel releases a dead process's flock when its descriptors close
        try:
            lock = RunDirectoryLock(tmp_path)
            lock.acquire()
            break
        except RunDirectoryLockedError:
            assert time.monotonic() < deadline, "the lock of a killed process was not released"
            time.sleep(0.05)
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_a_run_directory_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(ArchSearchError, match="cannot create its lock file .lock"):
        RunDirectoryLock(tmp_path / "missing").acquire()
