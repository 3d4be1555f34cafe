r"""Tests of botorch_archsearch/evaluation/progress.py."""

from __future__ import annotations

import io

from botorch_archsearch.evaluation.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_by_default_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress("job", 2, stream=stream)
    progress.batch(1, 1, 10, "x")
    progress.epoch(1, "y")
    progress.close()
    assert stream.getvalue() == ""


def test_log_gets_one_line_per_epoch_and_no_batch_lines():
    stream = io.StringIO()
    progress = Progress("job", 2, enabled=True, stream=stream)
    for b in range(1, 11):
        progress.batch(1, b, 10, "loss 1.0")
    progress.epoch(1, "best val 0.5")
    progress.epoch(2, "best val 0.7")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("job: epoch 1/2 | best val 0.5 | ")


def test_terminal_redraws_one_line_and_can_be_silenced():
    stream = _Terminal()
    progress = Progress("job", 3, stream=stream)
    progress.batch(1, 10, 10, "loss 0.3")  # the last batch is always drawn
    progress.close()
    out = stream.getvalue()
    assert out.startswith("\rjob: epoch 1/3 batch 10/10 | loss 0.3 | ") and out.endswith("\n")
    quiet = _Terminal()
    Progress("job", 3, enabled=False, stream=quiet).epoch(1)
    assert quiet.getvalue() == ""
