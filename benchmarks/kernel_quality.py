r"""Quality of the fitted surrogates on real rewards: by the scale of the learned kernel's initial
weights (``--scales``), by surrogate configuration (``--configs``, issue 18), and the whole BO step
per configuration (``--configs ... --step N``).

A freshly initialised Bi-LSTM maps every architecture to nearly the same unit vector, so the
first fitting steps barely move the LOO objective and the moving-average rule can stop a fit
that has learned nothing (at the minimum of ``window + 1`` steps). This script measures, on the
evaluated architectures and rewards of search journals (e.g. ``benchmarks/runs/main``, written
by ``bench_search.py run --name main``):

- for each ``--scales`` value of ``BiLSTMEmbedding(init_scale=...)`` and each N in ``--sizes``:
  ``--reps`` draws of N architectures, a GP fitted on a random half of each (each point kept
  with probability 0.5, as ``propose_architectures`` does), scored by the Spearman correlation of
  its posterior mean with the rewards of every architecture it was not fitted on; the fits that
  learned nothing (objective improved by less than 0.01); steps; the median pairwise distance of
  the fresh embeddings; and the difference from ``init_scale = 1`` paired by draw, with a 95%
  t-interval;
- with ``--saved-kernels``: how many of the kernels saved by those searches stopped at the
  minimum number of steps (``kernels/*/kernel*.pt`` metadata);
- with ``--configs`` (see :data:`CONFIGS`): per ``kernel.name/kernel.target[/width_init][/warm][/exact]``,
  the same draws scored by held-out Spearman of the predicted reward, NLPD, 90% coverage, fits that
  learned nothing, steps and fit time, paired against the first configuration (teacher-inherited
  students only; each journal's own ``config.json`` and ``teacher.json`` give its factors);
- with ``--configs ... --step N``: ``propose_architectures`` at N (``--kernels`` x ``--candidates``)
  per configuration, its wall time against the reference implementation's 354 s at N = 160, and
  the held-out Spearman of the step's kernels.

Usage: ``.venv/bin/python benchmarks/kernel_quality.py --journals benchmarks/runs/main
[--saved-kernels benchmarks/runs/*] [--scales 1 3 10 30] [--sizes 20 48 96] [--reps 12]``;
``... --configs [CONFIG ...] [--sizes 20 48 96] [--reps 8]``; ``... --configs CONFIG ... --step 160``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bo import half_subset, load_journals, median_distance, teacher_space  # noqa: E402

from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, num_features  # noqa: E402
from botorch_archsearch.kernels import EditFeatures, WLFeatures  # noqa: E402
from botorch_archsearch.search.journal import read_journal  # noqa: E402
from botorch_archsearch.space import Edit  # noqa: E402

from botorch_archsearch.gp import architecture_gp, fit_architecture_gp  # noqa: E402

LEARNED_NOTHING = 0.01  # a fit whose negative LOO objective fell by less than this learned nothing


def evaluate(X, Y, L: int, n: int, rep: int, scale: float, seed: int) -> dict:
    """Fit one kernel on a random half of a random draw of ``n`` architectures; score it on the rest."""
    g = torch.Generator().manual_seed(seed * 100_000 + 1000 * n + rep)
    pool = torch.randperm(len(X), generator=g)[:n]
    keep = pool[half_subset(n, g)]
    held_out = torch.ones(len(X), dtype=torch.bool)
    held_out[keep] = False
    torch.manual_seed(seed * 100_000 + rep)
    model = architecture_gp(X[keep], Y[keep], max_layers=L, init_scale=scale)
    spread = median_distance(model, X[keep])
    fit = fit_architecture_gp(model)
    with torch.no_grad():
        mean = model.posterior(X[held_out]).mean.squeeze(-1)
    rho = stats.spearmanr(mean.numpy(), Y[held_out].squeeze(-1).numpy()).statistic
    return dict(rho=float(rho), steps=fit.num_steps, seconds=fit.seconds, spread=spread,
                dead=fit.losses[0] - min(fit.losses) < LEARNED_NOTHING, points=len(keep))


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def saved_kernel_stops(paths: list[str]) -> None:
    """How many saved kernels of earlier searches stopped at the minimum number of steps."""
    by_run: dict[str, list[int]] = {}  # one row per PATH given
    for p in paths:
        for f in sorted(Path(p).rglob("kernels/*/kernel*.pt")):
            metadata = torch.load(f, map_location="cpu", weights_only=False).get("metadata", {})
            if "fit_steps" in metadata:
                by_run.setdefault(Path(p).name, []).append(int(metadata["fit_steps"]))
    if not by_run:
        print(f"--saved-kernels: no kernels/*/kernel*.pt with a step count under {paths}")
        return
    print("\nKernels saved by the searches: fits that stopped at the minimum of 11 steps (window 10 + 1)")
    print(f"{'variant':>14} | {'fits':>5} | {'stopped at 11':>13} | {'mean steps':>10}")
    for name, steps in sorted(by_run.items()):
        at_min = sum(s == 11 for s in steps)
        print(f"{name:>14} | {len(steps):>5} | {at_min:>5} ({at_min / len(steps):4.0%}) | "
              f"{statistics.fmean(steps):>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journals", nargs="+", default=["benchmarks/runs/main"], metavar="PATH",
                        help="journal.jsonl files or run directories holding them")
    parser.add_argument("--saved-kernels", nargs="*", default=None, metavar="PATH",
                        help="run directories whose saved kernels' step counts are tallied")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 48, 96],
                        help="values of N; none (a bare --sizes) skips the fits, e.g. to only tally saved kernels")
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--configs", nargs="*", default=None, metavar="KERNEL/TARGET[/WIDTH]",
                        help=f"compare surrogate configurations (kernel/target[/width_init][/warm][/exact][/capN]) "
                             f"instead of init scales, the first the reference (from {list(CONFIGS)}; "
                             "a bare --configs: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=int, default=None, metavar="N",
                        help="time the whole BO step at N per --configs configuration instead (K kernels x candidates)")
    parser.add_argument("--kernels", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=1000)
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if any(not 0 < scale < float("inf") for scale in args.scales):
        parser.error(f"--scales must be positive finite numbers, got {args.scales}")
    if 1.0 not in args.scales:
        args.scales = [1.0, *args.scales]  # the reference every other scale is paired against
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    wall = time.perf_counter()
    if args.configs is not None:
        args.configs = args.configs or list(CONFIGS)
        unknown = sorted({c for c in args.configs if split_cap(c)[0] not in CONFIGS + EXTRA_CONFIGS})
        if unknown:
            parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS + EXTRA_CONFIGS)}, each optionally "
                         "followed by /capN (at most N optimizer steps per fit)")
        if args.step is not None:
            time_steps(args)
        else:
            compare_configs(args)
    elif args.sizes:
        fit_kernels(args)
    if args.saved_kernels is not None:
        saved_kernel_stops(args.saved_kernels or args.journals)
    print(f"\nwall time of this script: {time.perf_counter() - wall:.0f} s")


def fit_kernels(args: argparse.Namespace) -> None:
    """The held-out comparison of init scales (see the module docstring)."""
    _, L, X, Y = load_journals(args.journals, None, args.seed, torch.float64)
    print(f"settings: init_scale {args.scales}, N = {args.sizes}, {args.reps} draws each, default kernel "
          f"(hidden 64, 4 layers) and fit (LOO, lr 1e-3, <= 100 steps, moving-average stop)", flush=True)
    results: dict[tuple[float, int], list[dict]] = {}
    for n in args.sizes:
        if n > len(X):
            raise SystemExit(f"N = {n} exceeds the {len(X)} architectures in the journals")
        for scale in args.scales:
            rows = [evaluate(X, Y, L, n, rep, scale, args.seed) for rep in range(args.reps)]
            results[(scale, n)] = rows
            print(f"  N = {n:>3}, init_scale {scale:g}: held-out Spearman {statistics.fmean(r['rho'] for r in rows):.3f}, "
                  f"{sum(r['dead'] for r in rows)} of {len(rows)} fits learned nothing", flush=True)
    print(f"\nHeld-out Spearman correlation of the posterior mean with the real rewards ({len(X)} architectures; "
          "each fit on a random half of N, scored on every architecture it was not fitted on)")
    print(f"{'N':>4} | {'init_scale':>10} | {'Spearman':>8} | {'vs init_scale 1, paired (95% CI)':>34} | "
          f"{'better':>6} | {'learned nothing':>15} | {'steps':>5} | {'fit s':>5} | {'fresh spread':>12}")
    for n in args.sizes:
        base = results[(1.0, n)]
        for scale in args.scales:
            rows = results[(scale, n)]
            if scale == 1.0:
                paired, better = "", ""
            else:
                diff = [r["rho"] - b["rho"] for r, b in zip(rows, base)]
                mean, lo, hi = interval(diff)
                paired = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                better = f"{sum(d > 0 for d in diff)}/{len(diff)}"
            print(f"{n:>4} | {scale:>10g} | {statistics.fmean(r['rho'] for r in rows):>8.3f} | {paired:>34} | "
                  f"{better:>6} | {sum(r['dead'] for r in rows):>6} of {len(rows):<5} | "
                  f"{statistics.fmean(r['steps'] for r in rows):>5.1f} | "
                  f"{statistics.fmean(r['seconds'] for r in rows):>5.1f} | "
                  f"{statistics.median(r['spread'] for r in rows):>12.4f}")
    for scale in args.scales:
        if scale == 1.0:
            continue
        diff = [r["rho"] - b["rho"] for n in args.sizes for r, b in zip(results[(scale, n)], results[(1.0, n)])]
        mean, lo, hi = interval(diff)
        print(f"  init_scale {scale:g} vs 1 over all N: {mean:+.3f} [{lo:+.3f}, {hi:+.3f}], "
              f"better in {sum(d > 0 for d in diff)} of {len(diff)}")


# --------------------------------------------------------------------------------------------
# surrogate configurations (issue 18): what the GP models x where its RBF width starts

CONFIGS = ("bilstm/reward/paper", "bilstm/reward/median", "bilstm/accuracy/paper", "bilstm/accuracy/median",
           "bilstm/accuracy/median/warm", "wl/reward", "wl/accuracy", "edit/reward", "edit/accuracy")
EXTRA_CONFIGS = ("bilstm/reward/paper/exact", "bilstm/reward/median/warm", "bilstm/accuracy/median/exact",
                 "wl/accuracy/exact")
"""``kernel.name/kernel.target[/kernel.width_init][/warm][/exact]`` (the ``wl`` and ``edit`` kernels always start at
the median; ``warm``: ``kernel.warm_start``, the kernel starts from one fitted on the first half of the draw's N
students, as a previous step's, and the fit time counts only the second fit; ``exact``: ``kernel.objective=exact``,
the exact marginal likelihood instead of the paper's LOO). A bare ``--configs`` runs these; ``EXTRA_CONFIGS`` are
accepted too, and any of them with a last ``/capN``: ``kernel.max_steps=N`` (at most N optimizer steps per fit)."""
Z90 = 1.6448536269514722  # the two-sided 90% interval of a normal: mean +- Z90 sd


def parse_config(config: str) -> tuple[str, str, str, set[str]]:
    """``kernel/target[/width_init][/warm][/exact][/capN]`` as (kernel, target, width_init, flags)."""
    kernel, target, *rest = config.split("/")
    width = rest.pop(0) if rest and rest[0] in ("paper", "median") else "median"
    return kernel, target, width, set(rest)


def split_cap(config: str) -> tuple[str, int]:
    """A configuration without its ``/capN`` suffix, and N (``kernel.max_steps``; 100, the default, without one)."""
    head, _, last = config.rpartition("/")
    if last.startswith("cap") and last[3:].isdigit() and int(last[3:]) > 0:
        return head, int(last[3:])
    return config, 100


def fit_options(flags: set[str], config: str) -> dict:
    """``fit_architecture_gp``'s options of a configuration: its objective and step cap."""
    return {"objective": "exact" if "exact" in flags else "loo", "max_steps": split_cap(config)[1]}


def load_runs(paths: list[str], dtype: torch.dtype = torch.float64) -> dict:
    """Every teacher-inherited, evaluated student of the search journals under ``paths``, with its
    encoding, reward, accuracy ratio ``A / A_teacher`` and known factor ``c`` (``f = c g``), each
    from its own run's ``config.json`` and ``teacher.json``. Students of weight sources (the
    regularised methods' own weights) are left out: their accuracy is not the teacher's students'."""
    from botorch_archsearch.evaluation import reward as reward_of

    files = []
    for path in map(Path, paths):
        files += sorted(path.rglob("journal.jsonl")) if path.is_dir() else [path]
    rows, edits, seen_teachers, space, first = [], [], set(), None, None
    for f in files:
        config = json.loads((f.parent / "config.json").read_text())
        teacher = json.loads((f.parent / "teacher.json").read_text())
        seen_teachers.add((teacher["name"], teacher["params"]))
        if space is None:
            space, first = teacher_space(config, read_journal(f).records), (teacher, config["reward"])
        r = config["reward"]
        for rec in read_journal(f).records:
            if rec.get("status") != "ok" or rec.get("source") is not None or "encoding" not in rec:
                continue
            c = reward_of(1.0, 1.0, rec["params"], teacher["params"], flops=rec.get("flops"),
                          teacher_flops=teacher.get("flops"), measure=r.get("measure", "params"),
                          budget=r.get("budget"), budget_measure=r.get("budget_measure"))
            rows.append((rec["encoding"], rec["reward"], rec["accuracy"] / teacher["val_accuracy"], c))
            edits.append(Edit.from_dict(rec["edit"]))
    if len(seen_teachers) != 1:
        raise SystemExit(f"--journals: give the runs of one teacher, found {sorted(seen_teachers)}")
    if not rows:
        raise SystemExit(f"--journals: no evaluated students under {paths}")
    X = torch.tensor([row[0] for row in rows], dtype=dtype)
    f, g, c = (torch.tensor([row[i] for row in rows], dtype=dtype) for i in (1, 2, 3))
    # the reward is c g exactly where the reward's formula holds (a check of the loader)
    if not torch.allclose(c * g, f, rtol=1e-9, atol=1e-12):
        raise SystemExit("--journals: rewards do not equal factor x accuracy ratio; are these runs' teacher.json right?")
    L = X.shape[-1] // num_features(DEFAULT_MAX_EDGES)
    print(f"data: {len(rows)} evaluated students in {len(files)} journal(s) of {sorted(seen_teachers)[0][0]}; "
          f"reward mean {f.mean():.3f}, {int((c == 0).sum())} above a budget", flush=True)
    features = EditFeatures(space)
    features.add([None] * len(edits), X, edits)
    return {"X": X, "f": f, "g": g, "c": c, "L": L, "edit": features, "wl": WLFeatures(), "space": space,
            "teacher": first[0], "reward": first[1]}


def evaluate_config(data: dict, config: str, n: int, rep: int, seed: int) -> dict:
    """One draw: N students, a GP fitted on a random half as ``propose_architectures`` does, scored on
    every student it was not fitted on by the quality of its prediction of the reward ``f``."""
    kernel, target, width, flags = parse_config(config)
    warm = "warm" in flags
    X, f, g, c, L = data["X"], data["f"], data["g"], data["c"], data["L"]
    gen = torch.Generator().manual_seed(seed * 100_000 + 1000 * n + rep)
    pool = torch.randperm(len(X), generator=gen)[:n]
    keep = pool[half_subset(n, gen)]
    held_out = torch.ones(len(X), dtype=torch.bool)
    held_out[keep] = False
    Y = (f if target == "reward" else g)[keep].unsqueeze(-1)
    torch.manual_seed(seed * 100_000 + rep)  # the same network weights for every configuration
    model = architecture_gp(X[keep], Y, max_layers=L, width_init=width, kernel=kernel,
                            features=data.get(kernel))
    if warm:  # kernel.warm_start: start from a kernel fitted on the first half of the pool (a previous step)
        earlier = pool[: n // 2][half_subset(n // 2, gen)]
        torch.manual_seed(seed * 100_000 + rep + 50_000)
        previous = architecture_gp(X[earlier], (f if target == "reward" else g)[earlier].unsqueeze(-1), max_layers=L,
                                   width_init=width)
        fit_architecture_gp(previous, **fit_options(flags, config))
        model.covar_module.load_state_dict(previous.covar_module.state_dict())
    fit = fit_architecture_gp(model, **fit_options(flags, config))
    with torch.no_grad():
        post = model.posterior(X[held_out], observation_noise=True)
    mean, sd = post.mean.squeeze(-1), post.variance.clamp_min(1e-12).sqrt().squeeze(-1)
    if target == "accuracy":  # f = c g with c known
        mean, sd = c[held_out] * mean, c[held_out] * sd
    truth = f[held_out]
    scored = sd > 0  # a student above the budget has f = 0 exactly under the accuracy target: no density
    z = (truth[scored] - mean[scored]) / sd[scored]
    nlpd = float((0.5 * z**2 + torch.log(sd[scored]) + 0.5 * math.log(2 * math.pi)).mean())
    rho = stats.spearmanr(mean.numpy(), truth.numpy()).statistic
    constant = not math.isfinite(rho)  # the same prediction for every student: no ranking, counted as 0
    return dict(rho=0.0 if constant else float(rho), constant=constant, nlpd=nlpd,
                coverage=float((z.abs() <= Z90).float().mean()), steps=fit.num_steps,
                seconds=fit.seconds, dead=fit.losses[0] - min(fit.losses) < LEARNED_NOTHING)


REFERENCE_STEP_SECONDS = 354.0
"""The reference implementation's whole BO step at N = 160 (K = 8, 8 x 1,000 candidates, ResNet-18),
at least 354 s: its 320 s of fits plus at least 33.6 s of scoring (``benchmarks/README.md``,
bench_bo section)."""


def time_steps(args: argparse.Namespace) -> None:
    """The whole BO step (``propose_architectures`` as the search calls it) per configuration, with the
    held-out Spearman of the step's fitted kernels, so that speed is never bought with kernels that
    learned nothing."""
    from botorch_archsearch.acquisition import CompressionFactor, propose_architectures, reward_factor

    data = load_runs(args.journals)
    X, f, g, c = data["X"], data["f"], data["g"], data["c"]
    n, K, C = args.step, args.kernels, args.candidates
    if n > len(X):
        raise SystemExit(f"--step {n} exceeds the {len(X)} students in the journals")
    print(f"\nWhole BO step at N = {n}: K = {K} kernels x {C} candidates, {torch.get_num_threads()} thread(s); "
          f"the reference's step at N = 160: >= {REFERENCE_STEP_SECONDS:.0f} s")
    print("\n| configuration | whole step | vs reference | fitting steps (per kernel) | learned nothing | "
          "held-out Spearman of the K kernels |")
    print("|---|---|---|---|---|---|")
    pick = torch.randperm(len(X), generator=torch.Generator().manual_seed(args.seed))[:n]
    held_out = torch.ones(len(X), dtype=torch.bool)
    held_out[pick] = False
    for config in args.configs:
        kernel, target, width, flags = parse_config(config)
        known = None
        if target == "accuracy":
            r = data["reward"]
            known = CompressionFactor(reward_factor(data["teacher"], measure=r.get("measure", "params"),
                                                    budget=r.get("budget"), budget_measure=r.get("budget_measure")))
        features = data.get(kernel)
        start = time.perf_counter()
        proposal = propose_architectures(
            data["space"], X[pick], (f if target == "reward" else g)[pick].unsqueeze(-1), max_layers=data["L"],
            num_kernels=K, num_candidates=C, kernel_options={"kernel": kernel, "features": features,
                                                              "width_init": width},
            fit_options=fit_options(flags, config),
            generator=torch.Generator().manual_seed(args.seed), known_factor=known, best_f=float(f[pick].max()),
            on_encoded=features.add if kernel == "edit" else None,
        )
        wall = time.perf_counter() - start
        rhos = []
        with torch.no_grad():
            for model in proposal.models:
                mean = model.posterior(X[held_out]).mean.squeeze(-1)
                if target == "accuracy":
                    mean = c[held_out] * mean
                rho = stats.spearmanr(mean.numpy(), f[held_out].numpy()).statistic
                rhos.append(float(rho) if math.isfinite(rho) else 0.0)  # a constant prediction ranks nothing
        steps = [fit.num_steps for fit in proposal.fits]
        dead = sum(fit.losses[0] - min(fit.losses) < LEARNED_NOTHING for fit in proposal.fits)
        print(f"| {config} | {wall:.1f} s | {REFERENCE_STEP_SECONDS / wall:.1f}x | {sum(steps)} ({min(steps)}-{max(steps)}) | "
              f"{dead} of {K} | {statistics.fmean(rhos):.3f} ({min(rhos):.3f} to {max(rhos):.3f}) |", flush=True)


def compare_configs(args: argparse.Namespace) -> None:
    """Surrogate configurations on real journals, paired by draw (see ``--configs``)."""
    data = load_runs(args.journals)
    base = args.configs[0]
    print(f"settings: {args.configs}, N = {args.sizes}, {args.reps} draws each; the learned kernel at its defaults "
          "(hidden 64, 4 layers; LOO, Adam lr 1e-3, <= 100 steps, moving-average stop), edit and wl by L-BFGS-B on "
          "the LOO objective (<= 100 iterations)", flush=True)
    results: dict[tuple[str, int], list[dict]] = {}
    for n in args.sizes:
        if n > len(data["X"]):
            raise SystemExit(f"N = {n} exceeds the {len(data['X'])} students in the journals")
        for config in args.configs:
            rows = [evaluate_config(data, config, n, rep, args.seed) for rep in range(args.reps)]
            results[(config, n)] = rows
            print(f"  N = {n:>3}, {config}: held-out Spearman {statistics.fmean(r['rho'] for r in rows):.3f}, "
                  f"{sum(r['dead'] for r in rows)} of {len(rows)} fits learned nothing, "
                  f"{sum(r['constant'] for r in rows)} predicted a constant", flush=True)
    print(f"\n| N | configuration | held-out Spearman | vs {base}, paired (95% t-interval) | better | NLPD | "
          "90% coverage | learned nothing | steps | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for config in args.configs:
            rows = results[(config, n)]
            paired = better = ""
            if config != base:
                diff = [r["rho"] - b["rho"] for r, b in zip(rows, results[(base, n)])]
                mean, lo, hi = interval(diff)
                paired, better = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]", f"{sum(d > 0 for d in diff)}/{len(diff)}"
            print(f"| {n} | {config} | {statistics.fmean(r['rho'] for r in rows):.3f} | {paired} | {better} | "
                  f"{statistics.fmean(r['nlpd'] for r in rows):.2f} | {statistics.fmean(r['coverage'] for r in rows):.2f} | "
                  f"{sum(r['dead'] for r in rows)} of {len(rows)} | {statistics.fmean(r['steps'] for r in rows):.1f} | "
                  f"{statistics.fmean(r['seconds'] for r in rows):.1f} |")
    for config in args.configs[1:]:
        diff = [r["rho"] - b["rho"] for n in args.sizes for r, b in zip(results[(config, n)], results[(base, n)])]
        mean, lo, hi = interval(diff)
        print(f"  {config} vs {base} over all N: Spearman {mean:+.3f} [{lo:+.3f}, {hi:+.3f}], "
              f"better in {sum(d > 0 for d in diff)} of {len(diff)}")


if __name__ == "__main__":
    main()
