r"""The human report of a search run: ``report.md`` with a results table like Table 1 of the
paper, plots of the rewards like its Figure 2, a Pareto plot of accuracy against size, and a
TensorBoard log written while the search runs (ESNAC, Cao et al., ICLR 2019, section 5).

Everything here reads journal records (see :mod:`botorch_archsearch.search.journal`) and relies
only on their keys ``index``, ``method``, ``params``, ``accuracy``, ``reward``, ``seconds``,
``status`` and ``reason``. Plots are drawn on a :class:`matplotlib.figure.Figure` with the Agg
canvas, so no global ``pyplot`` state is touched and no display is needed. matplotlib and
tensorboard are imported only when a plot or a log is made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils.validation import check_choice

REPORT_NAME = "report.md"
r"""File name of the report in a run directory."""

PLOTS_DIR = "plots"
r"""Folder of the plots in a run directory (linked from the report with relative paths)."""

TENSORBOARD_DIR = "tensorboard"
r"""Folder of the TensorBoard log in a run directory."""

METHOD_ORDER = ("random", "esnac")
r"""Order of the methods in tables and legends; methods not listed follow in order of appearance."""

MAX_FAILED_LINES = 20
r"""At most this many failed evaluations are listed in the report."""

_METHOD_COLORS = {"random": "tab:orange", "esnac": "tab:blue"}
_OTHER_COLORS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")
_HISTOGRAM_BINS = 20


def pareto_front(records: Iterable[dict[str, Any]], measure: str = "params") -> list[dict[str, Any]]:
    r"""The non-dominated successful records: accuracy against number of parameters (or FLOPs).

    A record is dominated if another has fewer-or-equal parameters and higher-or-equal accuracy,
    and is strictly better in one of them. Records that did not succeed (``status != "ok"``) or
    lack a finite accuracy or parameter count are left out. Records with exactly the same
    parameters and accuracy do not dominate each other and are all kept.

    Args:
        records: Journal records.
        measure: ``"params"``, ``"flops"`` or ``"latency"`` (the measured milliseconds at batch
            1, ``evaluation.latency_batch``); records without a finite value are left out.

    Returns:
        The non-dominated records (the same dict objects), sorted by the measure, then index.
    """
    check_choice("measure", measure, PARETO_MEASURES, where="pareto_front")
    candidates = sorted(
        (r for r in records if _is_ok(r) and _finite(size_of(r, measure))),
        key=lambda r: (size_of(r, measure), -r["accuracy"], _index(r)),
    )
    front: list[dict[str, Any]] = []
    best_fewer = -math.inf  # best accuracy among records with strictly fewer parameters
    start = 0
    while start < len(candidates):
        params = size_of(candidates[start], measure)
        stop = start
        while stop < len(candidates) and size_of(candidates[stop], measure) == params:
            stop += 1
        group = candidates[start:stop]
        top = group[0]["accuracy"]  # sorted by decreasing accuracy within a parameter count
        if top > best_fewer:
            front.extend(r for r in group if r["accuracy"] == top)
            best_fewer = top
        start = stop
    return front


PARETO_MEASURES = ("params", "flops", "latency")
"""What a Pareto front or plot measures a student's size in (``latency``: milliseconds at batch 1)."""


def size_of(record: Any, measure: str) -> Any:
    r"""A record's ``params`` or ``flops``, or for ``"latency"`` its measured milliseconds at batch 1
    (``None`` where not measured); a journal dict or an
    :class:`~botorch_archsearch.search.records.EvaluationRecord`."""
    def get(key: str) -> Any:
        return record.get(key) if isinstance(record, dict) else getattr(record, key, None)

    if measure != "latency":
        return get(measure)
    latency = get("latency")
    return latency.get("ms", {}).get("1") if isinstance(latency, dict) else None


def plot_rewards(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    r"""Plot ``f(x)`` against the evaluation number, one series per method, with its running best
    (paper Figure 2, left).

    The x axis counts each method's own evaluations (1, 2, ...) in the order of their ``index``,
    so that methods run one after the other in the same journal are compared at equal budgets.
    Failed evaluations are drawn as crosses at their reward (0).

    Args:
        records: Journal records.
        path: The PNG file to write (its folder is created).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _check_records(records)
    fig, ax = _new_figure()
    by_method = _by_method(records)
    for method, rows in by_method.items():
        color = _method_color(method, list(by_method))
        x = list(range(1, len(rows) + 1))
        y = [_reward(r) for r in rows]
        ok = [r.get("status") == "ok" for r in rows]
        ax.scatter(
            [a for a, o in zip(x, ok) if o], [b for b, o in zip(y, ok) if o], s=12, alpha=0.6, color=color
        )
        if not all(ok):
            ax.scatter(
                [a for a, o in zip(x, ok) if not o],
                [b for b, o in zip(y, ok) if not o],
                s=16,
                marker="x",
                color=color,
                alpha=0.6,
            )
        ax.plot(x, _running_max(y), color=color, linewidth=2, label=f"{method} (best so far)")
    if not by_method:
        _no_data(ax, "no evaluations")
    else:
        ax.legend(loc="lower right")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("f(x)")
    ax.set_title("Reward of the evaluated architectures")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_reward_histogram(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    r"""Plot the histogram of ``f(x)`` of each method's successful evaluations, overlaid, on the
    same bins (paper Figure 2, right).

    Args:
        records: Journal records (failed ones are left out).
        path: The PNG file to write (its folder is created).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _check_records(records)
    fig, ax = _new_figure()
    by_method = _by_method([r for r in records if r.get("status") == "ok" and _finite(r.get("reward"))])
    rewards = [float(r["reward"]) for rows in by_method.values() for r in rows]
    if rewards:
        low, high = min(rewards), max(rewards)
        if high - low < 1e-9:
            low, high = low - 0.05, high + 0.05
        bins = [low + (high - low) * i / _HISTOGRAM_BINS for i in range(_HISTOGRAM_BINS + 1)]
        for method, rows in by_method.items():
            ax.hist(
                [float(r["reward"]) for r in rows],
                bins=bins,
                alpha=0.5,
                color=_method_color(method, list(by_method)),
                edgecolor="black",
                linewidth=0.5,
                label=f"{method} ({len(rows)})",
            )
        ax.legend(loc="upper left")
    else:
        _no_data(ax, "no successful evaluation")
    ax.set_xlabel("f(x)")
    ax.set_ylabel("number of architectures")
    ax.set_title("Distribution of the reward")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_pareto(records: Sequence[dict[str, Any]], teacher: dict[str, Any], path: str | Path,
                measure: str = "params") -> Path:
    r"""Plot accuracy against number of parameters or FLOPs (log scale): every successful record
    of each method, each method's Pareto front (the best accuracy reached with at most that
    size) as a step line, and the teacher as a star.

    Args:
        records: Journal records (failed ones are left out).
        teacher: The teacher's summary, with ``params`` (or ``flops``) and ``val_accuracy``.
        path: The PNG file to write (its folder is created).
        measure: ``"params"``, ``"flops"`` (multiply-accumulates per image) or ``"latency"``
            (measured milliseconds at batch 1).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _check_records(records)
    _check_teacher(teacher)
    check_choice("measure", measure, PARETO_MEASURES, where="plot_pareto")
    fig, ax = _new_figure()
    by_method = _by_method([r for r in records if _is_ok(r) and _finite(size_of(r, measure))
                            and size_of(r, measure) > 0])
    for method, rows in by_method.items():
        color = _method_color(method, list(by_method))
        ax.scatter(
            [size_of(r, measure) for r in rows],
            [100 * r["accuracy"] for r in rows],
            s=12,
            alpha=0.5,
            color=color,
            label=method,
        )
        front = pareto_front(rows, measure)
        x = [size_of(r, measure) for r in front] + [max(size_of(r, measure) for r in rows)]
        y = [100 * r["accuracy"] for r in front] + [100 * front[-1]["accuracy"]]
        ax.step(x, y, where="post", color=color, linewidth=2, label=f"{method} Pareto front")
    accuracy = teacher.get("val_accuracy")
    if _finite(accuracy) and _finite(teacher.get(measure)):
        ax.scatter(
            [teacher[measure]],
            [100 * accuracy],
            marker="*",
            s=250,
            color="gold",
            edgecolor="black",
            zorder=5,
            label=f"teacher {teacher.get('name', '')}".rstrip(),
        )
    if not by_method:
        _no_data(ax, "no successful evaluation")
    if ax.get_legend_handles_labels()[0]:  # a log axis without positive data only warns
        ax.set_xscale("log")
    ax.set_xlabel({"params": "number of parameters", "flops": "FLOPs (multiply-accumulates per image)",
                   "latency": "measured latency at batch 1 (ms)"}[measure])
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Accuracy against size")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def write_report(
    run_dir: str | Path,
    records: Sequence[dict[str, Any]],
    teacher: dict[str, Any],
    final: Sequence[dict[str, Any]] | None = None,
    title: str = "Compression search",
    front_measure: str | None = None,
    front_reference: float | None = None,
) -> Path:
    r"""Write ``run_dir/report.md`` and its plots in ``run_dir/plots/``.

    The report holds a table like the paper's Table 1 (the teacher, then the best architecture
    of each method by ``f(x)``), the fully trained students of ``final`` if any, the plots of
    :func:`plot_rewards`, :func:`plot_reward_histogram` and :func:`plot_pareto`, and the failed
    evaluations. Its text depends only on the arguments (no timestamps).

    A method's ``Accuracy`` is the test accuracy of its fully trained best student if ``final``
    holds an entry with the same method and index, else the validation accuracy reached during
    the search; when ``final`` is non-empty the column ``Acc. (search)`` shows the latter.

    Args:
        run_dir: The run directory (created if missing).
        records: Journal records, one per evaluated architecture.
        teacher: ``{"name", "params", "flops", "val_accuracy", "test_accuracy", "seconds"}``;
            ``test_accuracy`` and ``seconds`` may be ``None``.
        final: One dict per fully trained student (``method``, ``index``, ``rank``, ``params``,
            ``flops``, ``search_accuracy``, ``reward``, ``val_accuracy``, ``test_accuracy``,
            ``seconds``, ``path``), or ``None``.
        title: The report's title.
        front_measure: ``"params"``, ``"flops"`` or ``"latency"``: add each method's Pareto front
            and its hypervolume against evaluations (:func:`front_table`; ``search.objective=pareto``).
        front_reference: The size the front's sizes are relative to (default: the teacher's
            ``front_measure``; for latency, the teacher's measured latency).

    Returns:
        The path of ``report.md``.
    """
    _check_records(records)
    _check_teacher(teacher)
    final = list(final or [])
    for number, entry in enumerate(final):
        if not isinstance(entry, dict) or "method" not in entry:
            raise ArchSearchError(
                f"write_report: final[{number}] must be a dict with a 'method', got {entry!r}."
            )
    run_dir = Path(run_dir)
    plots = run_dir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    figures = [
        (
            plot_rewards(records, plots / "rewards.png"),
            "Reward f(x) of each evaluated architecture (points; crosses: failed) and the best so far "
            "(line), against the method's evaluation number.",
        ),
        (
            plot_reward_histogram(records, plots / "reward_histogram.png"),
            "Histogram of f(x) of each method's successful evaluations, on the same bins.",
        ),
        (
            plot_pareto(records, teacher, plots / "pareto.png"),
            "Validation accuracy against number of parameters of the successful evaluations, each "
            "method's Pareto front (step line) and the teacher (star).",
        ),
        (
            plot_pareto(records, teacher, plots / "pareto_flops.png", measure="flops"),
            "The same against FLOPs (multiply-accumulates per image): every method side by side.",
        ),
    ]
    timed = [r for r in records if _finite(size_of(r, "latency"))]
    if timed:
        figures.append((
            plot_pareto(records, teacher, plots / "pareto_latency.png", measure="latency"),
            "The same against the measured latency at batch 1 (evaluation.latency_batch), where FLOPs may mislead.",
        ))

    lines = [f"# {_md(title)}", ""]
    lines += results_table(records, teacher, final)
    lines += ["", "## Cost", ""]
    lines += cost_table(records, teacher)
    if timed:
        lines += ["", "## Latency", ""]
        lines += latency_table(records)
    if front_measure is not None:
        lines += ["", "## Pareto front", ""]
        lines += front_table(records, teacher, front_measure, front_reference)
    if final:
        lines += ["", "## Fully trained students", ""]
        lines += _final_table(final, teacher["params"], _method_names(records, final))
    lines += ["", "## Plots", ""]
    for figure, caption in figures:
        relative = figure.relative_to(run_dir).as_posix()
        lines += [f"![{figure.stem}]({relative})", "", f"*{caption}*", ""]
    lines += ["## Failed evaluations", ""]
    lines += _failed_list(records)
    path = run_dir / REPORT_NAME
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return path


class TensorBoardLogger:
    r"""Scalars of each evaluation for TensorBoard: a thin wrapper over
    :class:`torch.utils.tensorboard.SummaryWriter`.

    Each record gives ``<method>/reward``, ``<method>/accuracy``, ``<method>/params`` and
    ``<method>/best_reward`` at ``global_step=record["index"]``; a missing or non-finite value
    (the accuracy of a failed evaluation) is skipped. Every record is flushed to disk at once.

    Example:
        >>> with TensorBoardLogger(run_dir / TENSORBOARD_DIR) as logger:
        ...     logger.log_record(record, best_reward=0.83)
    """

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        r"""Open the log.

        Args:
            log_dir: The folder of the event files (for a run: ``run_dir / TENSORBOARD_DIR``);
                created only if ``enabled``.
            enabled: If ``False``, nothing is imported or written and every call does nothing.
        """
        self.log_dir = Path(log_dir)
        self.enabled = bool(enabled)
        self._writer = None
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported here: slow, and optional

            self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_record(self, record: dict[str, Any], best_reward: float) -> None:
        r"""Log the scalars of one evaluated architecture.

        Args:
            record: A journal record with ``index`` and ``method`` (and ``reward``,
                ``accuracy``, ``params`` when known).
            best_reward: The best ``f(x)`` of the method so far, this record included.
        """
        if self._writer is None:
            return
        if "method" not in record or not isinstance(record.get("index"), numbers.Integral):
            raise ArchSearchError(
                "TensorBoardLogger.log_record: record must have a 'method' and an integer 'index', "
                f"got {record!r}."
            )
        method, step = record["method"], int(record["index"])
        values = {
            "reward": record.get("reward"),
            "accuracy": record.get("accuracy"),
            "params": record.get("params"),
            "best_reward": best_reward,
        }
        for name, value in values.items():
            if _finite(value):
                self._writer.add_scalar(f"{method}/{name}", float(value), global_step=step)
        self._writer.flush()

    def close(self) -> None:
        r"""Flush and close the log (calling it again does nothing)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_params(params: float | None) -> str:
    r"""Format a parameter count: ``1.23M``, ``456.7K`` or the plain number below 1000.

    Args:
        params: The count (``None`` gives ``"-"``).

    Returns:
        The formatted count.
    """
    if not _finite(params):
        return "-"
    if abs(params) >= 1e6:
        return f"{params / 1e6:.2f}M"
    if abs(params) >= 1e3:
        return f"{params / 1e3:.1f}K"
    return f"{int(params)}"


def format_ratio(teacher_params: float, params: float | None) -> str:
    r"""Format the compression ratio ``teacher_params / params`` as ``12.3x``.

    Args:
        teacher_params: The teacher's parameter count.
        params: The student's parameter count (``None`` gives ``"-"``, 0 gives ``"inf"``).

    Returns:
        The formatted ratio.
    """
    if not _finite(params) or not _finite(teacher_params):
        return "-"
    if params <= 0:
        return "inf"
    return f"{teacher_params / params:.1f}x"


def format_seconds(seconds: float | None) -> str:
    r"""Format a duration as ``h:mm:ss`` (rounded to the second).

    Args:
        seconds: The duration (``None`` gives ``"-"``).

    Returns:
        The formatted duration.
    """
    if not _finite(seconds):
        return "-"
    total = int(round(max(seconds, 0.0)))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


# ---------------------------------------------------------------------------------------------
# Private helpers
# ---------------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_ok(record: dict[str, Any]) -> bool:
    return record.get("status") == "ok" and _finite(record.get("params")) and _finite(record.get("accuracy"))


def _index(record: dict[str, Any]) -> float:
    index = record.get("index")
    return index if _finite(index) else math.inf


def _reward(record: dict[str, Any]) -> float:
    reward = record.get("reward")
    return float(reward) if _finite(reward) else 0.0


def _running_max(values: Sequence[float]) -> list[float]:
    out, best = [], -math.inf
    for value in values:
        best = max(best, value)
        out.append(best)
    return out


def _check_records(records: Any) -> None:
    if not isinstance(records, (list, tuple)):
        raise ArchSearchError(f"records must be a list of journal records, got {type(records).__name__}.")
    for number, record in enumerate(records):
        if not isinstance(record, dict) or "method" not in record:
            raise ArchSearchError(f"records[{number}] must be a dict with a 'method', got {record!r}.")


def _check_teacher(teacher: Any) -> None:
    if not isinstance(teacher, dict) or not _finite(teacher.get("params")) or teacher["params"] <= 0:
        raise ArchSearchError(f"teacher must be a dict with a positive 'params', got {teacher!r}.")


def _method_names(records: Iterable[dict[str, Any]], extra: Iterable[dict[str, Any]] = ()) -> list[str]:
    seen: list[str] = []
    for record in [*records, *extra]:
        if record["method"] not in seen:
            seen.append(record["method"])
    known = [m for m in METHOD_ORDER if m in seen]
    return known + [m for m in seen if m not in METHOD_ORDER]


def _by_method(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    records = list(records)
    out = {method: [] for method in _method_names(records)}
    for record in records:
        out[record["method"]].append(record)
    for rows in out.values():
        rows.sort(key=_index)  # stable: records without an index keep their order, last
    return out


def _method_color(method: str, methods: list[str]) -> str:
    if method in _METHOD_COLORS:
        return _METHOD_COLORS[method]
    others = [m for m in methods if m not in _METHOD_COLORS]
    return _OTHER_COLORS[others.index(method) % len(_OTHER_COLORS)]


def _new_figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        fig.clear()  # the figure is not registered with pyplot: clearing it frees everything
    return path


def _md(text: Any) -> str:
    r"""One line of text safe inside a Markdown table cell or list item."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if _finite(value) else "-"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def results_table(
    records: Sequence[dict[str, Any]], teacher: dict[str, Any], final: Sequence[dict[str, Any]]
) -> list[str]:
    r"""The report's results table (Markdown lines, like the paper's Table 1): the teacher, then
    each method's best architecture by ``f(x)``, its evaluations, failures and search time;
    followed by a blank line and a note on the columns.

    Args:
        records: Journal records.
        teacher: The teacher's ``name``, ``params`` and accuracies (``teacher.json``).
        final: The fully trained students (``final.jsonl`` records), possibly none.

    Returns:
        The lines.
    """
    with_search = bool(final)
    header = ["Method", "Accuracy"] + (["Acc. (search)"] if with_search else [])
    header += ["#Params", "Ratio", "f(x)", "Evaluations", "Failed", "Search time"]
    lines = [_row(header), _row(["---"] + ["---:"] * (len(header) - 1))]
    test = teacher.get("test_accuracy")
    accuracy = test if _finite(test) else teacher.get("val_accuracy")
    cells = [f"Teacher ({_md(teacher.get('name', 'teacher'))})", _percent(accuracy)]
    cells += [_percent(teacher.get("val_accuracy"))] if with_search else []
    cells += [format_params(teacher["params"]), "1.0x", "-", "-", "-", "-"]
    lines.append(_row(cells))
    for method, rows in _by_method(records).items():
        evaluations, failed = len(rows), sum(r.get("status") == "failed" for r in rows)
        seconds = sum(float(r["seconds"]) for r in rows if _finite(r.get("seconds")))
        ok = [r for r in rows if _is_ok(r)]
        counts = [str(evaluations), str(failed), format_seconds(seconds)]
        if not ok:
            blank = ["no successful evaluation"] + ["-"] * (len(header) - 5)
            lines.append(_row([_md(method)] + blank + counts))
            continue
        best = max(ok, key=lambda r: (_reward(r), -_index(r)))  # ties: the earliest
        trained = [f for f in final if f["method"] == method and f.get("index") == best.get("index")]
        test = trained[0].get("test_accuracy") if trained else None
        cells = [_md(method), _percent(test if _finite(test) else best["accuracy"])]
        cells += [_percent(best["accuracy"])] if with_search else []
        cells += [format_params(best["params"]), format_ratio(teacher["params"], best["params"])]
        cells += [f"{_reward(best):.4f}"] + counts
        lines.append(_row(cells))
    if not records:
        lines += ["", "No architecture was evaluated."]
    lines += [
        "",
        "Accuracy: test accuracy of the fully trained student where there is one, else validation "
        "accuracy after distillation; a method's row shows its best architecture by f(x).",
    ]
    if _finite(teacher.get("seconds")):
        lines.append(f"The teacher was trained in {format_seconds(teacher['seconds'])}.")
    return lines


def cost_table(records: Sequence[dict[str, Any]], teacher: dict[str, Any]) -> list[str]:
    r"""Each method's result next to what it cost (Markdown lines), to compare methods at equal
    compute: its best architecture by ``f(x)`` (accuracy, FLOPs), the MAC-images of all its
    evaluations plus its own work (:mod:`~botorch_archsearch.evaluation.cost`: regularised training
    of the teacher for the field's regularised methods), and the wall time of both.

    Args:
        records: Journal records (records written before costs were recorded count as ``-``).
        teacher: The teacher's ``flops``.

    Returns:
        The lines.
    """
    header = ["Method", "f(x)", "Accuracy", "#FLOPs", "FLOPs ratio", "Cost (MAC-images)", "of which overhead",
              "Wall time"]
    lines = [_row(header), _row(["---"] + ["---:"] * (len(header) - 1))]
    for method, rows in _by_method(records).items():
        ok = [r for r in rows if _is_ok(r)]
        costs = [r.get("cost") for r in rows]
        overhead = sum(float(r["overhead_cost"]) for r in rows if _finite(r.get("overhead_cost")))
        known = all(_finite(c) for c in costs)
        total = sum(float(c) for c in costs) + overhead if known else None
        seconds = sum(float(r[k]) for r in rows for k in ("seconds", "overhead_seconds") if _finite(r.get(k)))
        best = max(ok, key=lambda r: (_reward(r), -_index(r))) if ok else None
        flops = None if best is None else best.get("flops")
        lines.append(_row([
            _md(method),
            "-" if best is None else f"{_reward(best):.4f}",
            "-" if best is None else _percent(best["accuracy"]),
            format_params(flops) if _finite(flops) else "-",
            format_ratio(teacher["flops"], flops) if _finite(flops) and _finite(teacher.get("flops")) else "-",
            f"{total:.3g}" if total is not None else "-",
            f"{overhead:.3g}" if total is not None else "-",
            format_seconds(seconds),
        ]))
    lines += ["", "Cost: multiply-accumulates times images of every evaluation (3x the student's and 1x the "
              "teacher's MACs per training image, 1x the student's per validation image) and of the method's own "
              "work (regularised training: 3x, variational dropout 6x the teacher's MACs per image); the final "
              "training is the same for every method and not counted. Wall time: evaluations and the method's own "
              "work (proposing, regularised training)."]
    return lines


def front_table(records: Sequence[dict[str, Any]], teacher: dict[str, Any], measure: str = "flops",
                reference: float | None = None) -> list[str]:
    r"""Each method's Pareto front of validation accuracy against ``measure`` (``search.objective=
    pareto``) and its hypervolume after a quarter, half and all of its evaluations (Markdown
    lines). The hypervolume is over (accuracy ratio ``A / A_teacher``, relative size), bounded by
    the teacher's size and accuracy 0: 1 would be the teacher's accuracy at no size."""
    from botorch_archsearch.acquisition.pareto import hypervolume_2d

    full = float(reference if reference is not None else teacher[measure])
    a_teacher = float(teacher["val_accuracy"])
    lines = [_row(["Method", "evaluations", "HV at 1/4", "HV at 1/2", "HV (all)", "front"]),
             _row(["---"] + ["---:"] * 4 + ["---"])]
    for method, rows in _by_method(records).items():
        def hv(n: int) -> float:
            ok = [r for r in rows[:n] if _is_ok(r) and _finite(size_of(r, measure))]
            return hypervolume_2d([size_of(r, measure) / full for r in ok], [r["accuracy"] / a_teacher for r in ok],
                                  1.0)

        front = pareto_front(rows, measure)
        def size(r: dict[str, Any]) -> str:
            return f"{size_of(r, measure):.3g} ms" if measure == "latency" else format_params(size_of(r, measure))

        points = ", ".join(f"{size(r)} {_percent(r['accuracy'])}" for r in front)
        n = len(rows)
        lines.append(_row([_md(method), str(n), f"{hv(max(1, n // 4)):.4f}", f"{hv(max(1, n // 2)):.4f}",
                           f"{hv(n):.4f}", points or "-"]))
    lines += ["", f"HV: the area dominated by the method's successful students in (relative {measure}, validation "
              "accuracy / the teacher's), up to the teacher's size; the front: its non-dominated students "
              f"({measure}, validation accuracy), smallest first. The final training takes up to final.top_k of them."]
    return lines


def latency_table(records: Sequence[dict[str, Any]]) -> list[str]:
    r"""Per method, the measured latency of its best student by ``f(x)`` and of its fastest one
    (``evaluation.latency_batch``), next to their FLOPs (Markdown lines; ``[]`` if nothing was
    measured)."""
    timed = [r for r in records if _is_ok(r) and _finite(size_of(r, "latency"))]
    if not timed:
        return []
    batches = sorted({int(b) for r in timed for b in r["latency"].get("ms", {})})
    header = ["Method", "student", "Accuracy", "#FLOPs"] + [f"ms at batch {b}" for b in batches] + ["layout"]
    lines = [_row(header), _row(["---", "---"] + ["---:"] * (len(header) - 3) + ["---"])]
    for method, rows in _by_method(timed).items():
        best = max(rows, key=lambda r: (_reward(r), -_index(r)))
        fastest = min(rows, key=lambda r: (size_of(r, "latency"), _index(r)))
        for label, r in (("best f(x)", best), ("fastest", fastest)):
            ms = r["latency"].get("ms", {})
            lines.append(_row([_md(method), label, _percent(r["accuracy"]),
                               format_params(r.get("flops")) if _finite(r.get("flops")) else "-"]
                              + [f"{ms[str(b)]:.3g}" if _finite(ms.get(str(b))) else "-" for b in batches]
                              + ["channels-last" if r["latency"].get("channels_last") else "contiguous"]))
    devices = sorted({f"{r['latency'].get('device')} on {r['latency'].get('host')}" for r in timed})
    lines += ["", f"Measured on {'; '.join(_md(d) for d in devices)}: the median of repeated forward passes "
              "(torch.utils.benchmark) after a warm-up, in the faster layout that computes the same outputs."]
    return lines


def _final_table(final: list[dict[str, Any]], teacher_params: float, order: list[str]) -> list[str]:
    header = ["Method", "Rank", "#Params", "Ratio", "Acc. (search)", "Test accuracy", "f(x)", "Time", "Path"]
    lines = [_row(header), _row(["---"] + ["---:"] * 7 + ["---"])]
    rows = sorted(
        final, key=lambda f: (order.index(f["method"]), f.get("rank") if _finite(f.get("rank")) else math.inf)
    )
    for entry in rows:
        reward = entry.get("reward")
        path = entry.get("path")
        lines.append(
            _row(
                [
                    _md(entry["method"]),
                    str(entry.get("rank", "-")),
                    format_params(entry.get("params")),
                    format_ratio(teacher_params, entry.get("params")),
                    _percent(entry.get("search_accuracy")),
                    _percent(entry.get("test_accuracy")),
                    f"{reward:.4f}" if _finite(reward) else "-",
                    format_seconds(entry.get("seconds")),
                    f"`{_md(path).replace('`', '')}`" if path else
                    f"failed: {_md(entry.get('reason') or 'no reason given')}" if entry.get("status") == "failed" else "-",
                ]
            )
        )
    return lines


def _failed_list(records: Sequence[dict[str, Any]]) -> list[str]:
    failed = sorted((r for r in records if r.get("status") == "failed"), key=_index)
    if not failed:
        return ["None."]
    lines = []
    for record in failed[:MAX_FAILED_LINES]:
        reason = record.get("reason") or "no reason given"
        reason = _md(reason)
        if len(reason) > 200:
            reason = reason[:197] + "..."
        lines.append(f"- #{record.get('index', '?')} ({_md(record['method'])}): {reason}")
    if len(failed) > MAX_FAILED_LINES:
        lines.append(f"- and {len(failed) - MAX_FAILED_LINES} more")
    return lines


__all__ = [
    "MAX_FAILED_LINES",
    "METHOD_ORDER",
    "PARETO_MEASURES",
    "PLOTS_DIR",
    "REPORT_NAME",
    "TENSORBOARD_DIR",
    "TensorBoardLogger",
    "cost_table",
    "format_params",
    "format_ratio",
    "format_seconds",
    "front_table",
    "latency_table",
    "pareto_front",
    "plot_pareto",
    "plot_reward_histogram",
    "plot_rewards",
    "size_of",
    "write_report",
]
