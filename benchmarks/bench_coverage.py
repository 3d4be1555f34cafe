r"""Coverage of torchvision's classifiers: trace, search space, unedited and edited students.

For each convolutional classifier of ``torchvision.models`` (all of
``list_models(module=torchvision.models)`` but ViT, Swin and MaxViT: 68 models), built with
``weights=None, num_classes=10`` in eval mode, on a seeded `2 x 3 x s x s` input (``--size``, at
least 75 for the Inception models):
- trace it (and time the trace; the issue's target: under 30 s on a 2-core CPU);
- make its search space with magnitude-ordered channels and count layers, channel groups,
  removable layers and skip candidates;
- build the unedited graph with the teacher's weights: its output must equal the teacher's
  (max abs difference <= 1e-4 * (1 + max |teacher output|), float32);
- sample ``--edits`` edits: each student must build, run, keep the output shape, have
  ``count_params`` equal to its module's parameter count and no more than the teacher's.

A model that fails at any step is reported with the step and the error, and the run goes on. The
attention models are listed at the end, after checking that ``trace`` of one ViT, one Swin and one
MaxViT raises ``UnsupportedLayerError`` naming attention.

Usage: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_coverage.py [--models a,b] [--edits 20]
[--size 64] [--seed 0] [--out benchmarks/results/coverage.md]`` (with ``--out``, rows are also
appended to ``coverage.jsonl`` next to it; a rerun skips the models already there).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from botorch_archsearch.exceptions import UnsupportedLayerError, failure_reason
from botorch_archsearch.graph import build_student, count_params, trace
from botorch_archsearch.space import SearchSpace, channel_importance
from botorch_archsearch.utils import import_torchvision

ATTENTION_PREFIXES = ("vit_", "swin_", "maxvit_")
# One of each attention family, checked to raise UnsupportedLayerError naming attention.
ATTENTION_PROBES = ("vit_b_16", "swin_t", "maxvit_t")
MIN_SIZES = {"inception_v3": 75}  # its stem and reductions need 75 x 75 or more
TRACE_TARGET_S = 30.0
NUM_CLASSES = 10
BATCH = 2
COLUMNS = ("model", "input", "layers", "channel groups", "removable", "skip candidates", "trace", "unedited max diff",
           "students valid", "status")


def convolutional_models() -> list[str]:
    """torchvision's classifiers without the attention models, in ``list_models`` order."""
    names = import_torchvision().models.list_models(module=import_torchvision().models)
    return [n for n in names if not n.startswith(ATTENTION_PREFIXES)]


def attention_models() -> list[str]:
    """torchvision's ViT, Swin and MaxViT classifiers."""
    names = import_torchvision().models.list_models(module=import_torchvision().models)
    return [n for n in names if n.startswith(ATTENTION_PREFIXES)]


def check_model(name: str, edits: int, size: int, seed: int) -> dict[str, Any]:
    r"""Trace one model, check its unedited and ``edits`` sampled students; never raises.

    Returns:
        A row: the counts, the trace time, the unedited student's max difference, the number of
        valid students, and ``failure`` (``"step: error"`` of the first failure, or ``None``).
    """
    side = max(size, MIN_SIZES.get(name, 0))
    row: dict[str, Any] = {"model": name, "input": side, "edits": edits, "seed": seed, "layers": None,
                           "groups": None, "removable": None, "skips": None, "trace_s": None, "teacher_params": None,
                           "module_params": None, "unedited_diff": None, "unedited_ok": None, "valid": 0,
                           "failure": None}
    step = "construct"
    try:
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GoogLeNet/Inception's "default weight init will change"
            model = import_torchvision().models.get_model(name, weights=None, num_classes=NUM_CLASSES).eval()
        x = torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(seed))
        row["module_params"] = sum(p.numel() for p in model.parameters())
        step = "run teacher"
        with torch.no_grad():
            y = model(x)
        step = "trace"
        start = time.perf_counter()
        graph = trace(model, x)
        row["trace_s"] = time.perf_counter() - start
        row["layers"] = graph.num_layers
        step = "search space"
        space = SearchSpace(graph, channel_importance=channel_importance(graph, model), channel_order="magnitude")
        row.update(groups=space.num_groups, removable=len(space.removable), skips=len(space.skip_candidates))
        step = "unedited student"
        row["teacher_params"] = teacher_params = count_params(graph)
        student = build_student(graph, model).eval()
        with torch.no_grad():
            out = student(x)
        if sum(p.numel() for p in student.parameters()) != teacher_params:
            raise RuntimeError(f"count_params {teacher_params:,} != the built module's "
                               f"{sum(p.numel() for p in student.parameters()):,}")
        del student
        if out.shape != y.shape:
            raise RuntimeError(f"output shape {tuple(out.shape)} != teacher's {tuple(y.shape)}")
        diff = (out - y).abs().max().item()
        row["unedited_diff"] = diff
        row["unedited_ok"] = diff <= 1e-4 * (1 + y.abs().max().item())
        if not row["unedited_ok"]:
            row["failure"] = f"unedited student: max abs difference {diff:.3g} from the teacher"
        step = "sample"
        sampled = space.sample(edits, generator=torch.Generator().manual_seed(seed))
        for i, edit in enumerate(sampled):
            problem = _check_edit(space, edit, model, x, tuple(y.shape), teacher_params)
            if problem is None:
                row["valid"] += 1
            elif row["failure"] is None:
                row["failure"] = f"edit {i} {problem}"
    except Exception as e:  # noqa: BLE001 (any failure is a row of the table, not the end of the run)
        row["failure"] = f"{step}: {failure_reason(e)}"
    finally:
        model = graph = space = y = out = None  # free the big ones before the next model
        gc.collect()
        _release_memory()
    return row


def check_attention(name: str) -> str:
    """``"ok: <message>"`` if ``trace`` raises UnsupportedLayerError naming attention, else what it did."""
    try:
        torch.manual_seed(0)
        model = import_torchvision().models.get_model(name, weights=None, num_classes=NUM_CLASSES).eval()
        trace(model, torch.randn(1, 3, 224, 224))
    except UnsupportedLayerError as e:
        message = str(e).splitlines()[0]
        return f"{'ok' if 'attention' in message else 'unexpected message'}: {message}"
    except Exception as e:  # noqa: BLE001 (reported in the table)
        return f"unexpected error: {failure_reason(e)}"
    finally:
        model = None
        gc.collect()
    return "unexpected: trace succeeded"


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown table of ``rows`` (one line per model)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        trace_s = "" if r["trace_s"] is None else f"{r['trace_s']:.2f} s"
        if r["trace_s"] is not None and r["trace_s"] > TRACE_TARGET_S:
            trace_s += f" (over {TRACE_TARGET_S:.0f} s)"
        diff = "" if r["unedited_diff"] is None else f"{r['unedited_diff']:.1e}" + ("" if r["unedited_ok"] else " (!)")
        cells = [r["model"], f"{r['input']}x{r['input']}", _count(r["layers"]), _count(r["groups"]),
                 _count(r["removable"]), _count(r["skips"]), trace_s, diff, f"{r['valid']}/{r['edits']}",
                 "ok" if fully_valid(r) else "FAILED: " + str(r["failure"]).replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fully_valid(row: dict[str, Any]) -> bool:
    """Traced, unedited student equal to the teacher, every sampled student valid."""
    return row["failure"] is None and bool(row["unedited_ok"]) and row["valid"] == row["edits"]


def format_totals(rows: list[dict[str, Any]], attention: dict[str, str], names: list[str]) -> list[str]:
    """The totals lines and the attention models' lines."""
    traced = [r for r in rows if r["trace_s"] is not None]
    lines = [(f"**{sum(fully_valid(r) for r in rows)} of {len(rows)} fully valid**; "
              f"{sum(r['valid'] for r in rows):,} of {sum(r['edits'] for r in rows):,} sampled students valid; "
              f"{sum(r['unedited_ok'] is True for r in rows)} of {len(rows)} unedited students equal to the "
              "teacher.")]
    if traced:
        slowest = max(traced, key=lambda r: r["trace_s"])
        over = [r["model"] for r in traced if r["trace_s"] > TRACE_TARGET_S]
        lines.append(f"Traced {len(traced)} of {len(rows)}; trace time total {sum(r['trace_s'] for r in traced):.1f} s, "
                     f"slowest {slowest['model']} {slowest['trace_s']:.2f} s; over {TRACE_TARGET_S:.0f} s: "
                     f"{', '.join(over) if over else 'none'}.")
    failed = [r for r in rows if not fully_valid(r)]
    for r in failed:
        lines.append(f"- {r['model']}: {r['failure'] or 'unedited student differs'}")
    if names:
        lines.append(f"Not supported (attention), {len(names)} models: {', '.join(names)}. Checked that trace "
                     "raises UnsupportedLayerError naming attention:")
        lines.extend(f"- {name}: {result}" for name, result in attention.items())
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated torchvision names (default: all 68)")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the table here (markdown) and rows to its .jsonl (resumable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    everything = convolutional_models()
    names = everything if args.models is None else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in everything]
    if unknown:
        parser.error(f"--models: not torchvision's convolutional classifiers: {unknown}")
    machine = (f"machine: {_cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads; {args.edits} edits per model (magnitude channel order), "
               f"input {BATCH} x 3 x {args.size} x {args.size} (Inception: 75), seed {args.seed}")
    print(machine, flush=True)
    done: dict[str, dict[str, Any]] = {}
    jsonl = None if args.out is None else args.out.with_suffix(".jsonl")
    if jsonl is not None and jsonl.exists():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["model"]] = row
    rows = []
    for k, name in enumerate(names, 1):
        if name in done:
            print(f"[{k}/{len(names)}] {name}: done before, skipped", file=sys.stderr, flush=True)
            rows.append(done[name])
            continue
        print(f"[{k}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        row = check_model(name, args.edits, args.size, args.seed)
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        trace_s = "-" if row["trace_s"] is None else f"{row['trace_s']:.2f} s"
        print(f"[{k}/{len(names)}] {name}: trace {trace_s}, {row['valid']}/{row['edits']} students valid, "
              f"{'ok' if fully_valid(row) else 'FAILED: ' + str(row['failure'])} ({row['wall_s']:.0f} s)",
              file=sys.stderr, flush=True)
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
    attention = {}
    if args.models is None:
        for name in ATTENTION_PROBES:
            print(f"attention check: {name} ...", file=sys.stderr, flush=True)
            attention[name] = check_attention(name)
    text = [machine, "", *format_table(rows), "", *format_totals(rows, attention, attention_models() if attention
                                                                  else [])]
    print("\n".join(text[1:]))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(text) + "\n")
    return 0


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _check_edit(space: SearchSpace, edit: Any, model: torch.nn.Module, x: torch.Tensor, shape: tuple[int, ...],
                teacher_params: int) -> str | None:
    """None if the edit's student is valid, else ``"<step>: <why>"``."""
    step = "apply"
    try:
        edited = space.student(edit)
        graph = edited.graph
        step = "build"
        student = build_student(edited, model).eval()
        step = "run"
        with torch.no_grad():
            out = student(x)
        step = "check"
        if tuple(out.shape) != shape:
            return f"check: output shape {tuple(out.shape)} != teacher's {shape}"
        counted, actual = count_params(graph), sum(p.numel() for p in student.parameters())
        if counted != actual:
            return f"check: count_params {counted:,} != the module's {actual:,}"
        if counted > teacher_params:
            return f"check: {counted:,} parameters > the teacher's {teacher_params:,}"
    except Exception as e:  # noqa: BLE001 (reported in the table)
        return f"{step}: {failure_reason(e)}"
    return None


def _release_memory() -> None:
    """Give freed heap back to the system between models (the largest teacher is 2.6 GB)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


if __name__ == "__main__":
    sys.exit(main())
