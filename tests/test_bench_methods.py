r"""Tests of benchmarks/bench_methods.py: the cells' overrides and the report's table and paired
differences, on hand-made cells."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_methods", ROOT / "benchmarks" / "bench_methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(folder: Path, method: str, flops: int, test_accuracy: float, cost: float, teacher_flops: int = 900,
          target: float | None = None) -> None:
    folder.mkdir(parents=True)
    records = [
        {"index": 0, "method": method, "step": 1, "key": "a", "architecture": {}, "status": "ok", "reward": 0.5,
         "params": 10, "accuracy": 0.8, "seconds": 30.0, "flops": flops, "cost": cost, "overhead_cost": cost,
         "overhead_seconds": 30.0, **({} if target is None else {"target": target})},
        {"index": 1, "method": method, "step": 2, "key": "b", "architecture": {}, "status": "ok", "reward": 0.1,
         "params": 20, "accuracy": 0.7, "seconds": 60.0, "flops": 2 * flops, "cost": cost},
    ]
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    final = {"method": method, "index": 0, "rank": 1, "params": 10, "flops": flops, "test_accuracy": test_accuracy}
    (folder / "final.jsonl").write_text(json.dumps(final) + "\n")
    (folder / "teacher.json").write_text(json.dumps({"name": "resnet18", "params": 100, "flops": teacher_flops,
                                                     "val_accuracy": 0.9, "test_accuracy": 0.91}))
    (folder / "report.md").write_text("# done\n")


def test_the_report_gives_each_method_s_mean_and_esnac_s_paired_differences(tmp_path, bench, capsys):
    base = tmp_path / "resnet18" / "1-3"
    for seed, (esnac, magnitude) in enumerate([(0.90, 0.85), (0.88, 0.87), (0.86, 0.80)]):
        _cell(base / "esnac" / f"seed-{seed}", "esnac", 290, esnac, 1e9)
        _cell(base / "magnitude" / f"seed-{seed}", "magnitude", 300, magnitude, 2e9)
    peer = base / "torch_pruning" / "seed-0"
    peer.mkdir(parents=True)
    (peer / "result.json").write_text(json.dumps({"method": "torch_pruning", "flops": 310, "params": 9,
                                                  "test_accuracy": 0.5, "cost": 5.0, "seconds": 60.0,
                                                  "teacher_flops": 900, "teacher_val_accuracy": 0.9,
                                                  "teacher_test_accuracy": 0.91}))
    bench.main(["report", str(tmp_path), "--figures", str(tmp_path / "figures")])
    out = capsys.readouterr().out
    # esnac: test accuracy 88.00 +- 2.00; cost (1e9 + 1e9 + 1e9 overhead) = 3e9; wall 30 + 30 + 60 s = 2 min
    assert "| esnac | 3 | 0.000 | 10 | 88.00 +- 2.00 | 3/3 | 3e+09 | 2.0 min |" in out
    # magnitude at 300 FLOPs is exactly 1/3 of 900 (within); torch_pruning's 310 is not
    assert "| magnitude | 3 | 0.000 | 10 | 84.00 +- 3.61 | 3/3 | 6e+09 | 2.0 min |" in out
    assert "| torch_pruning | 1 | 0.000 | 9 | 50.00 +- 0.00 | 0/1 |" in out
    # differences 5, 1, 6 points: mean 4, t-interval 4 +- 4.303 * 2.6458 / sqrt(3)
    assert "| magnitude | 3 | +4.00 | [-2.57, +10.57] | 3 of 3 |" in out
    # torch_pruning's student is above the target: no answer to it, so no pair
    assert "| torch_pruning | 0 | - | - | no seed with both students within the target |" in out
    assert (tmp_path / "figures" / "pareto_resnet18.png").is_file()


def test_a_difference_over_one_seed_has_no_interval_and_says_so(tmp_path, bench, capsys):
    base = tmp_path / "resnet18" / "1-3"
    _cell(base / "esnac" / "seed-0", "esnac", 290, 0.90, 1e9)
    _cell(base / "magnitude" / "seed-0", "magnitude", 300, 0.88, 2e9)
    bench.main(["report", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| magnitude | 1 | +2.00 | n/a (one seed) | 1 of 1 |" in out and "nan" not in out


def test_cells_get_the_method_the_target_and_an_absolute_flops_budget(bench):
    values = bench.overrides("resnet18", Fraction(1, 3), "group_lasso", 2)
    flops = bench.teacher_flops("resnet18")
    assert f"reward.budget={flops // 3}" in values and "search.method=group_lasso" in values
    assert "seed=2" in values and any(v.startswith("search.targets=[0.333") for v in values)
    assert not any(v.startswith("search.targets") for v in bench.overrides("resnet18", Fraction(1, 3), "esnac", 0))
    assert "dataset.image_size=32" in bench.overrides("vgg19", Fraction(1, 2), "esnac", 0)
    variant = bench.overrides("resnet18", Fraction(1, 3), "esnac_accuracy", 1)
    assert "search.method=esnac" in variant and "kernel.target=accuracy" in variant
    assert "kernel.width_init=median" in variant and not any(v.startswith("search.targets") for v in variant)
    shaped = bench.overrides("resnet18", Fraction(1, 5), "n2n_shaped", 0)
    assert "search.method=n2n" in shaped and "methods.n2n_over_budget=shaped" in shaped


def test_a_variant_s_cells_read_its_journal_method_and_get_their_own_paired_table(tmp_path, bench, capsys):
    base = tmp_path / "resnet18" / "1-3"
    for seed, (esnac, variant) in enumerate([(0.90, 0.91), (0.88, 0.90)]):
        _cell(base / "esnac" / f"seed-{seed}", "esnac", 290, esnac, 1e9)
        _cell(base / "esnac_accuracy" / f"seed-{seed}", "esnac", 280, variant, 1e9)  # the journal says esnac
    bench.main(["report", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| esnac_accuracy | 2 | 0.000 | 10 | 90.50 +- 0.71 | 2/2 |" in out
    assert "| esnac_accuracy | 2 | -1.50 |" in out  # ESNAC minus the variant
    assert "esnac_accuracy minus each method" in out and "| esnac | 2 | +1.50 |" in out


def test_the_budget_variants_reward_accuracy_and_only_esnac_s_get_a_paired_table(tmp_path, bench, capsys):
    esnac = bench.overrides("resnet18", Fraction(1, 3), "esnac_budget", 0)
    assert {"search.method=esnac", "reward.kind=accuracy", "kernel.target=accuracy"} <= set(esnac)
    random = bench.overrides("resnet18", Fraction(1, 3), "random_budget", 0)
    assert {"search.method=random", "reward.kind=accuracy"} <= set(random)
    base = tmp_path / "resnet18" / "1-3"
    for seed, (a, b) in enumerate([(0.90, 0.89), (0.88, 0.86)]):
        # seed 0's best is its first step's one-shot student (a target), seed 1's a searched one
        _cell(base / "esnac_budget" / f"seed-{seed}", "esnac", 290, a, 1e9, target=0.33 if seed == 0 else None)
        _cell(base / "random_budget" / f"seed-{seed}", "random", 280, b, 1e9)  # the journal says random
    bench.main(["report", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| random_budget | 2 | 0.000 | 10 | 87.50 +- 2.12 | 2/2 |" in out
    assert "esnac_budget minus each method" in out and "| random_budget | 2 | +1.50 |" in out
    assert "random_budget minus each method" not in out
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines() if line.endswith("min | 1/2 |")
            or line.endswith("min |  |")}
    assert rows["esnac_budget"].startswith("| esnac_budget | 2 | 0.000 | 10 | 89.00 +- 1.41 | 2/2 |")
    assert rows["random_budget"].endswith("min |  |")  # not a search from one-shot students


def test_the_transfer_variant_uses_the_resnet18_esnac_cell_of_its_target_and_seed(tmp_path, bench, capsys):
    values = bench.overrides("vgg19", Fraction(1, 3), "esnac_transfer", 2, tmp_path)
    source = tmp_path.resolve() / "resnet18" / "1-3" / "esnac" / "seed-2"
    assert f"kernel.transfer_from={source}" in values and "search.method=esnac" in values
    assert "teacher=tiny_resnet34" in bench.overrides("resnet34", Fraction(1, 3), "esnac", 0)
    with pytest.raises(SystemExit, match="run it for another teacher"):
        bench.main(["run", "--teacher", "resnet18", "--targets", "1/3", "--seeds", "0", "--methods", "esnac_transfer",
                    "--out", str(tmp_path)])
    # no finished ResNet-18 cell to transfer from: the cell is skipped, and said so, before anything runs
    bench.main(["run", "--teacher", "vgg19", "--targets", "1/3", "--seeds", "0", "--methods", "esnac_transfer",
                "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "esnac_transfer/seed-0: skipped" in out and "run resnet18's esnac first" in out
    assert not (tmp_path / "vgg19").exists()


def test_run_trains_the_teacher_first_on_one_thread_then_the_cells_on_theirs(tmp_path, bench, monkeypatch):
    """The teacher's weights depend on the threads it trains on, and cells running at once would each
    train it: ``run`` trains it once, on TEACHER_THREADS, before any cell, whatever ``--jobs``."""
    calls = []

    def fake_run(command, cwd, env, **kwargs):
        calls.append((command[1:], env["OMP_NUM_THREADS"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 4)
    bench.main(["run", "--targets", "1/3", "--seeds", "0", "1", "--methods", "magnitude", "--jobs", "2",
                "--out", str(tmp_path)])
    (teacher, threads), *cells = calls
    assert teacher[1:] == ["teacher", "resnet18"] and threads == str(bench.TEACHER_THREADS) == "1"
    assert len(cells) == 2 and all(c[:2] == ["-m", "botorch_archsearch"] and t == "2" for c, t in cells)
    assert sorted(next(a for a in c if a.startswith("seed=")) for c, _ in cells) == ["seed=0", "seed=1"]

    calls.clear()
    monkeypatch.setattr(bench.subprocess, "run",
                        lambda command, cwd, env, **kwargs: subprocess.CompletedProcess(command, 1))
    with pytest.raises(SystemExit, match="teacher could not be trained or loaded .* no cell was run"):
        bench.main(["run", "--methods", "magnitude", "--out", str(tmp_path / "other")])
    assert not (tmp_path / "other").exists()


def test_run_s_default_is_the_field_and_all_adds_the_studies_that_apply_to_the_teacher(tmp_path, bench,
                                                                                       monkeypatch):
    """``run`` with no ``--methods`` runs the compared field; ``all`` adds esnac_accuracy, and
    esnac_transfer only for a teacher other than the ResNet-18 it transfers from (it used to stop)."""
    calls = []

    def fake_run(command, cwd, env, **kwargs):
        calls.append(command[1:])
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)

    def methods_run(*extra):
        calls.clear()
        bench.main(["run", "--targets", "1/3", "--seeds", "0", "--out", str(tmp_path), *extra])
        cells = [Path(c[-1].split("=", 1)[1]) if c[0] == "-m" else Path(c[2])  # the app's or the peer's cell
                 for c in calls if c[1] != "teacher"]
        return {cell.parent.name for cell in cells}

    field = methods_run()
    assert field == set(bench.FIELD)
    assert {"esnac", "esnac_budget", "random_budget", "n2n", "magnitude"} <= field
    assert not field & {"esnac_accuracy", "esnac_transfer"}
    assert methods_run("--methods", "all") == field | {"esnac_accuracy"}
    with pytest.raises(SystemExit, match="unknown methods \\['esnac_fast'\\].*'field' or 'all'"):
        bench.main(["run", "--methods", "esnac_fast", "--out", str(tmp_path)])


def test_the_pareto_figure_hollows_students_over_the_target_and_names_collapsed_ones(tmp_path, bench):
    """A point is filled only where every seed's student is within the target's FLOPs; a method far below
    the teacher is left off the axis but named with its value, so one collapsed method does not flatten
    the others."""
    teacher = {"teacher_flops": 900, "teacher_val_accuracy": 0.9, "teacher_test_accuracy": 0.91}
    row = lambda flops, acc: {"flops": flops, "test_accuracy": acc}  # noqa: E731
    cells = {("1-3", "esnac"): {0: row(290, 0.88), 1: row(300, 0.86)},
             ("1-10", "esnac"): {0: row(80, 0.80), 1: row(95, 0.82)},  # seed 1 is over 90 FLOPs
             ("1-3", "variational_dropout"): {0: row(280, 0.30), 1: row(290, 0.32)}}
    drawn = bench.pareto_figure(cells, teacher, tmp_path / "pareto.png", "resnet18")
    assert (tmp_path / "pareto.png").is_file()
    points = drawn["points"]["esnac"]
    assert [(round(x * 1e6, 1), round(y, 2), within) for x, y, within in points] == [(87.5, 81.0, False),
                                                                                      (295.0, 87.0, True)]
    assert drawn["points"]["variational_dropout"] == []
    label = drawn["labels"]["variational_dropout"]
    assert label == "variational_dropout; 31% at 0.000285 MFLOPs (below the axis)"
    assert drawn["labels"]["esnac"] == "esnac" and "magnitude" not in drawn["labels"]
