r"""Smoke version of the search-quality harness (benchmarks/bench_search.py): two seeds, a
handful of evaluations on synthetic data, then the report with its statistics and figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "dataset=synthetic", "teacher.epochs=1", "teacher.max_batches=2", "search.steps=2", "search.num_kernels=2",
    "kernel.hidden_size=8", "kernel.num_layers=1", "kernel.max_steps=3", "acquisition.num_candidates=30",
    "evaluation.epochs=1", "evaluation.max_batches=2", "evaluation.isolation=none",
    "evaluation.channels_last=false",
]


def _bench(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", BOTORCH_ARCHSEARCH_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.mark.slow  # the harness in subprocesses: searches, re-evaluation, report; bench_bo, kernel_quality
def test_harness_smoke(tmp_path):
    out = _bench("run", "--name", "main", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), "--", *TINY,
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ablation = _bench("run", "--name", "k1", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), "--", *TINY,
                      "search.method=esnac", "search.num_kernels=1", "search.steps=4", cwd=tmp_path)
    assert ablation.returncode == 0, ablation.stderr[-3000:]
    again = _bench("run", "--name", "main", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert again.stdout.count(": done") == 2  # finished cells are not run again
    report = _bench("report", str(tmp_path / "runs" / "main"), str(tmp_path / "runs" / "k1"),
                    "--figures", str(tmp_path / "figures"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    text = report.stdout
    for row in ("| main/random | 2 | 4 |", "| main/esnac | 2 | 4 |", "| k1/esnac | 2 | 4 |"):
        assert row in text, text
    assert "Anytime: mean best f(x) after n evaluations" in text and "bootstrap 95% CI" in text
    assert text.count("| main/esnac | ") == 3 and "| k1/esnac | " in text.split("Paired against")[1]
    assert (tmp_path / "figures" / "anytime.png").stat().st_size > 5000
    assert (tmp_path / "figures" / "histogram.png").stat().st_size > 5000
    # the ablation against the baseline's ESNAC, paired by seed, from the journals
    def best(variant: str, seed: int) -> float:
        journal = tmp_path / "runs" / variant / f"seed-{seed}" / "journal.jsonl"
        records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
        return max(r["reward"] for r in records if r["method"] == "esnac")

    difference = sum(best("k1", s) - best("main", s) for s in (0, 1)) / 2
    ablations = text.split("Ablations paired against main/esnac")[1]
    assert f"| k1/esnac | 2 | {difference:+.4f} |" in ablations, ablations
    _check_reevaluation(tmp_path)  # on these runs (the default search.baselines ran the one-shots)
    _check_bench_bo_and_kernel_quality(tmp_path)  # and the BO-step and kernel benchmarks on their journals


def _check_reevaluation(tmp_path):
    """Each cell's chosen students (each search's best, its one-shot baselines, and one-shots at the
    size of ESNAC's best) evaluated again with fresh seeds; the report pairs them by search seed."""
    again = _bench("reevaluate", str(tmp_path / "runs" / "main"), "--eval-seeds", "2", "--isolation", "none",
                   cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for seed in (0, 1):
        cell = tmp_path / "runs" / "main" / f"seed-{seed}"
        records = [json.loads(line) for line in (cell / "journal.jsonl").read_text().splitlines() if line.strip()]
        rows = [json.loads(line) for line in (cell / "reeval.jsonl").read_text().splitlines()]
        names = {r["name"] for r in rows}
        # the journal's one-shots ran at the sizes of the two searches' best students
        assert sum(r["method"] in ("uniform", "magnitude") for r in records) == 4
        assert names == {"random", "esnac", "uniform@esnac", "magnitude@esnac", "uniform@random",
                         "magnitude@random"}, names
        assert sorted(r["eval_seed"] for r in rows) == sorted([0, 1] * len(names))
        teacher = json.loads((cell / "teacher.json").read_text())
        best = max((r for r in records if r["method"] == "esnac"), key=lambda r: r["reward"])
        for row in rows:
            c = 1 - row["params"] / teacher["params"]
            assert row["reward"] == pytest.approx(c * (2 - c) * row["accuracy"] / teacher["val_accuracy"])
            if row["name"] == "esnac":
                assert row["edit"] == best["edit"] and row["params"] == best["params"]
            if row["name"].endswith("@esnac"):
                assert row["params"] <= best["params"]
                (record,) = [r for r in records if r["method"] == row["name"].split("@")[0]
                             and r["target"] == pytest.approx(best["params"] / teacher["params"])]
                assert row["edit"] == record["edit"]  # the journal's own one-shot, evaluated again
    twice = _bench("reevaluate", str(tmp_path / "runs" / "main"), "--eval-seeds", "2", "--isolation", "none",
                   cwd=tmp_path)
    assert twice.returncode == 0 and "evaluation seed" not in twice.stdout  # nothing evaluated again
    report = _bench("report", str(tmp_path / "runs" / "main"), "--figures", str(tmp_path / "figures"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    text = report.stdout
    assert "Re-evaluated with fresh evaluation seeds (2 per student" in text
    paired = text.split("Paired by search seed against main/esnac")[1]
    assert "| main/magnitude@esnac | 2 |" in paired and "| main/random | 2 |" in paired
    sampled = _bench("sampler", str(tmp_path / "runs" / "main"), cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert "| layers removed | " in sampled.stdout
    for seed in (0, 1):  # the share of random search's students above the re-evaluated uniform one-shot
        cell = tmp_path / "runs" / "main" / f"seed-{seed}"
        records = [json.loads(line) for line in (cell / "journal.jsonl").read_text().splitlines() if line.strip()]
        rows = [json.loads(line) for line in (cell / "reeval.jsonl").read_text().splitlines()]
        uniform = sum(r["reward"] for r in rows if r["name"] == "uniform@random") / 2
        f = [r["reward"] for r in records if r["method"] == "random"]
        share = sum(x > uniform for x in f) / len(f)
        assert f"| main | {seed} | {len(f)} | {share:.3f} | {uniform:.4f} |" in sampled.stdout, sampled.stdout


def _check_bench_bo_and_kernel_quality(tmp_path):
    """benchmarks/bench_bo.py --journals and benchmarks/kernel_quality.py fit on the rewards of
    the search journals; kernel_quality.py tallies the saved kernels' step counts."""
    runs = tmp_path / "runs" / "main"
    journals = sorted(runs.glob("seed-*/journal.jsonl"))
    records = [json.loads(line) for j in journals for line in j.read_text().splitlines() if line.strip()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_bo.py"), "--quick", "--sizes", "6",
                            "--journals", str(runs)],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert f"data: 6 of the {len(records)} evaluated architectures in 2 journal(s), real rewards" in bench.stdout
    assert "One BO step" in bench.stdout and "propose_architectures" in bench.stdout
    too_many = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_bo.py"), "--quick", "--sizes",
                               str(len(records) + 1), "--journals", str(runs)],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert too_many.returncode != 0 and f"need {len(records) + 1}" in too_many.stderr
    quality = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_quality.py"), "--journals",
                              str(runs), "--scales", "5", "--sizes", "6", "--reps", "2", "--saved-kernels", str(runs)],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert quality.returncode == 0, quality.stderr[-3000:]
    lines = quality.stdout.splitlines()
    assert sum(line.startswith(("   6 |          1 |", "   6 |          5 |")) for line in lines) == 2, quality.stdout
    assert "init_scale 5 vs 1 over all N:" in quality.stdout
    saved = sorted(runs.glob("seed-*/kernels/*/kernel*.pt"))
    (tally,) = [line for line in lines if line.strip().startswith("main |")]
    assert tally.split("|")[1].strip() == str(len(saved)), quality.stdout
    # surrogate configurations, one of them with its fits capped at 5 optimizer steps (kernel.max_steps=5)
    configs = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_quality.py"), "--journals",
                              str(runs), "--configs", "bilstm/reward/paper", "bilstm/reward/paper/cap5", "--sizes", "6",
                              "--reps", "2"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert configs.returncode == 0, configs.stderr[-3000:]
    rows = {line.split("|")[2].strip(): line.split("|") for line in configs.stdout.splitlines()
            if line.startswith("| 6 | bilstm/")}
    assert set(rows) == {"bilstm/reward/paper", "bilstm/reward/paper/cap5"}, configs.stdout
    assert float(rows["bilstm/reward/paper/cap5"][-3]) == 5.0  # mean optimizer steps: every fit stopped at the cap
    assert float(rows["bilstm/reward/paper"][-3]) >= 11.0  # the moving-average rule's minimum (window + 1)
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_quality.py"), "--journals", str(runs),
                          "--configs", "bilstm/reward/cap0"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=env)
    assert bad.returncode == 2 and "unknown ['bilstm/reward/cap0']" in bad.stderr and "/capN" in bad.stderr


def test_report_after_final_training_pairs_test_f_x_by_seed(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_search", ROOT / "benchmarks" / "bench_search.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    expected = {}
    for seed, (esnac, magnitude) in enumerate([(0.95, 0.93), (0.91, 0.92), (0.94, 0.90)]):
        cell = tmp_path / "v" / f"seed-{seed}"
        cell.mkdir(parents=True)
        (cell / "teacher.json").write_text(json.dumps({"params": 1000, "test_accuracy": 0.96}))
        lines = [{"method": "esnac", "rank": 1, "status": "ok", "test_accuracy": esnac, "params": 250},
                 {"method": "esnac", "rank": 2, "status": "ok", "test_accuracy": 0.5, "params": 100},
                 {"method": "magnitude", "rank": 1, "status": "ok", "test_accuracy": magnitude, "params": 240}]
        (cell / "final.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        f = lambda acc, params: (1 - params / 1000) * (1 + params / 1000) * acc / 0.96  # noqa: E731
        expected[seed] = f(esnac, 250) - f(magnitude, 240)
    bench.report_final([tmp_path / "v"], None)
    out = capsys.readouterr().out
    assert "| v/esnac | 3 | 0.9333 +- 0.0208 |" in out  # rank 1 only
    mean = sum(expected.values()) / 3
    assert f"| v/magnitude | 3 | {mean:+.4f} |" in out.split("after final training")[1], out
