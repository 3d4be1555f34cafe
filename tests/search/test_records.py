r"""Tests of the journal schema (botorch_archsearch/search/records.py): JSON round trips, the format
version, and a run directory written before the format was versioned, resumed by today's code."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from botorch_archsearch.exceptions import JournalError
from botorch_archsearch.search import (
    JOURNAL_FORMAT,
    CompressConfig,
    EvaluationRecord,
    FinalRecord,
    compress,
    read_journal,
    upgrade_saved_config,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run_v1"


def _record(**changes) -> dict:
    values = {"index": 0, "method": "esnac", "step": 1, "key": "abc", "architecture": {"nodes": []},
              "status": "ok", "reward": 0.8, "params": 1000, "accuracy": 0.9, "seconds": 1.5, "flops": 2000,
              "kernel": None, "acquisition": None, "best_epoch": 2, "reason": None, "history": [0.8, 0.9],
              "edit": {"keep": [1]}, "encoding": [1, 2, 3]}
    values.update(changes)
    return values


def test_records_round_trip_through_json_and_carry_the_format():
    record = EvaluationRecord.from_dict(_record(target=0.5, format=JOURNAL_FORMAT))
    line = json.dumps(record.to_dict(), allow_nan=False)
    assert EvaluationRecord.from_dict(json.loads(line)) == record
    assert record.to_dict()["format"] == JOURNAL_FORMAT and record.ok
    assert "target" not in EvaluationRecord.from_dict(_record()).to_dict()  # only one-shot records have one
    final = FinalRecord(method="esnac", index=3, rank=1, params=10, test_accuracy=float("nan"))
    values = final.to_dict()
    assert values["test_accuracy"] is None and values["format"] == JOURNAL_FORMAT  # JSON has no NaN
    assert FinalRecord.from_dict(json.loads(json.dumps(values))).index == 3
    assert math.isnan(final.test_accuracy)


def test_a_record_without_a_format_is_format_1_and_reads_as_it_is():
    record = EvaluationRecord.from_dict(_record())
    assert record.format == 1 and record.reward == 0.8
    assert record.to_dict()["format"] == 1  # rewritten as it was read, never upgraded silently


@pytest.mark.parametrize(
    "values, message",
    [
        (_record(format=JOURNAL_FORMAT + 1), rf"format {JOURNAL_FORMAT + 1}; this version reads formats 1 to"),
        ({k: v for k, v in _record().items() if k != "reward"}, r"lacks 'reward'"),
        (_record(colour="red"), r"unknown keys 'colour'"),
        ([1, 2], r"a record is a JSON object, got list"),
    ],
)
def test_records_that_do_not_fit_the_schema_are_refused_with_what_is_wrong(values, message):
    with pytest.raises(JournalError, match=message):
        EvaluationRecord.from_dict(values)


@pytest.mark.slow
def test_a_run_directory_written_before_the_format_resumes_and_reports(tmp_path, search_data, search_teacher):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    before = (run / "journal.jsonl").read_bytes()
    config = CompressConfig.from_dict(upgrade_saved_config(json.loads((run / "config.json").read_text())))
    result = compress(search_teacher, search_data, config, run_dir=run, resume=True)
    # the three records it had are kept as written; the fourth is appended in today's format
    assert (run / "journal.jsonl").read_bytes().startswith(before)
    records = read_journal(run / "journal.jsonl").records
    assert [r["index"] for r in records] == [0, 1, 2, 3] and [r.index for r in result.records] == [0, 1, 2, 3]
    assert [r.format for r in result.records] == [1, 1, 1, JOURNAL_FORMAT]
    assert [r.step for r in result.records] == [1, 1, 2, 2] and result.records[3].kernel == 1
    assert len({r.key for r in result.records}) == 4
    (final,) = result.final
    assert final.status == "ok" and final.format == JOURNAL_FORMAT and (run / final.path / "state_dict.pt").exists()
    report = (run / "report.md").read_text()
    assert "esnac" in report and "| 4 | 0 |" in report  # 4 evaluations, none failed
