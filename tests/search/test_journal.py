r"""Tests of botorch_archsearch/search/journal.py."""

from __future__ import annotations

import json

import pytest

from botorch_archsearch.search.journal import Journal, JournalError, read_journal, repair_journal


def _write(path, records):
    with Journal(path) as journal:
        for record in records:
            journal.append(record)


def test_append_read_round_trip_and_append_only(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, [{"index": 0, "reward": 0.5}, {"index": 1, "reward": 0.25}])
    _write(path, [{"index": 2, "reward": 1.0}])  # reopening appends
    contents = read_journal(path)
    assert [r["index"] for r in contents.records] == [0, 1, 2] and contents.problem is None
    assert contents.valid_bytes == path.stat().st_size
    assert read_journal(tmp_path / "missing.jsonl").records == []


def test_each_record_is_on_disk_when_append_returns(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"index": 0})
    # read by another handle before close: flushed
    assert json.loads(path.read_text().splitlines()[0]) == {"index": 0}
    journal.close()


def test_nan_is_refused_not_written(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(ValueError):
        journal.append({"reward": float("nan")})
    journal.close()
    assert (tmp_path / "journal.jsonl").read_text() == ""


@pytest.mark.parametrize("tail", [b'{"index": 2, "rew', b'{"index": 2}', b"\x00\x00garbage"])
def test_cut_off_last_line_is_reported_and_the_rest_kept(tmp_path, tail):
    path = tmp_path / "journal.jsonl"
    _write(path, [{"index": 0}, {"index": 1}])
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(tail)  # a kill in the middle of a write: no newline
    contents = read_journal(path)
    assert [r["index"] for r in contents.records] == [0, 1]
    assert "line 3" in contents.problem and "kept the 2 complete records" in contents.problem
    assert contents.valid_bytes == good
    repaired = repair_journal(path)
    assert repaired.problem == contents.problem and path.stat().st_size == good
    (aside,) = tmp_path.glob("journal.jsonl.corrupt-*")
    assert aside.read_bytes() == tail  # nothing deleted
    _write(path, [{"index": 2}])
    assert [r["index"] for r in read_journal(path).records] == [0, 1, 2]


def test_corrupted_line_before_the_last_is_an_error(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.raises(JournalError, match="line 2 of 3 is not a JSON record"):
        read_journal(path)
