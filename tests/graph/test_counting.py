r"""Tests of botorch_archsearch/graph/counting.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from botorch_archsearch.graph import count_flops, count_params, trace


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_count_params_of_every_teacher(teacher_name, traced, all_teachers):
    module, _ = all_teachers[teacher_name]
    assert count_params(traced[teacher_name]) == _num_params(module)


def test_count_flops_of_every_teacher_matches_torch_flop_counter(teacher_name, traced, all_teachers):
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate of convolutions and matmuls, for the
    # whole batch; count_flops counts MACs for one sample.
    module, x = all_teachers[teacher_name]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    assert 2 * x.shape[0] * count_flops(traced[teacher_name]) == counter.get_total_flops()


@pytest.mark.parametrize(
    "in_channels, out_channels, kernel, stride, padding, groups, bias, size",
    [
        (3, 8, 3, 1, 1, 1, True, (8, 8)),
        (3, 8, 3, 2, 0, 1, False, (9, 9)),
        (8, 16, (3, 5), (2, 1), (1, 2), 4, False, (9, 11)),
        (8, 8, 3, 2, 1, 8, True, (7, 6)),  # depthwise
        (6, 4, 1, 1, 0, 2, True, (5, 5)),
    ],
)
def test_single_conv(in_channels, out_channels, kernel, stride, padding, groups, bias, size):
    conv = nn.Conv2d(
        in_channels, out_channels, kernel, stride=stride, padding=padding, groups=groups, bias=bias
    )
    graph = trace(nn.Sequential(conv), torch.zeros(1, in_channels, *size))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    h_out = (size[0] + 2 * ph - kh) // sh + 1
    w_out = (size[1] + 2 * pw - kw) // sw + 1
    assert graph.output_shape == (out_channels, h_out, w_out)
    macs = h_out * w_out * out_channels * (in_channels // groups) * kh * kw
    assert count_flops(graph) == macs
    params = out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)
    assert count_params(graph) == params == _num_params(conv)


@pytest.mark.parametrize("bias", [True, False])
def test_single_linear(bias):
    linear = nn.Linear(24, 7, bias=bias)
    graph = trace(nn.Sequential(nn.Flatten(), linear), torch.zeros(2, 6, 2, 2))
    assert count_flops(graph) == 24 * 7
    assert count_params(graph) == 24 * 7 + (7 if bias else 0) == _num_params(linear)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_and_parameter_free_layers(affine):
    net = nn.Sequential(
        nn.BatchNorm2d(5, affine=affine), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    graph = trace(net, torch.zeros(1, 5, 4, 4))
    assert count_params(graph) == (10 if affine else 0) == _num_params(net)
    assert count_flops(graph) == 0


def test_counts_add_up_over_a_network():
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),  # 6*3*9 = 162 params, 162 * 64 MACs
        nn.BatchNorm2d(6),  # 12 params
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=3),  # 6*2*9 + 6 = 114 params, 108 * 16 MACs
        nn.Flatten(),
        nn.Linear(96, 5),  # 485 params, 480 MACs
    )
    graph = trace(net, torch.zeros(1, 3, 8, 8))
    assert count_params(graph) == 162 + 12 + 114 + 485 == _num_params(net)
    assert count_flops(graph) == 162 * 64 + 108 * 16 + 480
    assert count_flops(graph) == math.prod((6, 8, 8, 3, 9)) + math.prod((6, 4, 4, 2, 9)) + 96 * 5
