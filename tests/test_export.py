r"""Tests of botorch_archsearch/export.py: BatchNorm folding against the unfolded network, ONNX
(onnxruntime) and TorchScript exports of every zoo teacher's random students against PyTorch, and
the command line."""

from __future__ import annotations

import functools
import sys

import onnx
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.export import (
    EXPORT_FILES,
    export_student,
    fold_batchnorm,
    main,
    student_dirs,
)
from botorch_archsearch.graph import build_student, save_student, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

ZOO = ["resnet18", "resnet34", "vgg19", "mobilenetv2", "shufflenet"]


@functools.cache
def _teacher(name: str):
    """A zoo teacher (width 0.125) with BatchNorm statistics and affine parameters far from their
    initial values, so that folding them changes the convolutions."""
    torch.manual_seed(0)
    model = get_teacher(name, num_classes=10, width=0.125).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(0.3 * torch.randn(c))
            module.running_var.copy_(0.5 + torch.rand(c))
            module.weight.data.copy_(1 + 0.3 * torch.randn(c))
            module.bias.data.copy_(0.2 * torch.randn(c))
    return model, SearchSpace(trace(model, torch.randn(1, 3, 32, 32)))


def _student(name: str, seed: int = 0, teacher: bool = False):
    model, space = _teacher(name)
    if teacher:
        return build_student(space.graph, model).eval()
    edit = space.sample(1, generator=torch.Generator().manual_seed(seed))[0]
    return build_student(space.student(edit), model).eval()


def _foldable(student) -> list[int]:
    """Brute force: the BatchNorm layers whose one input is a plain convolution used by nothing else."""
    nodes = student.graph.nodes
    users = [sum(list(n.inputs).count(i) for n in nodes) for i in range(len(nodes))]
    return [k for k, n in enumerate(nodes) if n.op == "batchnorm" and len(n.inputs) == 1
            and type(student.layers[n.inputs[0]]) is nn.Conv2d and users[n.inputs[0]] == 1]


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_folding_batchnorm_keeps_the_outputs_and_removes_its_parameters(name):
    student = _student(name, teacher=True)
    folded, count = fold_batchnorm(student)
    expected = _foldable(student)
    assert count == len(expected) > 0
    assert all(isinstance(folded.layers[k], nn.Identity) for k in expected)
    assert all(isinstance(student.layers[k], nn.BatchNorm2d) for k in expected)  # the original is untouched
    # each fold drops the BatchNorm's weight and bias (2 C) and gives a bias-free convolution a bias (C)
    change = sum(student.layers[k].num_features * (2 - (student.layers[student.graph.nodes[k].inputs[0]].bias is None))
                 for k in expected)
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in student.parameters()) - change
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), student(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # an ONNX export per zoo teacher (5-10 s each)
@pytest.mark.parametrize("name", ZOO)
def test_the_onnx_export_of_random_students_matches_pytorch(tmp_path, name):
    student = _student(name, seed=3)
    save_student(student, tmp_path / "s")
    result = export_student(tmp_path / "s", "onnx")
    assert result.path == tmp_path / "s" / EXPORT_FILES["onnx"] and result.file_bytes == result.path.stat().st_size
    assert result.max_abs_error <= 1e-4 * max(1.0, result.max_abs_output)  # checked on a batch of 2
    _, folded = fold_batchnorm(student)
    assert result.folded == folded and result.student_params == sum(p.numel() for p in student.parameters())
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)
    ops = [node.op_type for node in model.graph.node]
    batchnorms = sum(n.op == "batchnorm" for n in student.graph.nodes)
    assert ops.count("BatchNormalization") <= batchnorms - folded
    # the batch dimension is dynamic: the file says so, and onnxruntime ran it on a batch of 2 above
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value


def test_torchscript_export_matches_pytorch_and_folding_is_optional(tmp_path):
    student = _student("resnet18", seed=5)
    save_student(student, tmp_path / "s")
    result = export_student(tmp_path / "s", "torchscript", tmp_path / "net.pt")
    assert result.path == tmp_path / "net.pt" and result.folded == fold_batchnorm(student)[1]
    module = torch.jit.load(str(result.path))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), student(x), rtol=1e-4, atol=1e-5)
    unfolded = export_student(tmp_path / "s", "torchscript", tmp_path / "raw.pt", fold_bn=False)
    assert unfolded.folded == 0 and unfolded.params == unfolded.student_params >= result.params


def test_the_command_exports_every_best_student_of_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    for method, seed in (("esnac-1", 0), ("random-1", 1)):
        save_student(_student("resnet18", seed=seed), run / "best" / method)
    assert student_dirs(run) == [run / "best" / "esnac-1", run / "best" / "random-1"]
    assert student_dirs(run / "best" / "esnac-1") == [run / "best" / "esnac-1"]
    assert main([str(run), "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert out.count("| esnac-1 |") == 1 and out.count("| random-1 |") == 1
    assert (run / "best" / "esnac-1" / "student.pt").is_file() and (run / "best" / "random-1" / "student.pt").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{tmp}", "--format", "tflite"], "--format must be one of ['onnx', 'torchscript'], got 'tflite'"),
        (["{tmp}"], "is neither a student directory (graph.json and state_dict.pt) nor a run directory"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_status_2(tmp_path, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_onnx_runtime_is_one_clear_error(tmp_path, monkeypatch):
    save_student(_student("vgg19"), tmp_path / "s")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ArchSearchError, match=r"needs the 'onnxscript' package: pip install 'botorch-archsearch\[export\]'"):
        export_student(tmp_path / "s", "onnx")
    with pytest.raises(ArchSearchError, match="format must be one of"):
        export_student(tmp_path / "s", "tflite")
