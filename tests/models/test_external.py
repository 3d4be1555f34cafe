r"""Tests of botorch_archsearch/models/external.py: torchvision models by name, a user's module."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models import (
    TEACHER_KINDS,
    build_teacher,
    get_module_model,
    get_teacher,
    get_torchvision_model,
    load_function,
    teacher_label,
    torchvision_model_names,
)
from botorch_archsearch.utils.torchvision import import_torchvision

NETS = '''
from torch import nn

CONSTANT = 3

def make_net(num_classes, in_channels=3):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))

def classes_only(num_classes):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

def with_kwargs(**kwargs):
    make_net.seen = kwargs
    return make_net(**kwargs)

class Net(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.body = make_net(num_classes, in_channels)

    def forward(self, x):
        return self.body(x)

class Factory:
    @staticmethod
    def build(num_classes, in_channels):
        return Net(num_classes, in_channels)

def no_classes(depth=3):
    return make_net(10)

def raises(num_classes, in_channels):
    raise ValueError("depth must be even\\nsecond line")

def returns_a_dict(num_classes, in_channels):
    return {"num_classes": num_classes}
'''


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """A user's module ``usernets_<test>`` in a temporary directory on ``sys.path``; its name."""
    name = f"usernets_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(NETS)
    (tmp_path / "brokennets.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in (name, "brokennets"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0", "shufflenet_v2_x0_5"])
def test_torchvision_model_sized_for_a_grayscale_dataset(name):
    torch.manual_seed(0)
    reference = import_torchvision().models.get_model(name, weights=None, num_classes=7)
    model = get_torchvision_model(name, num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    state, expected = model.state_dict(), reference.state_dict()
    assert list(state) == list(expected)  # the same keys: checkpoints and the cache stay compatible
    first = next(k for k, v in expected.items() if v.dim() == 4)
    assert state[first].shape == (expected[first].shape[0], 1, *expected[first].shape[2:])
    for key in expected:
        if key != first:
            assert state[key].shape == expected[key].shape, key
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    old = next(m for m in reference.modules() if isinstance(m, nn.Conv2d))
    assert (conv.kernel_size, conv.stride, conv.padding, conv.out_channels, conv.bias is None) == \
        (old.kernel_size, old.stride, old.padding, old.out_channels, old.bias is None)


def test_torchvision_model_with_rgb_input_is_torchvision_s_own():
    torch.manual_seed(0)
    model = get_torchvision_model("resnet18", num_classes=5)
    torch.manual_seed(0)
    reference = import_torchvision().models.resnet18(num_classes=5)
    for (key, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=key)


def test_torchvision_names_are_the_classification_models():
    names = torchvision_model_names()
    assert {"resnet18", "mobilenet_v2", "efficientnet_b0", "vgg11_bn"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names and "deeplabv3_resnet50" not in names  # not classifiers
    assert list(names) == sorted(names)


def test_unknown_torchvision_name_lists_the_accepted_ones():
    with pytest.raises(ArchSearchError) as info:
        get_torchvision_model("efficientnet_b9", num_classes=10)
    message = str(info.value)
    assert message.startswith("Unknown torchvision model: name='efficientnet_b9' (did you mean efficientnet_b")
    assert "alexnet, convnext_base" in message and "resnet18" in message and "\n" not in message
    with pytest.raises(ArchSearchError, match="fasterrcnn_resnet50_fpn"):  # detection models are not accepted
        get_torchvision_model("fasterrcnn_resnet50_fpn", num_classes=10)


def test_a_model_without_a_three_channel_convolution_cannot_take_other_channels(monkeypatch):
    models = import_torchvision().models
    monkeypatch.setattr(models, "get_model", lambda *args, **kwargs: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(ArchSearchError, match="torchvision model 'resnet18' has no nn.Conv2d with 3 input channels"):
        get_torchvision_model("resnet18", num_classes=2, in_channels=1)


def test_user_module_gets_the_dataset_size(nets):
    model = get_module_model(f"{nets}:make_net", num_classes=4, in_channels=1)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert isinstance(get_module_model(f"{nets}:Net", num_classes=3, in_channels=2), nn.Module)  # a class
    assert get_module_model(f"{nets}:Factory.build", num_classes=3, in_channels=2)(torch.randn(1, 2, 8, 8)).shape \
        == (1, 3)
    get_module_model(f"{nets}:with_kwargs", num_classes=6, in_channels=2)
    assert sys.modules[nets].make_net.seen == {"num_classes": 6, "in_channels": 2}
    model = get_module_model(f"{nets}:classes_only", num_classes=4, in_channels=1)  # no in_channels: not passed
    assert model[0].in_channels == 3 and model[-1].out_features == 4


@pytest.mark.parametrize(
    "attribute, message",
    [
        ("no_classes", ("it must accept num_classes= (it is called as function(num_classes=..., in_channels=...), "
                        "in_channels optional); its signature is no_classes(depth=3).")),
        ("raises", "raises(num_classes=4, in_channels=1) raised ValueError: depth must be even."),
        ("returns_a_dict", "returns_a_dict(num_classes=4, in_channels=1) returned a dict, not an nn.Module."),
        ("missing", ("'{nets}' has no attribute 'missing'; its functions and classes: Factory, Net, classes_only, "
                     "make_net, no_classes, raises, returns_a_dict, with_kwargs.")),
        ("Factory.make", "'{nets}.Factory' has no attribute 'make'; its functions and classes: build."),
        ("CONSTANT", "'CONSTANT' is not a function or class (it is of type int)"),
    ],
)
def test_user_module_errors_are_one_line_naming_it(nets, attribute, message):
    spec = f"{nets}:{attribute}"
    with pytest.raises(ArchSearchError) as info:
        get_module_model(spec, num_classes=4, in_channels=1)
    text = str(info.value)
    assert text.startswith(f"teacher.module={spec!r}: {message.format(nets=nets)}"), text
    assert "\n" not in text


@pytest.mark.parametrize("spec", ["usernets", "usernets.make_net", "a.b:", ":make_net", "a b:c", "a:b:c", "1a:b", 3])
def test_module_string_must_be_package_module_colon_function(spec):
    with pytest.raises(ArchSearchError) as info:
        load_function(spec)
    assert str(info.value).startswith(f"teacher.module={spec!r}: expected 'package.module:function'")


def test_module_that_cannot_be_imported(nets):
    with pytest.raises(ArchSearchError) as info:
        load_function("no_such_package.nets:make_net")
    message = str(info.value)
    assert message.startswith("teacher.module='no_such_package.nets:make_net': no module named 'no_such_package' "
                              "on the Python path")
    assert "no_such_package.py or its package folder" in message
    with pytest.raises(ArchSearchError) as info:  # found, but importing it fails
        load_function("brokennets:make_net")
    assert str(info.value) == ("teacher.module='brokennets:make_net': importing 'brokennets' failed "
                               "(ModuleNotFoundError: No module named 'a_package_that_is_not_installed').")


def test_build_teacher_dispatches_on_kind(nets):
    assert set(TEACHER_KINDS) == {"zoo", "torchvision", "module"}
    torch.manual_seed(0)
    zoo = build_teacher("resnet18", num_classes=3, width=0.125)
    torch.manual_seed(0)
    torch.testing.assert_close(zoo.state_dict(), get_teacher("resnet18", num_classes=3, width=0.125).state_dict())
    assert type(build_teacher("resnet18", kind="torchvision", num_classes=3)).__module__ == "torchvision.models.resnet"
    assert isinstance(build_teacher(f"{nets}:Net", kind="module", num_classes=3), sys.modules[nets].Net)
    with pytest.raises(ArchSearchError, match="Unknown teacher kind: kind='timm'. Accepted kinds are module, "):
        build_teacher("resnet18", kind="timm", num_classes=3)
    assert teacher_label("resnet18", "torchvision") == "torchvision/resnet18"
    assert teacher_label("nets:make_net", "module") == teacher_label("nets:make_net") == "nets:make_net"
