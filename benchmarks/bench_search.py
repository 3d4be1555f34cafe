r"""Search quality: ESNAC against random search at equal budget, with honest statistics.

Two sub-commands:

``run``: one search per seed through the Hydra application (``python -m botorch_archsearch
+experiment=<experiment> seed=<s> ...``), each in ``<out>/<name>/seed-<s>`` (an interrupted
cell is resumed on the next call). Extra Hydra overrides after ``--`` define a variant (an
ablation), e.g. ``-- search.method=esnac search.num_kernels=1 search.steps=48``.

``reevaluate``: each cell's chosen students (each search method's best, the one-shot students of
its journal, and one-shot ``uniform`` and ``magnitude`` students at the size of its best ESNAC
student) evaluated again with fresh evaluation seeds, all students of a cell and seed together
(``<cell>/reeval.jsonl``), so that picking the maximum of noisy evaluations does not favour the
searches.

``sampler``: how random search's students (the reference sampler's) compare with the one-shots,
and how their f(x) goes with the removals, shrink ratios and skips drawn.

``diagnose``: kernel fit quality per ESNAC step (the LOO rank correlation of the saved kernels).

``report``: reads the journals of one or more variants and prints, per method, the mean and
standard deviation over seeds of the best f(x), of its accuracy and compression ratio; the
anytime curve (mean best f(x) after n evaluations); how many evaluations ESNAC needs to reach
random search's final mean best f(x); and a paired comparison across seeds (bootstrap 95%
interval of the mean difference and the Wilcoxon signed-rank test). With ``--figures`` it draws
the anytime curves and the histograms of f(x) per method (paper Figure 2). Where cells were
re-evaluated, it adds the re-evaluated table, each student paired against ESNAC's (or
``--reference``), and the one-shots as horizontal lines in the anytime figure.

Usage::

    .venv/bin/python benchmarks/bench_search.py run --name main --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/bench_search.py run --name k1 --seeds 0 1 2 3 4 -- \
        search.method=esnac search.num_kernels=1 search.steps=48
    .venv/bin/python benchmarks/bench_search.py reevaluate benchmarks/runs/main --eval-seeds 3
    .venv/bin/python benchmarks/bench_search.py report benchmarks/runs/main benchmarks/runs/k1 \
        --figures benchmarks/figures
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# run


def run(args: argparse.Namespace) -> None:
    out = Path(args.out) / args.name
    for seed in args.seeds:
        cell = out / f"seed-{seed}"
        done = (cell / "report.md").exists()
        if done:
            print(f"{cell}: done", flush=True)
            continue
        resume = (cell / "config.json").exists()
        command = [sys.executable, "-m", "botorch_archsearch"]
        if resume:
            command += [f"resume={cell.resolve()}", f"hydra.run.dir={(cell / 'resume-logs').resolve()}"]
        else:
            experiment = [] if args.experiment == "none" else [f"+experiment={args.experiment}"]
            command += [*experiment, f"seed={seed}", f"hydra.run.dir={cell.resolve()}", *args.overrides]
        print(f"{cell}: {'resuming' if resume else 'running'}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        result = subprocess.run(command, cwd=ROOT, env=env)
        if result.returncode != 0:
            raise SystemExit(f"{cell}: the search failed (exit code {result.returncode})")
        print(f"{cell}: {time.perf_counter() - start:.0f} s", flush=True)


# --------------------------------------------------------------------------------------------
# report


def load_variant(folder: Path) -> dict[int, list[dict]]:
    """Journal records per seed of one variant folder (``seed-<s>/journal.jsonl``)."""
    from botorch_archsearch.search.journal import RECORD_KEYS, read_journal

    cells = {}
    for cell in sorted(folder.glob("seed-*")):
        journal = cell / "journal.jsonl"
        if journal.exists():  # a repeated line is counted once
            cells[int(cell.name.split("-", 1)[1])] = read_journal(journal, required=RECORD_KEYS).records
    if not cells:
        raise SystemExit(f"{folder}: no seed-*/journal.jsonl")
    return cells


def teacher_params(folder: Path) -> int | None:
    """The teacher's parameter count, from a cell's ``teacher.json``."""
    for cell in sorted(folder.glob("seed-*")):
        if (cell / "teacher.json").exists():
            return json.loads((cell / "teacher.json").read_text())["params"]
    return None


def anytime(records: list[dict], budget: int) -> np.ndarray:
    """Best f(x) after 1..budget evaluations (the last value carried if fewer were made)."""
    rewards = [r["reward"] for r in records][:budget]
    best = np.maximum.accumulate(np.array(rewards, dtype=float)) if rewards else np.zeros(0)
    if len(best) < budget:
        best = np.concatenate([best, np.full(budget - len(best), best[-1] if len(best) else np.nan)])
    return best


def bootstrap_ci(differences: np.ndarray, seed: int = 0, resamples: int = 20000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    samples = rng.choice(differences, size=(resamples, len(differences)), replace=True).mean(1)
    return float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975))


def paired_differences(row: dict, reference: dict) -> np.ndarray | None:
    """Best f(x) of ``row`` minus that of ``reference`` on the seeds both ran (``None``: none)."""
    seeds = sorted(set(row["best"]) & set(reference["best"]))
    if not seeds:
        return None
    return np.array([row["best"][s]["reward"] - reference["best"][s]["reward"] for s in seeds])


def paired_statistics(d: np.ndarray) -> tuple[float, float, float]:
    """Bootstrap 95% interval of the mean of ``d`` and the two-sided Wilcoxon signed-rank p."""
    from scipy.stats import wilcoxon

    lo, hi = bootstrap_ci(d)
    try:
        p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
    except ValueError:
        p = math.nan
    return lo, hi, float(p)


def summarize(name: str, cells: dict[int, list[dict]]) -> dict[str, dict]:
    """Per method: best records per seed, anytime curves."""
    out = {}
    methods = sorted({r["method"] for records in cells.values() for r in records}, key=_method_order)
    for method in methods:
        per_seed = {s: [r for r in records if r["method"] == method] for s, records in cells.items()}
        per_seed = {s: rs for s, rs in per_seed.items() if rs}
        budget = min(len(rs) for rs in per_seed.values())
        best = {s: max(rs[:budget], key=lambda r: r["reward"]) for s, rs in per_seed.items()}
        out[f"{name}/{method}"] = {
            "method": method, "variant": name, "budget": budget, "seeds": sorted(per_seed),
            "best": best, "curves": np.stack([anytime(per_seed[s], budget) for s in sorted(per_seed)]),
            "rewards": [r["reward"] for rs in per_seed.values() for r in rs[:budget] if r["status"] == "ok"],
            "failed": sum(r["status"] != "ok" for rs in per_seed.values() for r in rs[:budget]),
            "seconds": sum(r["seconds"] for rs in per_seed.values() for r in rs[:budget]),
        }
    return out


METHOD_ORDER = ("random", "esnac", "uniform", "magnitude")


def _method_order(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


# --------------------------------------------------------------------------------------------
# reevaluate


REEVAL_NAME = "reeval.jsonl"
ONESHOTS = ("uniform", "magnitude")


def chosen_students(records: list[dict], teacher: dict, measure: str) -> dict[str, dict]:
    """What a cell compares: each search method's best record, and each one-shot record of the
    journal, named ``<one-shot>@<search method>`` where its target is the size of that search's
    best student (else ``<one-shot>@<target>``); name -> the record."""
    out, size_of = {}, {}
    for method in sorted({r["method"] for r in records}, key=_method_order):
        mine = [r for r in records if r["method"] == method and r["status"] == "ok"]
        if mine and method not in ONESHOTS:
            out[method] = max(mine, key=lambda r: (r["reward"], -r["index"]))
            size_of[method] = out[method][measure] / teacher[measure]
    for r in records:
        if r["method"] in ONESHOTS and r["status"] == "ok":
            match = next((m for m, size in size_of.items() if abs(size - r.get("target", -1)) < 1e-12), None)
            out[f"{r['method']}@{match or format(r.get('target', 0), '.4f')}"] = r
    return out


def reevaluate(args: argparse.Namespace) -> None:
    """Each cell's chosen students (each search's best, the journal's one-shots, and one-shot
    ``uniform`` and ``magnitude`` students at the size of each search's best student where the
    journal has none) evaluated again with fresh evaluation seeds, all of a seed together;
    appended to ``<cell>/reeval.jsonl`` (a seed already there is skipped)."""
    from botorch_archsearch.search import RunEvaluator
    from botorch_archsearch.space import Edit, oneshot_edit

    overrides = {"evaluation": {"isolation": args.isolation}} if args.isolation else None
    for folder in map(Path, args.variants):
        for cell in sorted(folder.glob("seed-*")):
            if not (cell / "journal.jsonl").exists():
                continue
            path = cell / REEVAL_NAME
            done = {}
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.strip():
                        row = json.loads(line)
                        done.setdefault(row["eval_seed"], set()).add(row["name"])
            with RunEvaluator(cell, overrides) as run:
                records = run.records()
                measure = run.config.reward.budget_measure or run.config.reward.measure
                chosen = chosen_students(records, run.teacher_info, measure)
                students = {name: Edit.from_dict(r["edit"]) for name, r in chosen.items()}
                for method in [m for m in chosen if "@" not in m]:
                    target = chosen[method][measure] / run.teacher_info[measure]
                    for oneshot in ONESHOTS:
                        if f"{oneshot}@{method}" not in students:
                            students[f"{oneshot}@{method}"] = oneshot_edit(
                                run.space, oneshot, target, measure=measure, scope=run.config.search.magnitude_scope)
                names = list(students)
                for eval_seed in range(args.eval_seeds):
                    if set(names) <= done.get(eval_seed, set()):
                        continue
                    start = time.perf_counter()
                    results = run.evaluate([students[n] for n in names], eval_seed)
                    with path.open("a") as f:
                        for name, result in zip(names, results):
                            f.write(json.dumps({"name": name, "eval_seed": eval_seed, **result,
                                                "edit": students[name].to_dict()}) + "\n")
                    print(f"{cell}: evaluation seed {eval_seed}: {len(names)} students in "
                          f"{time.perf_counter() - start:.0f} s: " +
                          ", ".join(f"{n} {r['reward']:.4f}" for n, r in zip(names, results)), flush=True)


def load_reevaluations(folder: Path) -> dict[str, dict[int, list[dict]]]:
    """name -> search seed -> the rows of its re-evaluations, from ``<cell>/reeval.jsonl``."""
    out: dict[str, dict[int, list[dict]]] = {}
    for cell in sorted(folder.glob("seed-*")):
        path = cell / REEVAL_NAME
        if not path.exists():
            continue
        seed = int(cell.name.split("-", 1)[1])
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out.setdefault(row["name"], {}).setdefault(seed, []).append(row)
    return out


def report_reevaluations(variants: list[Path], reference: str | None, tparams: int | None) -> dict[str, float]:
    """The re-evaluation tables; returns the mean re-evaluated f(x) of each one-shot row (for the
    anytime figure)."""
    rows: dict[str, dict[int, dict]] = {}
    for folder in variants:
        for name, per_seed in load_reevaluations(folder).items():
            rows[f"{folder.name}/{name}"] = {
                s: {key: float(np.mean([r[key] if r[key] is not None else 0.0 for r in rs]))
                    for key in ("reward", "accuracy", "params")} | {"n": len(rs)}
                for s, rs in per_seed.items()
            }
    if not rows:
        return {}
    n_eval = sorted({v["n"] for per in rows.values() for v in per.values()})
    print(f"Re-evaluated with fresh evaluation seeds ({'/'.join(map(str, n_eval))} per student, all students of a cell "
          "and seed together); per search seed the mean over evaluation seeds, then mean +- std over search seeds:")
    print("| variant / student | seeds | f(x) | accuracy | compression (params ratio) |")
    print("|---|---|---|---|---|")
    for key, per in rows.items():
        f = np.array([v["reward"] for v in per.values()])
        acc = np.array([v["accuracy"] for v in per.values()])
        ratio = np.array([tparams / v["params"] for v in per.values()]) if tparams else None
        sd = (lambda x: x.std(ddof=1) if len(x) > 1 else 0.0)
        print(f"| {key} | {len(f)} | {f.mean():.4f} +- {sd(f):.4f} | {acc.mean():.4f} +- {sd(acc):.4f} | "
              + (f"{ratio.mean():.1f}x +- {sd(ratio):.1f} |" if ratio is not None else "n/a |"))
    reference = reference or next((k for k in rows if k.endswith("/esnac")), None)
    if reference in rows:
        print()
        print(f"Paired by search seed against {reference} (its re-evaluated f(x) minus each other's):")
        print("| other | seeds | mean difference | bootstrap 95% CI | Wilcoxon p (two-sided) | reference better |")
        print("|---|---|---|---|---|---|")
        ref = rows[reference]
        for key, per in rows.items():
            if key == reference:
                continue
            seeds = sorted(set(ref) & set(per))
            if not seeds:
                continue
            d = np.array([ref[s]["reward"] - per[s]["reward"] for s in seeds])
            lo, hi, p = paired_statistics(d)
            print(f"| {key} | {len(d)} | {d.mean():+.4f} | [{lo:+.4f}, {hi:+.4f}] | {p:.3f} | "
                  f"{int((d > 0).sum())}/{len(d)} |")
    print()
    return {k: float(np.mean([v["reward"] for v in per.values()])) for k, per in rows.items()
            if k.split("/", 1)[1].split("@")[0] in ONESHOTS}


def paired_with_random(rows: dict[str, dict], baseline: dict) -> None:
    """Each ESNAC row against the baseline variant's random search, paired by seed."""
    target = baseline["curves"].mean(0)[-1]
    print(f"Paired against {baseline['variant']}/random (final mean best f(x) {target:.4f}, "
          f"{baseline['budget']} evaluations):")
    print("| variant / method | mean difference in best f(x) | bootstrap 95% CI | Wilcoxon p (two-sided) | "
          "wins | evaluations to reach random's final mean |")
    print("|---|---|---|---|---|---|")
    for key, row in rows.items():
        if row["method"] != "esnac":
            continue
        d = paired_differences(row, baseline)
        if d is None:
            continue
        lo, hi, p = paired_statistics(d)
        mean = row["curves"].mean(0)
        reach = next((n + 1 for n, v in enumerate(mean) if v >= target), None)
        reach_text = str(reach) if reach is not None else f"not within {row['budget']}"
        print(f"| {key} | {d.mean():+.4f} | [{lo:+.4f}, {hi:+.4f}] | {p:.3f} | {int((d > 0).sum())}/{len(d)} | "
              f"{reach_text} |")


def report_final(variants: list[Path], reference: str | None) -> None:
    """Each method's best student after the run's final training (``final.jsonl``, rank 1): test
    accuracy and f(x) with it, mean +- std over seeds, paired by seed against the reference."""
    rows: dict[str, dict[int, dict]] = {}
    for folder in variants:
        for cell in sorted(folder.glob("seed-*")):
            path = cell / "final.jsonl"
            if not path.exists() or not (cell / "teacher.json").exists():
                continue
            teacher = json.loads((cell / "teacher.json").read_text())
            seed = int(cell.name.split("-", 1)[1])
            for line in path.read_text().splitlines():
                entry = json.loads(line) if line.strip() else None
                if not entry or entry["rank"] != 1 or entry["status"] != "ok" or teacher.get("test_accuracy") is None:
                    continue
                c = 1 - entry["params"] / teacher["params"]
                rows.setdefault(f"{folder.name}/{entry['method']}", {})[seed] = {
                    "test": entry["test_accuracy"], "params": entry["params"],
                    "reward": c * (2 - c) * entry["test_accuracy"] / teacher["test_accuracy"]}
    if not rows:
        return
    print("After the run's final training (each method's best student; f(x) with test accuracies):")
    print("| variant / method | seeds | test accuracy | f(x) on test | params |")
    print("|---|---|---|---|---|")
    sd = (lambda x: x.std(ddof=1) if len(x) > 1 else 0.0)  # noqa: E731
    for key, per in rows.items():
        test = np.array([v["test"] for v in per.values()])
        f = np.array([v["reward"] for v in per.values()])
        params = np.array([v["params"] for v in per.values()])
        print(f"| {key} | {len(per)} | {test.mean():.4f} +- {sd(test):.4f} | {f.mean():.4f} +- {sd(f):.4f} | "
              f"{params.mean():,.0f} |")
    reference = reference if reference in rows else next((k for k in rows if k.endswith("/esnac")), None)
    if reference is None:
        return
    print()
    print(f"Paired by search seed against {reference} after final training (f(x) on test, its minus each other's):")
    print("| other | seeds | mean difference | bootstrap 95% CI | Wilcoxon p (two-sided) | reference better |")
    print("|---|---|---|---|---|---|")
    for key, per in rows.items():
        seeds = sorted(set(rows[reference]) & set(per))
        if key == reference or not seeds:
            continue
        d = np.array([rows[reference][s]["reward"] - per[s]["reward"] for s in seeds])
        lo, hi, p = paired_statistics(d)
        print(f"| {key} | {len(d)} | {d.mean():+.4f} | [{lo:+.4f}, {hi:+.4f}] | {p:.3f} | {int((d > 0).sum())}/{len(d)} |")
    print()


def report(args: argparse.Namespace) -> None:
    rows: dict[str, dict] = {}
    tparams = args.teacher_params
    for folder in map(Path, args.variants):
        rows.update(summarize(folder.name, load_variant(folder)))
        tparams = tparams or teacher_params(folder)
    print("| variant / method | seeds | evaluations | best f(x) mean +- std | its accuracy | its compression "
          "(params ratio) | failed | evaluation time |")
    print("|---|---|---|---|---|---|---|---|")
    for key, row in rows.items():
        best = list(row["best"].values())
        f = np.array([b["reward"] for b in best])
        acc = np.array([b["accuracy"] for b in best])
        ratio = np.array([tparams / b["params"] for b in best]) if tparams else None
        ratio_text = f"{ratio.mean():.1f}x +- {ratio.std(ddof=1) if len(ratio) > 1 else 0:.1f}" if ratio is not None \
            else "n/a"
        std = f.std(ddof=1) if len(f) > 1 else 0.0
        print(f"| {key} | {len(best)} | {row['budget']} | {f.mean():.4f} +- {std:.4f} | "
              f"{acc.mean():.4f} +- {acc.std(ddof=1) if len(acc) > 1 else 0:.4f} | {ratio_text} | {row['failed']} | "
              f"{row['seconds'] / 60:.1f} min |")
    print()
    # anytime curves
    checkpoints = sorted({n for row in rows.values() for n in (1, 4, 8, 12, 16, 24, 32, 40, 48, row["budget"])
                          if n <= row["budget"]})
    print("Anytime: mean best f(x) after n evaluations")
    print("| variant / method | " + " | ".join(f"n={n}" for n in checkpoints) + " |")
    print("|---|" + "---|" * len(checkpoints))
    for key, row in rows.items():
        mean = row["curves"].mean(0)
        print(f"| {key} | " + " | ".join(f"{mean[n - 1]:.4f}" if n <= row["budget"] else "" for n in checkpoints) + " |")
    print()
    # ESNAC against random search (paired by seed) within each variant that ran both, and each
    # ESNAC variant against the baseline variant's random search
    random_rows = {k: r for k, r in rows.items() if r["method"] == "random"}
    baseline = random_rows.get(f"{args.baseline}/random") or next(iter(random_rows.values()), None)
    if baseline is not None:
        paired_with_random(rows, baseline)
    # each other ESNAC variant (an ablation) against the baseline variant's ESNAC, paired by seed
    reference = rows.get(f"{args.baseline}/esnac")
    others = [k for k, r in rows.items() if r["method"] == "esnac" and r is not reference]
    if reference is not None and others:
        print()
        print(f"Ablations paired against {reference['variant']}/esnac (best f(x) of the variant minus the "
              f"baseline's, same seeds):")
        print("| variant / method | seeds | mean difference in best f(x) | bootstrap 95% CI | Wilcoxon p (two-sided) | "
              "variant better |")
        print("|---|---|---|---|---|---|")
        for key in others:
            d = paired_differences(rows[key], reference)
            if d is None:
                continue
            lo, hi, p = paired_statistics(d)
            print(f"| {key} | {len(d)} | {d.mean():+.4f} | [{lo:+.4f}, {hi:+.4f}] | {p:.3f} | "
                  f"{int((d > 0).sum())}/{len(d)} |")
    print()
    lines = report_reevaluations([Path(v) for v in args.variants], args.reference, tparams)
    report_final([Path(v) for v in args.variants], args.reference)
    if args.figures:
        figures(rows, Path(args.figures), lines)


def figures(rows: dict[str, dict], folder: Path, lines: dict[str, float] | None = None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, row in rows.items():
        curves = row["curves"]
        n = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(0)
        sem = curves.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
        if row["method"] in ONESHOTS:
            continue  # one evaluation per target: a line below, not a curve
        ax.plot(n, mean, label=f"{key} ({len(curves)} seeds)")
        ax.fill_between(n, mean - sem, mean + sem, alpha=0.2)
    styles = ["--", ":", "-."]
    for i, (key, value) in enumerate((lines or {}).items()):
        ax.axhline(value, linestyle=styles[i % len(styles)], linewidth=1.2, color=f"C{(i + len(rows)) % 10}",
                   label=f"{key} (one-shot, re-evaluated)")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best f(x) so far (mean over seeds, +- s.e.m.)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "anytime.png", dpi=110)
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    all_rewards = [x for row in rows.values() for x in row["rewards"]]
    bins = np.linspace(min(all_rewards), max(all_rewards), 25) if all_rewards else 10
    for key, row in rows.items():
        ax.hist(row["rewards"], bins=bins, alpha=0.5, label=f"{key} ({len(row['rewards'])} evaluations)")
    ax.set_xlabel("f(x)")
    ax.set_ylabel("evaluated architectures")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "histogram.png", dpi=110)
    print(f"\nfigures: {folder / 'anytime.png'}, {folder / 'histogram.png'}")


def diagnose(args: argparse.Namespace) -> None:
    """Kernel fit quality as the search goes: for each ESNAC step's saved kernels, the Spearman
    rank correlation between the GP's leave-one-out predictions (the kernel conditioned on every
    architecture evaluated before the step) and the true rewards; and how the proposals' rewards
    compare with random search's at the same step."""
    import torch
    from scipy.stats import spearmanr

    from botorch_archsearch.gp import transferred_gp
    from botorch_archsearch.graph import ArchGraph, encode
    from botorch_archsearch.search.journal import RECORD_KEYS, read_journal

    folder = Path(args.variant)
    by_step: dict[int, list[float]] = {}
    proposed: dict[int, list[float]] = {}
    for cell in sorted(folder.glob("seed-*")):
        records = read_journal(cell / "journal.jsonl", required=RECORD_KEYS).records
        esnac = [r for r in records if r["method"] == "esnac"]
        for step_dir in sorted((cell / "kernels").glob("esnac-step*")):
            step = int(step_dir.name.split("step")[1])
            before = [r for r in esnac if r["step"] < step]
            if len(before) < 4:
                continue
            graphs = [ArchGraph.from_dict(r["architecture"]) for r in before]
            y = torch.tensor([[r["reward"]] for r in before], dtype=torch.float64)
            for path in sorted(step_dir.glob("kernel*.pt")):
                model = transferred_gp(path, encode(graphs, _max_layers(path), dtype=torch.float64), y)
                with torch.no_grad():
                    K = model.covar_module(model.train_inputs[0]).to_dense()
                    K = K + model.likelihood.noise * torch.eye(len(y), dtype=K.dtype)
                    z = model.train_targets  # standardised rewards
                    inv = torch.linalg.inv(K)
                    loo_mean = z - (inv @ z) / inv.diagonal()
                rho = spearmanr(loo_mean.numpy(), y.squeeze(-1).numpy()).statistic
                by_step.setdefault(step, []).append(float(rho))
            proposed.setdefault(step, []).extend(r["reward"] for r in esnac if r["step"] == step)
    print(f"Kernel fit quality, {folder.name}: LOO Spearman of the saved kernels on the data before each step")
    print("| step | kernels | LOO Spearman mean | min | max | mean f(x) of the step's proposals |")
    print("|---|---|---|---|---|---|")
    for step in sorted(by_step):
        rho = np.array(by_step[step])
        print(f"| {step} | {len(rho)} | {np.nanmean(rho):.3f} | {np.nanmin(rho):.3f} | {np.nanmax(rho):.3f} | "
              f"{np.mean(proposed.get(step, [np.nan])):.4f} |")


def sampler(args: argparse.Namespace) -> None:
    """How the reference sampler covers good students, from random search's journals: what
    fraction of its students beats the cell's uniform one-shot (re-evaluated, at the size of
    random search's best), and how f(x) goes with what the sampler draws (removed layers, mean
    and spread of the shrink ratios, added skips)."""
    from scipy.stats import spearmanr

    rows, beats = [], []
    for folder in map(Path, args.variants):
        reeval = load_reevaluations(folder)
        for seed, records in load_variant(folder).items():
            mine = [r for r in records if r["method"] == "random" and r["status"] == "ok"]
            if not mine:
                continue
            for r in mine:
                ratios = np.array(r["edit"]["shrink_ratios"])
                rows.append((r["reward"], len(r["edit"]["remove"]), ratios.mean(), ratios.std(),
                             len(r["edit"]["skips"])))
            uniform = reeval.get("uniform@random", {}).get(seed)
            magnitude = reeval.get("magnitude@random", {}).get(seed)
            if uniform and magnitude:
                u = np.mean([x["reward"] for x in uniform])
                m = np.mean([x["reward"] for x in magnitude])
                f = np.array([r["reward"] for r in mine])
                beats.append((folder.name, seed, len(f), (f > u).mean(), u, (f > m).mean(), m))
    if not rows:
        raise SystemExit("no random-search records in these variants")
    data = np.array(rows)
    print(f"Random search's students ({len(data)} from {', '.join(args.variants)}): Spearman correlation of f(x) with")
    print("| drawn quantity | Spearman rho | mean over the students | mean over the top 10% by f(x) |")
    print("|---|---|---|---|")
    top = data[data[:, 0] >= np.quantile(data[:, 0], 0.9)]
    for i, name in enumerate(["layers removed", "mean shrink ratio", "spread (std) of the shrink ratios",
                              "skips added"], 1):
        rho = spearmanr(data[:, 0], data[:, i]).statistic
        print(f"| {name} | {rho:+.3f} | {data[:, i].mean():.3f} | {top[:, i].mean():.3f} |")
    if beats:
        print()
        print("Per cell: the share of random search's students whose f(x) (one evaluation) is above the uniform / "
              "magnitude one-shot at the size of random search's best (re-evaluated mean):")
        print("| variant | seed | students | share above uniform | uniform f(x) | share above magnitude | "
              "magnitude f(x) |")
        print("|---|---|---|---|---|---|---|")
        for name, seed, n, bu, u, bm, m in beats:
            print(f"| {name} | {seed} | {n} | {bu:.3f} | {u:.4f} | {bm:.3f} | {m:.4f} |")


def _max_layers(path: Path) -> int:
    from botorch_archsearch.kernels import load_kernel

    return load_kernel(path).kernel.embedding.max_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one search per seed through the Hydra app")
    r.add_argument("--experiment", default="search_quality", help="the experiment preset; none: the default job")
    r.add_argument("--name", default="main", help="the variant's folder name")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--out", default=str(ROOT / "benchmarks" / "runs"))
    r.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    p = sub.add_parser("report", help="statistics over the seeds of one or more variant folders")
    p.add_argument("variants", nargs="+")
    p.add_argument("--baseline", default="main", help="the variant whose random search is the reference")
    p.add_argument("--teacher-params", type=int, default=None, help="for the compression ratio")
    p.add_argument("--figures", default=None, help="folder for anytime.png and histogram.png")
    e = sub.add_parser("reevaluate", help="evaluate each cell's chosen students again with fresh evaluation seeds")
    e.add_argument("variants", nargs="+")
    e.add_argument("--eval-seeds", type=int, default=3, help="fresh evaluation seeds 0..N-1")
    e.add_argument("--isolation", default=None, help="evaluation.isolation for the re-evaluation")
    p.add_argument("--reference", default=None,
                   help="the re-evaluated row the others are paired against (default: the first <variant>/esnac)")
    m = sub.add_parser("sampler", help="how random search's students compare with the one-shots, and f(x) "
                                       "against what the sampler draws")
    m.add_argument("variants", nargs="+")
    d = sub.add_parser("diagnose", help="kernel fit quality (LOO Spearman) per step of one ESNAC variant")
    d.add_argument("variant")
    args = parser.parse_args()
    {"run": run, "report": report, "reevaluate": reevaluate, "sampler": sampler, "diagnose": diagnose}[args.command](args)


if __name__ == "__main__":
    main()
