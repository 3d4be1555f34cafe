r"""Tests of botorch_archsearch/acquisition/edits.py: maximising an acquisition function over the
edits of a teacher, by random sampling (paper section 3.2) or evolution (Table 6 ablation)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from botorch.acquisition import AcquisitionFunction, ExpectedImprovement, LogExpectedImprovement
from botorch.models import SingleTaskGP

from botorch_archsearch.acquisition import (
    EDIT_OPTIMIZATION_METHODS,
    EditOptimizationResult,
    optimize_acqf_edits,
)
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, encode, num_features, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import Edit, SearchSpace

OUT_CHANNELS = 6  # column of a layer's output channels in the compact encoding


@functools.lru_cache(maxsize=None)
def _graph(name: str = "resnet18") -> ArchGraph:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    return trace(teacher, torch.randn(1, 3, 32, 32))


@functools.lru_cache(maxsize=None)
def _space(name: str = "resnet18", **options) -> SearchSpace:
    return SearchSpace(_graph(name), **options)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _LinearAcquisition(AcquisitionFunction):
    """A known acquisition: ``weights @ x`` (in float64), recording the size of every call."""

    def __init__(self, weights: torch.Tensor, model=None) -> None:
        super().__init__(model)
        self.weights = weights.to(torch.float64)
        self.batch_sizes: list[int] = []

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        assert X.dim() == 3 and X.shape[-2] == 1  # `b x 1 x d`, as BoTorch's discrete optimizer
        self.batch_sizes.append(X.shape[0])
        return (X.to(torch.float64) @ self.weights).squeeze(-1)


def _random_projection(space: SearchSpace, seed: int = 0, max_edges: int = 8) -> _LinearAcquisition:
    d = space.graph.num_layers * num_features(max_edges)
    return _LinearAcquisition(torch.randn(d, generator=_gen(seed), dtype=torch.float64))


def _minus_channels(space: SearchSpace, max_edges: int = 8) -> _LinearAcquisition:
    """Rewards fewer channels (a stand-in for fewer parameters): minus the sum of out channels."""
    width = num_features(max_edges)
    weights = torch.zeros(space.graph.num_layers, width, dtype=torch.float64)
    weights[:, OUT_CHANNELS] = -1.0
    return _LinearAcquisition(weights.flatten())


def _brute_force(space: SearchSpace, acqf: _LinearAcquisition, num_candidates: int, seed: int, X_avoid=None):
    """Candidates the random method draws, deduplicated, with their values, best first."""
    graphs, keys = [], set()
    for edit in space.sample(num_candidates, generator=_gen(seed)):
        graph = space.apply(edit)
        if graph.key() not in keys:
            keys.add(graph.key())
            graphs.append(graph)
    X = encode(graphs, space.graph.num_layers, dtype=torch.float64)
    if X_avoid is not None:
        keep = [i for i in range(len(X)) if not (X_avoid.to(X) == X[i]).all(-1).any()]
        graphs, X = [graphs[i] for i in keep], X[keep]
    values = X @ acqf.weights
    order = torch.sort(values, descending=True, stable=True).indices
    return [graphs[i] for i in order], X[order], values[order]


@pytest.mark.parametrize("q", [1, 4])
def test_random_returns_the_true_top_q_of_its_candidates(q):
    space = _space()
    acqf = _random_projection(space)
    result = optimize_acqf_edits(
        acqf, space, max_layers=space.graph.num_layers, q=q, num_candidates=300, generator=_gen(1)
    )
    assert isinstance(result, EditOptimizationResult)
    graphs, X, values = _brute_force(space, acqf, 300, seed=1)
    assert [g.key() for g in result.graphs] == [g.key() for g in graphs[:q]]
    assert len({g.key() for g in result.graphs}) == q
    assert [space.apply(e).key() for e in result.edits] == [g.key() for g in result.graphs]
    assert [s.graph for s in result.students] == result.graphs and [s.edit for s in result.students] == result.edits
    assert all(s.teacher is space.graph for s in result.students)
    torch.testing.assert_close(result.values, values[:q])
    assert result.X.shape == (q, X.shape[-1]) and result.X.dtype == torch.get_default_dtype()
    torch.testing.assert_close(result.X.double(), X[:q], rtol=0, atol=0)
    assert result.num_scored == len(graphs) == 300  # continuous ratios: no duplicates here
    assert sum(acqf.batch_sizes) == 300


def test_infeasible_candidates_are_never_scored_and_the_rest_are_ranked_as_without_them():
    from botorch_archsearch.graph import count_flops

    space = _space()
    acqf = _minus_channels(space)  # favours small students: the budget's opposite, so the two interact
    graphs, X, values = _brute_force(space, acqf, 300, seed=2)
    budget = sorted(count_flops(g) for g in graphs)[150]  # about half of them within it
    feasible = [i for i, g in enumerate(graphs) if count_flops(g) <= budget]
    acqf.batch_sizes.clear()
    calls = []

    def within(graph):
        calls.append(graph.key())
        return count_flops(graph) <= budget

    result = optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, q=5, num_candidates=300,
                                 generator=_gen(2), feasible=within)
    assert [g.key() for g in result.graphs] == [graphs[i].key() for i in feasible[:5]]  # brute force, filtered
    torch.testing.assert_close(result.values, values[feasible[:5]])
    assert result.num_scored == len(feasible) == sum(acqf.batch_sizes) < 300  # the others were never scored
    assert len(calls) == 300 and all(count_flops(g) <= budget for g in result.graphs)
    with pytest.raises(ArchSearchError, match=r"found 0 distinct candidates .* \(300 more were infeasible\)"):
        optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, q=1, num_candidates=300,
                            generator=_gen(2), feasible=lambda graph: False)


def test_a_measured_constraint_screens_with_the_counts_and_measures_only_the_best():
    """A latency-like bound (a measurement, here a deterministic function of the graph so that the
    test can check it): candidates are screened by the counted bound before scoring, and measured
    best first only until q pass; the result is brute force's q best among those meeting both."""
    from botorch_archsearch.graph import count_flops, count_params
    from botorch_archsearch.search.constraints import Feasibility

    space = _space()
    acqf = _minus_channels(space)
    graphs, X, values = _brute_force(space, acqf, 300, seed=2)

    def fake_ms(graph):
        return count_params(graph) / 1e3 + graph.num_layers / 10

    budget = sorted(count_flops(g) for g in graphs)[200]
    ms = sorted(fake_ms(g) for g in graphs if count_flops(g) <= budget)
    limit = ms[len(ms) // 2]  # the best (smallest) by the acquisition are mostly within it, not all
    test = Feasibility([("flops", budget), ("latency", limit)], latency=fake_ms)
    assert test.measured and test.known(graphs[0]) == (count_flops(graphs[0]) <= budget)
    screened = [i for i, g in enumerate(graphs) if count_flops(g) <= budget]
    both = [i for i in screened if fake_ms(graphs[i]) <= limit]
    result = optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, q=4, num_candidates=300,
                                 generator=_gen(2), feasible=test)
    assert [g.key() for g in result.graphs] == [graphs[i].key() for i in both[:4]]
    torch.testing.assert_close(result.values, values[both[:4]])
    assert result.num_scored == len(screened)  # scored: all that the counts allow
    assert test.num_measured == screened.index(both[3]) + 1 < len(screened)  # measured: down to the 4th passing
    with pytest.raises(ArchSearchError, match=r"only 0 of the 200 best of \d+ scored candidates .* met the measured "
                                              r"constraints, fewer than q=1; loosen them"):
        optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, q=1, num_candidates=300,
                            generator=_gen(2), feasible=Feasibility([("latency", 0.0)], latency=fake_ms))


def test_duplicates_are_scored_once_and_never_returned_twice():
    # Removal only, with tiny removal probabilities: most candidates are the teacher itself.
    space = _space(shrinkage=False, skip=False, removal_probs=(0.0, 0.01))
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, q=3, num_candidates=200,
                                 generator=_gen(0))
    graphs, _, values = _brute_force(space, acqf, 200, seed=0)
    assert 3 <= result.num_scored == len(graphs) < 100
    assert sum(acqf.batch_sizes) == result.num_scored
    assert len({g.key() for g in result.graphs}) == 3
    assert [g.key() for g in result.graphs] == [g.key() for g in graphs[:3]]
    torch.testing.assert_close(result.values, values[:3])


def test_X_avoid_rows_are_never_returned():
    space = _space()
    L = space.graph.num_layers
    acqf = _random_projection(space, seed=3)
    first = optimize_acqf_edits(acqf, space, max_layers=L, q=3, num_candidates=200, generator=_gen(2))
    # Avoid the argmax (given in float64 while candidates are encoded in float32): the second comes back.
    again = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=200, generator=_gen(2),
                                X_avoid=first.X[:1].double())
    assert [g.key() for g in again.graphs] == [g.key() for g in first.graphs[1:3]]
    assert again.num_scored == first.num_scored - 1
    # Against brute force, with a few more avoided rows (some not among the candidates at all).
    X_avoid = torch.cat([first.X[[0, 2]], encode(_graph(), L), torch.zeros(1, first.X.shape[-1])])
    result = optimize_acqf_edits(acqf, space, max_layers=L, q=3, num_candidates=200, generator=_gen(2),
                                 X_avoid=X_avoid)
    graphs, _, values = _brute_force(space, acqf, 200, seed=2, X_avoid=X_avoid)
    assert [g.key() for g in result.graphs] == [g.key() for g in graphs[:3]]
    assert first.graphs[1].key() == result.graphs[0].key()
    assert not any((X_avoid == x).all(-1).any() for x in result.X)
    torch.testing.assert_close(result.values, values[:3])


def test_all_candidates_duplicate_or_avoided_raises():
    space = _space(removal=False, shrinkage=False, skip=False)  # every edit is the teacher
    L = space.graph.num_layers
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=L, num_candidates=20, generator=_gen(0))
    assert result.num_scored == 1 and result.graphs[0].key() == _graph().key()
    message = r"found 1 distinct candidates .* num_candidates=20 .* fewer than q=2"
    with pytest.raises(ArchSearchError, match=message):
        optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=20, generator=_gen(0))
    for method in EDIT_OPTIMIZATION_METHODS:
        with pytest.raises(ArchSearchError, match=r"found 0 distinct candidates not in X_avoid"):
            optimize_acqf_edits(acqf, space, max_layers=L, num_candidates=20, generator=_gen(0),
                                X_avoid=encode(_graph(), L), method=method)


@pytest.mark.parametrize("method", EDIT_OPTIMIZATION_METHODS)
def test_batch_size_does_not_change_the_result(method):
    space = _space()
    L = space.graph.num_layers
    results = []
    for max_batch_size in (1024, 7):
        acqf = _random_projection(space, seed=4)
        results.append(optimize_acqf_edits(acqf, space, max_layers=L, q=3, num_candidates=120, method=method,
                                           max_batch_size=max_batch_size, generator=_gen(5)))
        assert max(acqf.batch_sizes) <= max_batch_size
    one, many = results
    assert [g.key() for g in one.graphs] == [g.key() for g in many.graphs]
    assert one.edits == many.edits and one.num_scored == many.num_scored
    torch.testing.assert_close(one.values, many.values)
    torch.testing.assert_close(one.X, many.X, rtol=0, atol=0)


def test_encoding_follows_max_edges_and_max_layers():
    space = _space()
    L = space.graph.num_layers + 5
    acqf = _LinearAcquisition(torch.zeros(L * num_features(10), dtype=torch.float64))
    result = optimize_acqf_edits(acqf, space, max_layers=L, max_edges=10, q=2, num_candidates=10,
                                 generator=_gen(0))
    torch.testing.assert_close(result.X, encode(result.graphs, L, max_edges=10), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")
@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.NumericsWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("acqf_class", [LogExpectedImprovement, ExpectedImprovement])
def test_works_with_a_botorch_gp_and_expected_improvement(acqf_class, dtype):
    space = _space()
    L = space.graph.num_layers
    train_X = encode([space.apply(e) for e in space.sample(10, generator=_gen(10))], L, dtype=dtype)
    train_Y = torch.randn(10, 1, generator=_gen(11), dtype=dtype)
    model = SingleTaskGP(train_X, train_Y)  # default kernel on the raw encoding; not fitted
    acqf = acqf_class(model, best_f=train_Y.max())
    for method in EDIT_OPTIMIZATION_METHODS:
        result = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=40, method=method,
                                     X_avoid=train_X, generator=_gen(12), population_size=20)
        assert result.values.shape == (2,) and torch.isfinite(result.values).all()
        assert result.X.shape == (2, train_X.shape[-1]) and result.X.dtype == dtype  # the model's dtype
        assert result.values[0] >= result.values[1]
        with torch.no_grad():
            torch.testing.assert_close(acqf(result.X.unsqueeze(-2)), result.values)
        assert not any((train_X == x).all(-1).any() for x in result.X)


def test_evolutionary_respects_the_budget_and_is_reproducible():
    space = _space()
    L = space.graph.num_layers
    runs = []
    for seed in (0, 0, 1):
        acqf = _minus_channels(space)
        result = optimize_acqf_edits(acqf, space, max_layers=L, q=3, num_candidates=150,
                                     method="evolutionary", population_size=40, generator=_gen(seed))
        assert result.num_scored == sum(acqf.batch_sizes) <= 150
        assert len({g.key() for g in result.graphs}) == 3
        assert result.values[0] >= result.values[1] >= result.values[2]
        runs.append(result)
    assert runs[0].edits == runs[1].edits
    torch.testing.assert_close(runs[0].values, runs[1].values)
    assert runs[0].edits != runs[2].edits
    # A budget that is not a multiple of the population size is not exceeded either.
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=L, num_candidates=55, method="evolutionary",
                                 population_size=20, generator=_gen(0))
    assert sum(acqf.batch_sizes) == result.num_scored <= 55


def test_evolutionary_selection_improves_on_its_initial_population():
    space = _space()
    L = space.graph.num_layers
    acqf = _minus_channels(space)
    result = optimize_acqf_edits(acqf, space, max_layers=L, num_candidates=300, method="evolutionary",
                                 population_size=50, generator=_gen(3))
    # The initial population is the first space.sample(population_size) drawn from the generator.
    _, _, initial = _brute_force(space, acqf, 50, seed=3)
    assert result.values[0] > initial[0]
    # With no generations it is random search over the initial population.
    acqf = _minus_channels(space)
    none = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=300, method="evolutionary",
                               population_size=50, num_generations=0, generator=_gen(3))
    random = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=50, generator=_gen(3))
    assert none.edits == random.edits and none.num_scored == random.num_scored == 50
    torch.testing.assert_close(none.values[0], initial[0])


def test_evolutionary_handles_a_space_with_one_architecture():
    space = _space(removal=False, shrinkage=False, skip=False)
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=space.graph.num_layers, num_candidates=30,
                                 method="evolutionary", population_size=10, generator=_gen(0))
    assert result.num_scored == 1 and result.graphs[0].key() == _graph().key()


_BAD_ARGUMENTS = [
    ({"q": 0}, r"q must be an integer >= 1, got 0"),
    ({"q": 1.5}, r"q must be an integer >= 1, got 1.5"),
    ({"q": 5, "num_candidates": 4}, r"num_candidates must be at least q=5, got 4"),
    ({"num_candidates": 0}, r"num_candidates must be an integer >= 1, got 0"),
    ({"method": "grid"}, r"method must be one of \['evolutionary', 'random'\], got 'grid'"),
    ({"X_avoid": torch.zeros(2, 7)},
     r"X_avoid must be a n_avoid x d tensor with d = .* = 1035, got shape \(2, 7\)"),
    ({"X_avoid": torch.zeros(1035)}, r"X_avoid must be .*, got shape \(1035,\)"),
    ({"max_layers": 10}, r"max_layers must be at least the teacher's number of layers \(69\), got 10"),
    ({"max_edges": 0}, r"max_edges must be an integer >= 1, got 0"),
    ({"max_batch_size": 0}, r"max_batch_size must be an integer >= 1, got 0"),
    ({"population_size": 0}, r"population_size must be an integer >= 1, got 0"),
    ({"num_generations": -1}, r"num_generations must be an integer >= 0, got -1"),
    ({"num_parents": 0}, r"num_parents must be an integer >= 1, got 0"),
    ({"mutation_rate": 1.5}, r"mutation_rate must be a probability in \[0, 1\], got 1.5"),
    ({"crossover_prob": math.nan}, r"crossover_prob must be a probability in \[0, 1\], got nan"),
    ({"generator": 0}, r"generator must be a torch.Generator, got int"),
]


@pytest.mark.parametrize("kwargs, message", _BAD_ARGUMENTS)
def test_bad_arguments_raise_naming_the_argument(kwargs, message):
    space = _space()
    kwargs = {"max_layers": space.graph.num_layers, **kwargs}
    with pytest.raises(ArchSearchError, match=message):
        optimize_acqf_edits(_random_projection(space), space, num_candidates=kwargs.pop("num_candidates", 10),
                            **kwargs)


def test_bad_acquisition_or_space_raise():
    space = _space()
    L = space.graph.num_layers
    with pytest.raises(ArchSearchError, match=r"acq_function must be callable .*got str"):
        optimize_acqf_edits("ei", space, max_layers=L)
    with pytest.raises(ArchSearchError, match=r"space must be a SearchSpace, got ArchGraph"):
        optimize_acqf_edits(_random_projection(space), _graph(), max_layers=L)
    message = r"acq_function returned \(8, 1\) for a \(4, 1, 1035\) input; expected 4"
    with pytest.raises(ArchSearchError, match=message):
        optimize_acqf_edits(lambda X: torch.zeros(2 * X.shape[0], 1), space, max_layers=L, num_candidates=4,
                            generator=_gen(0))


def test_nan_values_rank_last():
    space = _space()
    acqf = _random_projection(space)

    def with_nans(X: torch.Tensor) -> torch.Tensor:
        values = acqf(X)
        return torch.where(values > values.median(), torch.full_like(values, math.nan), values)

    result = optimize_acqf_edits(with_nans, space, max_layers=space.graph.num_layers, q=3, num_candidates=50,
                                 generator=_gen(0))
    assert torch.isfinite(result.values).all() and result.values[0] >= result.values[1] >= result.values[2]


# ---------------------------------------------------------------------------- extra candidates
class _Favourite(_LinearAcquisition):
    """A random projection, plus a large bonus for the encoding ``favourite``."""

    def __init__(self, weights: torch.Tensor, favourite: torch.Tensor) -> None:
        super().__init__(weights)
        self.favourite = favourite.to(torch.float64)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        values = super().forward(X)
        hit = (X.to(torch.float64).squeeze(-2) == self.favourite).all(-1)
        return values + 1e6 * hit


def _smallest_edit(space: SearchSpace):
    """Every channel group keeps one channel; nothing removed or added."""
    return space.uniform_edit(math.nextafter(1.0, 0.0))


def test_extra_candidate_the_acquisition_ranks_highest_is_returned():
    space = _space()
    L = space.graph.num_layers
    extra = _smallest_edit(space)
    acqf = _minus_channels(space)  # fewest channels: the extra beats every sampled student
    result = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=100, generator=_gen(1),
                                 extra_candidates=[extra])
    assert result.edits[0] == extra
    assert result.graphs[0].key() == space.apply(extra).key()
    x = encode(space.apply(extra), L, dtype=torch.float64)
    torch.testing.assert_close(result.values[0], (x @ acqf.weights)[0].to(result.values.dtype))
    # The extra counts in the budget: 99 edits are generated (the first 99 draws of the generator),
    # and the second best is the best of those.
    assert result.num_scored == sum(acqf.batch_sizes) == 100
    graphs, _, values = _brute_force(space, acqf, 99, seed=1)
    assert result.graphs[1].key() == graphs[0].key()
    torch.testing.assert_close(result.values[1], values[0].to(result.values.dtype))
    assert values[0] < result.values[0]
    # The extras are scored first, in their own batch.
    assert acqf.batch_sizes[0] == 1


def test_extra_candidates_in_the_evolutionary_method():
    space = _space()
    L = space.graph.num_layers
    extra = space.sample(3, generator=_gen(20))
    favourite = encode(space.apply(extra[1]), L)[0]
    for method in EDIT_OPTIMIZATION_METHODS:
        acqf = _Favourite(_random_projection(space, seed=5).weights, favourite)
        result = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=60, method=method,
                                     population_size=15, generator=_gen(2), extra_candidates=extra)
        assert result.edits[0] == extra[1]
        assert result.values[0] > 1e5 > result.values[1]
        assert result.num_scored == sum(acqf.batch_sizes) <= 60
        assert acqf.batch_sizes[0] == 3


def test_extra_candidates_beyond_the_budget_and_duplicates():
    space = _space()
    L = space.graph.num_layers
    extras = [space.uniform_edit(r) for r in (0.1, 0.3, 0.5, 0.7, 0.9)]
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=L, q=3, num_candidates=3, generator=_gen(0),
                                 extra_candidates=extras)
    assert result.num_scored == sum(acqf.batch_sizes) == 3
    assert set(result.edits) == set(extras[:3])  # only the first num_candidates are scored
    # A repeated extra is scored once; an extra equal to an avoided row is not returned.
    acqf = _random_projection(space)
    result = optimize_acqf_edits(acqf, space, max_layers=L, q=2, num_candidates=10, generator=_gen(0),
                                 extra_candidates=[extras[0], extras[0], extras[1]])
    assert result.num_scored == sum(acqf.batch_sizes) == 9
    favourite = encode(space.apply(extras[0]), L)
    acqf = _Favourite(_random_projection(space).weights, favourite[0])
    result = optimize_acqf_edits(acqf, space, max_layers=L, num_candidates=10, generator=_gen(0),
                                 extra_candidates=[extras[0]], X_avoid=favourite)
    assert result.edits[0] != extras[0] and result.values[0] < 1e5
    assert result.num_scored == 9


def test_invalid_extra_candidate_raises():
    space = _space()
    L = space.graph.num_layers
    good = space.identity_edit()
    short = Edit(good.remove_mask[:-1], good.shrink_ratios)
    message = r"extra_candidates\[1\] does not fit the space: .*remove_mask has"
    with pytest.raises(ArchSearchError, match=message):
        optimize_acqf_edits(_random_projection(space), space, max_layers=L, num_candidates=10,
                            generator=_gen(0), extra_candidates=[good, short])
    bad_ratio = Edit(good.remove_mask, (1.0,) * space.num_groups)
    with pytest.raises(ArchSearchError, match=r"extra_candidates\[0\] does not fit the space: .*must lie in"):
        optimize_acqf_edits(_random_projection(space), space, max_layers=L, num_candidates=10,
                            generator=_gen(0), extra_candidates=[bad_ratio])
    magnitude = Edit(good.remove_mask, good.shrink_ratios, (), "magnitude")  # no importance in this space
    with pytest.raises(ArchSearchError, match=r"extra_candidates\[0\] does not fit the space: .*magnitude"):
        optimize_acqf_edits(_random_projection(space), space, max_layers=L, num_candidates=10,
                            generator=_gen(0), extra_candidates=[magnitude])
    message = r"extra_candidates\[0\] does not fit the space: Expected an Edit"
    with pytest.raises(ArchSearchError, match=message):
        optimize_acqf_edits(_random_projection(space), space, max_layers=L, num_candidates=10,
                            generator=_gen(0), extra_candidates=["edit"])
