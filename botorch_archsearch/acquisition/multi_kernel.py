r"""The multiple-kernel strategy of ESNAC (section 3.3, Algorithm 1).

Each search step trains ``K`` kernels from scratch, each on a random subset of the evaluated
architectures (every point kept with probability 0.5, at least 2), and each kernel's GP proposes
the architecture that maximises its expected improvement; the ``K`` proposals are distinct and
none was evaluated before, so one step evaluates ``K`` new architectures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from botorch.acquisition import AcquisitionFunction, ExpectedImprovement, LogExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.models.utils import gpt_posterior_settings
from torch import Tensor

from botorch_archsearch.acquisition.edits import (
    EDIT_OPTIMIZATION_METHODS,
    EditOptimizationResult,
    row_digests,
    score_edits,
)
from botorch_archsearch.acquisition.objective import CompressionFactor, KnownFactorTransform
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp.fit import FitResult, architecture_gp, fit_architecture_gp
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES
from botorch_archsearch.space.edits import Edit
from botorch_archsearch.space.search_space import SearchSpace
from botorch_archsearch.space.student import Student
from botorch_archsearch.utils.threads import intra_op_threads
from botorch_archsearch.utils.validation import check_choice, check_float, check_int


class RandomChoice(AcquisitionFunction):
    r"""No model: a uniformly random score per candidate, so the best ``q`` of the candidates are a
    uniformly random choice among them (``acquisition="random"``, the ablation of the surrogate:
    the same candidates as ESNAC's, chosen without a kernel).

    Example:
        >>> acq = RandomChoice(model, generator=torch.Generator().manual_seed(0))
        >>> acq(X.unsqueeze(-2)).shape  # one score in [0, 1) per t-batch
    """

    def __init__(self, model: Any, generator: torch.Generator | None = None, **_: Any) -> None:
        r"""
        Args:
            model: The model of the step's kernel; not used (kept for the dtype of the candidates).
            generator: Random number generator of the scores.
        """
        super().__init__(model=model)
        self.generator = generator

    def forward(self, X: Tensor) -> Tensor:
        r"""A `batch_shape`-dim tensor of independent uniform scores for a `batch_shape x q x d` ``X``."""
        return torch.rand(X.shape[:-2], generator=self.generator, dtype=X.dtype).to(X.device)


ACQUISITIONS = {"logei": LogExpectedImprovement, "ei": ExpectedImprovement, "random": RandomChoice}


class MultiKernelProposals(NamedTuple):
    r"""The architectures one step of the multiple-kernel strategy proposes, one per kernel.

    Args:
        students: The ``K`` proposed students (architecture, edit, what each keeps of the teacher).
        X: A `K x d` tensor of their encodings.
        values: A `K`-dim tensor: each proposal's acquisition value under its own kernel.
        models: The ``K`` fitted GPs (unfitted with ``acquisition="random"``, which does not use them).
        fits: The ``K`` fit summaries (``None`` for given models and for ``acquisition="random"``).
        subsets: The ``K`` training subsets (index tensors into ``train_X``).
    """

    students: list[Student]
    X: Tensor
    values: Tensor
    models: list[SingleTaskGP]
    fits: list[FitResult | None]
    subsets: list[Tensor]

    @property
    def graphs(self) -> list[ArchGraph]:
        """The proposed students' architectures."""
        return [s.graph for s in self.students]


def propose_architectures(
    space: SearchSpace,
    train_X: Tensor,
    train_Y: Tensor,
    *,
    max_layers: int,
    max_edges: int = DEFAULT_MAX_EDGES,
    num_kernels: int = 8,
    subset_prob: float = 0.5,
    min_subset: int = 2,
    acquisition: str = "logei",
    num_candidates: int = 1000,
    method: str = "random",
    kernel_options: dict[str, Any] | None = None,
    fit_options: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    num_workers: int | None = None,
    extra_candidates: Sequence[Edit] = (),
    models: Callable[[int, Tensor, Tensor], SingleTaskGP] | None = None,
    known_factor: CompressionFactor | None = None,
    best_f: float | Tensor | None = None,
    initial_kernels: Sequence[dict | None] | None = None,
    on_encoded: Callable[[Sequence[ArchGraph], Tensor, Sequence[Edit]], None] | None = None,
    feasible: Callable[[ArchGraph], bool] | None = None,
    make_acquisition: Callable[[SingleTaskGP], AcquisitionFunction] | None = None,
) -> MultiKernelProposals:
    r"""Propose ``num_kernels`` distinct new architectures (one step of ESNAC's Algorithm 1).

    Args:
        space: The search space of the teacher.
        train_X: A `n x d` tensor of the evaluated architectures (encoded).
        train_Y: A `n x 1` tensor of their rewards.
        max_layers: ``max_layers`` of the encoding.
        max_edges: ``max_edges`` of the encoding.
        num_kernels: ``K``, kernels trained (and architectures proposed) per step.
        subset_prob: Probability that a kernel trains on each evaluated architecture.
        min_subset: Each kernel trains on at least this many architectures.
        acquisition: ``"logei"`` (LogExpectedImprovement, default), ``"ei"``, or ``"random"``
            (:class:`RandomChoice`: no kernel is fitted and each kernel's proposal is a uniformly
            random candidate of the same candidates; its ``fits`` are ``None``).
        num_candidates: Candidate edits per kernel for :func:`optimize_acqf_edits`.
        method: ``"random"`` or ``"evolutionary"`` acquisition optimisation.
        kernel_options: Passed to :func:`~botorch_archsearch.gp.architecture_gp` (``hidden_size``,
            ``num_layers``, ``sigma``, ``init_scale``, ...).
        fit_options: Passed to :func:`~botorch_archsearch.gp.fit_architecture_gp` (``objective``,
            ``lr``, ``weight_decay``, ``max_steps``, ``tol``, ``window``).
        generator: Random number generator (subsets, kernel initialisations, candidates).
        num_workers: Kernels fitted and scored concurrently, in threads (default: one per intra-op
            thread, ``torch.get_num_threads()``, at most ``num_kernels``). A kernel fit is a
            sequence of small LSTM steps that one thread runs almost as fast as two, so on a CPU
            several kernels at a time finish sooner. While they run, ``torch.set_num_threads`` is
            set to share the threads between the workers (restored after). The result does not
            depend on ``num_workers``.
        extra_candidates: Edits every kernel scores besides its ``num_candidates`` generated
            ones (counted in them), e.g. local edits of the best students so far.
        models: Given models instead of fresh kernels: ``models(k, X, Y)`` is kernel ``k``'s GP
            on its subset ``X``, ``Y`` of the evaluated architectures, used as it is, without
            fitting (kernel transfer: :func:`~botorch_archsearch.gp.transferred_gp`). Its ``fits``
            are ``None``.
        known_factor: Model only what is unknown (``kernel.target=accuracy``): ``train_Y`` holds
            ``g``, the accuracy ratio, and the objective is ``f = c(x) g(x)`` with ``c`` known for
            every candidate (a :class:`~botorch_archsearch.acquisition.CompressionFactor`, filled as
            candidates are encoded). Each kernel's acquisition scores ``f`` through
            :class:`~botorch_archsearch.acquisition.KnownFactorTransform`.
        best_f: The best objective value so far, on the scale of ``f`` (default: ``train_Y.max()``;
            required with ``known_factor``).
        initial_kernels: Warm start: kernel ``k`` starts its fit from the state dict
            ``initial_kernels[k]`` of an :class:`~botorch_archsearch.kernels.ArchitectureKernel`
            (e.g. kernel ``k`` of the previous step; ``None`` entries start from scratch). The
            random draws are those of a cold start.
        on_encoded: Called with each batch of candidates as they are encoded (see
            :func:`~botorch_archsearch.acquisition.optimize_acqf_edits`), e.g. the ``add`` of the
            :class:`~botorch_archsearch.kernels.EditFeatures` of the ``edit`` kernel.
        feasible: An exact constraint on the candidates (see
            :func:`~botorch_archsearch.acquisition.optimize_acqf_edits`): infeasible ones are never
            scored nor proposed.
        make_acquisition: Each kernel's acquisition, ``make_acquisition(model)`` for its fitted
            model, instead of ``acquisition`` (e.g. the expected hypervolume improvement of
            :class:`~botorch_archsearch.acquisition.pareto.LogExpectedHypervolumeImprovement`).

    Returns:
        A :class:`MultiKernelProposals`; its ``K`` architectures are distinct and not in ``train_X``.
    """
    _check_proposal(
        train_X, num_kernels, acquisition, subset_prob, min_subset, num_workers, method, num_candidates
    )
    kernel_options = dict(kernel_options or {})
    fit_options = dict(fit_options or {})
    if known_factor is not None and best_f is None:
        raise ArchSearchError("propose_architectures: pass best_f (the best reward so far) with known_factor.")
    best_f = train_Y.max() if best_f is None else torch.as_tensor(best_f, dtype=train_Y.dtype)
    if initial_kernels is not None and (models is not None or len(initial_kernels) != num_kernels):
        raise ArchSearchError(
            f"propose_architectures: initial_kernels needs one entry (a state dict or None) per kernel "
            f"({num_kernels}) and no given models."
        )
    subsets, gps, candidate_seeds = _draw_kernels(
        train_X, train_Y, num_kernels, subset_prob, min_subset, generator, models, max_layers=max_layers,
        max_edges=max_edges, kernel_options=kernel_options, initial_kernels=initial_kernels,
    )
    step = _KernelStep(
        space, train_X, best_f, gps, candidate_seeds,
        fit_options=None if models is not None or acquisition == "random" else fit_options,
        acquisition=ACQUISITIONS[acquisition], max_layers=max_layers, max_edges=max_edges,
        num_candidates=num_candidates, method=method, extra_candidates=extra_candidates,
        top=min(num_kernels, num_candidates),  # enough for every kernel to find one not taken before it
        known_factor=known_factor, on_encoded=on_encoded, feasible=feasible, make_acquisition=make_acquisition,
    )
    outcomes = step.run(min(num_kernels, torch.get_num_threads() if num_workers is None else num_workers))
    students, X, values, fits = _distinct_proposals(outcomes, train_X, num_candidates)
    return MultiKernelProposals(students, X, values, gps, fits, subsets)


def random_subset(n: int, prob: float, minimum: int, generator: torch.Generator | None) -> Tensor:
    """Indices of a random subset: each point kept with ``prob``, topped up to ``minimum``."""
    order = torch.randperm(n, generator=generator)
    keep = torch.rand(n, generator=generator) < prob
    chosen = order[keep[order]]
    if len(chosen) < minimum:
        chosen = torch.cat([chosen, order[~keep[order]][: minimum - len(chosen)]])
    return chosen.sort().values


def _check_proposal(
    train_X: Tensor,
    num_kernels: int,
    acquisition: str,
    subset_prob: float,
    min_subset: int,
    num_workers: int | None,
    method: str,
    num_candidates: int,
) -> None:
    """The argument checks of :func:`propose_architectures`."""
    where = "propose_architectures"
    check_int("num_kernels", num_kernels, 1, where=where)
    check_choice("acquisition", acquisition, sorted(ACQUISITIONS), where=where)
    check_float("subset_prob", subset_prob, 0, 1, exclusive_minimum=True, where=where)
    check_int("min_subset", min_subset, 2, where=where)
    n = train_X.shape[0] if isinstance(train_X, Tensor) else 0
    if n < min_subset:
        raise ArchSearchError(
            f"{where}: need at least min_subset={min_subset} evaluated architectures, got {n}."
        )
    check_int("num_workers", num_workers, 1, optional=True, where=where)
    check_choice("method", method, EDIT_OPTIMIZATION_METHODS, where=where)
    check_int("num_candidates", num_candidates, 1, where=where)


def _draw_kernels(
    train_X: Tensor,
    train_Y: Tensor,
    num_kernels: int,
    subset_prob: float,
    min_subset: int,
    generator: torch.Generator | None,
    given: Callable[[int, Tensor, Tensor], SingleTaskGP] | None,
    *,
    max_layers: int,
    max_edges: int,
    kernel_options: dict[str, Any],
    initial_kernels: Sequence[dict | None] | None = None,
) -> tuple[list[Tensor], list[SingleTaskGP], list[int]]:
    """Each kernel's training subset, (unfitted or given) GP and candidate seed.

    Every random draw of a step happens here, in order, so the result does not depend on the
    number of workers that fit and score the kernels afterwards.
    """
    n = train_X.shape[0]
    subsets, models, candidate_seeds = [], [], []
    for k in range(num_kernels):
        subset = random_subset(n, subset_prob, min_subset, generator)
        if given is not None:
            models.append(given(k, train_X[subset], train_Y[subset]))
        else:
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            with torch.random.fork_rng():
                torch.manual_seed(seed)  # the kernel's initial weights
                model = architecture_gp(train_X[subset], train_Y[subset], max_layers=max_layers,
                                        max_edges=max_edges, **kernel_options)
                if initial_kernels is not None and initial_kernels[k] is not None:
                    _load_kernel_state(model, initial_kernels[k], k)
                models.append(model)
        subsets.append(subset)
        candidate_seeds.append(int(torch.randint(2**31 - 1, (1,), generator=generator)))
    return subsets, models, candidate_seeds


def _load_kernel_state(model: SingleTaskGP, state: dict, k: int) -> None:
    """Start kernel ``k``'s fit from a saved state (warm start)."""
    try:
        model.covar_module.load_state_dict(state)
    except RuntimeError as e:
        raise ArchSearchError(
            f"propose_architectures: initial_kernels[{k}] does not fit this step's kernel (another kernel.hidden_size "
            f"or kernel.num_layers?): {e}"
        ) from e


@dataclass
class _KernelStep:
    """The ``K`` kernels of one step: fits each (unless given, ``fit_options=None``) and ranks
    its candidates; deterministic given the draws of :func:`_draw_kernels`."""

    space: SearchSpace
    train_X: Tensor
    best_f: Tensor
    models: list[SingleTaskGP]
    candidate_seeds: list[int]
    fit_options: dict[str, Any] | None
    acquisition: type[AcquisitionFunction]
    max_layers: int
    max_edges: int
    num_candidates: int
    method: str
    extra_candidates: Sequence[Edit]
    top: int
    known_factor: CompressionFactor | None = None
    on_encoded: Callable[[Sequence[ArchGraph], Tensor, Sequence[Edit]], None] | None = None
    feasible: Callable[[ArchGraph], bool] | None = None
    make_acquisition: Callable[[SingleTaskGP], AcquisitionFunction] | None = None

    def run(self, workers: int) -> list[tuple[FitResult | None, EditOptimizationResult]]:
        """Every kernel's fit and best candidates, in kernel order; ``workers`` kernels at a time."""
        num_kernels = len(self.models)
        # BoTorch's posterior settings are process-wide GPyTorch flags that each call sets and restores;
        # set once around all the kernels, concurrent calls leave them alone.
        with gpt_posterior_settings():
            if workers == 1:
                return [self.fit_and_score(k) for k in range(num_kernels)]
            with intra_op_threads(max(1, torch.get_num_threads() // workers)), \
                    ThreadPoolExecutor(workers, thread_name_prefix="archsearch-kernel") as pool:
                return list(pool.map(self.fit_and_score, range(num_kernels)))

    def fit_and_score(self, k: int) -> tuple[FitResult | None, EditOptimizationResult]:
        """Kernel ``k``'s fit and its (up to ``top``) best candidates not in ``train_X``."""
        fit = None if self.fit_options is None else fit_architecture_gp(self.models[k], **self.fit_options)
        observers = [f for f in (self.on_encoded, None if self.known_factor is None else self.known_factor.add)
                     if f is not None]
        if self.acquisition is RandomChoice:  # the scores' own stream, apart from the candidates'
            acq = RandomChoice(self.models[k], generator=torch.Generator().manual_seed(self.candidate_seeds[k] + 1))
        elif self.make_acquisition is not None:
            acq = self.make_acquisition(self.models[k])
        elif self.known_factor is None:
            acq = self.acquisition(self.models[k], best_f=self.best_f)
        else:
            acq = self.acquisition(self.models[k], best_f=self.best_f,
                                   posterior_transform=KnownFactorTransform(self.known_factor))

        def on_encoded(graphs: Sequence[ArchGraph], X: Tensor, edits: Sequence[Edit]) -> None:
            for observe in observers:
                observe(graphs, X, edits)

        scorer = score_edits(
            acq, self.space, max_layers=self.max_layers, max_edges=self.max_edges, q=self.top,
            num_candidates=self.num_candidates, method=self.method, X_avoid=self.train_X, max_batch_size=1024,
            generator=torch.Generator().manual_seed(self.candidate_seeds[k]), population_size=None,
            num_generations=None, num_parents=None, mutation_rate=0.1, crossover_prob=0.5,
            extra_candidates=self.extra_candidates, on_encoded=on_encoded, feasible=self.feasible,
        )
        if scorer.num_scored == 0:
            infeasible = f" ({scorer.num_infeasible} were infeasible)" if scorer.num_infeasible else ""
            raise ArchSearchError(
                f"propose_architectures: kernel {k} found no candidate that was not evaluated before among "
                f"num_candidates={self.num_candidates} edits{infeasible}; raise num_candidates."
            )
        return fit, scorer.best(min(self.top, scorer.num_scored), self.num_candidates)


def _distinct_proposals(
    outcomes: list[tuple[FitResult | None, EditOptimizationResult]], train_X: Tensor, num_candidates: int
) -> tuple[list[Student], Tensor, Tensor, list[FitResult | None]]:
    """Each kernel's best candidate that no earlier kernel proposed: the students, their
    encodings (`K x d`, as ``train_X``), their values (`K`) and the fits."""
    students: list[Student] = []
    rows, values, fits = [], [], []
    taken: set[bytes] = set()
    for k, (fit, result) in enumerate(outcomes):
        digests = row_digests(result.X)
        i = next((i for i, digest in enumerate(digests) if digest not in taken), None)
        if i is None:
            raise ArchSearchError(
                f"propose_architectures: kernel {k} found no candidate that an earlier kernel did not "
                f"propose; raise num_candidates (now {num_candidates})."
            )
        taken.add(digests[i])
        students.append(result.students[i])
        rows.append(result.X[i : i + 1].to(train_X))
        values.append(result.values[i])
        fits.append(fit)
    return students, torch.cat(rows), torch.stack(values), fits


__all__ = ["ACQUISITIONS", "MultiKernelProposals", "RandomChoice", "propose_architectures"]
