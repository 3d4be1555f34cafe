r"""torchvision's convolutional families at reduced width and depth: trace, unedited and edited students.

Each family is built through torchvision's own classes with a small configuration (the full-size
models are covered by ``benchmarks/bench_coverage.py``): it traces; the unedited graph builds a
network equal to the teacher; sampled students (magnitude and even channel orders) build, run,
keep the output shape and have ``count_params`` equal to their module's count and no more than the
teacher's; squeeze-and-excitation gates are removable layers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch import nn

from botorch_archsearch.graph import ArchGraph, build_student, count_params, encode, trace
from botorch_archsearch.space import SearchSpace, channel_importance
from botorch_archsearch.utils.torchvision import import_torchvision

NUM_CLASSES = 10
BATCH = 2
EDITS = {"magnitude": 20, "even": 5}


def _tv_module(name: str):
    """The module ``torchvision.models.<name>`` (``torchvision.models.googlenet`` itself is the builder)."""
    import_torchvision()
    return importlib.import_module(f"torchvision.models.{name}")


def _narrow_conv_block(basic: type[nn.Module], divisor: int) -> type[nn.Module]:
    """GoogLeNet's / Inception's ``BasicConv2d`` with every channel count divided by ``divisor``
    (the image's 3 input channels kept), passed to the model and its blocks as ``conv_block``."""

    class Narrow(basic):
        def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
            super().__init__(in_channels if in_channels == 3 else in_channels // divisor, out_channels // divisor,
                             **kwargs)

    return Narrow


def _efficientnet_b() -> nn.Module:
    efficientnet = _tv_module("efficientnet")
    setting, last_channel = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=NUM_CLASSES, last_channel=last_channel)


def _efficientnet_v2() -> nn.Module:
    efficientnet = _tv_module("efficientnet")
    setting = [  # efficientnet_v2_s's stages, narrower and shallower
        efficientnet.FusedMBConvConfig(1, 3, 1, 8, 8, 1),
        efficientnet.FusedMBConvConfig(4, 3, 2, 8, 16, 2),
        efficientnet.MBConvConfig(4, 3, 2, 16, 24, 1),
        efficientnet.MBConvConfig(6, 3, 1, 24, 32, 2),
    ]
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=NUM_CLASSES, last_channel=128,
                                     norm_layer=partial(nn.BatchNorm2d, eps=1e-3))


def _mobilenet_v3() -> nn.Module:
    return import_torchvision().models.mobilenet_v3_small(width_mult=0.25, num_classes=NUM_CLASSES)


def _mobilenet_v2() -> nn.Module:
    return import_torchvision().models.MobileNetV2(num_classes=NUM_CLASSES, width_mult=0.25)


def _mnasnet() -> nn.Module:
    return import_torchvision().models.MNASNet(0.25, num_classes=NUM_CLASSES)


def _regnet(se_ratio: float | None) -> nn.Module:
    regnet = _tv_module("regnet")
    params = regnet.BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=se_ratio)
    return regnet.RegNet(params, num_classes=NUM_CLASSES, stem_width=16,
                         norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))


def _convnext() -> nn.Module:
    convnext = _tv_module("convnext")
    setting = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=NUM_CLASSES)


def _resnet() -> nn.Module:
    resnet = _tv_module("resnet")
    return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES)


def _resnext() -> nn.Module:
    resnet = _tv_module("resnet")
    return resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=NUM_CLASSES, groups=4, width_per_group=4)


def _shufflenet() -> nn.Module:
    return import_torchvision().models.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=NUM_CLASSES)


def _densenet() -> nn.Module:
    return import_torchvision().models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16,
                                                bn_size=2, num_classes=NUM_CLASSES)


def _squeezenet() -> nn.Module:
    return import_torchvision().models.SqueezeNet("1_1", num_classes=NUM_CLASSES)


def _googlenet() -> nn.Module:
    googlenet = _tv_module("googlenet")
    narrow = _narrow_conv_block(googlenet.BasicConv2d, 4)
    blocks = [narrow, partial(googlenet.Inception, conv_block=narrow), googlenet.InceptionAux]
    model = googlenet.GoogLeNet(num_classes=NUM_CLASSES, aux_logits=False, init_weights=False, blocks=blocks)
    model.fc = nn.Linear(1024 // 4, NUM_CLASSES)  # its head is sized for the full width
    return model


def _inception() -> nn.Module:
    inception = _tv_module("inception")
    narrow = _narrow_conv_block(inception.BasicConv2d, 8)
    blocks = [narrow, *(partial(block, conv_block=narrow) for block in (
        inception.InceptionA, inception.InceptionB, inception.InceptionC, inception.InceptionD, inception.InceptionE)),
        inception.InceptionAux]
    model = inception.Inception3(num_classes=NUM_CLASSES, aux_logits=False, init_weights=False,
                                 inception_blocks=blocks)
    model.fc = nn.Linear(2048 // 8, NUM_CLASSES)
    return model


# family -> (builder, input side, whether it has squeeze-and-excitation gates)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], int, bool]] = {
    "efficientnet_b": (_efficientnet_b, 64, True),
    "efficientnet_v2": (_efficientnet_v2, 64, True),
    "mobilenet_v3": (_mobilenet_v3, 64, True),
    "mobilenet_v2": (_mobilenet_v2, 64, False),
    "mnasnet": (_mnasnet, 64, False),
    "regnet_y": (partial(_regnet, 0.25), 64, True),
    "regnet_x": (partial(_regnet, None), 64, False),
    "convnext": (_convnext, 64, False),
    "resnet": (_resnet, 64, False),
    "resnext": (_resnext, 64, False),
    "shufflenet_v2": (_shufflenet, 64, False),
    "densenet": (_densenet, 64, False),
    "squeezenet": (_squeezenet, 64, False),
    "googlenet": (_googlenet, 64, False),
    "inception_v3": (_inception, 75, False),  # its stem and reductions need 75 x 75 or more
}


@functools.cache
def _teacher(family: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, ArchGraph]:
    """The family's small model (eval mode, norm statistics, affines and layer scales randomised so
    that an unedited student equal to it is a real check), an input, its output and its graph."""
    build, side, _ = FAMILIES[family]
    torch.manual_seed(0)
    model = build().eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.rand(m.num_features, generator=generator) - 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=generator))
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(0.2 * torch.rand(m.bias.shape, generator=generator) - 0.1)
            if isinstance(getattr(m, "layer_scale", None), nn.Parameter):  # ConvNeXt's: 1e-6 would hide its blocks
                m.layer_scale.copy_(0.5 + torch.rand(m.layer_scale.shape, generator=generator))
    x = torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)
    return model, x, y, trace(model, x)


def _close(out: torch.Tensor, y: torch.Tensor) -> bool:
    return out.shape == y.shape and (out - y).abs().max().item() <= 1e-4 * (1 + y.abs().max().item())


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_unedited_student_equals_the_teacher(family):
    model, x, y, graph = _teacher(family)
    student = build_student(graph, model).eval()
    with torch.no_grad():
        out = student(x)
    assert _close(out, y), (out - y).abs().max().item()
    assert count_params(graph) == _num_params(student) == _num_params(model)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sampled_students_build_run_and_are_counted(family):
    model, x, y, graph = _teacher(family)
    importance = channel_importance(graph, model)
    teacher_params = count_params(graph)
    for order, n in EDITS.items():
        space = SearchSpace(graph, channel_importance=importance, channel_order=order)
        assert space.num_groups > 0 and space.removable and space.skip_candidates
        for i, edit in enumerate(space.sample(n, generator=torch.Generator().manual_seed(3))):
            edited = space.student(edit)
            student_graph = edited.graph
            student = build_student(edited, model).eval()
            with torch.no_grad():
                out = student(x)
            assert out.shape == y.shape, (order, i)
            assert count_params(student_graph) == _num_params(student) <= teacher_params, (order, i)


@pytest.mark.parametrize("family", [f for f, (_, _, se) in FAMILIES.items() if se])
def test_squeeze_excitation_gates_are_removable(family):
    model, _, _, graph = _teacher(family)
    gates = [j for j, node in enumerate(graph.nodes) if node.op == "mul"]
    se_modules = sum(type(m).__name__ == "SqueezeExcitation" for m in model.modules())
    assert se_modules > 0 and len(gates) == se_modules
    removable = set(SearchSpace(graph).removable)
    assert all(j in removable for j in gates)


@pytest.mark.parametrize("family", ["efficientnet_b", "mobilenet_v3", "regnet_y", "convnext"])
def test_thousands_of_applied_edits_keep_gates_in_step_and_encode(family):
    # DESIGN.md, "Promises": property tests sample thousands of edits. Applying, counting and
    # encoding is cheap; building is covered above on fewer edits.
    model, _, _, graph = _teacher(family)
    space = SearchSpace(graph, channel_importance=channel_importance(graph, model), channel_order="magnitude")
    teacher_params = count_params(graph)
    students = [space.apply(e) for e in space.sample(1000, generator=torch.Generator().manual_seed(4))]
    X = encode(students, max_layers=graph.num_layers)
    assert X.shape[0] == 1000 and torch.isfinite(X).all()
    removed_gates = 0
    for student in students:
        nodes = student.nodes
        assert count_params(student) <= teacher_params
        assert nodes[-1].out_shape == graph.nodes[-1].out_shape
        for node in nodes:
            if node.op == "mul":  # a kept gate: the gate's channels follow the gated map's
                x, gate = (nodes[i] for i in node.inputs)
                assert gate.out_channels == x.out_channels == node.out_channels
        # A removed gate takes its branch with it: no layer is left that does not reach the output.
        consumers = student.consumers()
        assert all(consumers[j] for j in range(len(nodes) - 1))
        removed_gates += sum(n.op == "mul" for n in graph.nodes) - sum(n.op == "mul" for n in nodes)
    if family != "convnext":  # ConvNeXt has layer scales, no gates
        assert removed_gates > 0
