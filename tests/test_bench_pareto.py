r"""Tests of benchmarks/bench_pareto.py: the cells' overrides and the report's hypervolumes on
hand-made cells holding real (tiny) students, against hypervolumes computed here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from botorch_archsearch.acquisition.pareto import hypervolume_2d
from botorch_archsearch.graph import build_student, count_flops, save_student, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_pareto", ROOT / "benchmarks" / "bench_pareto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(folder: Path, method: str, students: list[tuple[int, float]], space, teacher) -> None:
    folder.mkdir(parents=True)
    rows = []
    for rank, (seed, test_accuracy) in enumerate(students, 1):
        edit = space.sample(1, generator=torch.Generator().manual_seed(seed))[0]
        student = build_student(space.student(edit), teacher)
        save_student(student, folder / "best" / f"{method}-{rank}")
        rows.append({"method": method, "index": rank, "rank": rank, "flops": count_flops(student.graph),
                     "test_accuracy": test_accuracy, "path": f"best/{method}-{rank}", "status": "ok"})
    (folder / "final.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "teacher.json").write_text(json.dumps({"flops": count_flops(space.graph), "test_accuracy": 0.9}))
    (folder / "report.md").write_text("# done\n")


def test_pareto_cells_search_the_front_at_four_targets_compute(bench):
    values = bench.overrides("resnet18", 2)
    assert {"search.objective=pareto", "search.steps=24", "final.top_k=4", "reward.measure=flops", "seed=2",
            "teacher=tiny_resnet18"} <= set(values)


def test_the_report_s_hypervolumes(tmp_path, bench, capsys):
    teacher = get_teacher("resnet18", num_classes=10, in_channels=1, width=0.125).eval()
    space = SearchSpace(trace(teacher, torch.zeros(1, 1, 28, 28)))
    out, methods = tmp_path / "pareto", tmp_path / "methods"
    _cell(out / "resnet18" / "pareto" / "seed-0", "esnac", [(1, 0.85), (2, 0.80), (3, 0.70)], space, teacher)
    _cell(methods / "resnet18" / "1-3" / "magnitude" / "seed-0", "magnitude", [(4, 0.88)], space, teacher)
    _cell(methods / "resnet18" / "1-10" / "magnitude" / "seed-0", "magnitude", [(5, 0.75)], space, teacher)
    figures = tmp_path / "figures"
    bench.main(["report", str(out), "--methods-out", str(methods), "--figures", str(figures)])
    text = capsys.readouterr().out
    full = count_flops(space.graph)

    def hv(cells, ref_value=0.0):
        flops, acc = [], []
        for cell in cells:
            for line in (cell / "final.jsonl").read_text().splitlines():
                r = json.loads(line)
                flops.append(r["flops"] / full)
                acc.append(r["test_accuracy"] / 0.9)
        return hypervolume_2d(flops, acc, 1.0, ref_value)

    def row(start):
        return [c.strip() for c in next(line for line in text.splitlines() if line.startswith(start)).split("|")[1:-1]]

    pareto_cells = [out / "resnet18" / "pareto" / "seed-0"]
    magnitude_cells = [methods / "resnet18" / t / "magnitude" / "seed-0" for t in ("1-3", "1-10")]
    pareto, magnitude = hv(pareto_cells), hv(magnitude_cells)
    useful = hv(pareto_cells, bench.USEFUL), hv(magnitude_cells, bench.USEFUL)
    assert 0 < useful[0] < pareto and 0 < useful[1] < magnitude  # the near-chance students count less
    assert row("| pareto | 1 | front |")[3] == f"{pareto:.4f} +- 0.0000"
    assert row("| pareto | 1 | front |")[5] == f"{useful[0]:.4f} +- 0.0000"
    assert row("| magnitude | 1 | 1/10, 1/3 |")[3] == f"{magnitude:.4f} +- 0.0000"
    assert row("| magnitude | 1 | 1/10, 1/3 |")[5] == f"{useful[1]:.4f} +- 0.0000"
    paired = row("| magnitude | 1 | +")
    assert paired[2] == f"{pareto - magnitude:+.4f} [+nan, +nan]"
    assert paired[4] == f"{useful[0] - useful[1]:+.4f} [+nan, +nan]"
    assert "FLOPs against latency over the 5 fully trained students: Spearman" in text
    cache = json.loads((out / "latency_cache.json").read_text())
    assert len(cache) == 6 and all(v > 0 for v in cache.values())  # five students and the teacher, measured once
    assert (figures / "pareto_resnet18.png").stat().st_size > 0
    assert f"Figure: `{figures / 'pareto_resnet18.png'}`" in text
