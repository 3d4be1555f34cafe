r"""Constraints on a student's size and speed (``search.constraints``), known before it is trained.

A constraint is a string ``"<measure><=<limit>"`` with ``measure`` one of
:data:`CONSTRAINT_MEASURES`: ``"flops<=0.33"`` (a limit of at most 1 is a fraction of the
teacher's size), ``"params<=500000"`` (a larger one is an absolute count) or ``"latency<=0.5"``
(half the teacher's latency at batch 1; ``"latency<=2.5"`` or ``"latency<=0.4ms"``: milliseconds).
With ``reward.budget`` they make one feasibility test (:func:`feasibility`): ESNAC and random search
never propose an infeasible student (candidates are dropped before any scoring), the one-shot and
regularised methods build the largest student that meets them, and any student that still breaks
one (N2N's and evolutionary synthesis's own proposals) gets a reward of 0.

Params and FLOPs are counted exactly. A latency is measured: the candidate's network is built
untrained (weights do not change the time) and timed at batch 1 (one thread on a CPU) on
``evaluation.device`` of the process that proposes
(:func:`~botorch_archsearch.evaluation.latency.graph_latency`), once per architecture; ESNAC
measures only the candidates it would propose, best first, after scoring, as measuring thousands
would cost more than the search. A measurement has the noise of the machine:
a student within a few percent of the limit can fall on either side, and a resumed search can
decide differently.

On the command line (Hydra needs the quotes for ``<=``)::

    python -m botorch_archsearch 'search.constraints=["flops<=0.33","params<=20000"]'
    python -m botorch_archsearch 'search.constraints=["latency<=0.5"]'
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, count_flops, count_params

CONSTRAINT_MEASURES = ("params", "flops", "latency")
"""What a constraint can limit: the student's parameters, FLOPs (multiply-accumulates) or
measured latency at batch 1 (milliseconds)."""

_log = logging.getLogger("botorch_archsearch")
_COUNTS = {"params": count_params, "flops": count_flops}

_PATTERN = re.compile(r"^\s*(\w+)\s*<=\s*([0-9.eE+\-_]+)\s*(ms)?\s*$")


@dataclass(frozen=True)
class Constraint:
    r"""``measure <= limit``; ``limit <= 1`` is a fraction of the teacher's size (or latency)
    unless ``absolute``.

    Attributes:
        measure: One of :data:`CONSTRAINT_MEASURES`.
        limit: The limit as given (> 0).
        absolute: The limit is absolute whatever its value (a latency written with ``ms``).
    """

    measure: str
    limit: float
    absolute: bool = False

    @property
    def relative(self) -> bool:
        """Whether the limit is a fraction of the teacher's size (or latency)."""
        return not self.absolute and self.limit <= 1.0

    @property
    def measured(self) -> bool:
        """Whether the constraint needs a measurement (a latency) rather than a count."""
        return self.measure == "latency"

    def bound(self, teacher: Mapping[str, Any]) -> float:
        r"""The absolute limit for a teacher with ``teacher[measure]``."""
        return self.limit * float(teacher[self.measure]) if self.relative else self.limit

    def fraction(self, teacher: Mapping[str, Any]) -> float:
        r"""The limit as a fraction of the teacher's size."""
        return self.bound(teacher) / float(teacher[self.measure])

    def __str__(self) -> str:
        return f"{self.measure}<={self.limit:g}{'ms' if self.absolute else ''}"


def parse_constraint(text: Any, key: str = "search.constraints") -> Constraint:
    r"""Parse ``"<measure><=<limit>"``.

    Raises:
        ArchSearchError: Naming the string and what is accepted.
    """
    match = _PATTERN.match(text) if isinstance(text, str) else None
    limit = None
    if match is not None:
        try:
            limit = float(match.group(2).replace("_", ""))
        except ValueError:
            limit = None
    unit = None if match is None else match.group(3)
    if match is None or match.group(1) not in CONSTRAINT_MEASURES or limit is None or not (
            limit > 0 and math.isfinite(limit)) or (unit is not None and match.group(1) != "latency"):
        raise ArchSearchError(
            f"{key}: {text!r} is not a constraint; write '<measure><=<limit>' with measure one of "
            f"{list(CONSTRAINT_MEASURES)} and a limit > 0, at most 1 for a fraction of the teacher's size "
            "(flops<=0.33) or an absolute count (params<=500000); a latency in milliseconds may end in ms "
            "(latency<=0.5 is half the teacher's, latency<=0.4ms is 0.4 ms); on the command line quote them: "
            "'search.constraints=[\"flops<=0.33\"]'."
        )
    return Constraint(match.group(1), limit, absolute=unit is not None)


def parse_constraints(texts: Sequence[Any], key: str = "search.constraints") -> list[Constraint]:
    r"""Parse every constraint of ``texts`` (:func:`parse_constraint`)."""
    return [parse_constraint(t, key) for t in texts]


class Feasibility:
    r"""A search's feasibility test, ``graph -> bool``: every bound met. The bounds on counts
    (params, FLOPs) are :meth:`known` without running anything; a latency bound is measured
    (``latency``, once per architecture, cached by its key).

    Attributes:
        measured: Whether a bound needs a measurement: a caller that screens many candidates
            (:func:`~botorch_archsearch.acquisition.optimize_acqf_edits`) screens them with
            :meth:`known` and measures only those it would keep, best first.
        num_measured: Architectures measured so far.
    """

    def __init__(self, bounds: Sequence[tuple[str, float]],
                 latency: Callable[[ArchGraph], float] | None = None) -> None:
        self.bounds = [(m, b) for m, b in bounds if m != "latency"]
        self.latency_bounds = [b for m, b in bounds if m == "latency"]
        if self.latency_bounds and latency is None:
            raise ArchSearchError("feasibility: a latency constraint needs latency=, a function timing a graph.")
        self.latency = latency
        self.measured = bool(self.latency_bounds)
        self.num_measured = 0
        self._times: dict[str, float] = {}

    def known(self, graph: ArchGraph) -> bool:
        r"""Whether ``graph`` meets the bounds on counts (true for the latency ones)."""
        sizes: dict[str, int] = {}
        for measure, bound in self.bounds:
            if measure not in sizes:
                sizes[measure] = _COUNTS[measure](graph)
            if sizes[measure] > bound:
                return False
        return True

    def milliseconds(self, graph: ArchGraph) -> float:
        r"""``graph``'s measured latency (measured once per architecture)."""
        key = graph.key()
        if key not in self._times:
            self._times[key] = float(self.latency(graph))
            self.num_measured += 1
        return self._times[key]

    def __call__(self, graph: ArchGraph) -> bool:
        if not self.known(graph):
            return False
        return not self.latency_bounds or self.milliseconds(graph) <= min(self.latency_bounds)


def feasibility(
    constraints: Sequence[Constraint],
    teacher: Mapping[str, Any],
    budget: float | None = None,
    budget_measure: str = "params",
    latency: Callable[[ArchGraph], float] | None = None,
) -> Feasibility | None:
    r"""The feasibility test of a search: ``graph -> bool``, true when the graph meets every
    constraint and the budget (``reward.budget`` on ``budget_measure``); ``None`` when there is
    nothing to test.

    Args:
        constraints: Parsed constraints.
        teacher: The teacher's ``params`` and ``flops``, and ``latency`` (milliseconds at batch
            1) for a relative latency constraint: the relative limits' reference.
        budget: ``reward.budget`` (absolute), if any.
        budget_measure: What the budget limits.
        latency: For latency constraints: a graph's latency at batch 1 in milliseconds
            (:func:`~botorch_archsearch.evaluation.latency.graph_latency` on the evaluation device).

    Raises:
        ArchSearchError: If a latency constraint has no ``latency`` function, or a relative one no
            ``teacher["latency"]``.
    """
    for c in constraints:
        if c.measured and c.relative and teacher.get(c.measure) is None:
            raise ArchSearchError(f"feasibility: the relative constraint {c} needs the teacher's latency.")
    bounds = [(c.measure, c.bound(teacher)) for c in constraints]
    if budget is not None:
        bounds.append((budget_measure, float(budget)))
    if not bounds:
        return None
    return Feasibility(bounds, latency)


def search_feasibility(
    constraints: Sequence[Constraint],
    teacher: Mapping[str, Any],
    *,
    device: str,
    teacher_latency: Callable[[], float],
    budget: float | None = None,
    budget_measure: str = "params",
    log: bool = True,
) -> Feasibility | None:
    r""":func:`feasibility` for a search: latencies timed by
    :func:`~botorch_archsearch.evaluation.latency.graph_latency` on ``device``, the teacher's
    latency (``teacher_latency()``, milliseconds) measured only for a relative latency constraint,
    and the limits logged (with ``log``)."""
    from botorch_archsearch.evaluation.latency import graph_latency

    teacher, latency = dict(teacher), None
    if any(c.measured for c in constraints):
        latency = functools.partial(graph_latency, device=device)
        if any(c.measured and c.relative for c in constraints):
            teacher["latency"] = teacher_latency()
        limits = ", ".join(f"{c} ({c.bound(teacher):.3f} ms)" for c in constraints if c.measured)
        if log:
            _log.info(f"latency constraints {limits}: timed at batch 1 on {device} (one thread on a CPU), "
                      "before training")
    return feasibility(constraints, teacher, budget, budget_measure, latency=latency)


__all__ = ["CONSTRAINT_MEASURES", "Constraint", "Feasibility", "feasibility", "parse_constraint", "parse_constraints",
           "search_feasibility"]
