r"""The multiple-kernel strategy of ESNAC (section 3.3, Algorithm 1).

Each search step trains ``K`` kernels from scratch, each on a random subset of the evaluated
architectures (every point kept with probability 0.5, at least 2), and each kernel's GP proposes
the architecture that maximises its expected improvement; the ``K`` proposals are distinct and
none was evaluated before, so one step evaluates ``K`` new architectures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from botorch.acquisition import ExpectedImprovement, LogExpectedImprovement
from botorch.models import SingleTaskGP
from torch import Tensor

from botorch_archsearch.acquisition.edits import optimize_acqf_edits
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp.fit import FitResult, architecture_gp, fit_architecture_gp
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES
from botorch_archsearch.space.search_space import SearchSpace

ACQUISITIONS = {"logei": LogExpectedImprovement, "ei": ExpectedImprovement}


class Proposal(NamedTuple):
    r"""The architectures one step of the multiple-kernel strategy proposes, one per kernel.

    Args:
        graphs: The ``K`` proposed student graphs.
        X: A `K x d` tensor of their encodings.
        values: A `K`-dim tensor: each proposal's acquisition value under its own kernel.
        models: The ``K`` fitted GPs.
        fits: The ``K`` fit summaries.
        subsets: The ``K`` training subsets (index tensors into ``train_X``).
    """

    graphs: list[ArchGraph]
    X: Tensor
    values: Tensor
    models: list[SingleTaskGP]
    fits: list[FitResult]
    subsets: list[Tensor]


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
) -> Proposal:
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
        acquisition: ``"logei"`` (LogExpectedImprovement, default) or ``"ei"``.
        num_candidates: Candidate edits per kernel for :func:`optimize_acqf_edits`.
        method: ``"random"`` or ``"evolutionary"`` acquisition optimisation.
        kernel_options: Passed to :func:`~botorch_archsearch.gp.architecture_gp` (``hidden_size``,
            ``num_layers``, ``sigma``, ...).
        fit_options: Passed to :func:`~botorch_archsearch.gp.fit_architecture_gp` (``objective``,
            ``lr``, ``weight_decay``, ``max_steps``, ``tol``, ``window``).
        generator: Random number generator (subsets, kernel initialisations, candidates).

    Returns:
        A :class:`Proposal`; its ``K`` architectures are distinct and not in ``train_X``.
    """
    if isinstance(num_kernels, bool) or not isinstance(num_kernels, int) or num_kernels < 1:
        raise ArchSearchError(f"propose_architectures: num_kernels must be an integer >= 1, got {num_kernels!r}.")
    if acquisition not in ACQUISITIONS:
        raise ArchSearchError(
            f"propose_architectures: acquisition must be one of {sorted(ACQUISITIONS)}, got {acquisition!r}."
        )
    if not 0.0 < subset_prob <= 1.0:
        raise ArchSearchError(f"propose_architectures: subset_prob must lie in (0, 1], got {subset_prob!r}.")
    n = train_X.shape[0] if isinstance(train_X, Tensor) else 0
    if isinstance(min_subset, bool) or not isinstance(min_subset, int) or not 2 <= min_subset:
        raise ArchSearchError(f"propose_architectures: min_subset must be an integer >= 2, got {min_subset!r}.")
    if n < min_subset:
        raise ArchSearchError(
            f"propose_architectures: need at least min_subset={min_subset} evaluated architectures, got {n}."
        )
    kernel_options = dict(kernel_options or {})
    fit_options = dict(fit_options or {})
    best_f = train_Y.max()
    graphs: list[ArchGraph] = []
    rows: list[Tensor] = []
    values, models, fits, subsets = [], [], [], []
    for _ in range(num_kernels):
        subset = _subset(n, subset_prob, min_subset, generator)
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the kernel's initial weights
            model = architecture_gp(train_X[subset], train_Y[subset], max_layers=max_layers,
                                    max_edges=max_edges, **kernel_options)
            fit = fit_architecture_gp(model, **fit_options)
        acq = ACQUISITIONS[acquisition](model, best_f=best_f)
        X_avoid = torch.cat([train_X] + rows) if rows else train_X
        result = optimize_acqf_edits(
            acq, space, max_layers=max_layers, max_edges=max_edges, q=1, num_candidates=num_candidates,
            method=method, X_avoid=X_avoid, generator=generator,
        )
        graphs.append(result.graphs[0])
        rows.append(result.X.to(train_X))
        values.append(result.values[0])
        models.append(model)
        fits.append(fit)
        subsets.append(subset)
    return Proposal(graphs, torch.cat(rows), torch.stack(values), models, fits, subsets)


def _subset(n: int, prob: float, minimum: int, generator: torch.Generator | None) -> Tensor:
    """Indices of a random subset: each point kept with ``prob``, topped up to ``minimum``."""
    order = torch.randperm(n, generator=generator)
    keep = torch.rand(n, generator=generator) < prob
    chosen = order[keep[order]]
    if len(chosen) < minimum:
        chosen = torch.cat([chosen, order[~keep[order]][: minimum - len(chosen)]])
    return chosen.sort().values


__all__ = ["ACQUISITIONS", "Proposal", "propose_architectures"]
