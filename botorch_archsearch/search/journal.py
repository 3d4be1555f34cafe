r"""The run journal: one JSON record per evaluated architecture, appended and flushed to disk
(``fsync``) as soon as it is known, so a search killed at any moment loses nothing it evaluated.

A record holds the search step and kernel that proposed the architecture, the architecture
(``ArchGraph.to_dict``), the edit, the encoding, its size, accuracy, reward, time and status.
Reading a journal whose last line was cut off (a kill in the middle of a write) reports it and
keeps every complete record; :func:`repair_journal` moves such a tail aside before appending.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from botorch_archsearch.exceptions import JournalError, JournalWarning
from botorch_archsearch.utils.validation import is_int

JOURNAL_NAME = "journal.jsonl"
RECORD_KEYS = ("index", "method", "step", "key", "architecture", "status", "reward", "params", "accuracy", "seconds")
"""The keys every record of a search journal has (``read_journal(path, required=RECORD_KEYS)``)."""


class JournalContents(NamedTuple):
    r"""What :func:`read_journal` found.

    Args:
        records: The complete records, in order.
        problem: A description of a cut-off or corrupted last line (``None`` if there was none).
        valid_bytes: Length of the file up to the end of the last complete record.
        duplicates: Line numbers (from 1) of lines that repeat an earlier record and were skipped
            (only checked with ``required``).
    """

    records: list[dict[str, Any]]
    problem: str | None
    valid_bytes: int
    duplicates: tuple[int, ...] = ()


def read_journal(path: str | Path, required: Sequence[str] = ()) -> JournalContents:
    r"""Read a journal.

    Args:
        path: The ``journal.jsonl`` file (a missing file reads as empty).
        required: The keys each record must have (:data:`RECORD_KEYS` for a search journal). If
            ``"index"`` is among them, the records must be numbered ``0, 1, 2, ...`` in order: a
            line that repeats an earlier record exactly (same index, same content) is skipped with
            a :class:`JournalWarning` and listed in ``duplicates``; nothing is counted twice.

    Returns:
        The complete records; a cut-off or corrupted *last* line is reported in ``problem``
        and left out.

    Raises:
        JournalError: If a line before the last one is not a JSON record, or a complete line
            lacks a ``required`` key, reuses an index with other content, or skips an index.
    """
    path = Path(path)
    if not path.exists():
        return JournalContents([], None, 0)
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    line_of: list[int] = []  # the line of each record
    duplicates: list[int] = []
    problem = None
    offset = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        end = offset + len(line) + 1  # with its newline
        is_last = number == len(lines) or (number == len(lines) - 1 and lines[-1] == b"")
        if not line.strip():
            offset = min(end, len(data))
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            if number == len(lines):  # no newline after it: the write did not finish
                raise ValueError("no newline at the end")
        except ValueError as error:
            if is_last:
                problem = (
                    f"{path}: line {number} is cut off or corrupted ({error}); kept the {len(records)} complete "
                    "records before it."
                )
                break
            raise JournalError(
                f"{path}: line {number} of {len(lines) - (lines[-1] == b'')} is not a JSON record ({error}); "
                "only the last line of a journal can be cut off by a kill. Fix or remove the line by hand."
            ) from error
        if required and _check_record(path, number, record, required, records, line_of):
            duplicates.append(number)
        else:
            records.append(record)
            line_of.append(number)
        offset = min(end, len(data))
    if duplicates:
        warnings.warn(
            f"{path}: line(s) {', '.join(map(str, duplicates))} repeat an earlier record and were skipped; "
            f"{len(records)} records read.",
            JournalWarning, stacklevel=2,
        )
    return JournalContents(records, problem, offset, tuple(duplicates))


def repair_journal(path: str | Path, required: Sequence[str] = ()) -> JournalContents:
    r"""Read a journal and, if its last line is cut off, move that line to
    ``journal.jsonl.corrupt-<time>`` (nothing is deleted) so that records can be appended.
    Lines that repeat a record stay in the file (it is append-only) and are skipped when read.

    Args:
        path: The journal file.
        required: As for :func:`read_journal`.

    Returns:
        What :func:`read_journal` found.
    """
    path = Path(path)
    contents = read_journal(path, required)
    if contents.problem is not None:
        data = path.read_bytes()
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.write_bytes(data[contents.valid_bytes :])
        with open(path, "r+b") as f:
            f.truncate(contents.valid_bytes)
            f.flush()
            os.fsync(f.fileno())
    return contents


class Journal:
    r"""An append-only journal file: each :meth:`append` writes one line and syncs it to disk.

    Example:
        >>> with Journal(run_dir / "journal.jsonl") as journal:
        ...     journal.append({"index": 0, "reward": 0.71})
    """

    def __init__(self, path: str | Path) -> None:
        r"""Open (or create) the journal for appending.

        Args:
            path: The journal file.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        r"""Append one record and flush it to disk before returning.

        Args:
            record: A JSON-serialisable dict.
        """
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        r"""Close the file."""
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_record(path: Path, number: int, record: dict[str, Any], required: Sequence[str],
                  records: list[dict[str, Any]], line_of: list[int]) -> bool:
    """Check a complete line of a journal against its records so far; ``True``: it repeats one."""
    missing = [key for key in required if key not in record]
    if missing:
        raise JournalError(
            f"{path}: line {number} is not a journal record: it lacks {', '.join(map(repr, missing))} "
            f"(a record has {', '.join(map(repr, required))}). Remove the line by hand."
        )
    if "index" not in required:
        return False
    index, expected = record["index"], len(records)
    if is_int(index, 0) and index < expected:
        earlier = records[index]
        if earlier == record:
            return True
        differ = sorted(key for key in {*earlier, *record} if earlier.get(key) != record.get(key))
        raise JournalError(
            f"{path}: line {number} holds record {index} with other content than line {line_of[index]} "
            f"(differs in {', '.join(map(repr, differ))}); two searches wrote to this journal. Keep one of the "
            "two lines by hand."
        )
    if index != expected or isinstance(index, bool):
        raise JournalError(
            f"{path}: line {number} holds record index {index!r}, expected {expected} (records are numbered "
            "0, 1, 2, ... in the order they were written); the journal was edited or is not a search journal."
        )
    return False


__all__ = [
    "JOURNAL_NAME",
    "Journal",
    "JournalContents",
    "JournalError",
    "JournalWarning",
    "RECORD_KEYS",
    "read_journal",
    "repair_journal",
]
