r"""Tests of the regularised methods' common ground (botorch_archsearch/field/regularised.py): a
method trains a copy of the teacher once, saves it as the run's weight source, and its students
inherit those weights (not the teacher's), through evaluation, the journal, resume and the final
training; every record carries its cost."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from botorch_archsearch.evaluation import evaluation_cost, images_per_epoch, train_classifier, training_cost
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field import RegularisedPruning
from botorch_archsearch.graph import build_student, trace
from botorch_archsearch.search import POLICIES, compress, read_journal, register_policy
from botorch_archsearch.space import SearchSpace, channel_importance

TRAINED = {}


@pytest.fixture
def plain_policy():
    """A regularised method without a regulariser: one epoch of plain training; channels ranked by
    their group magnitude in the trained weights."""

    @register_policy
    class Plain(RegularisedPruning):
        name = "plain_test"

        def regularise(self, model, seed):
            train_classifier(model, self.context.data, epochs=1, lr=0.05, batch_size=32, seed=seed, max_batches=2,
                             progress=False)
            TRAINED["calls"] = TRAINED.get("calls", 0) + 1
            graph = self.context.space.graph
            return model, channel_importance(graph, model), {"note": "plain"}

    TRAINED.clear()
    yield Plain
    POLICIES.pop("plain_test")


def test_students_inherit_the_method_s_weights_and_the_run_keeps_them(tmp_path, plain_policy, small_config,
                                                                      search_data, search_teacher):
    config = small_config(method="plain_test", targets=[0.5, 0.25])
    config.methods.epochs = 1
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    assert TRAINED["calls"] == 1  # one regularised training for both targets
    records = result.records
    assert [(r.method, r.step, r.source, r.target) for r in records] == [
        ("plain_test", 1, "plain_test", 0.5), ("plain_test", 2, "plain_test", 0.25)]
    # the source's cost and time are counted once, in the first record
    source = torch.load(tmp_path / "sources" / "plain_test.pt", weights_only=True)
    info = source["info"]
    images = 1 * images_per_epoch(len(search_data.train_y), 128, None)
    assert info["cost"] == pytest.approx(training_cost(result.teacher["flops"], images))
    assert records[0].overhead_cost == pytest.approx(info["cost"]) and records[1].overhead_cost is None
    # its time is in the step's proposal time, once: more than the training, less than twice it
    assert info["seconds"] <= records[0].overhead_seconds < 2 * info["seconds"] + 1.0
    # every record's evaluation cost, by hand
    e = config.evaluation
    for r in records:
        train = images_per_epoch(len(search_data.train_y), e.batch_size, e.max_batches)
        expected = e.epochs * (3 * r.flops * train + result.teacher["flops"] * train + r.flops * len(search_data.val_y))
        assert r.cost == pytest.approx(expected)
        assert r.cost == pytest.approx(evaluation_cost(r.flops, result.teacher["flops"], train, len(search_data.val_y),
                                                       e.epochs))
    # each meets its target exactly in the size measure (params here), and is the largest such
    for r in records:
        assert r.params <= r.target * result.teacher["params"]
    # the students inherited the trained copy's weights: rebuilt from the journal, they equal a
    # build from the source's weights and differ from a build from the teacher's
    model = search_teacher.model
    graph = trace(model, torch.zeros(1, 3, 16, 16))
    copy_ = copy.deepcopy(model)
    copy_.load_state_dict(source["state_dict"])
    importance = tuple(v.numpy() for v in source["importance"])
    space = SearchSpace(graph, channel_importance=importance, channel_order="magnitude")
    lines = read_journal(tmp_path / "journal.jsonl").records
    assert lines[0]["format"] == 4 and lines[0]["source"] == "plain_test" and "cost" in lines[0]
    student = space.student_from_dict(lines[0])
    from_source = build_student(student, copy_).state_dict()
    from_teacher = build_student(student, model).state_dict()
    assert any(not torch.equal(from_source[k], from_teacher[k]) for k in from_source)
    # the kept channels of every group are the source's most important ones
    for g, members in enumerate(space.channels.group_members):
        kept = student.kept_channels(members[0])
        assert np.array_equal(kept, np.sort(np.argsort(-importance[g], kind="stable")[:len(kept)]))
    # resumed after its first record: the source is reused, not trained again, same students
    journal = tmp_path / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (tmp_path / "final.jsonl").unlink()
    resumed = compress(search_teacher, search_data, config, run_dir=tmp_path, resume=True)
    assert TRAINED["calls"] == 1
    assert [(r.key, r.source) for r in resumed.records] == [(r.key, r.source) for r in records]
    assert resumed.records[1].overhead_cost is None
    assert resumed.final and resumed.final[0].status == "ok"


def test_an_unreachable_target_is_refused_before_any_training(plain_policy, small_config, search_data,
                                                              search_teacher):
    config = small_config(method="plain_test", targets=[1e-6])
    with pytest.raises(ArchSearchError, match="search.targets: plain_test cannot reach a target of 1e-06 of the teacher's params"):
        compress(search_teacher, search_data, config)
    assert "calls" not in TRAINED


@pytest.mark.slow
def test_the_dask_backend_evaluates_students_of_a_weight_source_as_the_local_backend(
        tmp_path, plain_policy, small_config, search_data, search_teacher):
    import dataclasses

    from botorch_archsearch.search.config import DaskConfig

    config = small_config(method="plain_test", targets=[0.5])
    config.methods.epochs = 1
    local = compress(search_teacher, search_data, config, run_dir=tmp_path / "local")
    evaluation = dataclasses.replace(config.evaluation, backend="dask", dask=DaskConfig(workers=1))
    remote = compress(search_teacher, search_data, dataclasses.replace(config, evaluation=evaluation),
                      run_dir=tmp_path / "dask")
    timing = ("seconds", "overhead_seconds")
    strip = [{k: v for k, v in r.to_dict().items() if k not in timing} for r in local.records]
    assert [{k: v for k, v in r.to_dict().items() if k not in timing} for r in remote.records] == strip
    assert remote.records[0].source == "plain_test" and remote.records[0].accuracy == local.records[0].accuracy
