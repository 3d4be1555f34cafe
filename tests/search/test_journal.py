r"""Tests of botorch_archsearch/search/journal.py."""

from __future__ import annotations

import json

import pytest

from botorch_archsearch.search.journal import (
    RECORD_KEYS,
    Journal,
    JournalError,
    JournalWarning,
    read_journal,
    repair_journal,
)


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


def _record(index, **changes):
    record = {"index": index, "method": "esnac", "step": 1 + index // 2, "key": f"k{index}", "architecture": {},
              "status": "ok", "reward": 0.5, "params": 10, "accuracy": 0.5, "seconds": 1.0}
    return {**record, **changes}


def test_a_repeated_record_is_read_once_with_a_warning(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, [_record(0), _record(1), _record(1), _record(2), _record(0)])  # lines 3 and 5 repeat records
    with pytest.warns(JournalWarning, match=r"line\(s\) 3, 5 repeat an earlier record and were skipped; 3 records"):
        contents = read_journal(path, required=RECORD_KEYS)
    assert [r["index"] for r in contents.records] == [0, 1, 2] and contents.duplicates == (3, 5)
    assert contents.problem is None and contents.valid_bytes == path.stat().st_size
    size = path.stat().st_size
    with pytest.warns(JournalWarning):
        assert len(repair_journal(path, required=RECORD_KEYS).records) == 3
    assert path.stat().st_size == size  # append-only: nothing rewritten


@pytest.mark.parametrize("last", [False, True])
def test_a_line_that_is_not_a_record_is_an_error_naming_what_it_lacks(tmp_path, last):
    path = tmp_path / "journal.jsonl"
    lines = [_record(0), {}] if last else [_record(0), {}, _record(1)]
    _write(path, lines)
    with pytest.raises(JournalError, match=r"line 2 is not a journal record: it lacks 'index', 'method', 'step'"):
        read_journal(path, required=RECORD_KEYS)
    _write(tmp_path / "other.jsonl", [_record(0), {"index": 0, "method": "esnac", "status": "ok"}])
    with pytest.raises(JournalError, match=r"line 2 .* lacks 'step', 'key', 'architecture', 'reward'"):
        read_journal(tmp_path / "other.jsonl", required=RECORD_KEYS)


def test_records_must_be_numbered_in_order_and_an_index_cannot_be_reused(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, [_record(0), _record(1), _record(1, reward=0.75, seconds=2.0)])  # two searches wrote record 1
    with pytest.raises(JournalError, match=r"line 3 holds record 1 with other content than line 2 \(differs in "
                                           r"'reward', 'seconds'\)"):
        read_journal(path, required=RECORD_KEYS)
    path.unlink()
    _write(path, [_record(0), _record(2)])
    with pytest.raises(JournalError, match="line 2 holds record index 2, expected 1"):
        read_journal(path, required=RECORD_KEYS)


def test_without_required_keys_any_json_objects_are_records(tmp_path):
    """``final.jsonl`` is read with :func:`read_journal` too: its entries are keyed by method and index."""
    path = tmp_path / "final.jsonl"
    entries = [{"method": "random", "index": 3, "rank": 1}, {"method": "esnac", "index": 3, "rank": 1}, {}]
    _write(path, entries)
    assert read_journal(path).records == entries
