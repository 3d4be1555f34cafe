r"""Tests of botorch_archsearch/evaluation/numerics.py (the numerics guard).

CI runs this file a second time under ``ONEDNN_MAX_CPU_ISA=AVX2`` (``.ci/run``), where oneDNN's
channels-last 1x1 stride-2 convolutions with 2-7 input channels compute wrong weight gradients
(and corrupt memory); these tests then check that the evaluator does not train on them.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from botorch_archsearch.evaluation.data import synthetic_dataset
from botorch_archsearch.evaluation.distill import evaluate_students
from botorch_archsearch.evaluation import numerics
from botorch_archsearch.evaluation.numerics import (
    CANARY_FAMILIES,
    ConvConfig,
    check_conv,
    clear_cache,
    conv_configs,
    conv_family,
    training_memory_format,
)
from botorch_archsearch.models import TEACHER_NAMES, get_teacher

# (in, out, H): the shortcut convolutions of shrunk ResNet students that oneDNN's AVX2 path got
# wrong (relative weight-gradient errors 1.45, 0.84, 0.16, 0.06), and two it got right.
SHORTCUTS = [(2, 4, 8), (5, 10, 16), (3, 16, 8), (6, 12, 8), (8, 16, 8), (1, 4, 8)]


class _Shortcut(nn.Module):
    """A residual downsampling block around the 1x1 stride-2 convolution, then a classifier."""

    def __init__(self, c_in: int, c_out: int, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c_in, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.head = nn.Linear(c_out, classes)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(torch.relu(self.bn(self.shortcut(h))).mean((2, 3)))


def _gradients(model: nn.Module, x: torch.Tensor, memory_format: torch.memory_format, dtype: torch.dtype):
    model = model.to(dtype).to(memory_format=memory_format)
    model.zero_grad(set_to_none=True)
    model(x.to(dtype).contiguous(memory_format=memory_format)).square().mean().backward()
    return {name: p.grad.detach().to(torch.float64).clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("c_in, c_out, size", SHORTCUTS)
def test_the_layout_the_evaluator_trains_in_computes_the_float64_gradients(c_in, c_out, size):
    torch.manual_seed(c_in)
    model = _Shortcut(c_in, c_out)
    x = torch.randn(64, 3, size, size)
    chosen = training_memory_format(model, x, [64])
    reference = _gradients(_copy(model), x, torch.contiguous_format, torch.float64)
    grads = _gradients(_copy(model), x, chosen, torch.float32)
    for name, g in grads.items():
        # float32 against float64: sums of 64 x H x W terms that nearly cancel behind the batch
        # norm reach 1e-4 of the largest gradient; a wrong kernel is off by 0.06-1.45
        scale = reference[name].abs().max()
        assert (g - reference[name]).abs().max() <= 1e-3 * scale, (name, chosen)


def test_students_train_as_in_the_contiguous_layout():
    """End to end: the default (guarded) path trains these students as the contiguous one does."""
    data = synthetic_dataset(num_classes=3, in_channels=3, image_size=16, num_train=256, num_val=64, num_test=64)
    torch.manual_seed(0)
    teacher = _Shortcut(8, 16).eval()
    students = [_Shortcut(c, 2 * c) for c in (2, 3, 5, 7)]
    options = dict(epochs=2, batch_size=64, max_batches=4, progress=False, seed=1)
    guarded = evaluate_students(teacher, [_copy(s) for s in students], data, **options)
    contiguous = evaluate_students(teacher, [_copy(s) for s in students], data, channels_last=False, **options)
    for a, b in zip(guarded, contiguous):
        assert a.ok and b.ok
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-3, atol=1e-5)
        for name, value in a.state_dict.items():
            if value.is_floating_point():
                torch.testing.assert_close(value, b.state_dict[name], rtol=1e-3, atol=1e-4, msg=name)


def test_conv_configs_lists_each_convolution_at_each_batch_size():
    model = _Shortcut(4, 8)
    configs = conv_configs(model, torch.randn(5, 3, 12, 12), [64, 7])
    assert {(c.in_channels, c.out_channels, c.input_shape) for c in configs} == {
        (3, 4, (64, 3, 12, 12)), (3, 4, (7, 3, 12, 12)), (4, 8, (64, 4, 12, 12)), (4, 8, (7, 4, 12, 12)),
    }
    shortcut = next(c for c in configs if c.in_channels == 4 and c.input_shape[0] == 64)
    assert shortcut.kernel_size == (1, 1) and shortcut.stride == (2, 2) and not shortcut.bias
    assert shortcut.dtype == "float32" and shortcut.device == "cpu"
    assert model.training  # its mode is restored


def test_a_check_that_kills_the_probe_is_a_failed_check_and_the_probe_restarts():
    clear_cache()
    # A configuration the probe cannot run (negative channels) ends its process.
    bad = ConvConfig(-1, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1, False, (2, -1, 4, 4), "float32", "cpu")
    verdict = check_conv(bad)
    assert not verdict.ok and "killed its probe process" in verdict.reason and "exit code" in verdict.reason
    assert check_conv(bad) is verdict  # cached
    good = ConvConfig(3, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, (8, 3, 8, 8), "float32", "cpu")
    assert check_conv(good).reason is None  # a new probe answered


def test_channels_last_false_is_contiguous_without_any_check():
    clear_cache()
    model = _Shortcut(2, 4)
    assert training_memory_format(model, torch.randn(1, 3, 8, 8), [64], channels_last=False) == torch.contiguous_format


def test_a_network_that_cannot_run_trains_contiguous_and_fails_in_training():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(5, 4, 3)  # wrong number of input channels

        def forward(self, x):
            return self.conv(x).mean((2, 3))

    assert training_memory_format(Broken(), torch.randn(1, 3, 8, 8), [64]) == torch.contiguous_format


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="oneDNN's ISA cap is for x86 CPUs")
def test_the_canary_fails_where_the_avx2_path_computes_wrong_gradients():
    """Under ONEDNN_MAX_CPU_ISA=AVX2 either the canary fails, or the convolutions it stands for
    compute the right gradients on this machine."""
    code = (
        "import torch\n"
        "from botorch_archsearch.evaluation.numerics import family_ok, machine_ok, _run_check, ConvConfig\n"
        "if family_ok(((1, 1), (2, 2), (0, 0), (1, 1), 'dense')):\n"
        "    for c in range(2, 8):\n"
        "        v = _run_check(ConvConfig(c, 2 * c, (1, 1), (2, 2), (0, 0), (1, 1), 1, False, (64, c, 8, 8),"
        " 'float32', 'cpu'))\n"
        "        assert v.error < 1e-4, (c, v)\n"
        "print('canary', machine_ok())\n"
    )
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "canary" in out.stdout


def test_the_canary_covers_every_convolution_of_the_zoo():
    """So that zoo students need no per-configuration check (the guard then costs nothing per step)."""
    for name in TEACHER_NAMES:
        teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125)
        families = {conv_family(m) for m in teacher.modules() if isinstance(m, nn.Conv2d)}
        assert families <= set(CANARY_FAMILIES), (name, families - set(CANARY_FAMILIES))


def test_conv_family_names_the_kind():
    assert conv_family(nn.Conv2d(4, 8, 1, stride=2)) == ((1, 1), (2, 2), (0, 0), (1, 1), "dense")
    assert conv_family(nn.Conv2d(8, 8, 3, padding=1, groups=8))[-1] == "depthwise"
    assert conv_family(nn.Conv2d(8, 4, 1, groups=2))[-1] == "grouped"


def test_a_convolution_outside_the_canary_is_checked_by_its_configuration():
    clear_cache()
    model = nn.Sequential(nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
    assert conv_family(model[0]) not in CANARY_FAMILIES and conv_family(model[2]) in CANARY_FAMILIES
    chosen = training_memory_format(model, torch.randn(1, 3, 8, 8), [32])
    checked = list(numerics._cache)
    assert [(c.kernel_size, c.input_shape) for c in checked] == [((5, 5), (32, 3, 8, 8))]  # only the 5x5
    assert (chosen == torch.channels_last) == (
        numerics._cache[checked[0]].ok and numerics.family_ok(conv_family(model[2])))


def _copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
