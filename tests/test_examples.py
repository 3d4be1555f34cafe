r"""Every example runs: the per-teacher scripts and kernel transfer with ``--smoke`` (synthetic
data, seconds), and the plain BoTorch loop. The per-teacher scripts are one call of
``_paper.main(teacher)`` each: two of them (a ResNet and MobileNetV2's depthwise blocks) run end to
end, and every one is checked to call it with its own zoo teacher; the other teachers' students are
built and run in tests/graph/test_build.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEACHERS = ["vgg19", "resnet18", "resnet34", "shufflenet", "mobilenetv2"]
RUN = ["resnet18", "mobilenetv2"]  # the per-teacher scripts run end to end
pytestmark = pytest.mark.slow  # each example runs in a subprocess (a search of half a minute or so)


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", BOTORCH_ARCHSEARCH_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.mark.parametrize("teacher", TEACHERS)
def test_each_teacher_example_calls_the_shared_main_with_its_own_zoo_teacher(teacher):
    from botorch_archsearch.models import TEACHER_NAMES

    tree = ast.parse((EXAMPLES / f"{teacher}.py").read_text())
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main"]
    assert [ast.literal_eval(call.args[0]) for call in calls] == [teacher] and teacher in TEACHER_NAMES
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [("_paper", ["main"])]
    assert sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem in TEACHER_NAMES) == sorted(TEACHERS)


@pytest.mark.parametrize("teacher", RUN)
def test_teacher_example_smoke(teacher, tmp_path):
    out = _run(f"{teacher}.py", "--smoke", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / f"{teacher}-smoke"
    records = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["random"] * 4 + ["esnac"] * 4
    assert (run / "report.md").is_file() and "summary:" in out.stdout


def test_kernel_transfer_example_smoke(tmp_path):
    out = _run("kernel_transfer.py", "--smoke", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((tmp_path / "runs" / "transfer-smoke-source" / "kernels").glob("*/kernel*.pt"))
    target = tmp_path / "runs" / "transfer-smoke-target"
    assert (target / "report.md").is_file() and not (target / "kernels").exists()  # nothing trained


def test_botorch_loop_example(tmp_path):
    out = _run("botorch_loop.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]


def test_known_factor_loop_example_never_proposes_a_student_over_the_budget(tmp_path):
    out = _run("known_factor_loop.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("iteration")]
    assert len(lines) == 5 and all("within the budget: [True, True]" in line for line in lines)
