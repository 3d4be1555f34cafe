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
    assert meta["threads"] == torch.get_num_threads() and meta["device"] == "cpu"  # the weights depend on them

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


# Teachers from outside the zoo: torchvision models by name and a user's module (issue 15).

QUICK = dict(epochs=1, batch_size=32, max_batches=1, progress=False)
USER_NETS = '''
from torch import nn

def make_net(num_classes, in_channels=3, hidden=8):
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, num_classes))
'''


@pytest.fixture(scope="module")
def gray():
    return synthetic_dataset(num_classes=4, in_channels=1, image_size=16, num_train=64, num_val=32, num_test=32)


@pytest.fixture
def user_nets(tmp_path, monkeypatch):
    """``mynets_<n>:make_net`` importable from a temporary directory; the module's file."""
    name = f"mynets_{abs(hash(str(tmp_path)))}"
    path = tmp_path / "code" / f"{name}.py"
    path.parent.mkdir()
    path.write_text(USER_NETS)
    monkeypatch.syspath_prepend(str(path.parent))
    yield path
    import sys

    sys.modules.pop(name, None)


def test_zoo_cache_key_is_unchanged(data, tmp_path, monkeypatch):
    # Entries trained before teachers of other kinds existed are still found.
    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", _no_training_result)
    teacher = trained_teacher("resnet18", data, cache_dir=tmp_path, **TRAIN)
    import hashlib

    from botorch_archsearch.evaluation.teachers import CACHE_FORMAT, dataset_fingerprint

    config = {
        "format": CACHE_FORMAT,
        "teacher": {"name": "resnet18", "width": 0.125, "num_classes": 4, "in_channels": 3},
        "dataset": dataset_fingerprint(data),
        "training": {"epochs": 2, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine",
                     "batch_size": 64, "max_batches": 4},
        "seed": 0,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    assert teacher.path == tmp_path / f"resnet18-synthetic-{key}" and teacher.name == "resnet18"


def test_torchvision_teacher_is_trained_once_then_read_from_the_cache(gray, tmp_path, monkeypatch):
    first = trained_teacher("shufflenet_v2_x0_5", gray, kind="torchvision", cache_dir=tmp_path, **QUICK)
    assert not first.cached and first.name == "torchvision/shufflenet_v2_x0_5"
    assert first.path.name.startswith("torchvision_shufflenet_v2_x0_5-synthetic-")
    with torch.no_grad():
        assert first.model(gray.normalize(gray.val_x[:3])).shape == (3, 4)  # 1-channel images in, 4 classes out
    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", _no_training_result)
    second = trained_teacher("shufflenet_v2_x0_5", gray, kind="torchvision", cache_dir=tmp_path, **QUICK)
    assert second.cached and second.path == first.path and second.val_accuracy == first.val_accuracy
    torch.testing.assert_close(second.model.state_dict(), first.model.state_dict())


def test_cache_key_separates_torchvision_names_and_kinds(gray, tmp_path, monkeypatch):
    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", _no_training_result)
    paths = {
        trained_teacher("resnet18", gray, kind="torchvision", cache_dir=tmp_path, **QUICK).path,
        trained_teacher("resnet34", gray, kind="torchvision", cache_dir=tmp_path, **QUICK).path,
        trained_teacher("resnet18", gray, cache_dir=tmp_path, width=0.125, **QUICK).path,  # the zoo's resnet18
    }
    assert len(paths) == 3 and len(list(tmp_path.iterdir())) == 3
    again = trained_teacher("resnet34", gray, kind="torchvision", cache_dir=tmp_path, **QUICK)
    assert again.cached and again.path in paths
    a, b = (json.loads((p / "meta.json").read_text())["config"]["teacher"] for p in paths if "torchvision" in p.name)
    assert {a["name"], b["name"]} == {"resnet18", "resnet34"} and a["kind"] == b["kind"] == "torchvision"


def test_user_module_teacher_is_cached_by_its_module_and_its_layers(gray, tmp_path, user_nets, monkeypatch):
    spec = f"{user_nets.stem}:make_net"
    first = trained_teacher(spec, gray, kind="module", cache_dir=tmp_path / "cache", **QUICK)
    assert not first.cached and first.name == spec and first.path.name.startswith(f"{user_nets.stem}_make_net-")
    assert first.model[0].in_channels == 1 and first.model[-1].out_features == 4
    monkeypatch.setattr("botorch_archsearch.evaluation.teachers.train_classifier", _no_training_result)
    second = trained_teacher(spec, gray, kind="module", cache_dir=tmp_path / "cache", **QUICK)
    assert second.cached and second.path == first.path
    torch.testing.assert_close(second.model.state_dict(), first.model.state_dict())
    # The user edits their network: the same module string is another teacher now.
    import importlib
    import sys

    user_nets.write_text(USER_NETS.replace("hidden=8", "hidden=12"))
    importlib.reload(sys.modules[user_nets.stem])
    edited = trained_teacher(spec, gray, kind="module", cache_dir=tmp_path / "cache", **QUICK)
    assert not edited.cached and edited.path != first.path and edited.model[0].out_channels == 12


def test_load_teacher_of_each_kind_from_a_checkpoint(gray, tmp_path, user_nets):
    from botorch_archsearch.models import build_teacher

    spec = f"{user_nets.stem}:make_net"
    for kind, name in (("torchvision", "mobilenet_v2"), ("module", spec)):
        torch.manual_seed(1)
        model = build_teacher(name, kind=kind, num_classes=4, in_channels=1).eval()
        torch.save(model.state_dict(), tmp_path / f"{kind}.pt")
        teacher = load_teacher(tmp_path / f"{kind}.pt", gray, name=name, kind=kind)
        assert teacher.name == ("torchvision/mobilenet_v2" if kind == "torchvision" else spec)
        assert teacher.val_accuracy == pytest.approx(accuracy(model, gray, "val"))
        torch.testing.assert_close(teacher.model.state_dict(), model.state_dict())


def test_load_teacher_checkpoint_that_does_not_fit(gray, tmp_path, user_nets):
    from botorch_archsearch.models import build_teacher

    torch.save(build_teacher("resnet18", kind="torchvision", num_classes=4, in_channels=1).state_dict(),
               tmp_path / "r18.pt")
    with pytest.raises(ArchSearchError) as info:
        load_teacher(tmp_path / "r18.pt", gray, name="resnet34", kind="torchvision")
    assert str(info.value).startswith("load_teacher: the checkpoint does not fit torchvision/resnet34 (4 classes, 1 "
                                      "channels): missing keys ['layer1.2.bn1.bias'")
    rgb = synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=64, num_val=32, num_test=32)
    with pytest.raises(ArchSearchError, match=r"does not fit torchvision/resnet18 \(4 classes, 3 channels\): "
                                              r"size mismatch for conv1.weight"):
        load_teacher(tmp_path / "r18.pt", rgb, name="resnet18", kind="torchvision")
    with pytest.raises(ArchSearchError, match=f"does not fit {user_nets.stem}:make_net .4 classes, 1 channels.: "):
        load_teacher(tmp_path / "r18.pt", gray, name=f"{user_nets.stem}:make_net", kind="module")
    with pytest.raises(ArchSearchError, match="Unknown torchvision model: name='resnet19'"):
        load_teacher(tmp_path / "r18.pt", gray, name="resnet19", kind="torchvision")
    with pytest.raises(ArchSearchError, match="load_teacher: a checkpoint needs name="):
        load_teacher(tmp_path / "r18.pt", gray, kind="torchvision")
    with pytest.raises(ArchSearchError, match=r"load_teacher: kind must be one of \['module', 'torchvision', 'zoo'\]"):
        load_teacher(tmp_path / "r18.pt", gray, name="resnet18", kind="timm")
    with pytest.raises(ArchSearchError, match=r"trained_teacher: kind must be one of"):
        trained_teacher("resnet18", gray, kind="timm", cache_dir=tmp_path, **QUICK)


def _no_training_result(model, data, **kwargs):
    from botorch_archsearch.evaluation.finetune import TrainResult

    return TrainResult(val_accuracy=0.5, test_accuracy=0.25)
