"""Tests of the multiple-kernel proposal strategy (paper section 3.3)."""

import functools
import threading

import pytest
import torch
from botorch.models import SingleTaskGP

from botorch_archsearch.acquisition import propose_architectures
from botorch_archsearch.acquisition.multi_kernel import random_subset
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_params, encode, num_features, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

SMALL = dict(hidden_size=8, num_layers=1)


@functools.lru_cache(maxsize=None)
def _setup():
    graph = trace(get_teacher("resnet18", width=0.125), torch.randn(1, 3, 32, 32))
    space = SearchSpace(graph)
    students = [space.apply(e) for e in space.sample(10, generator=torch.Generator().manual_seed(0))]
    X = encode(students, graph.num_layers, dtype=torch.float64)
    Y = torch.tensor([[1 - count_params(s) / count_params(graph)] for s in students], dtype=torch.float64)
    return space, graph.num_layers, X, Y


def _propose(seed=0, **kwargs):
    space, L, X, Y = _setup()
    options = dict(max_layers=L, num_kernels=3, num_candidates=40, kernel_options=SMALL,
                   fit_options=dict(max_steps=2), generator=torch.Generator().manual_seed(seed))
    options.update(kwargs)
    return propose_architectures(space, X, Y, **options)


def test_proposals_are_distinct_new_and_one_per_kernel():
    _, _, X, _ = _setup()
    proposal = _propose()
    assert len(proposal.graphs) == len(proposal.models) == len(proposal.subsets) == 3
    assert proposal.X.shape == (3, X.shape[1])
    assert len({g.key() for g in proposal.graphs}) == 3
    for row in proposal.X:
        assert not (X == row).all(-1).any(), "a proposal repeats an evaluated architecture"
    assert torch.equal(proposal.X, encode(proposal.graphs, X.shape[1] // num_features(), dtype=X.dtype))
    assert torch.isfinite(proposal.values).all()


def test_each_kernel_is_fitted_on_its_own_subset():
    proposal = _propose()
    for model, subset in zip(proposal.models, proposal.subsets):
        assert len(subset) >= 2
        assert model.train_inputs[0].shape[0] == len(subset)
    # the kernels start from different random weights
    w = [m.covar_module.embedding.lstm.weight_ih_l0 for m in proposal.models]
    assert not torch.equal(w[0], w[1])


def test_reproducible_from_the_generator():
    a, b = _propose(seed=3), _propose(seed=3)
    assert [g.key() for g in a.graphs] == [g.key() for g in b.graphs]
    torch.testing.assert_close(a.values, b.values)


def test_result_does_not_depend_on_num_workers():
    one, three = _propose(seed=5, num_workers=1), _propose(seed=5, num_workers=3)
    assert [g.key() for g in one.graphs] == [g.key() for g in three.graphs]
    torch.testing.assert_close(one.values, three.values)
    assert [f.losses for f in one.fits] == [f.losses for f in three.fits]
    assert all(torch.equal(a, b) for a, b in zip(one.subsets, three.subsets))


def test_kernels_are_fitted_concurrently_and_threads_restored(monkeypatch):
    from botorch_archsearch.acquisition import multi_kernel

    barrier = threading.Barrier(2, timeout=60)  # breaks unless two fits run at the same time
    names = []
    fit = multi_kernel.fit_architecture_gp

    def fit_together(model, **options):
        names.append(threading.current_thread().name)
        barrier.wait()
        return fit(model, **options)

    monkeypatch.setattr(multi_kernel, "fit_architecture_gp", fit_together)
    threads = torch.get_num_threads()
    proposal = _propose(num_kernels=2, num_workers=2)
    assert len(proposal.graphs) == 2 and len(set(names)) == 2
    assert torch.get_num_threads() == threads


def test_subset_keeps_about_half_and_at_least_the_minimum():
    g = torch.Generator().manual_seed(0)
    sizes = [len(random_subset(100, 0.5, 2, g)) for _ in range(200)]
    assert 45 <= sum(sizes) / len(sizes) <= 55
    assert all(len(random_subset(3, 0.01, 2, g)) == 2 for _ in range(50))
    s = random_subset(50, 0.5, 2, g)
    assert len(set(s.tolist())) == len(s) and bool((s[1:] > s[:-1]).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_kernels=0), "num_kernels"),
        (dict(acquisition="ucb"), "acquisition"),
        (dict(subset_prob=0.0), "subset_prob"),
        (dict(min_subset=1), "min_subset"),
        (dict(min_subset=20), "min_subset=20"),
        (dict(num_workers=0), "num_workers"),
        (dict(method="grid"), "method"),
        (dict(num_candidates=0), "num_candidates"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ArchSearchError, match=match):
        _propose(**kwargs)


def test_random_acquisition_fits_nothing_and_picks_uniformly_among_the_candidates():
    """``acquisition="random"`` (the surrogate's ablation): no fit, K distinct new proposals, reproducible
    and independent of the workers, each kernel's pick a uniform draw over its candidates."""
    _, _, X, _ = _setup()
    proposal = _propose(seed=7, acquisition="random")
    assert proposal.fits == [None, None, None]
    assert len({g.key() for g in proposal.graphs}) == 3
    for row in proposal.X:
        assert not (X == row).all(-1).any()
    assert ((proposal.values >= 0) & (proposal.values < 1)).all()
    again = _propose(seed=7, acquisition="random", num_workers=1)
    assert [g.key() for g in again.graphs] == [g.key() for g in proposal.graphs]
    torch.testing.assert_close(again.values, proposal.values)
    # the learned kernel's pick from the same candidates is not the random one in general
    logei = _propose(seed=7)
    assert [g.key() for g in logei.graphs] != [g.key() for g in proposal.graphs]


def test_random_choice_scores_are_uniform_and_seeded():
    from botorch_archsearch.acquisition import RandomChoice

    _, _, X, Y = _setup()
    model = SingleTaskGP(X, Y)
    scores = RandomChoice(model, generator=torch.Generator().manual_seed(0))(torch.rand(4000, 1, 3, dtype=X.dtype))
    assert scores.shape == (4000,) and scores.dtype == X.dtype
    again = RandomChoice(model, generator=torch.Generator().manual_seed(0))(torch.rand(4000, 1, 3, dtype=X.dtype))
    assert torch.equal(scores, again)
    # uniform on [0, 1): each decile holds 400 +- 4.5 sd (binomial); the best of 10 candidates is each one with 1/10
    counts = torch.histc(scores, bins=10, min=0, max=1)
    assert ((counts - 400).abs() < 80).all(), counts
    winners = scores.reshape(400, 10).argmax(-1).bincount(minlength=10)
    assert ((winners - 40).abs() < 25).all(), winners
