r"""Exact constraints on a student's size (``search.constraints``), known before it is trained.

A constraint is a string ``"<measure><=<limit>"`` with ``measure`` one of
:data:`CONSTRAINT_MEASURES`: ``"flops<=0.33"`` (a limit of at most 1 is a fraction of the
teacher's size) or ``"params<=500000"`` (a larger one is an absolute count). With
``reward.budget`` they make one feasibility test (:func:`feasibility`): ESNAC and random search
never propose an infeasible student (candidates are dropped before any scoring), the one-shot and
regularised methods build the largest student that meets them, and any student that still breaks
one (N2N's and evolutionary synthesis's own proposals) gets a reward of 0.

On the command line (Hydra needs the quotes for ``<=``)::

    python -m botorch_archsearch 'search.constraints=["flops<=0.33","params<=20000"]'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, count_flops, count_params

CONSTRAINT_MEASURES = ("params", "flops")
"""What a constraint can limit: the student's parameters or FLOPs (multiply-accumulates)."""

_PATTERN = re.compile(r"^\s*(\w+)\s*<=\s*([0-9.eE+\-_]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    r"""``measure <= limit``; ``limit <= 1`` is a fraction of the teacher's size.

    Attributes:
        measure: One of :data:`CONSTRAINT_MEASURES`.
        limit: The limit as given (> 0).
    """

    measure: str
    limit: float

    @property
    def relative(self) -> bool:
        """Whether the limit is a fraction of the teacher's size."""
        return self.limit <= 1.0

    def bound(self, teacher: Mapping[str, Any]) -> float:
        r"""The absolute limit for a teacher with ``teacher[measure]``."""
        return self.limit * float(teacher[self.measure]) if self.relative else self.limit

    def fraction(self, teacher: Mapping[str, Any]) -> float:
        r"""The limit as a fraction of the teacher's size."""
        return self.bound(teacher) / float(teacher[self.measure])

    def __str__(self) -> str:
        return f"{self.measure}<={self.limit:g}"


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
    if match is None or match.group(1) not in CONSTRAINT_MEASURES or limit is None or not (
            limit > 0 and math.isfinite(limit)):
        raise ArchSearchError(
            f"{key}: {text!r} is not a constraint; write '<measure><=<limit>' with measure one of "
            f"{list(CONSTRAINT_MEASURES)} and a limit > 0, at most 1 for a fraction of the teacher's size "
            "(flops<=0.33) or an absolute count (params<=500000); on the command line quote them: "
            "'search.constraints=[\"flops<=0.33\"]'."
        )
    return Constraint(match.group(1), limit)


def parse_constraints(texts: Sequence[Any], key: str = "search.constraints") -> list[Constraint]:
    r"""Parse every constraint of ``texts`` (:func:`parse_constraint`)."""
    return [parse_constraint(t, key) for t in texts]


def feasibility(
    constraints: Sequence[Constraint],
    teacher: Mapping[str, Any],
    budget: float | None = None,
    budget_measure: str = "params",
) -> Callable[[ArchGraph], bool] | None:
    r"""The exact feasibility test of a search: ``graph -> bool``, true when the graph meets every
    constraint and the budget (``reward.budget`` on ``budget_measure``); ``None`` when there is
    nothing to test.

    Args:
        constraints: Parsed constraints.
        teacher: The teacher's ``params`` and ``flops`` (the relative limits' reference).
        budget: ``reward.budget`` (absolute), if any.
        budget_measure: What the budget limits.
    """
    bounds = [(c.measure, c.bound(teacher)) for c in constraints]
    if budget is not None:
        bounds.append((budget_measure, float(budget)))
    if not bounds:
        return None
    counts = {"params": count_params, "flops": count_flops}

    def feasible(graph: ArchGraph) -> bool:
        sizes: dict[str, int] = {}
        for measure, bound in bounds:
            if measure not in sizes:
                sizes[measure] = counts[measure](graph)
            if sizes[measure] > bound:
                return False
        return True

    return feasible


__all__ = ["CONSTRAINT_MEASURES", "Constraint", "feasibility", "parse_constraint", "parse_constraints"]
