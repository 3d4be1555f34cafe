r"""Tests of botorch_archsearch/acquisition/pareto.py: the 2-d hypervolume against a Monte Carlo
area, and the analytic expected hypervolume improvement against a Monte Carlo estimate computed
with the hypervolume itself."""

from __future__ import annotations

import math

import pytest
import torch
from botorch.models import SingleTaskGP

from botorch_archsearch.acquisition.pareto import (
    LogExpectedHypervolumeImprovement,
    hypervolume_2d,
    pareto_mask,
    staircase,
)
from botorch_archsearch.exceptions import ArchSearchError


def _points(seed: int, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, generator=g, dtype=torch.float64).tolist(), torch.rand(n, generator=g, dtype=torch.float64).tolist()


@pytest.mark.parametrize("seed", range(3))
def test_the_hypervolume_is_the_dominated_area(seed):
    sizes, values = _points(seed)
    g = torch.Generator().manual_seed(100 + seed)
    x, y = torch.rand(200_000, generator=g, dtype=torch.float64), torch.rand(200_000, generator=g, dtype=torch.float64)
    s, v = torch.tensor(sizes), torch.tensor(values)
    dominated = ((s[None, :] <= x[:, None]) & (v[None, :] >= y[:, None])).any(-1).double()
    mc, se = dominated.mean().item(), dominated.std().item() / math.sqrt(len(x))
    assert abs(hypervolume_2d(sizes, values, 1.0) - mc) < 4 * se
    assert hypervolume_2d([], [], 1.0) == 0.0 and hypervolume_2d([0.5], [0.4], 1.0) == pytest.approx(0.2)
    assert hypervolume_2d([1.5], [0.9], 1.0) == 0.0  # beyond the reference point


def test_the_front_and_its_staircase():
    sizes, values = [0.2, 0.4, 0.4, 0.6, 0.7], [0.5, 0.4, 0.7, 0.7, 0.9]
    assert pareto_mask(sizes, values) == [True, False, True, False, True]
    t, levels = staircase(sizes, values, ref_size=0.65)
    assert t.tolist() == [0.0, 0.2, 0.4, 0.6] and levels.tolist() == [0.0, 0.5, 0.7, 0.7]


def test_ehvi_is_the_monte_carlo_mean_of_the_hypervolume_improvement():
    torch.manual_seed(0)
    X = torch.rand(12, 1, dtype=torch.float64)
    Y = (1 - (X - 0.6) ** 2 + 0.05 * torch.randn(12, 1, dtype=torch.float64))
    gp = SingleTaskGP(X, Y)
    front_sizes, front_values = X.squeeze(-1).tolist(), Y.squeeze(-1).tolist()
    size = lambda x: 0.9 * x[..., 0]  # the known size of a candidate  # noqa: E731
    acqf = LogExpectedHypervolumeImprovement(gp, size, front_sizes, front_values, ref_size=1.0)
    candidates = torch.tensor([[0.05], [0.3], [0.55], [0.8], [0.97]], dtype=torch.float64)
    with torch.no_grad():
        log_ehvi = acqf(candidates.unsqueeze(-2))
        post = gp.posterior(candidates)
    base = hypervolume_2d(front_sizes, front_values, 1.0)
    for i in range(len(candidates)):
        g = post.mean[i, 0] + post.variance[i, 0].sqrt() * torch.randn(3000, dtype=torch.float64,
                                                                         generator=torch.Generator().manual_seed(i))
        s = float(size(candidates[i]))
        hvi = torch.tensor([hypervolume_2d(front_sizes + [s], front_values + [float(v)], 1.0) - base for v in g])
        mc, se = hvi.mean().item(), hvi.std().item() / math.sqrt(len(hvi))
        assert abs(math.exp(float(log_ehvi[i])) - mc) <= 4 * se + 1e-9, (i, math.exp(float(log_ehvi[i])), mc, se)


def test_a_candidate_at_the_reference_size_cannot_improve_and_bad_arguments():
    X = torch.rand(5, 1, dtype=torch.float64)
    gp = SingleTaskGP(X, X.clone())
    acqf = LogExpectedHypervolumeImprovement(gp, lambda x: x[..., 0], [0.5], [0.5], ref_size=0.7)
    with torch.no_grad():
        values = acqf(torch.tensor([[[0.7]], [[0.9]], [[0.2]]], dtype=torch.float64))
    assert values[0] == -math.inf and values[1] == -math.inf and math.isfinite(values[2])
    with pytest.raises(ArchSearchError, match="ref_size must be > 0"):
        LogExpectedHypervolumeImprovement(gp, lambda x: x[..., 0], [], [], ref_size=0.0)


def test_predicted_sizes_are_the_model_s_exp_mean_relative_to_the_scale():
    from botorch_archsearch.acquisition.pareto import PredictedSize

    torch.manual_seed(0)
    X = torch.rand(8, 3, dtype=torch.float64)
    gp = SingleTaskGP(X, X.sum(-1, keepdim=True).log())
    sizes = PredictedSize(gp, scale=2.0)
    Z = torch.rand(5, 3, dtype=torch.float64)
    sizes.add([None] * 5, Z)
    with torch.no_grad():
        expected = gp.posterior(Z).mean.squeeze(-1).exp() / 2.0
    torch.testing.assert_close(sizes(Z.unsqueeze(-2)).squeeze(-1), expected)
    assert len(sizes) == 5
    with pytest.raises(ArchSearchError, match="never predicted"):
        sizes(torch.rand(1, 1, 3, dtype=torch.float64))


def test_front_subset_is_the_largest_area_subset_with_the_largest_point_by_brute_force():
    """Against every subset of k points that keeps the largest one, on random fronts."""
    import itertools

    from botorch_archsearch.acquisition.pareto import front_subset

    generator = torch.Generator().manual_seed(0)
    for n, k in [(1, 1), (2, 1), (5, 2), (7, 3), (9, 4), (8, 8), (6, 9)]:
        sizes = torch.rand(n, generator=generator, dtype=torch.float64).sort().values.tolist()
        values = torch.rand(n, generator=generator, dtype=torch.float64).sort().values.tolist()
        chosen = front_subset(sizes, values, k)
        assert chosen == sorted(chosen) and chosen[-1] == n - 1 and len(chosen) == min(k, n)

        def area(subset):
            return hypervolume_2d([sizes[i] for i in subset], [values[i] for i in subset], sizes[-1])

        best = max(area((*rest, n - 1)) for rest in itertools.combinations(range(n - 1), min(k, n) - 1))
        assert area(chosen) == pytest.approx(best, rel=1e-12, abs=1e-15)
    # a near-chance student at the small end is left out for one that dominates more
    assert front_subset([0.01, 0.2, 0.3, 1.0], [0.1, 0.8, 0.85, 0.9], 3) == [1, 2, 3]
