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


def test_students_of_a_weight_source_are_evaluated_again_with_its_weights(tmp_path, monkeypatch):
    import copy
    import dataclasses

    import torch

    from botorch_archsearch.graph import build_student
    from botorch_archsearch.search import MethodsConfig

    monkeypatch.setenv("BOTORCH_ARCHSEARCH_CACHE", str(tmp_path / "cache"))
    config = _config()
    config = dataclasses.replace(
        config, search=dataclasses.replace(config.search, method="group_lasso", baselines=[], targets=[0.5]),
        methods=MethodsConfig(epochs=1, max_batches=2, group_lasso_strength=2.0, lr=0.05))
    compress(config=config, run_dir=tmp_path / "run")
    with RunEvaluator(tmp_path / "run") as run:
        [record] = run.records()
        assert record["source"] == "group_lasso"
        edit = Edit.from_dict(record["edit"])
        shipped = []
        evaluate = run.backend.evaluate
        def capture(nets, seed):  # the weights each network starts its distillation with
            built = [net if isinstance(net, torch.nn.Module) else build_student(net, run.teacher.model) for net in nets]
            shipped.append([{k: v.clone() for k, v in net.state_dict().items()} for net in built])
            return evaluate(nets, seed)

        monkeypatch.setattr(run.backend, "evaluate", capture)
        [mine] = run.evaluate([edit], 0, source="group_lasso")
        run.evaluate([edit], 0)
        with pytest.raises(ArchSearchError, match="has no weight source 'nothing'"):
            run.evaluate([edit], 0, source="nothing")
        # the network evaluated is the student built from the run's source: its weights, its channels
        saved = torch.load(tmp_path / "run" / "sources" / "group_lasso.pt", weights_only=True)
        model = run.teacher.model
        source_model = copy.deepcopy(model)
        source_model.load_state_dict(saved["state_dict"])
        space = run.space.with_importance(tuple(v.numpy() for v in saved["importance"]))
        expected = build_student(space.student(edit), source_model).state_dict()
        got = shipped[0][0]
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
        teachers = shipped[1][0]  # without the source: the teacher's weights
        assert any(not torch.equal(teachers[k], got[k]) for k in got if teachers[k].shape == got[k].shape)
    assert mine["params"] == record["params"] and mine["flops"] == record["flops"] and mine["status"] == "ok"
