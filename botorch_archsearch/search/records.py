r"""The journal schema: what a search proposes (:class:`Proposal`), what it records for every
evaluated student (:class:`EvaluationRecord`, a line of ``journal.jsonl``) and for every fully
trained one (:class:`FinalRecord`, a line of ``final.jsonl``).

Every record written carries the journal format, :data:`JOURNAL_FORMAT`. Records without one were
written before the format was versioned (format 1, the same keys); they read as they are.

Example:
    >>> record = EvaluationRecord.from_dict(json.loads(line))
    >>> record.reward, record.status
    (0.71, 'ok')
    >>> EvaluationRecord.from_dict(record.to_dict()) == record
    True
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from botorch_archsearch.exceptions import JournalError
from botorch_archsearch.utils.validation import is_int

if TYPE_CHECKING:
    from botorch_archsearch.space import Student

JOURNAL_FORMAT = 4
r"""The format of the records written by this version. 1: records of searches before the format
was recorded (no ``format`` key); 2: the same keys, with ``format``; 3: adds the optional
``source`` (where a student's weights came from, when not from the teacher), ``cost`` and the
``overhead_cost`` / ``overhead_seconds`` of the method's own work (compute accounting); 4: adds the
optional ``latency`` (measured inference latency, ``evaluation.latency_batch``)."""

TIMING_KEYS = ("seconds", "overhead_seconds")
r"""The keys of a record that hold wall-clock times (which differ between identical runs)."""

STATUSES = ("ok", "failed")
r"""The ``status`` of a record."""


@dataclass(frozen=True)
class Proposal:
    r"""A student a search method proposes for evaluation.

    Args:
        student: The student (its graph and the edit of the teacher that made it).
        kernel: The kernel that proposed it (``None`` where no kernel did).
        acquisition: The acquisition value it was proposed with (``None`` without one).
        target: The relative size a one-shot method aimed at (``None`` otherwise).
        source: The weight source the student inherits from (a name the policy saved with
            :meth:`~botorch_archsearch.search.store.RunStore.save_source`; ``None``: the teacher).
        overhead_cost: MAC-images the method spent on this proposal besides its evaluation (e.g.
            the regularised training of the teacher copy it inherits from), counted once.
        overhead_seconds: Wall-clock seconds of that work.
    """

    student: Student
    kernel: int | None = None
    acquisition: float | None = None
    target: float | None = None
    source: str | None = None
    overhead_cost: float = 0.0
    overhead_seconds: float = 0.0


class _Record:
    """JSON round trips of a record dataclass: ``to_dict`` / ``from_dict``."""

    _OPTIONAL: ClassVar[tuple[str, ...]] = ()  # keys left out of ``to_dict`` while ``None``

    def to_dict(self) -> dict[str, Any]:
        r"""The record as a JSON object (non-finite floats as ``None``; JSON has no NaN)."""
        values = {k: finite(v) for k, v in asdict(self).items()}
        return {k: v for k, v in values.items() if not (k in self._OPTIONAL and v is None)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        r"""The record of a journal line (any format up to :data:`JOURNAL_FORMAT`).

        Raises:
            JournalError: If ``values`` lacks a required key, has a key the schema does not know,
                or comes from a later format.
        """
        if not isinstance(values, dict):
            raise JournalError(f"{cls.__name__}: a record is a JSON object, got {type(values).__name__}.")
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [k for k in required if k not in values]
        unknown = sorted(set(values) - names)
        version = values.get("format", 1)
        if not is_int(version, 1) or version > JOURNAL_FORMAT:
            raise JournalError(
                f"{cls.__name__}: the record has format {version!r}; this version reads formats 1 to "
                f"{JOURNAL_FORMAT}. Read it with the version of botorch-archsearch that wrote it (or a later one)."
            )
        if missing or unknown:
            raise JournalError(
                f"{cls.__name__}: not a journal record of format {version}"
                + (f"; it lacks {', '.join(map(repr, missing))}" if missing else "")
                + (f"; unknown keys {', '.join(map(repr, unknown))}" if unknown else "") + "."
            )
        return cls(**{**values, "format": version})



@dataclass(frozen=True)
class EvaluationRecord(_Record):
    r"""One evaluated student: a line of the run's ``journal.jsonl``.

    Args:
        index: Its place in the journal (0, 1, 2, ...).
        method: The search method that proposed it (``"esnac"``, ``"random"``, ...).
        step: The method's step (from 1); one-shot methods: the target's number.
        key: The architecture's key (:meth:`~botorch_archsearch.graph.ArchGraph.key`).
        architecture: The student's graph (``ArchGraph.to_dict``).
        status: ``"ok"``, or ``"failed"`` (its reward is then 0).
        reward: ``f(x)`` (:func:`~botorch_archsearch.evaluation.reward`).
        params: The student's parameter count.
        accuracy: Validation accuracy after distillation (``None`` if it failed before one).
        seconds: Wall-clock time of its evaluation.
        flops: Its multiply-accumulates per image.
        kernel: The kernel that proposed it (``None``: random or one-shot).
        acquisition: The acquisition value it was proposed with.
        best_epoch: The distillation epoch whose weights were kept.
        reason: Why it failed (``None`` if it did not).
        history: Validation accuracy per distillation epoch.
        edit: The edit of the teacher that made it (``Edit.to_dict``).
        encoding: Its encoding (:func:`~botorch_archsearch.graph.encode`) with the run's
            ``max_layers``.
        target: The relative size a one-shot method aimed at (left out when ``None``).
        source: Where its weights came from when not from the teacher: a weight source saved in
            the run (``sources/<source>.pt``; left out when ``None``).
        cost: MAC-images of its evaluation (:func:`~botorch_archsearch.evaluation.evaluation_cost`:
            3x the student's MACs per training image, 1x the teacher's, 1x the student's per
            validation image).
        overhead_cost: MAC-images of the method's work besides evaluations that this record
            accounts for (regularised training of a weight source; left out when ``None``).
        overhead_seconds: Wall-clock seconds the method spent besides evaluations before this
            record (proposing the step, training a weight source; left out when ``None``).
        latency: Its measured inference latency (``evaluation.latency_batch``): ``ms`` per batch
            size, ``device``, ``host``, ``channels_last`` (left out when ``None``).
        format: The journal format it was written in.
    """

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("target", "source", "cost", "overhead_cost", "overhead_seconds",
                                            "latency")

    index: int
    method: str
    step: int
    key: str
    architecture: dict[str, Any]
    status: str
    reward: float
    params: int
    accuracy: float | None
    seconds: float | None
    flops: int | None = None
    kernel: int | None = None
    acquisition: float | None = None
    best_epoch: int | None = None
    reason: str | None = None
    history: list[float] | None = None
    edit: dict[str, Any] | None = None
    encoding: list[int] | None = None
    target: float | None = None
    source: str | None = None
    cost: float | None = None
    overhead_cost: float | None = None
    overhead_seconds: float | None = None
    latency: dict[str, Any] | None = None
    format: int = JOURNAL_FORMAT

    @property
    def total_cost(self) -> float:
        r"""MAC-images this record accounts for: its evaluation and its overhead."""
        return (self.cost or 0.0) + (self.overhead_cost or 0.0)

    @property
    def total_seconds(self) -> float:
        r"""Wall-clock seconds this record accounts for: its evaluation and its overhead."""
        return (self.seconds or 0.0) + (self.overhead_seconds or 0.0)

    @property
    def ok(self) -> bool:
        r"""Whether the evaluation succeeded."""
        return self.status == "ok"


@dataclass(frozen=True)
class FinalRecord(_Record):
    r"""One fully trained student: a line of the run's ``final.jsonl``.

    Args:
        method: The search method that found it.
        index: Its :class:`EvaluationRecord`'s index.
        rank: Its rank among the method's students by reward (from 1).
        params: Its parameter count.
        flops: Its multiply-accumulates per image.
        search_accuracy: Its accuracy after distillation, in the search.
        reward: Its reward in the search.
        val_accuracy: Validation accuracy after full training (``None`` if it failed).
        test_accuracy: Test accuracy after full training (``None`` if it failed).
        seconds: Wall-clock time of the training.
        path: Where it was saved, relative to the run directory (``None`` without one).
        status: ``"ok"`` or ``"failed"``.
        reason: Why it failed.
        format: The journal format it was written in.
    """

    method: str
    index: int
    rank: int
    params: int
    flops: int | None = None
    search_accuracy: float | None = None
    reward: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    path: str | None = None
    status: str = "ok"
    reason: str | None = None
    format: int = JOURNAL_FORMAT


def finite(value: Any) -> Any:
    r"""JSON has no NaN or infinity: such a float is recorded as ``None``."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


__all__ = ["EvaluationRecord", "FinalRecord", "JOURNAL_FORMAT", "Proposal", "STATUSES", "TIMING_KEYS", "finite"]
