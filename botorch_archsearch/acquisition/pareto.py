r"""Expected hypervolume improvement over (accuracy, size) with the size known exactly.

A Pareto search (``search.objective=pareto``) maximises the accuracy ratio ``g = A / A_teacher``
and minimises a student's relative size ``s = size / size_teacher`` (parameters or FLOPs). ``s``
is known before the student is trained, so only ``g`` is uncertain, and the expected hypervolume
improvement (EHVI) of a candidate has a closed form: with the front's staircase ``G(x)`` (the best
``g`` of the front at size at most ``x``), adding ``(s, g)`` adds the area
``sum_k w_k(s) max(0, g - L_k)``, where the sizes of the front cut ``[s, s_ref]`` into intervals
of widths ``w_k(s)`` and levels ``L_k``. Under the GP's ``g ~ N(mu, sigma^2)``, each term is an
expected improvement over ``L_k``, so

``EHVI(x) = sum_k w_k(s) sigma h((mu - L_k) / sigma)``, ``h(z) = phi(z) + z Phi(z)``,

computed in log space (BoTorch's ``log h``), exact (no Monte Carlo), for thousands of candidates
at once. It is the analytic equivalent of BoTorch's ``qLogNoisyExpectedHypervolumeImprovement``
for two objectives of which one is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from botorch.acquisition.analytic import AnalyticAcquisitionFunction, _log_ei_helper
from botorch.models.model import Model
from botorch.utils.transforms import t_batch_mode_transform
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.encoding import EncodingTable


def pareto_mask(sizes: Sequence[float], values: Sequence[float]) -> list[bool]:
    r"""Which points are non-dominated (smaller-or-equal size and higher-or-equal value, better
    in one): ``True`` for the front. Equal points are all kept."""
    n = len(sizes)
    return [not any(sizes[j] <= sizes[i] and values[j] >= values[i] and (sizes[j] < sizes[i] or values[j] > values[i])
                    for j in range(n)) for i in range(n)]


def hypervolume_2d(sizes: Sequence[float], values: Sequence[float], ref_size: float, ref_value: float = 0.0) -> float:
    r"""The hypervolume dominated by points ``(size, value)`` (size minimised, value maximised)
    and bounded by the reference point ``(ref_size, ref_value)``: the area of
    ``{(x, y): some point has size <= x <= ref_size and ref_value <= y <= value}``."""
    points = sorted((s, v) for s, v in zip(sizes, values) if s <= ref_size and v > ref_value)
    area, best = 0.0, ref_value
    for (s, v), nxt in zip(points, [p[0] for p in points[1:]] + [ref_size]):
        best = max(best, v)
        area += (nxt - s) * (best - ref_value)
    return area


def front_subset(sizes: Sequence[float], values: Sequence[float], k: int) -> list[int]:
    r"""The ``k`` points of a front that dominate the largest area up to its largest point, which
    is always one of them: indices, by increasing size. Exact (dynamic programming over the front,
    `O(k n^2)`): a front sorted by size has values increasing with it, and a subset
    `i_1 < ... < i_k = n - 1` dominates `sum_m (s_{i_{m+1}} - s_{i_m}) v_{i_m}`.

    Args:
        sizes: The front's sizes, increasing.
        values: Its values (increasing with the sizes).
        k: How many to keep (at least 1).
    """
    n = len(sizes)
    if k >= n:
        return list(range(n))
    # best[m][j]: the largest area of m + 1 chosen points ending at j; back[m][j]: the point before j
    best = [[0.0] * n]
    back: list[list[int]] = [[-1] * n]
    for m in range(1, k):
        row, prev = [-math.inf] * n, [-1] * n
        for j in range(m, n):
            for i in range(m - 1, j):
                area = best[m - 1][i] + (sizes[j] - sizes[i]) * values[i]
                if area > row[j]:
                    row[j], prev[j] = area, i
        best.append(row)
        back.append(prev)
    chosen, j = [n - 1], n - 1
    for m in range(k - 1, 0, -1):
        j = back[m][j]
        chosen.append(j)
    return sorted(chosen)


def staircase(sizes: Sequence[float], values: Sequence[float], ref_size: float, ref_value: float = 0.0
              ) -> tuple[Tensor, Tensor]:
    r"""The front's staircase below ``ref_size``: interval starts ``t`` (`m + 1`, from 0) and
    levels ``L`` (`m + 1`): on ``[t_k, t_{k+1})`` (the last up to ``ref_size``) the best value of a
    point of size at most ``t_k``, ``ref_value`` where there is none."""
    points = sorted((float(s), float(v)) for s, v in zip(sizes, values) if s < ref_size)
    t, levels, best = [0.0], [float(ref_value)], float(ref_value)
    for s, v in points:
        best = max(best, v)
        if s == t[-1]:
            levels[-1] = best
        else:
            t.append(s)
            levels.append(best)
    return torch.tensor(t, dtype=torch.float64), torch.tensor(levels, dtype=torch.float64)


class LogExpectedHypervolumeImprovement(AnalyticAcquisitionFunction):
    r"""Log of the expected hypervolume improvement over (``g``, ``s``) with ``s`` known (the
    module's formula): a BoTorch analytic acquisition over single-output models of ``g``.

    Args:
        model: A single-output model of ``g`` (the accuracy ratio).
        size: Maps `batch_shape x 1 x d` inputs to their `batch_shape x 1` relative sizes (e.g. a
            :class:`~botorch_archsearch.acquisition.CompressionFactor` of the size).
        front_sizes: Relative sizes of the evaluated students (all of them: dominated ones do not
            change the staircase).
        front_values: Their ``g``.
        ref_size: The reference size (1: the teacher's; or the budget's fraction).
        ref_value: The reference value of ``g`` (0).

    Example:
        >>> sizes = CompressionFactor(lambda graph: count_flops(graph) / teacher_flops)
        >>> acqf = LogExpectedHypervolumeImprovement(gp, sizes, s_evaluated, g_evaluated, ref_size=1.0)
        >>> result = optimize_acqf_edits(acqf, space, max_layers=L, on_encoded=sizes.add)
    """

    def __init__(
        self,
        model: Model,
        size: Callable[[Tensor], Tensor],
        front_sizes: Sequence[float],
        front_values: Sequence[float],
        ref_size: float = 1.0,
        ref_value: float = 0.0,
    ) -> None:
        super().__init__(model=model)
        if not (ref_size > 0 and math.isfinite(ref_size)):
            raise ArchSearchError(f"LogExpectedHypervolumeImprovement: ref_size must be > 0, got {ref_size!r}.")
        if len(front_sizes) != len(front_values):
            raise ArchSearchError("LogExpectedHypervolumeImprovement: front_sizes and front_values differ in length.")
        self.size, self.ref_size = size, float(ref_size)
        t, levels = staircase(front_sizes, front_values, ref_size, ref_value)
        self.register_buffer("starts", t)
        self.register_buffer("levels", levels)

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: Tensor) -> Tensor:
        r"""``log EHVI`` of `batch_shape x 1 x d` candidates: a `batch_shape` tensor (``-inf`` for
        a candidate at or above ``ref_size``)."""
        mean, sigma = self._mean_and_sigma(X)  # batch_shape x 1
        mean, sigma = mean.squeeze(-1), sigma.squeeze(-1)
        s = self.size(X).reshape(mean.shape).to(mean)
        starts, levels = self.starts.to(mean), self.levels.to(mean)
        ends = torch.cat([starts[1:], starts.new_tensor([self.ref_size])])
        widths = (ends - torch.maximum(starts, s.unsqueeze(-1))).clamp_min(0.0)  # batch_shape x (m + 1)
        z = (mean.unsqueeze(-1) - levels) / sigma.unsqueeze(-1)
        terms = widths.log() + _log_ei_helper(z)  # log(w_k h(z_k)); -inf where w_k = 0
        return torch.logsumexp(terms, dim=-1) + sigma.log()


class PredictedSize:
    r"""Sizes of candidates that are not known before training but predicted by a model: for a
    Pareto front over measured latency, ``exp`` of a GP's posterior mean of the log latency, divided
    by ``scale`` (the teacher's latency). Computed per batch as candidates are encoded
    (:meth:`add`, the ``on_encoded`` hook of ``optimize_acqf_edits``), looked up by encoding; the
    EHVI then treats the prediction as the size (its uncertainty is left out).

    Args:
        model: A single-output model of the log size (on the encodings).
        scale: What the predicted size is divided by.
    """

    def __init__(self, model: Model, scale: float = 1.0) -> None:
        self.model, self.scale = model, float(scale)
        self._table = EncodingTable("PredictedSize: a candidate's size was never predicted; register it with add().")

    def __len__(self) -> int:
        return len(self._table)

    def add(self, graphs: Sequence[object], X: Tensor, edits: Sequence[object] | None = None) -> None:
        r"""Predict and register the sizes of the rows of ``X`` (`n x d`)."""
        with torch.no_grad():
            mean = self.model.posterior(X).mean.reshape(-1)
        values = (mean.exp() / self.scale).tolist()
        self._table.add(X, lambda i: values[i])

    def __call__(self, X: Tensor) -> Tensor:
        r"""The sizes of `batch_shape x d` encodings: a `batch_shape` tensor."""
        return torch.tensor(self._table.lookup(X), dtype=X.dtype, device=X.device).reshape(X.shape[:-1])


__all__ = ["LogExpectedHypervolumeImprovement", "PredictedSize", "front_subset", "hypervolume_2d", "pareto_mask",
           "staircase"]
