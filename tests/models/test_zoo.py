r"""Tests of the CIFAR teacher zoo (botorch_archsearch/models)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import botorch_archsearch.models as zoo
from botorch_archsearch.models import (
    TEACHER_NAMES,
    VGG,
    MobileNetV2,
    ResNet,
    ShuffleNet,
    get_teacher,
    mobilenetv2,
    resnet18,
    resnet34,
    shufflenet,
    vgg19,
)

TINY = 0.125
# VGG-19 halves its input five times, so it needs at least 32x32.
SMALL_INPUT_OK = ("mobilenetv2", "resnet18", "resnet34", "shufflenet")
ALLOWED_MODULES = (
    nn.AdaptiveAvgPool2d,
    nn.AvgPool2d,
    nn.BatchNorm2d,
    nn.Conv2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    nn.Linear,
    nn.MaxPool2d,
    nn.ReLU,
    nn.ReLU6,
)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _images(batch_size: int, in_channels: int, size: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, in_channels, size, size, generator=generator, dtype=dtype)


def test_teacher_names_and_exports():
    assert TEACHER_NAMES == ("mobilenetv2", "resnet18", "resnet34", "shufflenet", "vgg19")
    assert list(zoo.__all__) == sorted(zoo.__all__)
    for name in zoo.__all__:
        assert hasattr(zoo, name)
    expected = {
        "mobilenetv2": MobileNetV2,
        "resnet18": ResNet,
        "resnet34": ResNet,
        "shufflenet": ShuffleNet,
        "vgg19": VGG,
    }
    for name in TEACHER_NAMES:
        assert type(get_teacher(name, width=TINY)) is expected[name]


# Table 1 of the ESNAC paper (ICLR 2019), in millions of parameters, 10 / 100 classes.
@pytest.mark.parametrize(
    "constructor, target_10, target_100, rel_tol",
    [
        (vgg19, 20.04, 20.09, 0.02),
        (resnet18, 11.17, 11.22, 0.02),
        (resnet34, 21.28, 21.33, 0.02),
        (shufflenet, 0.99, 1.06, 0.10),
    ],
)
def test_param_counts_match_paper(constructor, target_10, target_100, rel_tol):
    for num_classes, target in ((10, target_10), (100, target_100)):
        count = _num_params(constructor(num_classes=num_classes)) / 1e6
        assert math.isclose(count, target, rel_tol=rel_tol), (constructor.__name__, count)


@pytest.mark.parametrize(
    "constructor, count_10",
    [
        # Convolutions before BatchNorm have no bias, hence 5,504 fewer than pytorch-cifar's.
        (vgg19, 20_035_018),
        (resnet18, 11_173_962),
        (resnet34, 21_282_122),
        # pytorch-cifar's ShuffleNet g=2 (887,582) plus the three grouped 1x1 shortcut
        # convolutions of ESNAC appendix 6.4: 24 * 24 / 2 + 200 * 200 / 2 + 400 * 400 / 2.
        (shufflenet, 887_582 + 100_288),
        (mobilenetv2, 2_236_682),
    ],
)
def test_param_counts_exact(constructor, count_10):
    assert _num_params(constructor()) == count_10
    # Only the classifier grows with the classes: 90 more rows of weights and bias.
    model = constructor(num_classes=100)
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert _num_params(model) == count_10 + 90 * (classifier.in_features + 1)


def test_mobilenetv2_size():
    # No paper target: about 2.2-2.3M parameters for the CIFAR network without conv shortcuts.
    assert 2.2e6 <= _num_params(mobilenetv2()) <= 2.3e6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_forward_tiny(name, in_channels, dtype):
    model = get_teacher(name, num_classes=7, in_channels=in_channels, width=TINY)
    model = model.to(dtype).eval()
    sizes = (32, 16) if name in SMALL_INPUT_OK else (32,)
    with torch.no_grad():
        for size in sizes:
            out = model(_images(2, in_channels, size, dtype))
            assert out.shape == (2, 7)
            assert out.dtype == dtype
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("width", [0.01, 0.0625, 0.3])
@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_other_widths(name, width):
    model = get_teacher(name, num_classes=3, width=width).eval()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.in_channels % m.groups == 0 and m.out_channels % m.groups == 0
    with torch.no_grad():
        out = model(_images(2, 3, 32, torch.float32))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    assert _num_params(model) < _num_params(get_teacher(name, num_classes=3, width=0.5))


def test_train_mode_backward():
    for name in TEACHER_NAMES:
        model = get_teacher(name, width=TINY).train()
        loss = model(_images(2, 3, 32, torch.float32)).square().mean()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_symbolic_trace(name):
    model = get_teacher(name, num_classes=7, width=TINY).eval()
    traced = torch.fx.symbolic_trace(model)
    X = _images(2, 3, 32, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(traced(X), model(X), rtol=0, atol=0)
    methods = {node.target for node in traced.graph.nodes if node.op == "call_method"}
    if name == "shufflenet":
        # The channel shuffle is traced as functional ops, not hidden in a module.
        assert {"size", "view", "transpose", "reshape"} <= methods
    else:
        assert not methods


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_modules_are_plain(name):
    model = get_teacher(name, width=TINY)
    for m in model.modules():
        if len(list(m.children())) == 0:
            assert isinstance(m, ALLOWED_MODULES), type(m)
        assert not getattr(m, "inplace", False), m
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            pytest.fail(f"{name} has a convolution with bias: {m}")


def test_shufflenet_shortcut_convs():
    # ESNAC appendix 6.4: a 1x1 convolution before each of the three shortcut average pools.
    model = shufflenet()
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 3
    shortcuts = [unit.shortcut for stage in model.stages for unit in stage]
    shortcuts = [s for s in shortcuts if s is not None]
    assert [(s[0].in_channels, s[0].out_channels, s[0].groups) for s in shortcuts] == [
        (24, 24, 2),
        (200, 200, 2),
        (400, 400, 2),
    ]
    assert all(isinstance(s[1], nn.AvgPool2d) for s in shortcuts)


def test_get_teacher_unknown_name():
    for name in ("resnet50", "VGG19", "", None):
        with pytest.raises(ValueError, match="mobilenetv2, resnet18, resnet34, shufflenet, vgg19"):
            get_teacher(name)


@pytest.mark.parametrize("width", [0, -0.5, float("nan"), float("inf"), "1", True, None])
def test_bad_width(width):
    for name in TEACHER_NAMES:
        with pytest.raises(ValueError, match=r"width must be a finite number > 0, got "):
            get_teacher(name, width=width)


@pytest.mark.parametrize("arg_name", ["num_classes", "in_channels"])
@pytest.mark.parametrize("value", [0, -1, 2.0, True])
def test_bad_num_classes_and_in_channels(arg_name, value):
    for name in TEACHER_NAMES:
        with pytest.raises(ValueError, match=rf"{arg_name} must be an integer >= 1, got {value!r}"):
            get_teacher(name, **{arg_name: value})
