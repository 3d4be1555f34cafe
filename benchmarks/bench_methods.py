r"""The field in one harness: every compression method at FLOPs targets of the same teacher, at
comparable compute, the best student of each fully trained and tested (issue 17).

Methods: ESNAC, random search, N2N and evolutionary synthesis (searches of the same number of
evaluations), Group Lasso, Variational Dropout and MorphNet (regularised training of the teacher),
the one-shot ``uniform`` and ``magnitude`` students, and Torch-Pruning's magnitude pruner (the
peer, ``torch_pruning``). Every method but the peer runs through the app (``python -m
botorch_archsearch +experiment=field_methods search.method=<method> ...``) with the same evaluator,
reward (FLOPs, with the target as a hard budget), journal and final training; the peer's student is
distilled by the same evaluator and trained by the same final training in this script.

Sub-commands:

``run``: one cell per (teacher, target, method, seed) in ``<out>/<teacher>/<target>/<method>/seed-<s>``;
a finished cell is skipped, an interrupted one resumed, so the benchmark survives being stopped.
``--jobs 2`` runs two cells at a time, one thread each. ``--methods field`` (the default) runs every
method above, the budget variants ``esnac_budget`` and ``random_budget`` and ``n2n_shaped`` (N2N
learning from the overshoot of children above the budget); ``all`` adds the studies
``esnac_accuracy`` and (teachers other than ResNet-18) ``esnac_transfer``.

``report``: per teacher, a table shaped like the survey's Table 1 (per method and target: FLOPs,
parameters and test accuracy of the fully trained best student, mean +- std over seeds; cost in
MAC-images and wall time), ESNAC's paired differences to every method (mean and 95% t-interval over
seeds) and, with ``--figures``, the Pareto plot of test accuracy against FLOPs of every method.

Usage::

    B=".venv/bin/python benchmarks/bench_methods.py"
    $B run --teacher resnet18 --targets 1/3 --seeds 0 1 2 --jobs 2   # the field (--methods field)
    $B run --teacher vgg19 --targets 1/3 --seeds 0 1 2 --jobs 2
    $B run --teacher resnet18 --targets 1/2 1/5 1/10 --seeds 0 1 2 --jobs 2
    # studies: the accuracy surrogate, kernel transfer from the ResNet-18 cells (Table 3)
    $B run --teacher resnet18 --targets 1/3 --seeds 0 1 2 --methods esnac_accuracy
    $B run --teacher vgg19 --targets 1/3 --seeds 0 1 2 --methods esnac_transfer
    $B run --teacher resnet34 --targets 1/3 --seeds 0 1 2 --methods esnac esnac_transfer random magnitude
    $B report benchmarks/runs/methods --figures benchmarks/figures/methods
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEARCHES = ("esnac", "random", "n2n", "evolutionary_synthesis")
ONE_PER_TARGET = ("group_lasso", "variational_dropout", "morphnet", "uniform", "magnitude")
PEER = "torch_pruning"
VARIANTS = {  # a cell name: the app's search.method and the settings that make the variant
    "esnac_accuracy": ("esnac", ("kernel.target=accuracy", "kernel.width_init=median")),
    # the reward a user with a target asks for: accuracy within the budget (issue 17's finding);
    # random_budget is its control (the same reward, no model)
    "esnac_budget": ("esnac", ("reward.kind=accuracy", "kernel.target=accuracy", "kernel.width_init=median")),
    "random_budget": ("random", ("reward.kind=accuracy",)),
    # N2N's policy learning from minus the overshoot of the children above the budget (with the
    # harness's reward they all score 0 where none is within it, and the policy never moves)
    "n2n_shaped": ("n2n", ("methods.n2n_over_budget=shaped",)),
    # paper Table 3 (issue 18): the kernels of the ResNet-18 ESNAC cell of the same target and seed
    # score this teacher's candidates without training
    "esnac_transfer": ("esnac", ("kernel.transfer_from={out}/resnet18/{target}/esnac/seed-{seed}",)),
}
DEFAULT_OUT = ROOT / "benchmarks" / "runs" / "methods"
REFERENCES = ("esnac",) + tuple(v for v, (method, _) in VARIANTS.items() if method == "esnac")  # paired tables'

METHODS = SEARCHES[:1] + tuple(VARIANTS) + SEARCHES[1:] + ONE_PER_TARGET + (PEER,)
# ``--methods field`` (the default): the methods the tables compare, the budget variants with them;
# ``esnac_accuracy`` and ``esnac_transfer`` are studies of their own (``all`` adds them)
FIELD = tuple(m for m in METHODS if m not in ("esnac_accuracy", "esnac_transfer"))
TEACHERS = {  # the app's teacher preset and the image size the network needs
    "resnet18": ("tiny_resnet18", 28),
    "resnet34": ("tiny_resnet34", 28),
    "vgg19": ("tiny_vgg19", 32),
    "mobilenetv2": ("tiny_mobilenetv2", 32),
}

TEACHER_THREADS = 1
"""Intra-op threads of the teacher's training: its weights depend on them (the order of the sums; on
the 2-core AMD EPYC one thread gave the ResNet-18 teacher 92.68% test accuracy, two threads 92.76%),
so ``run`` trains it once, on this many, before any cell, whatever ``--jobs``."""


def target_label(target: Fraction) -> str:
    return f"{target.numerator}-{target.denominator}"


@functools.cache
def teacher_flops(teacher: str) -> int:
    """MACs per image of the (untrained) teacher network: the size is known before training."""
    import torch

    from botorch_archsearch.graph import count_flops, trace
    from botorch_archsearch.models import build_teacher

    _, size = TEACHERS[teacher]
    model = build_teacher(teacher, num_classes=10, in_channels=1, width=0.125).eval()
    return count_flops(trace(model, torch.zeros(1, 1, size, size)))


def transfer_source(out: Path, target: Fraction, seed: int) -> Path:
    """The ResNet-18 ESNAC cell whose kernels ``esnac_transfer`` uses."""
    return Path(out).resolve() / "resnet18" / target_label(target) / "esnac" / f"seed-{seed}"


def overrides(teacher: str, target: Fraction, method: str, seed: int, out: Path = DEFAULT_OUT) -> list[str]:
    preset, size = TEACHERS[teacher]
    budget = math.floor(float(target) * teacher_flops(teacher))
    values = ["+experiment=field_methods", f"teacher={preset}", f"dataset.image_size={size}",
              f"reward.budget={budget}", f"seed={seed}", "progress=false"]
    if method in VARIANTS:
        fill = {"out": Path(out).resolve(), "target": target_label(target), "seed": seed}
        values += [f"search.method={VARIANTS[method][0]}", *(v.format(**fill) for v in VARIANTS[method][1])]
    elif method != PEER:
        values.append(f"search.method={method}")
    if method in ONE_PER_TARGET or method == PEER:
        values.append(f"search.targets=[{float(target)!r}]")
    return values


# --------------------------------------------------------------------------------------------
# run


def run_cell(cell: Path, teacher: str, target: Fraction, method: str, seed: int, threads: int) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    if method == PEER:
        if (cell / "result.json").exists():
            return f"{cell}: done"
        command = [sys.executable, __file__, "peer", str(cell), teacher, str(target), str(seed)]
    else:
        if (cell / "report.md").exists():
            return f"{cell}: done"
        command = [sys.executable, "-m", "botorch_archsearch"]
        if (cell / "config.json").exists():
            command += [f"resume={cell.resolve()}", f"hydra.run.dir={(cell / 'resume-logs').resolve()}"]
        else:
            command += [*overrides(teacher, target, method, seed, cell.parents[3]), f"hydra.run.dir={cell.resolve()}"]
    cell.mkdir(parents=True, exist_ok=True)
    print(f"{cell}: {' '.join(command[1:])}", flush=True)
    with open(cell / "bench.log", "a") as log:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    status = "ok" if result.returncode == 0 else f"FAILED (exit code {result.returncode}, see {cell / 'bench.log'})"
    return f"{cell}: {status} in {time.perf_counter() - start:.0f} s"


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.methods == ["field"]:
        methods = FIELD
    elif args.methods == ["all"]:  # esnac_transfer needs another teacher than the one it transfers from
        methods = tuple(m for m in METHODS if m != "esnac_transfer" or args.teacher != "resnet18")
    else:
        methods = args.methods
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {list(METHODS)}, or 'field' or 'all'")
    cells = [(out / args.teacher / target_label(t) / m / f"seed-{s}", args.teacher, t, m, s)
             for s in args.seeds for t in args.targets for m in methods]
    if "esnac_transfer" in methods:  # kernels to transfer: a finished ResNet-18 ESNAC cell of the target and seed
        if args.teacher == "resnet18":
            raise SystemExit("esnac_transfer transfers the kernels of the resnet18 cells: run it for another teacher")
        missing = [c for c in cells if c[3] == "esnac_transfer"
                   and not (transfer_source(out, c[2], c[4]) / "report.md").exists()]
        for c in missing:
            print(f"{c[0]}: skipped, {transfer_source(out, c[2], c[4])} has not finished (run resnet18's esnac first)")
        cells = [c for c in cells if c not in missing]
    if not cells:
        return
    # The teacher first, in one process on TEACHER_THREADS threads: cells running at once would each
    # train it (the cache has no lock), and with as many threads as --jobs leaves them.
    env = dict(os.environ, OMP_NUM_THREADS=str(TEACHER_THREADS))
    if subprocess.run([sys.executable, __file__, "teacher", args.teacher], cwd=ROOT, env=env).returncode:
        raise SystemExit(f"the {args.teacher} teacher could not be trained or loaded (see above); "
                         "no cell was run")
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda c: run_cell(*c, threads), cells):
            print(line, flush=True)


def cell_config(teacher: str, target: Fraction, method: str, seed: int):
    """The ``CompressConfig`` the app composes for a cell (its Hydra overrides on ``conf/``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from botorch_archsearch.__main__ import AppConfig  # noqa: F401 - registers the app's schema
    from botorch_archsearch.search import CompressConfig
    from botorch_archsearch.search.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides(teacher, target, method, seed))
    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("resume", None)
    values.pop("hydra", None)
    return CompressConfig.from_dict(values)


def train_teacher(args: argparse.Namespace) -> None:
    """Train (or load from the cache) the cells' teacher, on one thread: ``run`` calls it first."""
    import torch

    from botorch_archsearch.evaluation import load_dataset
    from botorch_archsearch.search.loop import resolve_teacher

    torch.set_num_threads(TEACHER_THREADS)
    config = cell_config(args.teacher, Fraction(1, 3), "magnitude", 0)  # the teacher is every cell's
    d = config.dataset
    data = load_dataset(d.name, d.root, download=d.download, val_size=d.val_size, seed=d.split_seed,
                        image_size=d.image_size)
    print(f"teacher {args.teacher}: from the cache, or trained on {TEACHER_THREADS} thread(s) "
          f"({config.teacher.epochs} epochs, ~13 minutes for resnet18 on a 2-core CPU)", flush=True)
    teacher = resolve_teacher(None, data, config, torch.device("cpu"))
    how = "from the cache" if teacher.cached else "trained"
    print(f"teacher {args.teacher}: validation accuracy {teacher.val_accuracy:.4f}, test accuracy "
          f"{teacher.test_accuracy:.4f} ({how}: {teacher.path})", flush=True)


def peer(args: argparse.Namespace) -> None:
    """One Torch-Pruning cell: the pruned teacher distilled and fully trained as the app's students."""
    import torch

    from botorch_archsearch.__main__ import AppConfig  # noqa: F401 - registers the app's schema
    from botorch_archsearch.evaluation import (
        evaluate_students,
        evaluation_cost,
        finetune,
        images_per_epoch,
        load_dataset,
    )
    from botorch_archsearch.field.peers import torch_pruning_student
    from botorch_archsearch.search.config import options_for
    from botorch_archsearch.search.loop import derive_seed, resolve_teacher

    cell, target, seed = Path(args.cell), Fraction(args.target), int(args.seed)
    config = cell_config(args.teacher, target, PEER, seed)
    d = config.dataset
    data = load_dataset(d.name, d.root, download=d.download, val_size=d.val_size, seed=d.split_seed,
                        image_size=d.image_size)
    teacher = resolve_teacher(None, data, config, torch.device("cpu"))
    example = torch.zeros(1, data.in_channels, data.image_size, data.image_size)
    start = time.perf_counter()
    student, info = torch_pruning_student(teacher.model, example, float(target), measure="flops")
    prune_seconds = time.perf_counter() - start
    e = config.evaluation
    [result] = evaluate_students(teacher.model, [student], data, **options_for(evaluate_students, e),
                                 seed=derive_seed(seed, PEER, 1, "evaluate"))
    train = images_per_epoch(len(data.train_y), e.batch_size, e.max_batches)
    from botorch_archsearch.graph import count_flops, trace

    full = count_flops(trace(teacher.model, example))
    final = finetune(student, data, **options_for(finetune, config.final), seed=derive_seed(seed, PEER, 0, "final"),
                     progress=False)
    record = {
        "method": PEER, "seed": seed, "target": float(target), "flops": info["flops"], "params": info["params"],
        "teacher_flops": full, "teacher_params": None, "accuracy": result.accuracy, "status": result.status,
        "cost": evaluation_cost(info["flops"], full, train, len(data.val_y), e.epochs),
        "seconds": (result.seconds or 0.0) + prune_seconds, "test_accuracy": final.test_accuracy,
        "val_accuracy": final.val_accuracy, "final_seconds": final.seconds, "teacher_val_accuracy": teacher.val_accuracy,
        "teacher_test_accuracy": teacher.test_accuracy, "pruning": info,
    }
    cell.mkdir(parents=True, exist_ok=True)
    (cell / "result.json").write_text(json.dumps(record, indent=2))


# --------------------------------------------------------------------------------------------
# report


def read_cell(cell: Path, method: str) -> dict | None:
    """The cell's best student (fully trained) and its method's cost, or ``None`` if unfinished."""
    if method == PEER:
        path = cell / "result.json"
        return json.loads(path.read_text()) if path.exists() else None
    if not (cell / "report.md").exists():
        return None
    from botorch_archsearch.search.journal import read_journal

    name = VARIANTS.get(method, (method,))[0]  # the method as the journal names it
    records = [r for r in read_journal(cell / "journal.jsonl").records if r["method"] == name]
    final = [f for f in read_journal(cell / "final.jsonl").records if f["method"] == name and f.get("rank") == 1]
    teacher = json.loads((cell / "teacher.json").read_text())
    if not final:
        return None
    best = next(r for r in records if r["index"] == final[0]["index"])
    return {
        "method": method, "flops": best["flops"], "params": best["params"], "accuracy": best["accuracy"],
        "test_accuracy": final[0].get("test_accuracy"), "teacher_flops": teacher["flops"],
        "teacher_params": teacher["params"], "teacher_val_accuracy": teacher["val_accuracy"],
        "teacher_test_accuracy": teacher.get("test_accuracy"), "evaluations": len(records),
        "cost": sum((r.get("cost") or 0.0) + (r.get("overhead_cost") or 0.0) for r in records),
        "seconds": sum((r.get("seconds") or 0.0) + (r.get("overhead_seconds") or 0.0) for r in records),
        "final_seconds": final[0].get("seconds"),
        # a search whose best student is a one-shot student of its first step (search.init=oneshot)
        "oneshot_start": name == "esnac" and best.get("step") == 1 and best.get("target") is not None,
    }


def t_interval(d: np.ndarray) -> tuple[float, float]:
    from scipy.stats import t

    if len(d) < 2:
        return (math.nan, math.nan)
    half = t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    for teacher_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        cells: dict[tuple[str, str], dict[int, dict]] = {}
        for target_dir in sorted(p for p in teacher_dir.iterdir() if p.is_dir()):
            for method in METHODS:
                for cell in sorted((target_dir / method).glob("seed-*")):
                    row = read_cell(cell, method)
                    if row is not None:
                        cells.setdefault((target_dir.name, method), {})[int(cell.name.split("-")[1])] = row
        if not cells:
            continue
        any_row = next(iter(next(iter(cells.values())).values()))
        targets = sorted({t for t, _ in cells}, key=lambda t: -float(Fraction(t.replace("-", "/"))))
        print(f"## {teacher_dir.name}: teacher {any_row['teacher_flops'] / 1e6:.2f} MFLOPs (MACs), test accuracy "
              f"{100 * (any_row['teacher_test_accuracy'] or math.nan):.2f}% (validation "
              f"{100 * any_row['teacher_val_accuracy']:.2f}%)\n")
        for target in targets:
            print(f"### target {target.replace('-', '/')} of the teacher's FLOPs\n")
            print("| method | seeds | MFLOPs | params | test accuracy (%) | within target | cost (MAC-images) "
                  "| search wall time | best = its one-shot start |")
            print("|---|---|---|---|---|---|---|---|---|")
            limit = float(Fraction(target.replace("-", "/"))) * any_row["teacher_flops"]
            for method in METHODS:
                rows = cells.get((target, method))
                if not rows:
                    continue
                values = list(rows.values())
                acc = np.array([100 * (r["test_accuracy"] or 0.0) for r in values])
                flops = np.array([r["flops"] for r in values]) / 1e6
                params = np.array([r["params"] for r in values])
                cost = np.array([r["cost"] for r in values])
                seconds = np.array([r["seconds"] for r in values])
                within = sum(r["flops"] <= limit for r in values)
                start = (f"{sum(bool(r.get('oneshot_start')) for r in values)}/{len(values)}"
                         if VARIANTS.get(method, (method,))[0] == "esnac" else "")
                print(f"| {method} | {len(values)} | {flops.mean():.3f} | {params.mean():,.0f} | "
                      f"{acc.mean():.2f} +- {acc.std(ddof=1) if len(acc) > 1 else 0:.2f} | {within}/{len(values)} | "
                      f"{cost.mean():.3g} | {seconds.mean() / 60:.1f} min | {start} |")
            print()
            pairs = [(r["accuracy"], r["test_accuracy"]) for (t, m), rows in cells.items()
                     if t == target and m not in (PEER, "variational_dropout") for r in rows.values()
                     if r.get("accuracy") is not None and r.get("test_accuracy") is not None]
            if len(pairs) > 2 and min(len({a for a, _ in pairs}), len({b for _, b in pairs})) > 1:  # else undefined
                from scipy.stats import spearmanr

                rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
                print(f"Does the search's short evaluation predict the final accuracy? Over the {len(pairs)} fully "
                      f"trained best students of every method but VD and the peer, the rank correlation of their "
                      f"accuracy in the search with their test accuracy after final training is {rho:.2f}.\n")
            for name in REFERENCES:
                reference = cells.get((target, name))
                if not reference:
                    continue
                label = "ESNAC" if name == "esnac" else name
                print(f"{label} minus each method, test accuracy (percentage points), paired by seed (seeds where both "
                      "students are within the target):\n")
                print(f"| method | seeds | mean difference | 95% t-interval | {label} better on |")
                print("|---|---|---|---|---|")
                for method in METHODS:
                    rows = cells.get((target, method))
                    if method == name or not rows:
                        continue
                    seeds = sorted(set(rows) & set(reference))
                    if not seeds:
                        continue
                    # a student above the target is no answer to it: such pairs are left out, and said so
                    over = [s for s in seeds if rows[s]["flops"] > limit or reference[s]["flops"] > limit]
                    seeds = [s for s in seeds if s not in over]
                    if not seeds:
                        print(f"| {method} | 0 | - | - | no seed with both students within the target |")
                        continue
                    d = np.array([100 * ((reference[s]["test_accuracy"] or 0) - (rows[s]["test_accuracy"] or 0))
                                  for s in seeds])
                    lo, hi = t_interval(d)
                    left_out = f" ({len(over)} seed(s) above the target left out)" if over else ""
                    interval = "n/a (one seed)" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]"
                    print(f"| {method} | {len(seeds)} | {d.mean():+.2f} | {interval} | "
                          f"{int((d > 0).sum())} of {len(d)}{left_out} |")
                print()
        if args.figures:
            pareto_figure(cells, any_row, Path(args.figures) / f"pareto_{teacher_dir.name}.png", teacher_dir.name)


def pareto_figure(cells: dict, teacher: dict, path: Path, name: str, floor: float = 15.0) -> dict:
    r"""Test accuracy against FLOPs, one line per method over the targets (mean +- std over seeds).

    A hollow marker is a target where some seed's student is above the target's FLOPs. Points more
    than ``floor`` points below the teacher are left off the axis (the rest would be unreadable)
    and named, with their values, in the legend.

    Returns:
        The legend's labels by method, and the drawn points by method: ``(MFLOPs, accuracy, within)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)  # 18 distinct colours
    teacher_test = teacher.get("teacher_test_accuracy")  # None: an old cell; the axis then follows validation
    bottom = 100 * (teacher_test or teacher["teacher_val_accuracy"]) - floor
    drawn: dict = {"labels": {}, "points": {}}
    for i, method in enumerate(METHODS):
        points, below = [], []
        for (target, m), rows in sorted(cells.items()):
            if m != method:
                continue
            values = list(rows.values())
            limit = float(Fraction(target.replace("-", "/"))) * teacher["teacher_flops"]
            acc = np.array([100 * (r["test_accuracy"] or 0.0) for r in values])
            x = np.mean([r["flops"] for r in values]) / 1e6
            std = acc.std(ddof=1) if len(acc) > 1 else 0.0
            point = (x, acc.mean(), std, all(r["flops"] <= limit for r in values))
            (points if point[1] >= bottom else below).append(point)
        if not points and not below:
            continue
        label = method + "".join(f"; {y:.0f}% at {x:.3g} MFLOPs (below the axis)" for x, y, _, _ in below)
        color, marker = colors[i % len(colors)], "os^vD<>ph*XP"[i % 12]
        points.sort()
        drawn["labels"][method] = label
        drawn["points"][method] = [(x, y, within) for x, y, _, within in points]
        if len(points) > 1:
            ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1)
        for j, (x, y, e, within) in enumerate(points):
            ax.errorbar([x], [y], yerr=[e], marker=marker, color=color, capsize=3, linestyle="none",
                        markerfacecolor=color if within else "none", label=label if j == 0 else None)
        if not points:  # only in the legend
            ax.errorbar([], [], yerr=[], marker=marker, color=color, linestyle="none", label=label)
    if teacher_test:  # the axis is test accuracy: no star for a teacher without one
        ax.scatter([teacher["teacher_flops"] / 1e6], [100 * teacher_test], marker="*", s=250, color="gold",
                   edgecolor="black", zorder=5, label="teacher")
    ax.set_ylim(bottom=bottom)
    ax.set_xscale("log")
    ax.set_xlabel("MFLOPs (multiply-accumulates per image)")
    ax.set_ylabel("test accuracy after final training (%)")
    ax.set_title(f"Fashion-MNIST, tiny {name}: every method\n"
                 "(mean +- std over seeds; hollow: over the target)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {path}")
    return drawn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run (or resume) the cells")
    p.add_argument("--teacher", choices=sorted(TEACHERS), default="resnet18")
    p.add_argument("--targets", nargs="+", type=Fraction, default=[Fraction(1, 3)])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["field"],
                   help="cells' methods, or 'field' (the default: every method the tables compare) or 'all' "
                        "(the field, esnac_accuracy and, for teachers other than resnet18, esnac_transfer)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.set_defaults(func=run)
    p = sub.add_parser("teacher", help="train (or load) the cells' teacher on one thread (used by run)")
    p.add_argument("teacher", choices=sorted(TEACHERS))
    p.set_defaults(func=train_teacher)
    p = sub.add_parser("peer", help="one Torch-Pruning cell (used by run)")
    p.add_argument("cell")
    p.add_argument("teacher", choices=sorted(TEACHERS))
    p.add_argument("target")
    p.add_argument("seed")
    p.set_defaults(func=peer)
    p = sub.add_parser("report", help="tables (and figures) of the cells")
    p.add_argument("out", nargs="?", default=str(DEFAULT_OUT))
    p.add_argument("--figures", default=None)
    p.set_defaults(func=report)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
