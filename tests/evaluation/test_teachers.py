r"""Tests of botorch_archsearch/evaluation/teachers.py (training, caching, checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from botorch_archsearch.evaluation.data import synthetic_dataset
from botorch_archsearch.evaluation.distill import accuracy
from botorch_archsearch.evaluation.teachers import CACHE_ENV, default_cache_dir, load_teacher, trained_teacher
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models import get_teacher

TRAIN = dict(width=0.125, epochs=2, lr=0.05, batch_size=64, max_batches=4, progress=False)


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=256, num_val=64, num_test=64)


def test_trained_once_then_read_from_the_cache(data, tmp_path, monkeypatch):
    first = trained_teacher("resnet18", data, cache_dir=tmp_path, **TRAIN)
    assert not first.cached and first.path.parent == tmp_path
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["val_accuracy"] == first.val_accuracy == pytest.approx(accuracy(first.model, data, "val"))

    def no_training(*args, **kwargs):
        raise AssertionError("the cached teacher was trained again")

    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", no_training)
    second = trained_teacher("resnet18", data, cache_dir=tmp_path, **TRAIN)
    assert second.cached and second.path == first.path and second.val_accuracy == first.val_accuracy
    for (k, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert not second.model.training


def test_cache_key_separates_settings_and_data(data, tmp_path):
    base = trained_teacher("resnet18", data, cache_dir=tmp_path, **TRAIN)
    other_seed = trained_teacher("resnet18", data, cache_dir=tmp_path, seed=1, **TRAIN)
    other_data = synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=256, num_val=64,
                                   num_test=64, seed=5)
    other = trained_teacher("resnet18", other_data, cache_dir=tmp_path, **TRAIN)
    assert len({base.path, other_seed.path, other.path}) == 3 and not other_seed.cached and not other.cached
    assert len(list(tmp_path.iterdir())) == 3  # no temporary folders left behind


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path / "teachers"


def test_load_teacher_from_a_state_dict_checkpoint(data, tmp_path):
    torch.manual_seed(0)
    model = get_teacher("resnet34", num_classes=4, in_channels=3, width=0.125)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        teacher = load_teacher(tmp_path / name, data, name="resnet34", width=0.125)
        assert teacher.val_accuracy == pytest.approx(accuracy(model, data, "val"))
        assert teacher.path == tmp_path / name and not teacher.model.training
        for (k, a), b in zip(model.state_dict().items(), teacher.model.state_dict().values()):
            torch.testing.assert_close(a, b, msg=k)


def test_load_teacher_module(data):
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    teacher = load_teacher(model, data)
    assert teacher.model is model and 0.0 <= teacher.val_accuracy <= 1.0 and teacher.path is None


def test_load_teacher_errors(data, tmp_path):
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ArchSearchError, match="needs name="):
        load_teacher(tmp_path / "r18.pt", data)
    with pytest.raises(ArchSearchError, match="does not fit resnet34"):
        load_teacher(tmp_path / "r18.pt", data, name="resnet34", width=0.125)
    with pytest.raises(ArchSearchError, match="does not fit resnet18"):
        load_teacher(tmp_path / "r18.pt", data, name="resnet18", width=0.25)
    torch.save(model, tmp_path / "pickled_module.pt")  # a whole module: not weights-only
    with pytest.raises(ArchSearchError, match="not a weights-only checkpoint"):
        load_teacher(tmp_path / "pickled_module.pt", data, name="resnet18", width=0.125)
    with pytest.raises(ArchSearchError, match="no checkpoint file"):
        load_teacher(tmp_path / "missing.pt", data, name="resnet18")
    with pytest.raises(ArchSearchError, match="unknown teacher"):
        trained_teacher("alexnet", data, cache_dir=tmp_path, **TRAIN)


def test_a_cache_dir_that_cannot_be_created_fails_before_training(data, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")

    def no_training(*args, **kwargs):
        raise AssertionError("the teacher was trained although it could not be cached")

    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", no_training)
    for cache_dir in (tmp_path / "a_file", tmp_path / "a_file" / "teachers"):
        with pytest.raises(ArchSearchError) as info:
            trained_teacher("resnet18", data, cache_dir=cache_dir, **TRAIN)
        message = str(info.value)
        assert "teacher cache directory" in message and repr(str(cache_dir)) in message
        assert "File exists" in message or "Not a directory" in message  # the operating system's reason
