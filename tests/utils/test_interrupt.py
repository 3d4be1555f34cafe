r"""Tests of botorch_archsearch.utils.interrupt: a Ctrl-C swallowed where Python ignores exceptions is
raised again, and the search stops at the next record."""

from __future__ import annotations

import signal
import sys

import pytest

from botorch_archsearch.search import compress
from botorch_archsearch.search.backends import LocalBackend
from botorch_archsearch.utils import interrupt
from botorch_archsearch.utils.interrupt import check_interrupt, interruptible


class _PressesCtrlCWhenCollected:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is raised here, in a finalizer


def test_a_ctrl_c_swallowed_by_a_finalizer_is_raised_again(monkeypatch):
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)  # where Python puts exceptions of finalizers
    check_interrupt()  # outside the block: nothing was pressed
    with interruptible():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        _PressesCtrlCWhenCollected()  # collected at once: the KeyboardInterrupt is swallowed
        assert len(ignored) == 1 and ignored[0].exc_type is KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    check_interrupt()  # and forgotten with the block


def test_without_the_block_a_swallowed_ctrl_c_is_lost_and_a_caller_s_handler_is_kept(monkeypatch):
    """The reference the block is needed against, and a handler of the caller's own left alone."""
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    _PressesCtrlCWhenCollected()
    assert len(ignored) == 1
    check_interrupt()  # nothing remembered it
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with interruptible():
            signal.raise_signal(signal.SIGINT)
            check_interrupt()
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_search_stops_at_the_record_after_a_swallowed_ctrl_c(tmp_path, small_config, search_data,
                                                                 search_teacher, monkeypatch):
    evaluate = LocalBackend.evaluate

    def evaluate_then_ctrl_c_swallowed(self, students, seed):
        results = evaluate(self, students, seed)
        interrupt._interrupted.set()  # as _on_sigint leaves it when its KeyboardInterrupt was swallowed
        return results

    monkeypatch.setattr(LocalBackend, "evaluate", evaluate_then_ctrl_c_swallowed)
    config = small_config(method="random", steps=3)  # 3 steps of 2 students
    with pytest.raises(KeyboardInterrupt):
        compress(search_teacher, search_data, config, run_dir=tmp_path)
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"index"' in line]) == 1  # the first record, then the stop
    assert not (tmp_path / "report.md").exists()
    check_interrupt()  # the block forgot it
