r"""Export students for deployment: ONNX or TorchScript, each export checked against PyTorch.

A student directory (``best/<method>-<rank>`` of a run, written by
:func:`~botorch_archsearch.graph.save_student`) becomes one file: ``student.onnx`` (ONNX, through
``torch.onnx.export``'s ``torch.export``-based exporter, opset 18, with a dynamic batch dimension)
or ``student.pt`` (TorchScript, traced). Before export, every BatchNorm whose only input is a
convolution used by nothing else is folded into that convolution
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), so the exported network has no BatchNorm there and
fewer parameters. Each exported file is run on random input (a batch of 2; ONNX with
onnxruntime's CPU provider) and compared with the student in PyTorch, unfolded, in float32.

Command line::

    python -m botorch_archsearch.export <run dir or student dir> [--format onnx|torchscript]

exports every student under ``<run dir>/best/`` (or the one student directory given), next to its
weights, and prints a table of the files, their sizes, parameter counts and largest differences.
A bad argument is one line on stderr and exit status 2.

ONNX needs the ``export`` extra (``pip install 'botorch-archsearch[export]'``: ``onnx``,
``onnxscript`` and ``onnxruntime``); TorchScript needs nothing more.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.build import StudentNet, load_student
from botorch_archsearch.utils.validation import check_choice

EXPORT_FORMATS = ("onnx", "torchscript")
"""The formats of :func:`export_student`."""

EXPORT_FILES = {"onnx": "student.onnx", "torchscript": "student.pt"}
"""The file each format writes in the student's directory (unless ``output`` is given)."""

CHECK_BATCH = 2
"""The batch of random images each export is checked on (not the batch it was traced with, so a
batch dimension frozen into the file is found)."""

RTOL, ATOL = 1e-4, 1e-4
"""The check's tolerance, relative to the largest output magnitude: float32 arithmetic in another
order (folded BatchNorm, another runtime's kernels) differs by about 1e-6 relative per layer."""


@dataclass(frozen=True)
class ExportResult:
    r"""One exported student.

    Attributes:
        path: The written file.
        format: ``"onnx"`` or ``"torchscript"``.
        file_bytes: The file's size.
        params: Parameters of the exported network (BatchNorm folded).
        student_params: Parameters of the student as trained.
        folded: BatchNorm layers folded into the convolution before them.
        max_abs_error: The largest absolute difference between the exported network's outputs
            and the student's in PyTorch, on :data:`CHECK_BATCH` random images.
        max_abs_output: The largest absolute output of the student on those images.
    """

    path: Path
    format: str
    file_bytes: int
    params: int
    student_params: int
    folded: int
    max_abs_error: float
    max_abs_output: float


def fold_batchnorm(student: StudentNet) -> tuple[StudentNet, int]:
    r"""A copy of ``student`` (in eval mode) with every foldable BatchNorm folded into its
    convolution: a BatchNorm with running statistics whose one input is an ``nn.Conv2d`` that no
    other layer uses. The folded BatchNorm's layer becomes an identity; the graph is unchanged.

    Args:
        student: A student network.

    Returns:
        The folded copy and the number of BatchNorm layers folded.
    """
    if not isinstance(student, StudentNet):
        raise ArchSearchError(f"fold_batchnorm expects a StudentNet, got {type(student).__name__}.")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(student).eval()
    nodes = folded.graph.nodes
    consumers = [0] * len(nodes)
    for node in nodes:
        for i in node.inputs:
            consumers[i] += 1
    count = 0
    for k, node in enumerate(nodes):
        bn = folded.layers[k]
        if node.op != "batchnorm" or len(node.inputs) != 1 or not isinstance(bn, nn.BatchNorm2d):
            continue
        j = node.inputs[0]
        conv = folded.layers[j]
        if type(conv) is not nn.Conv2d or consumers[j] != 1 or bn.running_mean is None:
            continue
        folded.layers[j] = fuse_conv_bn_eval(conv, bn)
        folded.layers[k] = nn.Identity()
        count += 1
    return folded, count


def export_student(
    student_dir: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    *,
    fold_bn: bool = True,
    check: bool = True,
    seed: int = 0,
) -> ExportResult:
    r"""Export the student saved in ``student_dir`` and check the file against PyTorch.

    Args:
        student_dir: A directory written by :func:`~botorch_archsearch.graph.save_student` (e.g.
            ``<run dir>/best/esnac-1``).
        format: One of :data:`EXPORT_FORMATS`.
        output: The file to write (default: ``student_dir /`` :data:`EXPORT_FILES` ``[format]``).
        fold_bn: Fold BatchNorm into the convolution before it where possible
            (:func:`fold_batchnorm`).
        check: Run the exported file on random input and compare it with the student; a
            difference above the tolerance (:data:`RTOL`, :data:`ATOL`) is an error.
        seed: Seed of the random check input.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ArchSearchError: For a bad argument, a directory without a student, a missing optional
            dependency, a network the exporter cannot export, or an export that does not match.

    Example:
        >>> result = export_student("outputs/2026-12-02/10-00-00/best/esnac-1", format="onnx")
        >>> result.path, result.file_bytes, result.max_abs_error
    """
    check_choice("format", format, EXPORT_FORMATS, where="export_student")
    student = load_student(student_dir).eval()
    network, folded = fold_batchnorm(student) if fold_bn else (student, 0)
    path = Path(output) if output is not None else Path(student_dir) / EXPORT_FILES[format]
    shape = tuple(student.graph.input_shape)
    example = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
    if format == "onnx":
        _export_onnx(network, example, path)
    else:
        _export_torchscript(network, example, path)
    x = torch.randn(CHECK_BATCH, *shape, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        expected = student(x)
    error = float("nan")
    if check:
        got = _run_onnx(path, x) if format == "onnx" else _run_torchscript(path, x)
        error = _compare(path, got, expected)
    return ExportResult(
        path=path, format=format, file_bytes=path.stat().st_size,
        params=sum(p.numel() for p in network.parameters()),
        student_params=sum(p.numel() for p in student.parameters()), folded=folded,
        max_abs_error=error, max_abs_output=float(expected.abs().max()),
    )


def _export_onnx(network: nn.Module, example: torch.Tensor, path: Path) -> None:
    for module in ("onnx", "onnxscript"):
        _require(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (example,), str(path), input_names=["images"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, opset_version=18, dynamo=True, verbose=False)
    except Exception as error:  # the exporter raises many types
        raise ArchSearchError(f"export_student: torch.onnx.export could not export the student: {_first_line(error)}") \
            from error


def _export_torchscript(network: nn.Module, example: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is in maintenance mode and says so
            traced = torch.jit.trace(network, example, check_trace=False)
            traced.save(str(path))
    except Exception as error:
        raise ArchSearchError(f"export_student: torch.jit.trace could not trace the student: {_first_line(error)}") \
            from error


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(x)


def _compare(path: Path, got: torch.Tensor, expected: torch.Tensor) -> float:
    if got.shape != expected.shape:
        raise ArchSearchError(
            f"export_student: {path} returns shape {tuple(got.shape)} for a batch of {CHECK_BATCH}; PyTorch "
            f"returns {tuple(expected.shape)}."
        )
    error = float((got.to(expected.dtype) - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if not error <= ATOL * scale + RTOL * scale:
        raise ArchSearchError(
            f"export_student: {path} differs from the student in PyTorch by up to {error:.3g} on random input "
            f"(outputs up to {scale:.3g}; tolerance {ATOL * scale + RTOL * scale:.3g})."
        )
    return error


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ArchSearchError(
            f"export to ONNX needs the {module!r} package: pip install 'botorch-archsearch[export]' (onnx, onnxscript, "
            "onnxruntime), or use format='torchscript'."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def student_dirs(path: str | Path) -> list[Path]:
    r"""The student directories of ``path``: ``path`` itself if it holds a student, else every
    ``best/<method>-<rank>`` of a run directory, sorted.

    Raises:
        ArchSearchError: If ``path`` holds neither.
    """
    path = Path(path)
    if (path / "graph.json").is_file():
        return [path]
    found = sorted(p.parent for p in (path / "best").glob("*/graph.json"))
    if not found:
        raise ArchSearchError(
            f"{str(path)!r} is neither a student directory (graph.json and state_dict.pt) nor a run directory "
            "with students in best/ (final.top_k > 0)."
        )
    return found


def main(argv: list[str] | None = None) -> int:
    r"""``python -m botorch_archsearch.export``: export every student of a run (or one student)."""
    parser = argparse.ArgumentParser(
        prog="python -m botorch_archsearch.export",
        description="Export the students of a run directory (best/) or one student directory to ONNX or "
                    "TorchScript, BatchNorm folded, each file checked against PyTorch on random input.",
    )
    parser.add_argument("path", help="a run directory (its best/ students) or one student directory")
    parser.add_argument("--format", default="onnx", help=f"one of {list(EXPORT_FORMATS)} (default: onnx)")
    parser.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers as they are")
    args = parser.parse_args(argv)
    try:
        check_choice("--format", args.format, EXPORT_FORMATS)
        dirs = student_dirs(args.path)
        print("| student | file | size | parameters (student) | BatchNorm folded | max abs error (max output) |")
        print("|---|---|---|---|---|---|")
        for directory in dirs:
            r = export_student(directory, args.format, fold_bn=not args.no_fold)
            print(f"| {directory.name} | {r.path} | {_size(r.file_bytes)} | {r.params:,} ({r.student_params:,}) | "
                  f"{r.folded} | {r.max_abs_error:.2e} ({r.max_abs_output:.3g}) |", flush=True)
    except ArchSearchError as error:
        print(f"botorch-archsearch export: error: {error}", file=sys.stderr)
        return 2
    return 0


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exponent = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exponent:.1f} {' KMG'[exponent]}iB"


__all__ = ["CHECK_BATCH", "EXPORT_FILES", "EXPORT_FORMATS", "ExportResult", "export_student", "fold_batchnorm",
           "student_dirs"]

if __name__ == "__main__":
    raise SystemExit(main())
