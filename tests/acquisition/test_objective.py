"""Tests of the known-factor objective (``kernel.target=accuracy``): the GP models the accuracy
ratio, the acquisition scores the reward ``f = c(x) g(x)`` with ``c`` known."""

import functools
import math

import pytest
import torch
from botorch.acquisition import ExpectedImprovement, LogExpectedImprovement, qExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.sampling import SobolQMCNormalSampler

from botorch_archsearch.acquisition import (
    CompressionFactor,
    KnownFactorTransform,
    optimize_acqf_edits,
    propose_architectures,
    reward_factor,
)
from botorch_archsearch.evaluation import reward
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.gp import architecture_gp
from botorch_archsearch.graph import count_flops, count_params, encode, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


def _toy_gp() -> SingleTaskGP:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(8, 2, generator=g, dtype=torch.float64)
    Y = torch.sin(6 * X[:, :1]) + X[:, 1:]
    return SingleTaskGP(X, Y).eval()


def _factor(X: torch.Tensor) -> torch.Tensor:  # a known factor of each point, one of them 0
    return torch.where(X[..., 0] > 0.9, torch.zeros_like(X[..., 0]), 0.5 + X[..., 0])


def test_the_transformed_posterior_is_the_factor_times_the_gp():
    model = _toy_gp()
    X = torch.rand(5, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain = model.posterior(X)
    scaled = model.posterior(X, posterior_transform=KnownFactorTransform(_factor))
    c = _factor(X)
    torch.testing.assert_close(scaled.mean.squeeze(-1), c * plain.mean.squeeze(-1))
    cov = plain.distribution.covariance_matrix
    torch.testing.assert_close(scaled.distribution.covariance_matrix, cov * c.unsqueeze(-1) * c.unsqueeze(-2))
    Y = torch.randn(5, 3, 1, dtype=torch.float64)
    torch.testing.assert_close(KnownFactorTransform(_factor).evaluate(Y, X), c * Y.squeeze(-1))


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.NumericsWarning")  # EI is the reference here
def test_expected_improvement_of_the_scaled_posterior_matches_monte_carlo():
    """EI of f = c g, analytic through the transform, against sampling g and multiplying."""
    model = _toy_gp()
    X = torch.tensor([[[0.2, 0.1]], [[0.5, 0.9]], [[0.3, 0.8]], [[0.95, 0.3]]], dtype=torch.float64)
    best_f = 1.0
    transform = KnownFactorTransform(_factor)
    ei = ExpectedImprovement(model, best_f=best_f, posterior_transform=transform)(X)
    log_ei = LogExpectedImprovement(model, best_f=best_f, posterior_transform=transform)(X)
    post = model.posterior(X)
    z = torch.randn(400_000, len(X), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    g = post.mean.view(-1) + post.variance.sqrt().view(-1) * z
    mc = (_factor(X).view(-1) * g - best_f).clamp_min(0).mean(0)
    assert (mc[:3] > 1e-3).all()  # the comparison is not between zeros
    torch.testing.assert_close(ei, mc, rtol=0.02, atol=1e-4)
    torch.testing.assert_close(log_ei[:3].exp(), ei[:3], rtol=1e-6, atol=0)
    assert ei[3] == 0 and log_ei[3] < -100  # a point with factor 0 (over the budget) cannot improve


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.NumericsWarning")
def test_joint_q_batch_expected_improvement_matches_monte_carlo():
    model = _toy_gp()
    X = torch.tensor([[0.3, 0.2], [0.6, 0.7]], dtype=torch.float64)
    best_f = 1.0
    acq = qExpectedImprovement(model, best_f=best_f, posterior_transform=KnownFactorTransform(_factor),
                               sampler=SobolQMCNormalSampler(torch.Size([2**14]), seed=0))
    post = model.posterior(X)
    L = torch.linalg.cholesky(post.distribution.covariance_matrix)
    z = torch.randn(400_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = post.mean.squeeze(-1) + z @ L.T
    mc = ((_factor(X) * g).max(-1).values - best_f).clamp_min(0).mean()
    torch.testing.assert_close(acq(X.unsqueeze(0)).squeeze(), mc, rtol=0.03, atol=1e-4)


def test_the_transform_needs_the_inputs_and_one_output():
    model = _toy_gp()
    X = torch.rand(2, 1, 2, dtype=torch.float64)
    with pytest.raises(ArchSearchError, match="needs the inputs X"):
        KnownFactorTransform(_factor)(model.posterior(X))
    with pytest.raises(ArchSearchError, match="one outcome expected"):
        KnownFactorTransform(_factor).evaluate(torch.zeros(2, 1, 2), X)


@functools.lru_cache(maxsize=None)
def _space():
    graph = trace(get_teacher("resnet18", width=0.125), torch.randn(1, 3, 32, 32))
    return SearchSpace(graph), graph


def test_reward_factor_times_the_accuracy_ratio_is_the_reward():
    space, teacher = _space()
    info = {"params": count_params(teacher), "flops": count_flops(teacher)}
    students = [space.apply(e) for e in space.sample(12, generator=torch.Generator().manual_seed(0))]
    budget = sorted(count_flops(s) for s in students)[6]  # half of them above it
    cases = [(m, bm, "n2n") for m, bm in (("params", None), ("flops", "flops"), ("params", "flops"))]
    cases += [("params", "flops", "accuracy"), ("flops", "flops", "accuracy")]
    for measure, budget_measure, kind in cases:
        b = None if budget_measure is None else budget
        factor = reward_factor(info, measure=measure, budget=b, budget_measure=budget_measure, kind=kind)
        for i, s in enumerate(students):
            a, a_teacher = 0.3 + 0.05 * i, 0.9
            expected = reward(a, a_teacher, count_params(s), info["params"], flops=count_flops(s),
                              teacher_flops=info["flops"], measure=measure, budget=b, budget_measure=budget_measure,
                              kind=kind)
            assert factor(s) * a / a_teacher == pytest.approx(expected, rel=1e-12, abs=1e-15)
            if b is not None and count_flops(s) > b:
                assert factor(s) == 0
            elif kind == "accuracy":
                assert factor(s) == 1


def test_compression_factor_looks_up_registered_encodings():
    space, teacher = _space()
    students = [space.apply(e) for e in space.sample(5, generator=torch.Generator().manual_seed(1))]
    X = encode(students, teacher.num_layers, dtype=torch.float64)
    factor = CompressionFactor(count_params)
    factor.add(students, X)
    assert len(factor) == 5
    values = factor(X[[4, 0, 2]].reshape(3, 1, -1))
    assert values.shape == (3, 1) and values.dtype == torch.float64
    assert values.squeeze(-1).tolist() == [count_params(students[i]) for i in (4, 0, 2)]
    other = encode(space.apply(space.identity_edit()), teacher.num_layers, dtype=torch.float64)
    with pytest.raises(ArchSearchError, match="factor is unknown; register its architecture"):
        factor(other)
    with pytest.raises(ArchSearchError, match="must be a number >= 0"):
        CompressionFactor(lambda g: -1.0).add(students[:1], X[:1])


def test_the_edit_optimiser_registers_every_candidate_it_scores():
    space, teacher = _space()
    L = teacher.num_layers
    students = [space.apply(e) for e in space.sample(6, generator=torch.Generator().manual_seed(2))]
    X = encode(students, L, dtype=torch.float64)
    model = architecture_gp(X, torch.rand(6, 1, dtype=torch.float64), max_layers=L, hidden_size=8, num_layers=1)
    model.eval()
    factor = CompressionFactor(lambda g: 1 - count_params(g) / count_params(teacher))
    acq = LogExpectedImprovement(model, best_f=0.5, posterior_transform=KnownFactorTransform(factor))
    result = optimize_acqf_edits(acq, space, max_layers=L, q=3, num_candidates=40, X_avoid=X,
                                 generator=torch.Generator().manual_seed(3), on_encoded=factor.add)
    assert len(factor) == result.num_scored
    # the values are LogEI of the scaled posterior, recomputed by hand for the best three
    post = model.posterior(result.X.unsqueeze(-2))
    c = torch.tensor([1 - count_params(s.graph) / count_params(teacher) for s in result.students], dtype=torch.float64)
    mean, sigma = c * post.mean.view(-1), c * post.variance.view(-1).sqrt()
    u = (mean - 0.5) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    ei = sigma * (u * normal.cdf(u) + normal.log_prob(u).exp())
    torch.testing.assert_close(result.values.exp(), ei, rtol=1e-5, atol=1e-12)


def test_propose_with_a_known_factor_never_proposes_a_student_over_the_budget():
    space, teacher = _space()
    L = teacher.num_layers
    students = [space.apply(e) for e in space.sample(8, generator=torch.Generator().manual_seed(4))]
    X = encode(students, L, dtype=torch.float64)
    info = {"params": count_params(teacher), "flops": count_flops(teacher)}
    budget = 0.4 * info["flops"]
    factor = CompressionFactor(reward_factor(info, measure="flops", budget=budget, budget_measure="flops"))
    ratios = torch.linspace(0.5, 0.9, 8, dtype=torch.float64).unsqueeze(-1)
    rewards = [factor.factor(s) * r for s, r in zip(students, ratios.squeeze(-1).tolist())]
    options = dict(max_layers=L, num_kernels=2, num_candidates=60, kernel_options=dict(hidden_size=8, num_layers=1),
                   fit_options=dict(max_steps=2), generator=torch.Generator().manual_seed(5))
    with pytest.raises(ArchSearchError, match="pass best_f"):
        propose_architectures(space, X, ratios, known_factor=factor, **options)
    proposal = propose_architectures(space, X, ratios, known_factor=factor, best_f=max(rewards), **options)
    assert all(count_flops(g) <= budget for g in proposal.graphs)
    assert all(math.isfinite(v) for v in proposal.values.tolist())
