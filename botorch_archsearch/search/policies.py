r"""Proposal policies: the search methods, each an object that proposes the next students to
evaluate from the history of the search.

:func:`~botorch_archsearch.search.compress` drives a list of named policies (``search.method``
and ``search.baselines``) step by step: for each step it asks the policy for its proposals,
evaluates those not evaluated yet (a resumed step's own records are reused), and records them.
It knows nothing of any one policy. A search method is one class:

.. code-block:: python

    @register_policy
    class Smallest(ProposalPolicy):
        '''Each step, the smallest of 100 random students not evaluated yet.'''

        name = "smallest"

        def propose(self, history, step, generator):
            students = random_students(self.context, history, self.name, step, 100, generator)
            return [Proposal(min(students, key=lambda s: count_params(s.graph)))]

Then ``search.method=smallest`` runs it, with the same evaluator, journal, report and final
training as every other method. A policy's randomness comes only from ``generator``, which is
drawn from ``(seed, method, step)``, so that a resumed search proposes what it proposed the first
time.

The methods here: random search (``random``), ESNAC's multiple kernels (``esnac``; with
``kernel.transfer_from`` the kernels of an earlier search, without training:
:class:`KernelTransfer`), and the one-shot baselines ``uniform`` and ``magnitude``.
"""

from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from botorch_archsearch.acquisition import CompressionFactor, propose_architectures, reward_factor
from botorch_archsearch.acquisition.pareto import (
    LogExpectedHypervolumeImprovement,
    PredictedSize,
    front_subset,
    hypervolume_2d,
    pareto_mask,
)
from botorch_archsearch.evaluation.latency import graph_latency
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp import architecture_gp, fit_architecture_gp, transferred_gp
from botorch_archsearch.graph import ArchGraph, count_flops, count_params, encode
from botorch_archsearch.kernels import EditFeatures, WLFeatures
from botorch_archsearch.search.config import options_for
from botorch_archsearch.search.constraints import Feasibility, parse_constraints, search_feasibility
from botorch_archsearch.search.records import EvaluationRecord, Proposal
from botorch_archsearch.search.report import format_seconds, size_of
from botorch_archsearch.search.store import RunStore, WeightSource, saved_kernels
from botorch_archsearch.space import Edit, SearchSpace, Student, mutate_edits, oneshot_edit, perturb_edits

if TYPE_CHECKING:
    from botorch_archsearch.evaluation import ImageDataset  # noqa: F401 - for the annotations
    from botorch_archsearch.search.config import CompressConfig  # noqa: F401 - for the annotations

logger = logging.getLogger("botorch_archsearch")

_MEASURE_WORDS = {"params": "parameters", "flops": "FLOPs"}  # a size measure in the log lines

DEFAULT_TARGETS: tuple[float, ...] = (0.5, 0.25, 0.125)
"""One-shot targets (fractions of the teacher's size) when nothing else sets them."""

INIT_TARGETS: tuple[float, ...] = (1 / 3, 1 / 6, 1 / 10)
"""With ``search.init=oneshot``, ESNAC's first step evaluates ``magnitude`` and ``uniform`` students
at these fractions of the teacher's size (3x, 6x and 10x smaller), in turn."""

LOCAL_PARENTS = 4
"""Local edits mutate the best this many students so far."""

LOCAL_RATES: tuple[float, float] = (0.2, 0.05)
"""``search.local_edits=mutate``: the mutation rate at the second step and at the last (linear in
between)."""

LOCAL_SCALES: tuple[float, float] = (0.15, 0.05)
"""``search.local_edits=perturb``: the step size of :func:`~botorch_archsearch.space.perturb_edits`
at the second step and at the last (linear in between)."""


@dataclass(frozen=True)
class SearchContext:
    r"""What every policy of a search sees besides the history.

    Args:
        space: The search space of the teacher.
        config: The search's settings.
        teacher: The teacher's name, ``params``, ``flops`` and accuracy (``teacher.json``).
        store: Where the run keeps what it computes (a policy may save its models and weight
            sources there).
        model: The teacher network (for methods that train a copy of it).
        data: The search's dataset (for methods that train).
    """

    space: SearchSpace
    config: CompressConfig
    teacher: dict[str, Any]
    store: RunStore
    model: nn.Module | None = None
    data: ImageDataset | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def space_for(self, source: str | None) -> SearchSpace:
        r"""The search space whose students inherit from weight source ``source`` (``None``: the
        teacher's :attr:`space`): the same edits, channels ranked by the source's importance.

        Raises:
            ArchSearchError: If the run has no such source.
        """
        if source is None:
            return self.space
        key = ("space", source)
        if key not in self._cache:
            self._cache[key] = self.space.with_importance(self._source(source).importance)
        return self._cache[key]

    def source_model(self, source: str | None) -> nn.Module:
        r"""The network students of ``source`` inherit from (``None``: the teacher)."""
        if source is None:
            return self.model
        key = ("model", source)
        if key not in self._cache:
            model = copy.deepcopy(self.model).cpu()
            model.load_state_dict(self._source(source).state_dict)
            self._cache[key] = model
        return self._cache[key]

    def _source(self, name: str) -> WeightSource:
        source = self.store.source(name)
        if source is None:
            raise ArchSearchError(
                f"weight source {name!r} is not in this run (no sources/{name}.pt); the run directory is incomplete."
            )
        return source

    @property
    def max_layers(self) -> int:
        r"""Layers per encoding: the teacher's."""
        return self.space.graph.num_layers

    @property
    def size_measure(self) -> str:
        r"""What the one-shot targets measure: ``reward.budget_measure`` or ``reward.measure``."""
        r = self.config.reward
        return r.budget_measure or r.measure

    @property
    def feasible(self) -> Feasibility | None:
        r"""The search's feasibility test, ``search.constraints`` and ``reward.budget``
        (:func:`~botorch_archsearch.search.constraints.feasibility`): ``graph -> bool``, or ``None``
        with neither. A student's size and latency are known before it is trained: ESNAC and random
        search never propose an infeasible one."""
        if "feasible" not in self._cache:
            self._cache["feasible"] = self._feasibility(budget=True)
        return self._cache["feasible"]

    @property
    def constraint_test(self) -> Feasibility | None:
        r"""The test of ``search.constraints`` alone (no budget): what the one-shot methods' largest
        student must meet."""
        if "constraint_test" not in self._cache:
            self._cache["constraint_test"] = self._feasibility(budget=False)
        return self._cache["constraint_test"]

    def _feasibility(self, budget: bool) -> Feasibility | None:
        r = self.config.reward
        return search_feasibility(parse_constraints(self.config.search.constraints), self.teacher,
                                  device=self.config.evaluation.device, teacher_latency=self.teacher_latency,
                                  budget=r.budget if budget else None, budget_measure=self.size_measure, log=budget)

    @property
    def front_measure(self) -> str:
        r"""What a Pareto search's front measures: ``"latency"`` (``search.pareto_cost``) or the
        size measure."""
        return self.config.search.pareto_cost or self.size_measure

    def teacher_latency(self) -> float:
        r"""The teacher's measured latency at batch 1, in milliseconds, on the evaluation device
        (measured once per process; its traced graph, run as the students are): the reference of a
        front over latency and of a relative latency constraint."""
        if "teacher_latency" not in self._cache:
            self._cache["teacher_latency"] = graph_latency(self.space.graph, device=self.config.evaluation.device,
                                                           min_run_time=0.2)
        return self._cache["teacher_latency"]

    @property
    def budget_fraction(self) -> float | None:
        r"""``reward.budget`` as a fraction of the teacher's size (``None`` without a budget)."""
        budget = self.config.reward.budget
        return None if budget is None else budget / self.teacher[self.size_measure]


class SearchHistory:
    r"""Every evaluated student of a search, in order, with its record."""

    def __init__(self) -> None:
        self.records: list[EvaluationRecord] = []
        self.students: list[Student] = []

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: EvaluationRecord, student: Student) -> None:
        r"""Add an evaluated student (its record's ``index`` is its place)."""
        self.records.append(record)
        self.students.append(student)

    def of(self, method: str, before: int | None = None, step: int | None = None,
           ok: bool = False) -> list[EvaluationRecord]:
        r"""The records of ``method``: all, those of steps before ``before``, of ``step``, and
        only the successful ones if ``ok``."""
        return [r for r in self.records if r.method == method and (before is None or r.step < before)
                and (step is None or r.step == step) and (not ok or r.ok)]

    def best(self, method: str) -> EvaluationRecord | None:
        r"""The method's successful record with the highest reward (ties: the earliest)."""
        return max(self.of(method, ok=True), key=lambda r: r.reward, default=None)

    def top(self, method: str, k: int, before: int | None = None) -> list[EvaluationRecord]:
        r"""The method's ``k`` successful records with the highest rewards (ties: the earliest)."""
        return sorted(self.of(method, before=before, ok=True), key=lambda r: (-r.reward, r.index))[:k]

    def front(self, method: str, measure: str, k: int | None = None,
              extra: EvaluationRecord | None = None) -> list[EvaluationRecord]:
        r"""The method's Pareto front of accuracy against ``measure`` (``"params"``, ``"flops"`` or
        ``"latency"``, :func:`~botorch_archsearch.search.report.size_of`), by increasing size (ties:
        the earliest); with ``k``, at most ``k`` of its students: its largest (the most accurate)
        and those with which it dominates the largest area up to it
        (:func:`~botorch_archsearch.acquisition.pareto.front_subset`; a near-chance student at the
        small end adds little and is left out).
        ``extra``: a record counted as if it were in the history."""
        ok = self.of(method, ok=True) + ([extra] if extra is not None and extra.ok else [])
        ok = [r for r in ok if r.accuracy is not None and size_of(r, measure) is not None]
        mask = pareto_mask([size_of(r, measure) for r in ok], [r.accuracy for r in ok])
        front = sorted((r for r, keep in zip(ok, mask) if keep), key=lambda r: (size_of(r, measure), r.index))
        if k is None or len(front) <= k:
            return front
        if k < 1:
            return []
        picks = front_subset([size_of(r, measure) for r in front], [r.accuracy for r in front], k)
        return [front[i] for i in picks]


class ProposalPolicy(ABC):
    r"""A search method: proposes the students to evaluate at each step.

    Subclasses set :attr:`name` (the value of ``search.method`` that selects them), implement
    :meth:`propose`, and are registered with :func:`register_policy`. They may override
    :meth:`num_steps` (default ``search.steps``), :attr:`per_step` (how many students a complete
    step has; default ``search.num_kernels``) and :meth:`describe_step` (the log line of a step).
    """

    name: ClassVar[str]

    def __init__(self, context: SearchContext) -> None:
        r"""A policy for the search of ``context``."""
        self.context = context

    @classmethod
    def from_context(cls, context: SearchContext) -> ProposalPolicy:
        r"""The policy the search's settings ask for (a subclass may return another policy,
        e.g. ESNAC with kernel transfer)."""
        return cls(context)

    @property
    def per_step(self) -> int:
        r"""How many students a complete step evaluates (a resumed step with as many records is
        not proposed again)."""
        return self.context.config.search.num_kernels

    def num_steps(self, history: SearchHistory) -> int:
        r"""How many steps the method runs (asked once, before its first step)."""
        return self.context.config.search.steps

    @abstractmethod
    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        r"""The students to evaluate at ``step``.

        Args:
            history: Every student evaluated so far, by every method (a resumed step's own records
                too: leave out ``history.of(self.name, step=step)`` to propose what the step
                proposed the first time).
            step: The step, from 1.
            generator: The step's random stream (drawn from the seed, method and step).

        Returns:
            The proposals; those the step already evaluated are skipped.
        """

    def describe_step(self, history: SearchHistory, step: int, num_steps: int, evaluated: int,
                      seconds: float) -> str:
        r"""The log line after a step."""
        best, n = history.best(self.name), len(history.of(self.name))
        teacher, measure = self.context.teacher, self.context.size_measure  # what the reward counts
        if best is not None and getattr(best, measure) is None:  # a record written before FLOPs were counted
            measure = "params"
        found = "n/a" if best is None else (
            f"{best.reward:.4f} (accuracy {best.accuracy:.4f}, "
            f"{teacher[measure] / max(getattr(best, measure), 1):.1f}x fewer {_MEASURE_WORDS[measure]})")
        if self.context.config.search.objective == "pareto":
            found += self._front_summary(history)
        return (f"{self.name} step {step}/{num_steps}: {evaluated} evaluated ({n} in all), best f(x) {found}, "
                f"step {format_seconds(seconds)}")

    def _front_summary(self, history: SearchHistory) -> str:
        """``"; front: <n> students, hypervolume <h>"`` of a Pareto search (over the accuracy ratio
        and the relative size or latency, the reference the acquisition's)."""
        measure, teacher = self.context.front_measure, self.context.teacher
        front = history.front(self.name, measure)
        if not front:
            return ""
        full = self.context.teacher_latency() if measure == "latency" else float(teacher[measure])
        ref = 1.0 if measure == "latency" else min(1.0, self.context.budget_fraction or 1.0)
        hv = hypervolume_2d([size_of(r, measure) / full for r in front],
                            [r.accuracy / teacher["val_accuracy"] for r in front], ref)
        return f"; front: {len(front)} students, hypervolume {hv:.4f} (accuracy, {measure})"


POLICIES: dict[str, type[ProposalPolicy]] = {}
r"""The registered search methods, by name (see :func:`register_policy`)."""


def register_policy(cls: type[ProposalPolicy]) -> type[ProposalPolicy]:
    r"""Register a :class:`ProposalPolicy` subclass under its ``name`` (a class decorator), so
    that ``search.method=<name>`` (or ``search.baselines``) runs it.

    Raises:
        ArchSearchError: If the class has no name or the name is taken by another class.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ArchSearchError(f"register_policy: {cls.__name__} needs a class attribute name (a non-empty string).")
    if name == "both" or (name in POLICIES and POLICIES[name] is not cls):
        raise ArchSearchError(f"register_policy: the method name {name!r} is taken; choose another.")
    POLICIES[name] = cls
    return cls


def make_policy(name: str, context: SearchContext) -> ProposalPolicy:
    r"""The policy of the search method ``name`` for the search of ``context``.

    Raises:
        ArchSearchError: If no policy of that name is registered.
    """
    if name not in POLICIES:
        raise ArchSearchError(f"search.method: unknown method {name!r}; registered: {', '.join(sorted(POLICIES))}.")
    return POLICIES[name].from_context(context)


def random_students(context: SearchContext, history: SearchHistory, method: str, step: int, k: int,
                    generator: torch.Generator, avoid: set[str] = frozenset()) -> list[Student]:
    r"""``k`` distinct random students (:meth:`SearchSpace.sample`) that ``method`` did not
    evaluate before ``step``, whose keys are not in ``avoid`` and that are feasible (within
    ``reward.budget`` and ``search.constraints``, :attr:`SearchContext.feasible`; rejection
    sampling).

    Raises:
        ArchSearchError: If the search space does not have ``k`` such students.
    """
    space, feasible = context.space, context.feasible
    seen = {r.key for r in history.of(method, before=step)} | set(avoid)
    students: list[Student] = []
    keys: set[str] = set()
    over = 0
    for _ in range(100):
        for edit in space.sample(max(k, 16), generator=generator):
            student = space.student(edit)
            key = student.key()
            if key in seen or key in keys:
                continue
            keys.add(key)
            if feasible is not None and not feasible(student.graph):
                over += 1
                continue
            students.append(student)
            if len(students) == k:
                return students
    budget = f" ({over} drawn broke reward.budget or search.constraints: loosen them)" if over else ""
    raise ArchSearchError(
        f"search: found only {len(students)} new distinct students for step {step}{budget}; the search space of this "
        "teacher is too small for search.num_kernels, or enable more operators."
    )


def distinct_students(space: SearchSpace, draw: Callable[[], list[Edit]], k: int, seen: set[str],
                      tries: int = 20) -> list[Student]:
    r"""Up to ``k`` students of distinct architectures from batches of edits ``draw()`` (at most
    ``tries`` batches): new ones (keys not in ``seen``) first, then, where too few are new, the
    earlier ones drawn, in the order drawn.

    Args:
        space: The search space the edits are of.
        draw: Returns the next batch of edits (from the policy's generator).
        k: How many students.
        seen: Keys to avoid where possible (e.g. the method's earlier students).
        tries: Batches drawn at most.

    Returns:
        The students (fewer than ``k`` if the draws hold fewer distinct architectures).
    """
    new: list[Student] = []
    old: list[Student] = []
    keys: set[str] = set()
    for _ in range(tries):
        for edit in draw():
            student = space.student(edit)
            key = student.key()
            if key in keys:
                continue
            keys.add(key)
            (old if key in seen else new).append(student)
            if len(new) == k:
                return new
    return new + old[:k - len(new)]


@register_policy
class RandomSearch(ProposalPolicy):
    r"""Random search: ``search.num_kernels`` random students per step (paper section 4.1)."""

    name = "random"

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        k = self.context.config.search.num_kernels
        return [Proposal(s) for s in random_students(self.context, history, self.name, step, k, generator)]


@register_policy
class MultiKernelSearch(ProposalPolicy):
    r"""ESNAC (Algorithm 1): after a first step of random students (or one-shot ones, with
    ``search.init=oneshot``), each step fits ``search.num_kernels`` architecture GPs on random
    subsets of the evaluated students, and each proposes the student that maximises its acquisition
    (:func:`~botorch_archsearch.acquisition.propose_architectures`). The fitted kernels are saved
    in the run store."""

    name = "esnac"

    @classmethod
    def from_context(cls, context: SearchContext) -> ProposalPolicy:
        if context.config.kernel.transfer_from:
            return KernelTransfer(context, context.config.kernel.transfer_from)
        return cls(context)

    @property
    def max_layers(self) -> int:
        r"""Layers per encoding of the GPs' inputs."""
        return self.context.max_layers

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        c = self.context.config.search
        if step == 1 and c.init == "oneshot":
            return self._oneshot_init(history, step, generator)
        if step == 1 or len(history.of(self.name, before=step)) < 2:  # a GP needs 2 points (K = 1: steps 1-2)
            return [Proposal(s) for s in random_students(self.context, history, self.name, step, c.num_kernels,
                                                         generator)]
        earlier = history.of(self.name, before=step)  # a resumed step's own records are left out
        X = encode([history.students[r.index].graph for r in earlier], self.max_layers, dtype=torch.float64)
        local = self._local_edits(history, step, generator)
        k, a = self.context.config.kernel, self.context.config.acquisition
        Y, known = self.targets(earlier)
        features = self.features(history, earlier, X)
        observers = [features.add] if isinstance(features, EditFeatures) else []
        make_acquisition = None
        if c.objective == "pareto":
            Y, make_acquisition, sizes = self.pareto(earlier, X)
            known = None
            observers.append(sizes.add)

        def on_encoded(graphs, X, edits):
            for observe in observers:
                observe(graphs, X, edits)

        result = propose_architectures(
            self.context.space, X, Y, max_layers=self.max_layers, num_kernels=c.num_kernels,
            subset_prob=c.subset_prob, acquisition=a.name, num_candidates=a.num_candidates, method=a.method,
            kernel_options={**options_for(architecture_gp, k), "kernel": k.name, "features": features},
            fit_options=options_for(fit_architecture_gp, k), generator=generator, extra_candidates=local,
            models=self.models(), known_factor=known, best_f=max(r.reward for r in earlier),
            initial_kernels=self.initial_kernels(step), on_encoded=on_encoded if observers else None,
            feasible=self.context.feasible, make_acquisition=make_acquisition,
        )
        self.save(step, result)
        return [Proposal(s, kernel=i, acquisition=float(v)) for i, (s, v) in enumerate(zip(result.students,
                                                                                             result.values))]

    def targets(self, earlier: list[EvaluationRecord]) -> tuple[Tensor, CompressionFactor | None]:
        r"""What the GPs model (`n x 1`) and the known factor of the reward (``kernel.target``):
        the rewards and ``None``, or the accuracy ratios ``A / A_teacher`` (0 for a student that
        failed) and the candidates' factor ``C (2 - C)`` (1 for ``reward.kind=accuracy``; 0 above
        the budget)."""
        if self.context.config.kernel.target == "reward":
            return torch.tensor([[r.reward] for r in earlier], dtype=torch.float64), None
        teacher, r = self.context.teacher, self.context.config.reward
        ratios = [[(rec.accuracy or 0.0) / teacher["val_accuracy"] if rec.status == "ok" else 0.0] for rec in earlier]
        factor = reward_factor(teacher, measure=r.measure, budget=r.budget, budget_measure=r.budget_measure,
                               kind=r.kind)
        return torch.tensor(ratios, dtype=torch.float64), CompressionFactor(factor)

    def pareto(self, earlier: list[EvaluationRecord], X: Tensor) -> tuple[Tensor, Callable[[Any], Any], Any]:
        r"""``search.objective=pareto``: what the GPs model (the accuracy ratios ``A / A_teacher``,
        0 for a failed student), each kernel's acquisition (the expected hypervolume improvement
        over accuracy and relative cost, the front of the evaluated students ``earlier``, encoded
        as ``X``; the reference size the budget's fraction or 1) and the candidates' relative
        costs, looked up by encoding: their exact sizes, or with ``search.pareto_cost=latency``
        their latencies predicted by a GP of the log latency of the evaluated students (``wl``
        kernel), relative to the teacher's."""
        teacher, measure = self.context.teacher, self.context.front_measure
        a_teacher = float(teacher["val_accuracy"])
        Y = torch.tensor([[(r.accuracy or 0.0) / a_teacher if r.ok else 0.0] for r in earlier], dtype=torch.float64)
        ok = [i for i, r in enumerate(earlier) if r.ok and r.accuracy is not None
              and size_of(r, measure) is not None]
        if measure == "latency":
            full = self.context.teacher_latency()
            if len(ok) < 2:
                raise ArchSearchError("search.pareto_cost=latency: fewer than 2 students with a measured latency.")
            log_ms = torch.tensor([[math.log(size_of(earlier[i], measure))] for i in ok], dtype=torch.float64)
            model = architecture_gp(X[ok], log_ms, max_layers=self.max_layers, kernel="wl")
            fit_architecture_gp(model)
            sizes: Any = PredictedSize(model, scale=full)
            ref = 1.0
        else:
            count = count_flops if measure == "flops" else count_params
            full = float(teacher[measure])
            sizes = CompressionFactor(lambda graph: count(graph) / full)
            ref = min(1.0, self.context.budget_fraction or 1.0)
        front_sizes = [size_of(earlier[i], measure) / full for i in ok]
        front_values = [earlier[i].accuracy / a_teacher for i in ok]
        return Y, lambda model: LogExpectedHypervolumeImprovement(model, sizes, front_sizes, front_values,
                                                                  ref_size=ref), sizes

    def features(self, history: SearchHistory, earlier: list[EvaluationRecord], X: Tensor) -> nn.Module | None:
        r"""The feature map of ``kernel.name`` (``None``: the learned kernel's own embedding): the
        ``edit`` kernel's edit vectors, with the evaluated students registered; the ``wl``
        kernel's features, one per search (their cache with it)."""
        name = self.context.config.kernel.name
        if name == "edit":
            features = EditFeatures(self.context.space)
            students = [history.students[r.index] for r in earlier]
            features.add([s.graph for s in students], X, [s.edit for s in students])
            return features
        if name == "wl":
            if getattr(self, "_wl", None) is None:
                self._wl = WLFeatures()
            return self._wl
        return None

    def initial_kernels(self, step: int) -> list[dict | None] | None:
        r"""``kernel.warm_start``: the kernels this method fitted at the previous step (``None``:
        from scratch, the paper; also where the previous step fitted none)."""
        if not self.context.config.kernel.warm_start:
            return None
        return self.context.store.kernel_states(self.name, step - 1)

    def models(self) -> Callable[[int, Tensor, Tensor], Any] | None:
        r"""Given models (``model(k, X, Y)`` for kernel ``k`` on its subset), or ``None``: fresh
        kernels, fitted."""
        return None

    def save(self, step: int, result: Any) -> None:
        r"""Save the step's fitted kernels in the run store (the learned kernel's only: the others
        have no network to transfer; none with ``acquisition.name=random``, which fits no kernel)."""
        if self.context.config.kernel.name != "bilstm" or any(fit is None for fit in result.fits):
            return
        self.context.store.save_kernels(
            self.name, step, result.models,
            [{"teacher": self.context.teacher["name"], "step": step, "kernel": i, "fit_steps": fit.num_steps}
             for i, fit in enumerate(result.fits)],
        )

    def _oneshot_init(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        """The first step from one-shot students: ``magnitude`` and ``uniform`` (with the search's
        channel order; where that is ``magnitude`` and the scope ``group``, the two are one student,
        evaluated once) at each of :data:`INIT_TARGETS` in turn (with ``reward.budget``, at the same
        fractions of the budget: the budget, half of it and 3/10 of it), then random students if
        ``search.num_kernels`` is larger."""
        space, c = self.context.space, self.context.config.search
        proposals: list[Proposal] = []
        keys: set[str] = set()
        budget, feasible = self.context.budget_fraction, self.context.feasible
        targets = INIT_TARGETS if budget is None else [min(budget, 1.0) * t / INIT_TARGETS[0] for t in INIT_TARGETS]
        for target in targets:
            for oneshot in ("magnitude", "uniform"):
                if len(proposals) == c.num_kernels:
                    return proposals
                try:
                    edit = oneshot_edit(space, oneshot, target, measure=self.context.size_measure,
                                        scope=c.magnitude_scope)
                except ArchSearchError:
                    continue  # a target this teacher cannot reach
                if oneshot == "uniform":  # with the search's channel order, as every other student of it
                    edit = replace(edit, channel_order=space.channel_order)
                if any(p.student.edit == edit for p in proposals):
                    continue  # e.g. both keep every channel
                student = space.student(edit)
                if feasible is not None and not feasible(student.graph):
                    continue  # a rounding of the budget's fraction
                keys.add(student.key())
                proposals.append(Proposal(student, target=target))
        if len(proposals) < c.num_kernels:
            proposals += [Proposal(s) for s in random_students(
                self.context, history, self.name, step, c.num_kernels - len(proposals), generator, avoid=keys)]
        return proposals

    def _local_edits(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Edit]:
        """Local edits of the method's best students so far, smaller as the search goes on: small
        steps of :data:`LOCAL_SCALES` (``search.local_edits=perturb``) or mutations at the rates of
        :data:`LOCAL_RATES` (``mutate``), from the second step to the last."""
        c, a = self.context.config.search, self.context.config.acquisition
        n = int(round(c.local_fraction * a.num_candidates))
        if n == 0:
            return []
        parents = [history.students[r.index].edit for r in history.top(self.name, LOCAL_PARENTS, before=step)]
        if not parents:
            return []
        progress = min(max((step - 2) / max(c.steps - 2, 1), 0.0), 1.0)
        pick = torch.randint(len(parents), (n,), generator=generator).tolist()
        if c.local_edits == "mutate":
            rate = LOCAL_RATES[0] + (LOCAL_RATES[1] - LOCAL_RATES[0]) * progress
            return mutate_edits(self.context.space, [parents[i] for i in pick], generator, rate)
        scale = LOCAL_SCALES[0] + (LOCAL_SCALES[1] - LOCAL_SCALES[0]) * progress
        return perturb_edits(self.context.space, [parents[i] for i in pick], generator, scale)


class KernelTransfer(MultiKernelSearch):
    r"""ESNAC with the kernels of an earlier search (paper section 4.3): the saved kernels of its
    last step score the candidates, conditioned on this search's students, without any training.

    It is :class:`MultiKernelSearch` with given models: ``esnac`` with ``kernel.transfer_from``.
    """

    def __init__(self, context: SearchContext, run_dir: str | Path) -> None:
        r"""Transfer the kernels saved in ``run_dir``.

        The kernels read architectures of any depth: a teacher deeper than the one they were
        learned on is encoded with its own layers (paper: ResNet-18 to ResNet-34).

        Raises:
            ArchSearchError: If ``run_dir`` saved no kernels.
        """
        super().__init__(context)
        self.paths = saved_kernels(run_dir)

    def models(self) -> Callable[[int, Tensor, Tensor], Any]:
        return lambda k, X, Y: transferred_gp(self.paths[k % len(self.paths)], X, Y)

    def save(self, step: int, result: Any) -> None:
        """Transferred kernels are not trained: nothing new to save."""


class OneShot(ProposalPolicy):
    r"""A one-shot baseline: one student per target size, by :func:`~botorch_archsearch.space.oneshot_edit`
    with the method's name, one step each. The targets are ``search.targets``, else the sizes of
    the best students of the search methods run before it, else ``reward.budget``, else
    :data:`DEFAULT_TARGETS`."""

    @property
    def per_step(self) -> int:
        return 1

    def num_steps(self, history: SearchHistory) -> int:
        return len(self.targets(history))

    def targets(self, history: SearchHistory) -> list[float]:
        r"""The relative sizes the method aims at, one per step."""
        c, r, measure = self.context.config.search, self.context.config.reward, self.context.size_measure
        teacher = self.context.teacher
        if c.targets is not None:
            return self.clip([float(t) for t in c.targets])
        searched = [history.best(m) for m in dict.fromkeys(r.method for r in history.records)
                    if not issubclass(POLICIES.get(m, OneShot), OneShot)]
        sizes = sorted({getattr(b, measure) / teacher[measure] for b in searched if b is not None}, reverse=True)
        if sizes:
            return self.clip(sizes)
        if r.budget is not None:
            return self.clip([min(1.0, r.budget / teacher[measure])])
        return self.clip(list(DEFAULT_TARGETS))

    def clip(self, targets: list[float]) -> list[float]:
        r"""``targets`` no larger than the ``search.constraints`` on the size measure (as fractions
        of the teacher's size)."""
        measure, teacher = self.context.size_measure, self.context.teacher
        limits = [c.fraction(teacher) for c in parse_constraints(self.context.config.search.constraints)
                  if c.measure == measure]
        return [min([t, *limits]) for t in targets]

    def feasible_edit(self, build: Callable[[float], Edit], target: float, space: SearchSpace | None = None) -> Edit:
        r"""``build(target)``, or where its student breaks a ``search.constraints`` on another
        measure, ``build(t)`` for the largest ``t < target`` (by bisection) whose student meets
        them all.

        Raises:
            ArchSearchError: If no student of the method meets the constraints.
        """
        constraints = parse_constraints(self.context.config.search.constraints)
        test = self.context.constraint_test
        edit = build(target)
        if test is None:
            return edit
        space = space or self.context.space
        if test(space.apply(edit)):
            return edit
        low, best = 0.0, None
        high = target
        for _ in range(30):
            t = (low + high) / 2
            try:
                candidate = build(t)
            except ArchSearchError:  # below the smallest student the method can build
                low = t
                continue
            if test(space.apply(candidate)):
                low, best = t, candidate
            else:
                high = t
        if best is None:
            raise ArchSearchError(
                f"{self.name}: no student at or below {target:.4g} of the teacher's {self.context.size_measure} meets "
                f"search.constraints {[str(c) for c in constraints]}; loosen them."
            )
        return best

    def propose(self, history: SearchHistory, step: int, generator: torch.Generator) -> list[Proposal]:
        target = self.targets(history)[step - 1]
        space, c = self.context.space, self.context.config.search
        edit = self.feasible_edit(
            lambda t: oneshot_edit(space, self.name, t, measure=self.context.size_measure, scope=c.magnitude_scope),
            target)
        return [Proposal(space.student(edit), target=target)]

    def describe_step(self, history: SearchHistory, step: int, num_steps: int, evaluated: int,
                      seconds: float) -> str:
        record, measure = history.of(self.name, step=step)[-1], self.context.size_measure
        return (f"{self.name} at {record.target:.4g} of the teacher's {measure}: f(x) {record.reward:.4f} (accuracy "
                f"{'n/a' if record.accuracy is None else f'{record.accuracy:.4f}'}, "
                f"{self.context.teacher[measure] / max(getattr(record, measure), 1):.1f}x fewer {measure})")


@register_policy
class UniformPruning(OneShot):
    r"""The ``uniform`` baseline: every channel group keeps the same fraction."""

    name = "uniform"


@register_policy
class MagnitudePruning(OneShot):
    r"""The ``magnitude`` baseline: the channels of the smallest weight magnitudes are removed."""

    name = "magnitude"


__all__ = [
    "DEFAULT_TARGETS",
    "INIT_TARGETS",
    "KernelTransfer",
    "MagnitudePruning",
    "MultiKernelSearch",
    "OneShot",
    "POLICIES",
    "ProposalPolicy",
    "RandomSearch",
    "SearchContext",
    "SearchHistory",
    "UniformPruning",
    "distinct_students",
    "make_policy",
    "random_students",
    "register_policy",
]
