r"""Smoke version of the torchvision coverage benchmark (benchmarks/bench_coverage.py): two small
models, two edits each; the table, the markdown and JSONL it writes, and a resumed run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from botorch_archsearch.exceptions import UnsupportedLayerError

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("mobilenet_v3_small", "squeezenet1_1")


def _bench(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_coverage.py"), *args],
                          check=False, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_coverage", ROOT / "benchmarks" / "bench_coverage.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow  # the benchmark in subprocesses, twice
def test_coverage_smoke_and_resume(tmp_path):
    out_md = tmp_path / "results" / "coverage.md"
    args = ("--models", ",".join(MODELS), "--edits", "2", "--out", str(out_md))
    first = _bench(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert "| model | input | layers | channel groups | removable | skip candidates | trace |" in first.stdout
    for name in MODELS:
        (row,) = [line for line in lines if line.startswith(f"| {name} | 64x64 |")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2].replace(",", "")) > 10 and int(cells[3]) > 0  # layers, channel groups
        assert cells[6].endswith(" s") and "over" not in cells[6]  # trace time, under 30 s
        assert float(cells[7]) <= 1e-4 and cells[8] == "2/2" and cells[9] == "ok", row
        assert f"[{MODELS.index(name) + 1}/2] {name}: trace" in first.stderr  # progress on stderr
    assert "**2 of 2 fully valid**; 4 of 4 sampled students valid" in first.stdout
    assert "attention" not in first.stdout  # only a run over every model lists them
    markdown = out_md.read_text()
    assert markdown.startswith("machine: ") and first.stdout.strip() in markdown
    rows = [json.loads(line) for line in out_md.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == list(MODELS)
    for r in rows:
        assert r["failure"] is None and r["unedited_ok"] and r["valid"] == r["edits"] == 2
        assert r["teacher_params"] == r["module_params"] and r["layers"] > r["removable"] > 0

    again = _bench(*args, cwd=tmp_path)  # resumed: both models are in the JSONL already
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("done before, skipped") == 2 and ": trace" not in again.stderr
    assert again.stdout == first.stdout
    assert len(out_md.with_suffix(".jsonl").read_text().splitlines()) == 2


def test_a_failing_step_is_a_row_not_a_crash(monkeypatch):
    bench = _load_bench()

    def broken_trace(module, x):
        raise UnsupportedLayerError("trace: node 'x' is not supported\nsecond line")

    monkeypatch.setattr(bench, "trace", broken_trace)
    row = bench.check_model("squeezenet1_1", 2, 64, 0)
    assert row["failure"] == "trace: trace: node 'x' is not supported" and row["layers"] is None
    assert not bench.fully_valid(row)
    (line,) = bench.format_table([row])[2:]
    assert line.startswith("| squeezenet1_1 | 64x64 |") and "| 0/2 | FAILED: trace: trace: node 'x'" in line
    totals = bench.format_totals([row], {}, [])
    assert totals[0].startswith("**0 of 1 fully valid**") and totals[-1].startswith("- squeezenet1_1: trace: ")


@pytest.mark.slow  # the benchmark in a subprocess
def test_unknown_model_is_refused(tmp_path):
    out = _bench("--models", "vit_b_16", cwd=tmp_path)
    assert out.returncode == 2 and "vit_b_16" in out.stderr
