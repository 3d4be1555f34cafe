r"""Model only what is unknown: the reward ``f(x) = c(x) g(x)`` of a student is a known factor
``c(x)`` times its accuracy ratio ``g(x) = A(x) / A_teacher``.

For the N2N reward (:func:`~botorch_archsearch.evaluation.reward`) the factor is ``C (2 - C)``, or
0 above a hard budget: it depends only on the student's size, which is known exactly before the
student is trained. With ``kernel.target=accuracy`` the GP models ``g`` alone and the acquisition
scores ``f`` through :class:`KnownFactorTransform`, a BoTorch ``PosteriorTransform`` that scales the
posterior of ``g`` by each candidate's factor: the posterior of ``f`` at ``x`` is the GP's
posterior of ``g`` times ``c(x)``, exactly, since ``c(x)`` is a constant.

Example:
    >>> factor = CompressionFactor(reward_factor(teacher, measure="flops", budget=budget))
    >>> acqf = LogExpectedImprovement(model, best_f=best_reward, posterior_transform=KnownFactorTransform(factor))
    >>> result = optimize_acqf_edits(acqf, space, max_layers=L, on_encoded=factor.add)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from botorch.acquisition.objective import PosteriorTransform
from botorch.posteriors import GPyTorchPosterior, Posterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator
from torch import Tensor

from botorch_archsearch.evaluation.reward import reward
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.counting import count_flops, count_params
from botorch_archsearch.graph.encoding import EncodingTable

KERNEL_TARGETS: tuple[str, ...] = ("accuracy", "reward")
r"""What the GP models: ``"reward"`` (the paper: ``f`` itself) or ``"accuracy"`` (``A / A_teacher``,
the known factor applied in the acquisition)."""


def reward_factor(
    teacher: Mapping[str, Any],
    *,
    measure: str = "params",
    budget: float | None = None,
    budget_measure: str | None = None,
    kind: str = "n2n",
) -> Callable[[ArchGraph], float]:
    r"""The known factor of the reward: ``graph -> f / (A / A_teacher)``, i.e. ``C (2 - C)`` of
    the graph's size (1 for ``kind="accuracy"``), 0 above the budget; computed by :func:`~botorch_archsearch.evaluation.reward`
    itself (at ``A = A_teacher``), so it is the factor the search's rewards carry.

    Args:
        teacher: The teacher's ``params`` and ``flops``.
        measure: What ``C`` measures (``reward.measure``).
        budget: The hard budget (``reward.budget``).
        budget_measure: What the budget limits (``reward.budget_measure``).
        kind: The reward's shape (``reward.kind``).

    Returns:
        A function of an architecture.
    """

    def factor(graph: ArchGraph) -> float:
        return reward(1.0, 1.0, count_params(graph), teacher["params"], flops=count_flops(graph),
                      teacher_flops=teacher.get("flops"), measure=measure, budget=budget,
                      budget_measure=budget_measure, kind=kind)

    return factor


class CompressionFactor:
    r"""The known factor ``c(x)`` of encoded candidates, looked up by encoding.

    An encoding does not say everything a size needs (biases, spatial sizes), so factors are
    computed from the architectures, registered with :meth:`add` as they are encoded (the
    ``on_encoded`` hook of :func:`~botorch_archsearch.acquisition.optimize_acqf_edits`), and
    looked up by the rows' exact values when the acquisition scores them.

    Args:
        factor: ``graph -> c`` (e.g. :func:`reward_factor`), a number >= 0.
    """

    def __init__(self, factor: Callable[[ArchGraph], float]) -> None:
        self.factor = factor
        self._table = EncodingTable(
            "CompressionFactor: a candidate's factor is unknown; register its architecture with add(graphs, X) "
            "when it is encoded (optimize_acqf_edits(..., on_encoded=factor.add))."
        )

    def __len__(self) -> int:
        return len(self._table)

    def add(self, graphs: Sequence[ArchGraph], X: Tensor, edits: Sequence[Any] | None = None) -> None:
        r"""Register the factors of ``graphs``, encoded as the rows of ``X`` (`n x d`) (their
        ``edits`` are not needed)."""
        if X.shape[0] != len(graphs):
            raise ArchSearchError(f"CompressionFactor.add: {len(graphs)} graphs for {X.shape[0]} encoded rows.")
        self._table.add(X, lambda i: self._checked(self.factor(graphs[i])))

    @staticmethod
    def _checked(value: float) -> float:
        value = float(value)
        if not value >= 0:
            raise ArchSearchError(f"CompressionFactor: the factor must be a number >= 0, got {value!r}.")
        return value

    def __call__(self, X: Tensor) -> Tensor:
        r"""The factors of `batch_shape x q x d` encodings: a `batch_shape x q` tensor.

        Raises:
            ArchSearchError: If a row was never registered with :meth:`add`.
        """
        return torch.tensor(self._table.lookup(X), dtype=X.dtype, device=X.device).reshape(X.shape[:-1])


class KnownFactorTransform(PosteriorTransform):
    r"""``f(x) = c(x) g(x)``: the posterior of a single-output model of ``g`` scaled by a known
    factor of each point, ``c(x) >= 0``.

    The mean is ``c(x) mu(x)`` and the covariance ``c(x) c(x') k(x, x')``: the exact posterior
    of ``f`` when ``c`` is known. Any BoTorch acquisition that takes a ``posterior_transform``
    (``LogExpectedImprovement``, ``qLogExpectedImprovement``) then scores ``f``; its ``best_f``
    is on the scale of ``f``.

    Args:
        factor: Maps `batch_shape x q x d` inputs to their `batch_shape x q` factors (e.g. a
            :class:`CompressionFactor`).
    """

    scalarize = True

    def __init__(self, factor: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.factor = factor

    def evaluate(self, Y: Tensor, X: Tensor | None = None) -> Tensor:
        r"""``c(X) Y``: `batch_shape x q x 1` outcomes to `batch_shape x q` values of ``f``."""
        if X is None:
            raise ArchSearchError("KnownFactorTransform.evaluate needs the inputs X: the factor depends on them.")
        if Y.shape[-1] != 1:
            raise ArchSearchError(f"KnownFactorTransform: one outcome expected, got {Y.shape[-1]}.")
        return Y.squeeze(-1) * self.factor(X)

    def forward(self, posterior: Posterior, X: Tensor | None = None) -> GPyTorchPosterior:
        r"""The posterior of ``f = c(X) g`` from that of ``g`` (a single-output ``GPyTorchPosterior``)."""
        if X is None:
            raise ArchSearchError("KnownFactorTransform needs the inputs X: the factor depends on them.")
        if not isinstance(posterior, GPyTorchPosterior) or posterior._is_mt:
            raise ArchSearchError(
                f"KnownFactorTransform: expected a single-output GPyTorchPosterior, got {type(posterior).__name__}."
            )
        mvn = posterior.distribution
        c = self.factor(X).to(mvn.mean)
        if c.shape != mvn.mean.shape:
            raise ArchSearchError(
                f"KnownFactorTransform: factors of shape {tuple(c.shape)} for a posterior mean of shape "
                f"{tuple(mvn.mean.shape)}."
            )
        scale = DiagLinearOperator(c)
        return GPyTorchPosterior(MultivariateNormal(mvn.mean * c, scale @ mvn.lazy_covariance_matrix @ scale))


__all__ = ["CompressionFactor", "KERNEL_TARGETS", "KnownFactorTransform", "reward_factor"]
