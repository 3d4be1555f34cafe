r"""Tests of botorch_archsearch/search/reevaluate.py: a run directory's students evaluated again."""

from __future__ import annotations

import json

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search import (
    AcquisitionConfig,
    CompressConfig,
    DatasetConfig,
    EvaluationConfig,
    FinalConfig,
    KernelConfig,
    RunEvaluator,
    SearchSettings,
    TeacherConfig,
    compress,
)
from botorch_archsearch.space import Edit, oneshot_edit


def _config() -> CompressConfig:
    return CompressConfig(
        teacher=TeacherConfig(name="resnet18", width=0.125, epochs=1, max_batches=2),
        dataset=DatasetConfig(name="synthetic"),
        search=SearchSettings(method="random", steps=1, num_kernels=2, channel_order="magnitude",
                              baselines=["magnitude"]),
        kernel=KernelConfig(hidden_size=8, num_layers=1, max_steps=3),
        acquisition=AcquisitionConfig(num_candidates=30),
        evaluation=EvaluationConfig(epochs=1, max_batches=2, batch_size=32, isolation="none"),
        final=FinalConfig(top_k=0),
        progress=False,
    )


def test_a_run_s_students_evaluated_again_with_fresh_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTORCH_ARCHSEARCH_CACHE", str(tmp_path / "cache"))
    result = compress(config=_config(), run_dir=tmp_path / "run")
    with RunEvaluator(tmp_path / "run") as run:
        records = run.records()
        assert [r["method"] for r in records] == ["random", "random", "magnitude"]
        assert run.space.channel_order == "magnitude" and run.space.has_importance
        edits = [Edit.from_dict(r["edit"]) for r in records]
        # the journal's one-shot is the edit oneshot_edit makes on the rebuilt space
        assert edits[2] == oneshot_edit(run.space, "magnitude", records[2]["target"])
        first, again, other = run.evaluate(edits, 0), run.evaluate(edits, 0), run.evaluate(edits, 1)
    teacher = result.teacher
    for record, row in zip(records, first):
        assert row["params"] == record["params"] and row["flops"] == record["flops"] and row["status"] == "ok"
        c = 1 - row["params"] / teacher["params"]
        assert row["reward"] == pytest.approx(c * (2 - c) * row["accuracy"] / teacher["val_accuracy"])
    assert [r["accuracy"] for r in first] == [r["accuracy"] for r in again]  # a seed is reproducible
    assert len(other) == len(first) and all(r["status"] == "ok" for r in other)


def test_a_run_whose_teacher_changed_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTORCH_ARCHSEARCH_CACHE", str(tmp_path / "cache"))
    compress(config=_config(), run_dir=tmp_path / "run")
    path = tmp_path / "run" / "teacher.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "params": info["params"] + 1}))
    with pytest.raises(ArchSearchError, match="differs from its teacher.json in \\['params'\\]"):
        RunEvaluator(tmp_path / "run")
    with pytest.raises(ArchSearchError, match="is not a run directory"):
        RunEvaluator(tmp_path / "nothing")
