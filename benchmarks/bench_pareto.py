r"""The Pareto search against the field's methods at their targets (issue 19): hypervolume over
(test accuracy, FLOPs) and over (test accuracy, measured CPU latency), and where FLOPs mislead.

A ``pareto`` cell is one app run of ESNAC with ``search.objective=pareto`` (FLOPs as the size) on
the ``field_methods`` preset, at the compute of ESNAC at four targets (``search.steps=24``, K = 4:
96 evaluations against 4 x 24), its front's students fully trained (``final.top_k=4``) and their
latency measured. The other methods' students are those of ``benchmarks/bench_methods.py``'s cells
of the same teacher and seed, one per target (1/2, 1/3, 1/5, 1/10 where they ran): each method's
fully trained students over the targets form its front.

Sub-commands:

``run``: the ``pareto`` cells (``<out>/<teacher>/pareto/seed-<s>``), resumable like bench_methods'.

``report``: per seed and method, the hypervolume of its fully trained students over (test accuracy /
the teacher's, FLOPs / the teacher's) and over (test accuracy, latency at batch 1 / the teacher's),
reference point (accuracy 0, the teacher's size), and again from an accuracy of :data:`USEFUL` of
the teacher's (a near-chance student counts in the first, not in the second); the Pareto search's paired differences to every
method (95% t-interval over seeds); and, over every student measured, the rank correlation of FLOPs
and latency with the pairs FLOPs order wrongly. Latencies are measured here, one student at a time,
on this machine (``measure_latency``, batch 1, the faster layout), and cached in ``<out>/latency_cache.json``. With
``--figures``, a plot per teacher: each method's students and front over FLOPs and over latency,
and latency against FLOPs for every student.

Usage::

    B=".venv/bin/python benchmarks/bench_pareto.py"
    $B run --teacher resnet18 --seeds 0 1 2 --jobs 2
    $B report --methods-out benchmarks/runs/methods --figures benchmarks/figures/pareto
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_methods  # noqa: E402 - the same teachers, cells and intervals

DEFAULT_OUT = ROOT / "benchmarks" / "runs" / "pareto"
USEFUL = 0.9
"""The second reference accuracy (a fraction of the teacher's): the hypervolume of the students a
practitioner would use, those within 10% of the teacher's accuracy."""
PARETO_SETTINGS = ("search.method=esnac", "search.objective=pareto", "search.steps=24", "final.top_k=4",
                   "reward.measure=flops", "reward.budget_measure=flops")


def overrides(teacher: str, seed: int) -> list[str]:
    preset, size = bench_methods.TEACHERS[teacher]
    return ["+experiment=field_methods", f"teacher={preset}", f"dataset.image_size={size}", f"seed={seed}",
            "progress=false", *PARETO_SETTINGS]


def run_cell(cell: Path, teacher: str, seed: int, threads: int) -> str:
    if (cell / "report.md").exists():
        return f"{cell}: done"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = [sys.executable, "-m", "botorch_archsearch"]
    if (cell / "config.json").exists():
        command += [f"resume={cell.resolve()}", f"hydra.run.dir={(cell / 'resume-logs').resolve()}"]
    else:
        command += [*overrides(teacher, seed), f"hydra.run.dir={cell.resolve()}"]
    cell.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(cell / "bench.log", "a") as log:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    status = "ok" if result.returncode == 0 else f"FAILED (exit code {result.returncode}, see {cell / 'bench.log'})"
    return f"{cell}: {status} in {time.perf_counter() - start:.0f} s"


def run(args: argparse.Namespace) -> None:
    cells = [(Path(args.out) / args.teacher / "pareto" / f"seed-{s}", args.teacher, s) for s in args.seeds]
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda c: run_cell(*c, threads), cells):
            print(line, flush=True)


def trained_students(cell: Path) -> list[dict]:
    """The fully trained students of a finished app cell: FLOPs, test accuracy and directory."""
    path = cell / "final.jsonl"
    if not (cell / "report.md").exists() or not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{"flops": r["flops"], "test_accuracy": r["test_accuracy"], "dir": cell / r["path"]}
            for r in rows if r.get("status", "ok") == "ok" and r.get("path") and r.get("test_accuracy") is not None]


def latency_ms(student_dir: Path, cache: dict) -> float:
    """The student's latency at batch 1 on this machine (measured once, cached)."""
    key = str(student_dir)
    if key not in cache:
        import torch

        from botorch_archsearch.evaluation.latency import measure_latency
        from botorch_archsearch.graph import load_student

        torch.set_num_threads(1)
        student = load_student(student_dir)
        cache[key] = measure_latency(student, student.graph.input_shape, batch_sizes=(1,)).milliseconds[0]
    return cache[key]


def teacher_latency_ms(teacher: str, cache: dict) -> float:
    """The teacher's latency at batch 1, the reference of the latency axis: its traced graph run by
    the students' runtime (``build_student``), so that the ratios compare like with like."""
    key = f"teacher:{teacher}"
    if key not in cache:
        import torch

        from botorch_archsearch.evaluation.latency import measure_latency
        from botorch_archsearch.graph import build_student, trace
        from botorch_archsearch.models import build_teacher

        torch.set_num_threads(1)
        _, size = bench_methods.TEACHERS[teacher]
        model = build_teacher(teacher, num_classes=10, in_channels=1, width=0.125).eval()
        net = build_student(trace(model, torch.zeros(1, 1, size, size)), model)
        cache[key] = measure_latency(net, (1, size, size), batch_sizes=(1,)).milliseconds[0]
    return cache[key]


def report(args: argparse.Namespace) -> None:
    from scipy.stats import spearmanr

    from botorch_archsearch.acquisition.pareto import hypervolume_2d

    out, methods_out = Path(args.out), Path(args.methods_out)
    cache_path = out / "latency_cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for teacher_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        teacher = teacher_dir.name
        seeds = sorted(int(p.name.split("-")[1]) for p in (teacher_dir / "pareto").glob("seed-*"))
        students: dict[tuple[str, int], list[dict]] = {}
        targets: dict[tuple[str, int], list[str]] = {}
        for seed in seeds:
            front = trained_students(teacher_dir / "pareto" / f"seed-{seed}")
            if front:
                students[("pareto", seed)] = front
            for target_dir in sorted((methods_out / teacher).glob("*-*")):
                for method in bench_methods.METHODS:
                    if method == bench_methods.PEER:
                        continue
                    got = trained_students(target_dir / method / f"seed-{seed}")
                    if got:
                        students.setdefault((method, seed), []).extend(got)
                        targets.setdefault((method, seed), []).append(target_dir.name.replace("-", "/"))
        if not students:
            continue
        info = json.loads(next(iter(teacher_dir.glob("pareto/seed-*/teacher.json"))).read_text())
        t_flops, t_acc = float(info["flops"]), float(info["test_accuracy"])
        t_ms = teacher_latency_ms(teacher, cache)
        hv: dict[str, dict[int, tuple[float, ...]]] = {}
        for (method, seed), rows in students.items():
            acc = [r["test_accuracy"] / t_acc for r in rows]
            flops = [r["flops"] / t_flops for r in rows]
            ms = [latency_ms(r["dir"], cache) / t_ms for r in rows]
            hv.setdefault(method, {})[seed] = (hypervolume_2d(flops, acc, 1.0), hypervolume_2d(ms, acc, 1.0),
                                               hypervolume_2d(flops, acc, 1.0, USEFUL), hypervolume_2d(ms, acc, 1.0, USEFUL))
        cache_path.write_text(json.dumps(cache, indent=1))
        print(f"## {teacher}: teacher {t_flops / 1e6:.2f} MFLOPs, test accuracy {100 * t_acc:.2f}%, "
              f"{t_ms:.2f} ms at batch 1 (this machine)\n")
        header = ("| HV (accuracy, FLOPs) | HV (accuracy, latency) | HV above {u:g} (FLOPs) | HV above {u:g} (latency) |"
                  .format(u=USEFUL))
        print(f"| method | seeds | targets {header}")
        print("|---|---|---|---|---|---|---|")
        for method, by_seed in hv.items():
            covered = "front" if method == "pareto" else ", ".join(sorted(set(sum(
                (targets.get((method, s), []) for s in by_seed), []))))
            cells = []
            for k in range(4):
                a = np.array([v[k] for v in by_seed.values()])
                cells.append(f"{a.mean():.4f} +- {a.std(ddof=1) if len(a) > 1 else 0:.4f}")
            print(f"| {method} | {len(by_seed)} | {covered} | {' | '.join(cells)} |")
        if "pareto" in hv:
            print("\nPareto search minus each method, hypervolume, paired by seed (95% t-interval):\n")
            print(f"| method | seeds {header}")
            print("|---|---|---|---|---|---|")
            for method, by_seed in hv.items():
                common = sorted(set(by_seed) & set(hv["pareto"]))
                if method == "pareto" or not common:
                    continue
                cells = []
                for k in range(4):
                    d = np.array([hv["pareto"][s][k] - by_seed[s][k] for s in common])
                    lo, hi = bench_methods.t_interval(d)
                    cells.append(f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")
                print(f"| {method} | {len(common)} | {' | '.join(cells)} |")
        everyone = [r for rows in students.values() for r in rows]
        flops = np.array([r["flops"] for r in everyone], dtype=float)
        ms = np.array([latency_ms(r["dir"], cache) for r in everyone])
        wrong = sum(1 for i in range(len(everyone)) for j in range(len(everyone))
                    if flops[i] < flops[j] and ms[i] > ms[j])
        pairs = sum(1 for i in range(len(everyone)) for j in range(len(everyone)) if flops[i] < flops[j])
        rho = spearmanr(flops, ms).statistic if len(everyone) > 2 else math.nan
        print(f"\nFLOPs against latency over the {len(everyone)} fully trained students: Spearman {rho:.3f}; in "
              f"{wrong} of {pairs} pairs the student with fewer FLOPs is the slower one.\n")
        if args.figures:
            path = Path(args.figures) / f"pareto_{teacher}.png"
            figure(students, (t_acc, t_flops, t_ms), cache, path, teacher)
            print(f"Figure: `{path}`\n")


def figure(students: dict[tuple[str, int], list[dict]], teacher: tuple[float, float, float], cache: dict,
           path: Path, title: str) -> None:
    """Three panels: every method's fully trained students of the first seed with its front's staircase,
    over FLOPs and over latency (relative to the teacher), and latency against FLOPs of every student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from botorch_archsearch.acquisition.pareto import staircase

    t_acc, t_flops, t_ms = teacher
    seed = min(s for _, s in students)
    methods = list(dict.fromkeys(m for m, _ in students))
    colours = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for (method, s), rows in students.items():
        acc = [r["test_accuracy"] / t_acc for r in rows]
        flops = [r["flops"] / t_flops for r in rows]
        ms = [latency_ms(r["dir"], cache) / t_ms for r in rows]
        marker = "*" if method == "pareto" else "o"
        axes[2].scatter(flops, ms, s=40 if method == "pareto" else 18, marker=marker, color=colours[method],
                        label=method if s == seed else None)
        if s != seed:
            continue
        for ax, size in ((axes[0], flops), (axes[1], ms)):
            ax.scatter(size, acc, s=60 if method == "pareto" else 25, marker=marker, color=colours[method],
                       label=method)
            t, levels = staircase(size, acc, 1.0)
            ax.step([*t.tolist(), 1.0], [*levels.tolist(), levels[-1].item()], where="post", color=colours[method],
                    alpha=0.6)
    axes[0].set(xlabel="FLOPs / teacher's", ylabel="test accuracy / teacher's", title=f"{title}, seed {seed}: FLOPs")
    axes[1].set(xlabel="latency at batch 1 / teacher's", ylabel="test accuracy / teacher's",
                title=f"{title}, seed {seed}: latency")
    axes[2].set(xlabel="FLOPs / teacher's", ylabel="latency at batch 1 / teacher's",
                title="every fully trained student, all seeds")
    for ax in axes[:2]:
        ax.set_ylim(bottom=max(0.0, min(ax.get_ylim()[0], 0.8)))
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run (or resume) the pareto cells")
    p.add_argument("--teacher", choices=sorted(bench_methods.TEACHERS), default="resnet18")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.set_defaults(func=run)
    p = sub.add_parser("report", help="hypervolumes and the FLOPs-latency comparison")
    p.add_argument("out", nargs="?", default=str(DEFAULT_OUT))
    p.add_argument("--methods-out", default=str(bench_methods.DEFAULT_OUT))
    p.add_argument("--figures", default=None, help="a folder for the plots (none without it)")
    p.set_defaults(func=report)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
