"""No private name crosses a module boundary: what one module of the package (or a benchmark or
example) imports from another is public (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("botorch_archsearch", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py"))
# Our modules: the package's, and the benchmark scripts that import each other.
OURS = ("botorch_archsearch",) + tuple(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_the_scan_sees_the_sources():
    assert len(SOURCES) > 40 and ROOT / "botorch_archsearch" / "search" / "loop.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_from_another_module(path):
    assert _private_imports(path) == []


def test_the_scan_finds_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from botorch_archsearch.search.loop import _private, public\nfrom bench_bo import _helper\n"
                   "from torch import _C\n")
    assert _private_imports(bad) == ["botorch_archsearch.search.loop._private", "bench_bo._helper"]
