r"""Maximise an acquisition function over the edits of a teacher (ESNAC section 3.2, Table 6).

The acquisition is maximised over a finite set of students made by random edits of the teacher
(``method="random"``, the paper's choice), or over the students an evolutionary search over edits
visits (``method="evolutionary"``, the paper's ablation). Both spend the same budget of
``num_candidates`` generated edits, drop duplicate architectures and those in ``X_avoid``, and
score the rest in batches, as :func:`botorch.optim.optimize_acqf_discrete` does for a fixed set of
choices. Only the candidates' edits and values are kept while searching, so memory is bounded by
``max_batch_size`` encoded rows whatever the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, encode, num_features, row_digests
from botorch_archsearch.space.edits import Edit
from botorch_archsearch.space.mutation import crossover_edits, mutate_edits
from botorch_archsearch.space.search_space import SearchSpace
from botorch_archsearch.space.student import Student
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

EDIT_OPTIMIZATION_METHODS: tuple[str, ...] = ("evolutionary", "random")

MAX_MEASURED = 200
"""Scored candidates measured at most, best first, by a ``feasible`` test that measures (a latency
constraint) before :func:`optimize_acqf_edits` finds too few that pass."""


class EditOptimizationResult(NamedTuple):
    r"""The best students found by :func:`optimize_acqf_edits`, best first.

    Args:
        students: The ``q`` students (architecture, edit and what each keeps of the teacher).
        X: A `q x d` tensor of their encodings (``d = max_layers * (7 + max_edges)``).
        values: A `q`-dim tensor of their acquisition values (each scored alone, as a
            `1 x d` q-batch).
        num_scored: How many distinct candidates the acquisition function scored.
    """

    students: list[Student]
    X: Tensor
    values: Tensor
    num_scored: int

    @property
    def graphs(self) -> list[ArchGraph]:
        """The students' architectures."""
        return [s.graph for s in self.students]

    @property
    def edits(self) -> list[Edit]:
        """The edits of the teacher that make the students."""
        return [s.edit for s in self.students]


def optimize_acqf_edits(
    acq_function: Callable[[Tensor], Tensor],
    space: SearchSpace,
    *,
    max_layers: int,
    max_edges: int = DEFAULT_MAX_EDGES,
    q: int = 1,
    num_candidates: int = 1000,
    method: str = "random",
    X_avoid: Tensor | None = None,
    max_batch_size: int = 1024,
    generator: torch.Generator | None = None,
    population_size: int | None = None,
    num_generations: int | None = None,
    num_parents: int | None = None,
    mutation_rate: float = 0.1,
    crossover_prob: float = 0.5,
    extra_candidates: Sequence[Edit] = (),
    on_encoded: Callable[[Sequence[ArchGraph], Tensor, Sequence[Edit]], None] | None = None,
    feasible: Callable[[ArchGraph], bool] | None = None,
) -> EditOptimizationResult:
    r"""Maximise an acquisition function over students made by edits of the teacher.

    ``method="random"`` (paper section 3.2): draw ``num_candidates`` edits with
    ``space.sample``, apply them, and score every distinct student.

    ``method="evolutionary"`` (paper Table 6 ablation): draw an initial population of
    ``population_size`` edits with ``space.sample`` (the first draws from ``generator``); then each
    generation breeds ``population_size`` children from the ``num_parents`` best students scored
    so far (truncation selection, elitist): a child is the uniform crossover of two parents with
    probability ``crossover_prob`` (else a copy of one), then mutated with ``mutation_rate`` (see
    :func:`~botorch_archsearch.space.mutation.mutate_edits`). It stops when ``num_candidates``
    edits have been generated in all (the initial population included, so it is comparable
    with ``method="random"`` at equal ``num_candidates``) or after ``num_generations``.

    Either way a candidate whose architecture was already seen (same ``graph.key()``) or whose
    encoding equals a row of ``X_avoid`` is not scored, and the ``q`` distinct students with the
    highest acquisition values are returned. For ``q > 1`` this is the top ``q`` by single-point
    value (each candidate scored as a `1 x d` q-batch), not a joint (sequentially conditioned)
    q-batch optimum. Ties keep the order candidates were generated in; NaN values rank last.

    Args:
        acq_function: An acquisition function (e.g. ``LogExpectedImprovement``) whose model
            takes encodings from :func:`~botorch_archsearch.graph.encode`; called on
            `b x 1 x d` tensors, it returns `b` values. Encodings are made in the dtype and on
            the device of the model's ``train_inputs`` if it has them, else in torch's default
            dtype on the CPU.
        space: The search space of the teacher.
        max_layers: Layers per encoding (as the model's training inputs were encoded), at
            least ``space.graph.num_layers``.
        max_edges: Incoming edges per layer in the encoding.
        q: Number of students to return.
        num_candidates: Budget: how many edits are generated in all (at least ``q``).
        method: ``"random"`` or ``"evolutionary"``.
        X_avoid: A `n_avoid x d` tensor of encodings never to return (e.g. the students
            already evaluated); rows are compared exactly.
        max_batch_size: At most this many candidates are applied, encoded and scored at once.
        generator: Random number generator (for reproducibility).
        population_size: Evolutionary only: the size of the initial population and of each
            generation (default: ``max(q, num_candidates // 10)``, at most ``num_candidates``).
        num_generations: Evolutionary only: at most this many generations after the initial
            population (default: as many as the budget allows).
        num_parents: Evolutionary only: parents are drawn uniformly from this many best
            students (default: ``max(2, population_size // 5)``).
        mutation_rate: Evolutionary only: the per-entry mutation probability.
        crossover_prob: Evolutionary only: the probability that a child is a crossover.
        extra_candidates: Edits scored in addition to the generated ones and counted in the
            budget (``num_candidates - len(extra_candidates)`` are generated; evolutionary: they
            join the initial population), e.g. local edits of the best students so far.
        on_encoded: Called as ``on_encoded(graphs, X, edits)`` with each batch of candidates, their
            encodings (`n x d`) and edits before the acquisition scores them, e.g.
            :meth:`~botorch_archsearch.acquisition.CompressionFactor.add` for an acquisition
            that needs each candidate's known factor (``kernel.target=accuracy``), or
            :meth:`~botorch_archsearch.kernels.EditFeatures.add` for the ``edit`` kernel.
        feasible: An exact constraint: ``feasible(graph)`` is false for an architecture that may
            not be proposed (e.g. one over a size budget, whose reward is known to be 0); such
            candidates are dropped before they are encoded or scored, and do not count as scored.
            A test that measures (a :class:`~botorch_archsearch.search.constraints.Feasibility`
            with a latency bound, ``measured`` true) drops them with its ``known`` part, then
            measures the best scored candidates in turn (at most :data:`MAX_MEASURED`) until ``q``
            pass.

    Returns:
        An :class:`EditOptimizationResult` with the ``q`` best ``students``, best first (their
        ``graphs`` and ``edits`` as properties), their encodings ``X`` (`q x d`), their acquisition ``values``
        (`q`) and ``num_scored``, the number of distinct candidates scored.

    Raises:
        ArchSearchError: For a bad argument, or if fewer than ``q`` distinct candidates (not in
            ``X_avoid``) were found.

    Example:
        >>> acqf = LogExpectedImprovement(model, best_f=train_Y.max())
        >>> result = optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers,
        ...                              num_candidates=2000, X_avoid=train_X)
        >>> net = build_student(result.students[0], teacher)
    """
    _check_budget(q, num_candidates, method)
    _check_components(acq_function, space, max_layers, max_edges, max_batch_size)
    _check_evolution(population_size, num_generations, num_parents, mutation_rate, crossover_prob)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ArchSearchError(
            f"optimize_acqf_edits: generator must be a torch.Generator, got {type(generator).__name__}."
        )
    extra_candidates = _checked_extra_candidates(space, extra_candidates)
    scorer = score_edits(
        acq_function, space, max_layers=max_layers, max_edges=max_edges, q=q, num_candidates=num_candidates,
        method=method, X_avoid=X_avoid, max_batch_size=max_batch_size, generator=generator,
        population_size=population_size, num_generations=num_generations, num_parents=num_parents,
        mutation_rate=mutation_rate, crossover_prob=crossover_prob, extra_candidates=extra_candidates,
        on_encoded=on_encoded, feasible=feasible,
    )
    return scorer.best(q, num_candidates)


def score_edits(
    acq_function: Callable[[Tensor], Tensor],
    space: SearchSpace,
    *,
    max_layers: int,
    max_edges: int,
    q: int,
    num_candidates: int,
    method: str,
    X_avoid: Tensor | None,
    max_batch_size: int,
    generator: torch.Generator | None,
    population_size: int | None,
    num_generations: int | None,
    num_parents: int | None,
    mutation_rate: float,
    crossover_prob: float,
    extra_candidates: Sequence[Edit] = (),
    on_encoded: Callable[[Sequence[ArchGraph], Tensor, Sequence[Edit]], None] | None = None,
    feasible: Callable[[ArchGraph], bool] | None = None,
) -> _Scorer:
    """Generate and score the candidates of :func:`optimize_acqf_edits` (arguments checked); the
    scorer ranks every distinct candidate scored."""
    d = max_layers * num_features(max_edges)
    dtype, device = _encoding_dtype_device(acq_function)
    scorer = _Scorer(
        acq_function, space, max_layers, max_edges, dtype, device,
        _avoid_digests(X_avoid, d), max_batch_size, on_encoded, feasible,
    )
    extra = list(extra_candidates)[:num_candidates]
    if extra:
        scorer.score(extra)
    num_candidates -= len(extra)
    if method == "random":
        scorer.score(space.sample(num_candidates, generator=generator))
    elif num_candidates > 0:
        _evolve(
            scorer, space, num_candidates, generator,
            population_size=min(num_candidates, population_size or max(q, num_candidates // 10)),
            num_generations=math.inf if num_generations is None else num_generations,
            num_parents=num_parents,
            mutation_rate=mutation_rate,
            crossover_prob=crossover_prob,
        )
    return scorer


def _evolve(
    scorer: _Scorer,
    space: SearchSpace,
    budget: int,
    generator: torch.Generator | None,
    *,
    population_size: int,
    num_generations: float,
    num_parents: int | None,
    mutation_rate: float,
    crossover_prob: float,
) -> None:
    """Truncation-selection evolution over edits, scoring every new child with ``scorer``."""
    generated = population_size
    scorer.score(space.sample(population_size, generator=generator))
    num_parents = num_parents or max(2, population_size // 5)
    generation = 0
    while generated < budget and generation < num_generations:
        n = min(population_size, budget - generated)
        parents = scorer.top_edits(num_parents)
        if not parents:  # nothing scored yet (all avoided): start afresh
            children = space.sample(n, generator=generator)
        else:
            children = _breed(space, parents, n, generator, mutation_rate, crossover_prob)
        scorer.score(children)
        generated += n
        generation += 1


def _breed(
    space: SearchSpace,
    parents: Sequence[Edit],
    n: int,
    generator: torch.Generator | None,
    mutation_rate: float,
    crossover_prob: float,
) -> list[Edit]:
    """``n`` children of uniformly drawn ``parents``: each a crossover of two with
    ``crossover_prob`` (else a copy of one), then mutated."""
    pick = torch.randint(len(parents), (2, n), generator=generator).tolist()
    first = [parents[i] for i in pick[0]]
    cross = (torch.rand(n, generator=generator) < crossover_prob).nonzero().flatten().tolist()
    if cross:
        second = [parents[pick[1][c]] for c in cross]
        mixed = crossover_edits(space, [first[c] for c in cross], second, generator)
        for c, child in zip(cross, mixed):
            first[c] = child
    return mutate_edits(space, first, generator, mutation_rate)


class _Scorer:
    """Applies, deduplicates, encodes and scores candidate edits in batches; keeps only the
    edits and values of the scored ones (plus digests for deduplication)."""

    def __init__(
        self,
        acq_function: Callable[[Tensor], Tensor],
        space: SearchSpace,
        max_layers: int,
        max_edges: int,
        dtype: torch.dtype,
        device: torch.device,
        avoid: set[bytes],
        max_batch_size: int,
        on_encoded: Callable[[Sequence[ArchGraph], Tensor, Sequence[Edit]], None] | None = None,
        feasible: Callable[[ArchGraph], bool] | None = None,
    ) -> None:
        self.acq_function, self.space, self.on_encoded, self.feasible = acq_function, space, on_encoded, feasible
        # a test that measures (a latency constraint) screens with its known part and measures in best()
        self.measured = bool(getattr(feasible, "measured", False))
        self.screen = feasible.known if self.measured else feasible
        self.num_infeasible = 0
        self.max_layers, self.max_edges, self.dtype, self.device = max_layers, max_edges, dtype, device
        self.max_batch_size = max_batch_size
        self.seen_keys: set[str] = set()
        self.seen_rows = avoid  # digests of X_avoid rows and of every scored encoding
        self.edits: list[Edit] = []
        self.values: list[Tensor] = []
        self._ranking: Tensor | None = None

    @property
    def num_scored(self) -> int:
        return len(self.edits)

    def score(self, edits: Sequence[Edit]) -> None:
        for start in range(0, len(edits), self.max_batch_size):
            batch, graphs = [], []
            for edit in edits[start : start + self.max_batch_size]:
                graph = self.space.apply(edit)
                key = graph.key()
                if key not in self.seen_keys:
                    self.seen_keys.add(key)
                    if self.screen is not None and not self.screen(graph):
                        self.num_infeasible += 1
                        continue
                    batch.append(edit)
                    graphs.append(graph)
            if not graphs:
                continue
            X = encode(graphs, self.max_layers, self.max_edges, dtype=self.dtype)
            keep = []
            for i, digest in enumerate(row_digests(X)):
                if digest not in self.seen_rows:
                    self.seen_rows.add(digest)
                    keep.append(i)
            if not keep:
                continue
            X = X[keep].to(self.device)
            if self.on_encoded is not None:
                self.on_encoded([graphs[i] for i in keep], X, [batch[i] for i in keep])
            with torch.no_grad():
                values = self.acq_function(X.unsqueeze(-2))
            if not isinstance(values, Tensor) or values.numel() != len(keep):
                shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
                raise ArchSearchError(
                    f"optimize_acqf_edits: acq_function returned {shape} for a "
                    f"{tuple(X.unsqueeze(-2).shape)} input; expected {len(keep)} values, one per t-batch."
                )
            self.edits.extend(batch[i] for i in keep)
            self.values.append(values.detach().reshape(-1))
            self._ranking = None

    def _rank(self) -> Tensor:
        """Indices of the scored candidates by decreasing value (NaN last, ties by order)."""
        if self._ranking is None:
            values = torch.cat(self.values) if self.values else torch.zeros(0)
            key = torch.where(torch.isnan(values), torch.full_like(values, -math.inf), values)
            self._ranking = torch.sort(key, descending=True, stable=True).indices
        return self._ranking

    def _measured_top(self, q: int, num_candidates: int) -> Tensor:
        """The ``q`` best candidates that pass the measured test, best first, measuring at most
        :data:`MAX_MEASURED` of them."""
        chosen, measured = [], 0
        for i in self._rank().tolist():
            if len(chosen) == q or measured == MAX_MEASURED:
                break
            measured += 1
            if self.feasible(self.space.apply(self.edits[i])):
                chosen.append(i)
            else:
                self.num_infeasible += 1
        if len(chosen) < q:
            raise ArchSearchError(
                f"optimize_acqf_edits: only {len(chosen)} of the {measured} best of {self.num_scored} scored "
                f"candidates (num_candidates={num_candidates}) met the measured constraints, fewer than q={q}; "
                "loosen them (a latency constraint: search.constraints)."
            )
        return torch.tensor(chosen, dtype=torch.long)

    def top_edits(self, k: int) -> list[Edit]:
        return [self.edits[i] for i in self._rank()[:k].tolist()]

    def best(self, q: int, num_candidates: int) -> EditOptimizationResult:
        if self.num_scored < q:
            infeasible = f" ({self.num_infeasible} more were infeasible)" if self.num_infeasible else ""
            raise ArchSearchError(
                f"optimize_acqf_edits: found {self.num_scored} distinct candidates not in X_avoid "
                f"among num_candidates={num_candidates} generated edits{infeasible}, fewer than q={q}; raise "
                "num_candidates or lower q."
            )
        top = self._rank()[:q] if not self.measured else self._measured_top(q, num_candidates)
        students = [self.space.student(self.edits[i]) for i in top.tolist()]
        X = encode([s.graph for s in students], self.max_layers, self.max_edges, dtype=self.dtype).to(self.device)
        values = torch.cat(self.values)[top.to(self.values[0].device)]
        return EditOptimizationResult(students, X, values, self.num_scored)


def _check_budget(q: int, num_candidates: int, method: str) -> None:
    """Checks ``q``, ``num_candidates`` (at least ``q``) and ``method`` of :func:`optimize_acqf_edits`."""
    where = "optimize_acqf_edits"
    check_int("q", q, 1, where=where)
    check_int("num_candidates", num_candidates, 1, where=where)
    if num_candidates < q:
        raise ArchSearchError(
            f"optimize_acqf_edits: num_candidates must be at least q={q}, got {num_candidates!r}."
        )
    check_choice("method", method, EDIT_OPTIMIZATION_METHODS, where=where)


def _check_components(
    acq_function: object, space: object, max_layers: int, max_edges: int, max_batch_size: int
) -> None:
    """Checks the acquisition function, the space and the encoding's sizes of :func:`optimize_acqf_edits`."""
    where = "optimize_acqf_edits"
    if not callable(acq_function):
        raise ArchSearchError(
            f"optimize_acqf_edits: acq_function must be callable (an AcquisitionFunction), got "
            f"{type(acq_function).__name__}."
        )
    if not isinstance(space, SearchSpace):
        raise ArchSearchError(
            f"optimize_acqf_edits: space must be a SearchSpace, got {type(space).__name__}."
        )
    check_int("max_layers", max_layers, 1, where=where)
    if max_layers < space.graph.num_layers:
        raise ArchSearchError(
            f"optimize_acqf_edits: max_layers must be at least the teacher's number of layers "
            f"({space.graph.num_layers}), got {max_layers}."
        )
    check_int("max_edges", max_edges, 1, where=where)
    check_int("max_batch_size", max_batch_size, 1, where=where)


def _check_evolution(
    population_size: int | None,
    num_generations: int | None,
    num_parents: int | None,
    mutation_rate: float,
    crossover_prob: float,
) -> None:
    """Checks the evolutionary method's options of :func:`optimize_acqf_edits`."""
    where = "optimize_acqf_edits"
    if population_size is not None:
        check_int("population_size", population_size, 1, where=where)
    if num_generations is not None:
        check_int("num_generations", num_generations, 0, where=where)
    if num_parents is not None:
        check_int("num_parents", num_parents, 1, where=where)
    check_float("mutation_rate", mutation_rate, 0, 1, what="a probability", where=where)
    check_float("crossover_prob", crossover_prob, 0, 1, what="a probability", where=where)


def _checked_extra_candidates(space: SearchSpace, extra_candidates: Sequence[Edit]) -> list[Edit]:
    """``extra_candidates`` as a list, each checked to fit ``space``."""
    extra_candidates = list(extra_candidates)
    for c, edit in enumerate(extra_candidates):
        try:
            space.check(edit)
        except ArchSearchError as error:
            raise ArchSearchError(
                f"optimize_acqf_edits: extra_candidates[{c}] does not fit the space: {error}"
            ) from None
    return extra_candidates


def _encoding_dtype_device(acq_function: object) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the acquisition model's training inputs, if it has them."""
    inputs = getattr(getattr(acq_function, "model", None), "train_inputs", None)
    while isinstance(inputs, (tuple, list)) and inputs:  # SingleTaskGP: (X,); ModelListGP: [(X,), ...]
        inputs = inputs[0]
    if isinstance(inputs, Tensor) and inputs.is_floating_point():
        return inputs.dtype, inputs.device
    return torch.get_default_dtype(), torch.device("cpu")


def _avoid_digests(X_avoid: Tensor | None, d: int) -> set[bytes]:
    if X_avoid is None:
        return set()
    if not isinstance(X_avoid, Tensor) or X_avoid.dim() != 2 or X_avoid.shape[-1] != d:
        shape = tuple(X_avoid.shape) if isinstance(X_avoid, Tensor) else type(X_avoid).__name__
        raise ArchSearchError(
            f"optimize_acqf_edits: X_avoid must be a n_avoid x d tensor with d = max_layers * "
            f"(7 + max_edges) = {d}, got shape {shape}."
        )
    return set(row_digests(X_avoid))


__all__ = ["EDIT_OPTIMIZATION_METHODS", "EditOptimizationResult", "MAX_MEASURED", "optimize_acqf_edits"]
