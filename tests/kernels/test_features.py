r"""Tests of botorch_archsearch/kernels/features.py: the Weisfeiler-Lehman and edit-vector
feature maps of the ``wl`` and ``edit`` surrogates."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.gp import architecture_gp, fit_architecture_gp
from botorch_archsearch.graph import LAYER_TYPES, count_params, encode, trace
from botorch_archsearch.kernels import ArchitectureKernel, EditFeatures, WLFeatures, edit_vector, wl_labels
from botorch_archsearch.kernels.features import wl_initial_label, wl_mix, wl_relabel
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    torch.manual_seed(0)
    return SearchSpace(trace(get_teacher("resnet18", num_classes=10, width=0.125).eval(), torch.randn(1, 3, 32, 32)))


@pytest.fixture(scope="module")
def students(space):
    edits = space.sample(10, generator=torch.Generator().manual_seed(0))
    return edits, [space.apply(e) for e in edits]


def _reference_wl(graph, iterations: int) -> Counter:
    """WL subtree labels from the graph's own nodes (not the encoding): type and channel bucket,
    then each layer's label with the labels of its inputs and of its consumers."""
    nodes = graph.nodes
    label = [wl_initial_label(LAYER_TYPES.index(n.op) + 1, n.out_channels) for n in nodes]
    consumers = [[] for _ in nodes]
    for j, n in enumerate(nodes):
        for i in n.inputs:
            consumers[i].append(j)
    counts = Counter(label)
    for _ in range(iterations):
        label = [wl_relabel(label[j], [label[i] for i in nodes[j].inputs], [label[k] for k in consumers[j]])
                 for j in range(len(nodes))]
        counts.update(label)
    return counts


def test_the_wl_hash_primitives():
    # SplitMix64 seeded with 0 outputs wl_mix(k * golden) at its k-th step: its published first outputs
    golden = 0x9E3779B97F4A7C15
    assert [wl_mix(k * golden % 2**64) for k in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                                               0x06C45D188009454F]
    assert len({wl_mix(i) for i in range(10_000)}) == 10_000  # a bijection: no collisions
    # the multisets of neighbours' labels: order does not count, multiplicity and side do
    a, b, c = wl_initial_label(1, 8), wl_initial_label(2, 8), wl_initial_label(1, 16)
    assert len({a, b, c}) == 3 and wl_initial_label(1, 9) == a  # log2(9) and log2(10) round to 3
    assert wl_relabel(a, [b, c], []) == wl_relabel(a, [c, b], [])
    assert len({wl_relabel(a, [b], []), wl_relabel(a, [b, b], []), wl_relabel(a, [], [b]), wl_relabel(a, [c], []),
                wl_relabel(b, [b], [])}) == 5


@pytest.mark.parametrize("iterations", [0, 1, 2, 3])
def test_wl_labels_match_a_reference_on_the_graph(space, students, iterations):
    _, graphs = students
    X = encode(graphs + [space.graph], max_layers=space.graph.num_layers + 3)  # padding changes nothing
    for row, graph in zip(X, graphs + [space.graph]):
        assert wl_labels(row, iterations=iterations) == _reference_wl(graph, iterations)


def test_wl_features_are_the_hashed_unit_norm_counts_and_their_kernel_is_psd(space, students):
    _, graphs = students
    X = encode(graphs, max_layers=space.graph.num_layers, dtype=torch.float64)
    features = WLFeatures(dim=256)
    phi = features(X)
    assert phi.shape == (10, 256) and phi.dtype == torch.float64
    torch.testing.assert_close(phi.norm(dim=-1), torch.ones(10, dtype=torch.float64))
    expected = torch.zeros(256, dtype=torch.float64)
    for label, count in wl_labels(X[3]).items():
        expected[features.bucket(label)] += count
    torch.testing.assert_close(phi[3], expected / expected.norm())
    for i, row in enumerate(X):  # every row, computed at once, is the reference's one row at a time
        expected = torch.zeros(256, dtype=torch.float64)
        for label, count in wl_labels(row).items():
            expected[features.bucket(label)] += count
        torch.testing.assert_close(phi[i], expected / expected.norm(), rtol=0, atol=1e-15)
    padded = encode(graphs, max_layers=space.graph.num_layers + 5, dtype=torch.float64)
    torch.testing.assert_close(features(padded), phi, rtol=0, atol=1e-15)  # padding rows change nothing
    torch.testing.assert_close(features(X.view(2, 5, -1)), phi.view(2, 5, -1))
    kernel = ArchitectureKernel(features).to(torch.float64)
    with torch.no_grad():
        K = kernel(X).to_dense()
    assert torch.linalg.eigvalsh(K).min() >= -1e-10
    torch.testing.assert_close(K.diagonal(), torch.ones(10, dtype=torch.float64))
    assert (K[~torch.eye(10, dtype=torch.bool)] < 1).all()  # distinct students are told apart
    with pytest.raises(EncodingError, match="multiple of 15"):
        features(X[:, :-1])


def test_edit_vectors_are_kept_fractions_removals_and_skips(space, students):
    edits, graphs = students
    for edit in edits:
        v = edit_vector(space, edit)
        G, R = space.num_groups, len(space.removable)
        assert len(v) == G + R + len(space.skip_candidates)
        np.testing.assert_array_equal(v[:G], [1 - r for r in edit.shrink_ratios])
        assert [bool(x) for x in v[G:G + R]] == [edit.remove_mask[i] for i in space.removable]
        assert {c for c, x in zip(space.skip_candidates, v[G + R:]) if x} == set(edit.skips)
    X = encode(graphs, max_layers=space.graph.num_layers, dtype=torch.float64)
    features = EditFeatures(space)
    features.add(graphs, X, edits)
    torch.testing.assert_close(features(X[[2, 0]]), torch.from_numpy(np.stack([edit_vector(space, edits[i])
                                                                                for i in (2, 0)])))
    with pytest.raises(ArchSearchError, match="edit is unknown; register it"):
        EditFeatures(space)(X[:1])
    with pytest.raises(ArchSearchError, match="needs the students' edits"):
        features.add(graphs, X)


@pytest.mark.parametrize("kernel", ["edit", "wl"])
def test_the_other_surrogates_fit_their_hyperparameters_by_lbfgs(space, kernel):
    edits = space.sample(24, generator=torch.Generator().manual_seed(1))
    graphs = [space.apply(e) for e in edits]
    X = encode(graphs, max_layers=space.graph.num_layers, dtype=torch.float64)
    Y = torch.tensor([[1 - count_params(g) / count_params(space.graph)] for g in graphs], dtype=torch.float64)
    features = None
    if kernel == "edit":
        features = EditFeatures(space)
        features.add(graphs, X, edits)
        with pytest.raises(ArchSearchError, match="needs features=EditFeatures"):
            architecture_gp(X, Y, kernel="edit")
    model = architecture_gp(X[:16], Y[:16], kernel=kernel, features=features)
    with torch.no_grad():
        K = model.covar_module(X[:16]).to_dense()
    assert torch.linalg.eigvalsh(K).min() >= -1e-8
    before = model.covar_module.base_kernel.lengthscale.detach().clone()
    if kernel == "edit":  # BoTorch's dimension-scaled prior on the ARD lengthscales, starting at its mode
        prior = model.covar_module.base_kernel.lengthscale_prior
        d = len(edit_vector(space, edits[0]))
        assert before.shape == (1, d) and float(prior.loc) == pytest.approx(math.sqrt(2) + math.log(d) / 2)
        torch.testing.assert_close(before, torch.full_like(before, math.exp(math.sqrt(2) + math.log(d) / 2 - 3)))
        assert float(model.covar_module.embedding_scale) == 1.0  # the [0, 1] entries the prior assumes
    fit = fit_architecture_gp(model, max_steps=50)
    assert fit.losses[-1] < fit.losses[0] - 0.01 and 0 < fit.num_steps <= 50
    assert not torch.equal(model.covar_module.base_kernel.lengthscale, before)
    assert not list(model.covar_module.embedding.parameters())  # nothing to learn but the GP's hyperparameters
    with torch.no_grad():
        mean = model.posterior(X[16:]).mean.squeeze(-1)
    assert torch.isfinite(mean).all()
