r"""The compression search: the search methods' proposal policies
(:mod:`~botorch_archsearch.search.policies`) driven step by step with one evaluator and one
journal, then full training of the best students.

Each method's policy proposes the students of a step; those the step has not evaluated yet are
distilled together (:func:`~botorch_archsearch.evaluation.evaluate_students`) and every one is
appended to the run's journal (:class:`~botorch_archsearch.search.records.EvaluationRecord`) as soon
as it is known. All the randomness of a step is drawn from ``(seed, method, step)``, so a search
killed at any moment and resumed (``resume=True``) ends exactly as an uninterrupted one would on a
CPU: the journal's records are reused, and only what is missing is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from botorch_archsearch.evaluation import (
    ImageDataset,
    Teacher,
    evaluate_students,
    evaluation_cost,
    finetune,
    images_per_epoch,
    load_dataset,
    load_teacher,
    reward,
    trained_teacher,
)
from botorch_archsearch.evaluation.latency import graph_latency
from botorch_archsearch.exceptions import ArchSearchError, failure_reason
from botorch_archsearch.graph import build_student, count_flops, count_params, encode, save_student, trace
from botorch_archsearch.models import build_teacher
from botorch_archsearch.search.backends import DaskBackend, LocalBackend
from botorch_archsearch.search.config import CompressConfig, check_config, options_for
from botorch_archsearch.search.constraints import parse_constraints
from botorch_archsearch.search.policies import (
    POLICIES,
    OneShot,
    ProposalPolicy,
    SearchContext,
    SearchHistory,
    make_policy,
)
from botorch_archsearch.search.records import EvaluationRecord, FinalRecord, Proposal, finite
from botorch_archsearch.search.report import results_table, write_report
from botorch_archsearch.search.store import RunStore
from botorch_archsearch.space import Edit, SearchSpace, Student, channel_importance
from botorch_archsearch.utils.precision import use_bf16

logger = logging.getLogger("botorch_archsearch")


@dataclass
class SearchResult:
    r"""What :func:`compress` found.

    Args:
        records: Every evaluated architecture (the journal's records), in order.
        best: Per method, its record with the highest reward.
        final: The fully trained top students (test accuracy), per method and rank.
        teacher: The teacher's name, size and accuracy.
        run_dir: The run directory (``None`` if the search wrote none).
        seconds: Wall-clock time of this call.
        summary: The results table logged at the end.
    """

    records: list[EvaluationRecord]
    best: dict[str, EvaluationRecord]
    final: list[FinalRecord]
    teacher: dict[str, Any]
    run_dir: Path | None = None
    seconds: float = 0.0
    summary: str = field(default="", repr=False)


def compress(
    teacher: nn.Module | Teacher | None = None,
    data: ImageDataset | None = None,
    config: CompressConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> SearchResult:
    r"""Search for a compressed student of ``teacher`` on ``data``.

    Args:
        teacher: A trained network (its validation accuracy is measured once), a
            :class:`~botorch_archsearch.evaluation.Teacher`, or ``None``: the teacher of
            ``config.teacher`` (a zoo network, a torchvision model or a user's module), trained on the
            dataset (and cached) or loaded from its checkpoint.
        data: The dataset, or ``None``: ``config.dataset`` loaded.
        config: The settings (default :class:`CompressConfig`).
        run_dir: Where to write the run directory (journal, kernels, best students, report,
            TensorBoard); ``None``: nothing is written, except the journal is kept in memory.
        resume: Continue the search in ``run_dir`` from its journal. ``config`` must be the one
            the run was started with (its identity, stored in ``run.json``), except the
            :data:`~botorch_archsearch.search.config.RESUMABLE_KEYS`; the teacher must be the one in
            ``teacher.json``.

    Returns:
        A :class:`SearchResult`.

    Raises:
        RunDirectoryLockedError: If another process is searching in ``run_dir`` (one process per
            run directory: ``compress`` holds ``<run_dir>/.lock`` until it returns).
        ArchSearchError: If ``resume`` and the config or the teacher differ from the run's.
    """
    config = CompressConfig() if config is None else config
    check_config(config)
    start = time.perf_counter()
    with RunStore(run_dir, resume) as store:  # the lock is held until the report is written
        store.start(config)
        return _compress(teacher, data, config, store, start)


def _compress(teacher: nn.Module | Teacher | None, data: ImageDataset | None, config: CompressConfig,
              store: RunStore, start: float) -> SearchResult:
    """The search of :func:`compress`, in its run directory's lock."""
    device = torch.device(config.evaluation.device)
    if data is None:
        d = config.dataset
        data = load_dataset(d.name, d.root, download=d.download, val_size=d.val_size, seed=d.split_seed,
                            image_size=d.image_size)
    data = data.to(device)
    teacher = resolve_teacher(teacher, data, config, device)
    example = torch.zeros(1, data.in_channels, data.image_size, data.image_size, device=device)
    graph = trace(teacher.model, example)
    space = SearchSpace(graph, channel_importance=channel_importance(graph, teacher.model), **space_options(config))
    check_targets(space, config)
    teacher_info = {
        "name": teacher.name or type(teacher.model).__name__,
        "params": count_params(graph),
        "flops": count_flops(graph),
        "val_accuracy": teacher.val_accuracy,
        "test_accuracy": teacher.test_accuracy,
        "seconds": None,
    }
    logger.info(
        "teacher %s: %s parameters, validation accuracy %.4f; search space: %s",
        teacher_info["name"], f"{teacher_info['params']:,}", teacher.val_accuracy, space,
    )
    if config.evaluation.backend == "local":
        bf16 = use_bf16(config.evaluation.bf16, device)
        logger.info("distillation on %s in %s", device, "bf16 autocast" if bf16 else "float32")
    store.check_teacher(teacher_info)
    context = SearchContext(space, config, teacher_info, store, teacher.model, data)
    history = SearchHistory()
    for record in store.open_journal():
        history.add(record, record_student(context.space_for(record.source), record))
    if history.records:
        logger.info("resuming: %d architectures already evaluated in %s", len(history), store.run_dir)
    methods = run_methods(config)
    policies = [make_policy(method, context) for method in methods]  # a bad setting fails before any training
    search = _Search(context, history, teacher, make_backend(config, teacher, data))
    try:
        for policy in policies:
            search.run(policy)
        final = search.train_final(methods)
    finally:
        search.backend.close()
    best = {m: history.best(m) for m in methods if history.best(m) is not None}
    rows = results_table([r.to_dict() for r in history.records], teacher_info, [f.to_dict() for f in final])
    table = rows[: rows.index("")] if "" in rows else rows  # without the notes under it
    summary = "\n".join(["summary:", *table])
    for line in summary.splitlines():
        logger.info("%s", line)
    if store.run_dir is not None:
        pareto = config.search.objective == "pareto"
        write_report(store.run_dir, [r.to_dict() for r in history.records], teacher_info, [f.to_dict() for f in final],
                     front_measure=context.front_measure if pareto else None,
                     front_reference=context.teacher_latency() if pareto and context.front_measure == "latency"
                     else None)
        logger.info("run directory: %s (report.md, journal.jsonl, best/, kernels/, tensorboard/)", store.run_dir)
    return SearchResult(history.records, best, final, teacher_info, store.run_dir, time.perf_counter() - start,
                        summary)


class _Search:
    """Drives the policies of a search: evaluates what they propose, records it, keeps the best
    students' weights, and trains the best students to the end."""

    def __init__(self, context: SearchContext, history: SearchHistory, teacher: Teacher,
                 backend: LocalBackend | DaskBackend) -> None:
        self.context, self.history, self.teacher, self.backend = context, history, teacher, backend
        self.config, self.store = context.config, context.store

    def run(self, policy: ProposalPolicy) -> None:
        """Every step of ``policy``; a step with all its records (a resumed search) is skipped, a
        step with some is proposed again and only what is missing is evaluated."""
        method, history = policy.name, self.history
        num_steps = policy.num_steps(history)
        for step in range(1, num_steps + 1):
            done = history.of(method, step=step)
            if len(done) >= policy.per_step:
                continue
            step_start = time.perf_counter()
            proposals = policy.propose(history, step, _generator(self.config.seed, method, step))
            done_keys = {(r.key, json.dumps(r.edit, sort_keys=True), r.source) for r in done}
            todo = [p for p in proposals
                    if (p.student.key(), json.dumps(p.student.edit.to_dict(), sort_keys=True), p.source)
                    not in done_keys]
            self.evaluate(todo, method, step, time.perf_counter() - step_start)
            logger.info("%s", policy.describe_step(history, step, num_steps, len(todo),
                                                   time.perf_counter() - step_start))

    def evaluate(self, proposals: list[Proposal], method: str, step: int, propose_seconds: float = 0.0) -> None:
        """Evaluate ``proposals`` together and record each (weights kept before the record); the
        first record also accounts for the ``propose_seconds`` the step's proposals took."""
        if not proposals:
            return
        teacher, r, e, data = self.context.teacher, self.config.reward, self.config.evaluation, self.context.data
        students = [p.student if p.source is None else build_student(p.student, self.context.source_model(p.source))
                    for p in proposals]
        results = self.backend.evaluate(students, derive_seed(self.config.seed, method, step, "evaluate"))
        train_images = images_per_epoch(len(data.train_y), e.batch_size, e.max_batches)
        for i, (p, result) in enumerate(zip(proposals, results)):
            graph = p.student.graph
            params, flops = count_params(graph), count_flops(graph)
            overhead_seconds = p.overhead_seconds + (propose_seconds if i == 0 else 0.0)
            f = reward(
                result.accuracy if result.ok else 0.0, self.teacher.val_accuracy, params, teacher["params"],
                flops=flops, teacher_flops=teacher["flops"], measure=r.measure, budget=r.budget,
                budget_measure=r.budget_measure, failed=not result.ok, kind=r.kind,
            )
            if self.context.feasible is not None and not self.context.feasible(graph):
                f = 0.0  # it breaks search.constraints (a method that does not filter its proposals)
            values = {
                "index": len(self.history), "method": method, "step": step, "kernel": p.kernel, "key": graph.key(),
                "params": params, "flops": flops, "accuracy": result.accuracy, "best_epoch": result.best_epoch,
                "reward": f, "acquisition": p.acquisition, "seconds": result.seconds, "status": result.status,
                "reason": result.reason, "history": result.history, "architecture": graph.to_dict(),
                "edit": p.student.edit.to_dict(), "target": p.target, "source": p.source,
                "cost": evaluation_cost(flops, teacher["flops"], train_images, len(data.val_y), e.epochs),
                "overhead_cost": p.overhead_cost or None, "overhead_seconds": overhead_seconds or None,
                "latency": result.latency,
                "encoding": encode([graph], self.context.max_layers, dtype=torch.float64)[0].to(torch.int64).tolist(),
            }
            record = EvaluationRecord(**{k: finite(v) for k, v in values.items()})
            self._keep_weights(record, result.state_dict)
            self.history.add(record, p.student)
            best = self.history.best(method)
            self.store.append(record, 0.0 if best is None else best.reward)

    def _keep_weights(self, record: EvaluationRecord, state_dict: dict | None) -> None:
        """Keep the distilled weights of the method's current top-k students (for the final
        training), written before the journal record."""
        if state_dict is None or not record.ok:
            return
        k = max(self.config.final.top_k, 1)
        if self.config.search.objective == "pareto":  # the students of the front the final training takes
            measure = self.context.front_measure
            before = {r.index for r in self.history.front(record.method, measure, k)}
            after = {r.index for r in self.history.front(record.method, measure, k, extra=record)}
        else:
            before = {r.index for r in self.history.top(record.method, k)}
            ranked = sorted([*self.history.of(record.method, ok=True), record], key=lambda r: (-r.reward, r.index))
            after = {r.index for r in ranked[:k]}
        if record.index in after:
            self.store.keep_weights(record.index, state_dict)
        for index in before - after:
            self.store.drop_weights(index)

    def train_final(self, methods: list[str]) -> list[FinalRecord]:
        """Train each method's ``final.top_k`` best students to the end (those trained before a
        resume are reused); with ``search.objective=pareto``, up to ``final.top_k`` students of its
        Pareto front, its largest and those that dominate the most area with it
        (:meth:`SearchHistory.front`; rank 1 the smallest)."""
        f = self.config.final
        done = self.store.final_records()
        final = []
        for method in methods:
            if self.config.search.objective == "pareto":
                chosen = self.history.front(method, self.context.front_measure, f.top_k)
            else:
                chosen = self.history.top(method, f.top_k)
            for rank, record in enumerate(chosen, 1):
                if (method, record.index) in done:
                    final.append(done[(method, record.index)])
                    continue
                entry = {"method": method, "index": record.index, "rank": rank, "params": record.params,
                         "flops": record.flops, "search_accuracy": record.accuracy, "reward": record.reward}
                start = time.perf_counter()
                try:
                    student = build_student(self.history.students[record.index],
                                            self.context.source_model(record.source))
                    weights = self.store.weights(record.index)
                    if weights is not None:
                        student.load_state_dict(weights)
                    result = self.backend.finetune(
                        student, **options_for(finetune, f), seed=derive_seed(self.config.seed, method, record.index,
                                                                              "final"),
                        device=self.config.evaluation.device, progress=self.config.progress,
                    )
                except (ArchSearchError, RuntimeError, ValueError, MemoryError) as error:
                    # NaN, out of memory, a dead training process: this student only, the next one trains
                    entry.update(status="failed", reason=failure_reason(error), seconds=time.perf_counter() - start)
                    logger.warning("%s rank %d (evaluation %d): final training failed: %s", method, rank,
                                   record.index, entry["reason"])
                else:
                    entry.update(val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy,
                                 seconds=result.seconds)
                    if self.store.run_dir is not None:
                        entry["path"] = f"best/{method}-{rank}"
                        save_student(student.cpu(), self.store.run_dir / entry["path"])
                    logger.info(
                        "%s rank %d (evaluation %d): test accuracy %.4f after %d epochs of full training, %s "
                        "parameters", method, rank, record.index, result.test_accuracy, f.epochs,
                        f"{record.params:,}",
                    )
                entry = FinalRecord(**entry)
                self.store.append_final(entry)
                final.append(entry)
        return final


def make_backend(config: CompressConfig, teacher: Teacher, data: ImageDataset) -> LocalBackend | DaskBackend:
    r"""The evaluation backend of ``config.evaluation`` for ``teacher`` on ``data``."""
    e = config.evaluation
    options = options_for(evaluate_students, e)  # epochs, lr, ..., device, bf16, workers
    if e.backend == "dask":  # one student per task: no threads of students
        options.pop("workers")
        return DaskBackend(teacher.model, data, options, **options_for(DaskBackend, e.dask))
    return LocalBackend(teacher.model, data, {**options, "progress": config.progress}, isolation=e.isolation)


def run_methods(config: CompressConfig) -> list[str]:
    r"""The methods a search of ``config`` runs, in order: the search method(s) (``"both"``:
    random search, then ESNAC), then the one-shot ``search.baselines``."""
    m = config.search.method
    methods = ["random", "esnac"] if m == "both" else [m]
    return methods + [b for b in config.search.baselines if b not in methods]


def record_student(space: SearchSpace, record: EvaluationRecord) -> Student:
    r"""The student of a journal record, rebuilt from its edit of ``space``'s teacher, so that
    :func:`~botorch_archsearch.graph.build_student` gives it exactly the weights it inherited when
    it was evaluated.

    Args:
        space: The search space of the run's teacher.
        record: A journal record.

    Returns:
        The student.

    Raises:
        ArchSearchError: If the record's edit does not give its architecture on this teacher (a
            journal of another teacher or search space).
    """
    try:
        return space.student_from_dict({"architecture": record.architecture, "edit": record.edit})
    except ArchSearchError as error:
        raise ArchSearchError(f"journal record {record.index}: {error}") from None


def resolve_teacher(teacher: nn.Module | Teacher | None, data: ImageDataset, config: CompressConfig,
                    device: torch.device) -> Teacher:
    """The search's teacher: ``teacher`` as given (a module is measured on ``data``), or the one
    ``config.teacher`` names (a checkpoint, or trained and cached)."""
    if isinstance(teacher, Teacher):
        return teacher
    if isinstance(teacher, nn.Module):
        check_teacher_input(teacher, data, name=type(teacher).__name__)
        return load_teacher(teacher, data, device=device)
    if teacher is not None:
        raise ArchSearchError(f"compress: teacher must be an nn.Module, a Teacher or None, got {type(teacher).__name__}.")
    t = config.teacher
    name = t.module if t.kind == "module" else t.name
    what = {"zoo": f"teacher {name!r}", "torchvision": f"torchvision teacher {name!r}",
            "module": f"teacher.module={name!r}"}[t.kind]
    fresh = build_teacher(name, kind=t.kind, num_classes=data.num_classes, in_channels=data.in_channels, width=t.width)
    check_teacher_input(fresh, data, name=what)
    if not t.checkpoint:  # a network that cannot be searched, or a target it cannot meet, before it is trained
        graph = trace(fresh.eval(), torch.zeros(1, data.in_channels, data.image_size, data.image_size))
        check_targets(SearchSpace(graph, channel_multiple=config.search.channel_multiple), config)
    if t.checkpoint:
        return load_teacher(t.checkpoint, data, name=name, kind=t.kind, width=t.width, device=device)
    return trained_teacher(
        name, data, kind=t.kind, width=t.width, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, seed=t.seed,
        cache_dir=t.cache_dir, device=device, max_batches=t.max_batches, progress=config.progress,
    )


def _amount(value: float) -> str:
    """A count with thousands separators, a time (a float) with 3 significant digits."""
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


def _unit(measure: str) -> str:
    """What ``measure``'s amounts count, in words."""
    return "ms of latency" if measure == "latency" else measure


def check_targets(space: SearchSpace, config: CompressConfig) -> None:
    r"""Refuse a size target that no student of the search's methods can meet, before any training:
    a ``search.targets`` entry of a method of one student per target (even one channel block per
    group exceeds it) or a ``reward.budget`` that the smallest student of the search space (every
    group at one block, every removable layer removed where removal is on) exceeds; so too a
    ``search.constraints`` entry (a latency one: timed on the untrained graphs).

    Args:
        space: A search space of the teacher (its sizes are known before training).
        config: The search's settings.

    Raises:
        ArchSearchError: Naming the target, the method(s) and the smallest size reachable.
    """
    r, s = config.reward, config.search
    measure = r.budget_measure or r.measure
    count = count_flops if measure == "flops" else count_params
    full = count(space.graph)
    per_target = [m for m in run_methods(config) if m in POLICIES and issubclass(POLICIES[m], OneShot)]
    ratio = 1.0 - 1e-9
    sizes = [count(space.apply(space.uniform_edit(ratio)))]  # every group at one channel block (the smallest)
    if per_target and s.targets is not None:
        for target in s.targets:
            if sizes[0] > float(target) * full:
                raise ArchSearchError(
                    f"search.targets: {', '.join(per_target)} cannot reach a target of {float(target):.4g} of the "
                    f"teacher's {measure}: the smallest student keeps {sizes[0] / full:.4g}. Give a larger target."
                )
    constraints = parse_constraints(s.constraints)
    if r.budget is None and not constraints:
        return
    smallest_graphs = [space.apply(space.uniform_edit(ratio))]
    if s.removal and space.removable:
        removable = set(space.removable)
        edit = Edit(tuple(j in removable for j in range(space.graph.num_layers)), (ratio,) * space.num_groups)
        try:
            smallest_graphs.append(space.apply(edit))
        except ArchSearchError:  # removing every removable layer at once is not an edit of this teacher
            pass
    teacher = {"params": count_params(space.graph), "flops": count_flops(space.graph)}
    counters = {"params": count_params, "flops": count_flops}
    if any(c.measured for c in constraints):  # a latency: timed on the graphs, untrained
        device = config.evaluation.device
        counters["latency"] = lambda g: graph_latency(g, device=device)
        teacher["latency"] = graph_latency(space.graph, device=device, min_run_time=0.2)
    limits = [(f"reward.budget={r.budget:.6g}", measure, r.budget)] if r.budget is not None else []
    limits += [(f"search.constraints {str(c)!r}", c.measure, c.bound(teacher)) for c in constraints]
    for name, limit_measure, limit in limits[1 if r.budget is not None else 0:]:
        smallest = counters[limit_measure](smallest_graphs[0])  # the one-shots shrink channels, remove nothing
        if per_target and smallest > limit:
            raise ArchSearchError(
                f"{name} {limit_measure} cannot be met by {', '.join(per_target)} (they shrink channels and remove "
                f"no layer): their smallest student has {_amount(smallest)} "
                f"{_unit(limit_measure)} ({smallest / teacher[limit_measure]:.4g} "
                f"of the teacher's {_amount(teacher[limit_measure])}). Give a larger constraint, or leave them out "
                "(search.baselines=[] for the baselines)."
            )
    for name, limit_measure, limit in limits:
        smallest = min(counters[limit_measure](g) for g in smallest_graphs)
        if smallest > limit:
            what = "budget" if name.startswith("reward") else "constraint"
            raise ArchSearchError(
                f"{name} {limit_measure} cannot be met: the smallest student of this teacher has {_amount(smallest)} "
                f"{_unit(limit_measure)} ({smallest / teacher[limit_measure]:.4g} "
                f"of the teacher's {_amount(teacher[limit_measure])}). Give a larger {what}."
            )


def check_teacher_input(model: nn.Module, data: ImageDataset, name: str = "teacher") -> None:
    r"""Check that ``model`` takes the dataset's images and predicts its classes.

    Raises:
        ArchSearchError: Naming the teacher, the image shape and what went wrong.
    """
    shape = (1, data.in_channels, data.image_size, data.image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=next(model.parameters()).device))
    except Exception as error:  # noqa: BLE001 - any failure means the same to the user
        first = str(error).splitlines()[0] if str(error) else ""
        advice = (f"build it for {data.in_channels}-channel images (a teacher.module function is given in_channels "
                  "if it takes it) or use another dataset" if "channels" in first else
                  "use a dataset with larger images (dataset.image_size=32) or another teacher")
        raise ArchSearchError(
            f"{name} cannot take dataset {data.name!r} images of shape {shape[1:]} ({type(error).__name__}: "
            f"{first}); {advice}."
        ) from error
    finally:
        model.train(was_training)
    if out.shape[-1] != data.num_classes:
        raise ArchSearchError(
            f"{name} predicts {out.shape[-1]} classes but dataset {data.name!r} has {data.num_classes}."
        )


def space_options(config: CompressConfig) -> dict[str, Any]:
    """The keyword arguments of the search's :class:`~botorch_archsearch.space.SearchSpace`."""
    s = config.search
    options: dict[str, Any] = {"removal": s.removal, "shrinkage": s.shrinkage, "skip": s.skip,
                               "channel_order": s.channel_order, "shrink_spread": s.shrink_spread,
                               "channel_multiple": s.channel_multiple}
    if s.removal_probs is not None:
        options["removal_probs"] = tuple(s.removal_probs)
    if s.shrink_range is not None:
        options["shrink_range"] = tuple(s.shrink_range)
    if s.skip_probs is not None:
        options["skip_probs"] = tuple(s.skip_probs)
    return options


def derive_seed(seed: int, *tags: Any) -> int:
    """A seed for one part of a search (``tags``: its name, step, ...), derived from the search's
    ``seed`` so that parts do not share random streams."""
    digest = hashlib.sha256(json.dumps([seed, *tags]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**62 - 1)


def _generator(seed: int, *tags: Any) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *tags))


__all__ = [
    "SearchResult",
    "check_targets",
    "check_teacher_input",
    "compress",
    "derive_seed",
    "make_backend",
    "record_student",
    "resolve_teacher",
    "run_methods",
    "space_options",
]
