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
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("job: epoch 1/2 | best val 0.5 | ")
    assert lines[1].startswith("job: epoch 2/2 | best val 0.7 | ")


def test_terminal_redraws_one_bar_in_place():
    stream = _Terminal()
    progress = Progress("job", 3, stream=stream)
    progress.batch(1, 10, 10, "loss 0.3")  # the last batch is always drawn
    progress.close()
    out = stream.getvalue()
    assert out.startswith("\rjob: epoch 1/3 |") and out.endswith("\n")
    last = out.rstrip("\n").split("\r")[-1]
    assert "batch 10/10, loss 0.3 [" in last, out


def test_terminal_epoch_line_replaces_the_bar():
    stream = _Terminal()
    progress = Progress("job", 2, stream=stream)
    for b in range(1, 4):
        progress.batch(1, b, 3, f"loss {b}")
    progress.epoch(1, "best val 0.5")
    progress.batch(2, 1, 3, "loss 1")
    progress.close()
    lines = stream.getvalue().split("\n")
    epoch_line = next(line for line in lines if "best val" in line)
    assert epoch_line.split("\r")[-1].startswith("job: epoch 1/2 | best val 0.5 | ")
    assert "batch 1/3, loss 1" in lines[-2].split("\r")[-1] and lines[-1] == ""


def test_disabled_is_quiet_on_a_terminal():
    quiet = _Terminal()
    progress = Progress("job", 3, enabled=False, stream=quiet)
    progress.batch(1, 1, 2)
    progress.epoch(1)
    progress.close()
    assert quiet.getvalue() == ""
