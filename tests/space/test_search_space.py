r"""Tests of botorch_archsearch/space/search_space.py: which edits exist, how they are checked,
applied and sampled (paper section 3.2, appendix 6.4)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.graph import ArchGraph, count_params, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import REMOVAL_PROBS, SKIP_PROBS, Edit, SearchSpace

ZOO = ("vgg19", "resnet18", "resnet34", "shufflenet", "mobilenetv2")
# Layer types the paper's removal operator may turn into identities (written out, not imported).
REMOVABLE_OPS = {
    "conv", "linear", "batchnorm", "relu", "relu6", "activation", "maxpool", "avgpool",
    "adaptive_avgpool", "dropout",
}


@functools.lru_cache(maxsize=None)
def _graph(name: str) -> ArchGraph:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    return trace(teacher, torch.randn(1, 3, 32, 32))


class _PoolNet(nn.Module):
    """A small net with layers of every kind of removability, on 3 x 8 x 8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)  # channels change
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)  # stride 2
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)  # same shape: removable
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(8, 8, 3, stride=2, padding=1)  # stride 2, same channels
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(8, 16, 1)  # channels change
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)  # same shape: removable
        self.drop = nn.Dropout(0.1)
        self.fc1 = nn.Linear(64, 64)  # same shape: removable
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)  # the output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.bn1(self.conv1(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avg(self.conv4(self.relu3(self.conv3(x))))
        return self.fc2(self.relu4(self.fc1(self.drop(torch.flatten(x, 1)))))


@functools.lru_cache(maxsize=None)
def _pool_graph() -> ArchGraph:
    torch.manual_seed(0)
    return trace(_PoolNet().eval(), torch.randn(1, 3, 8, 8))


def _index(graph: ArchGraph) -> dict[str, int]:
    return {node.name: j for j, node in enumerate(graph.nodes)}


def _brute_force_skips(graph: ArchGraph) -> set[tuple[int, int]]:
    nodes = graph.nodes
    return {
        (i, j)
        for j in range(1, len(nodes))
        for i in range(j)
        if nodes[i].out_shape == nodes[j].in_shape and i not in nodes[j].inputs and nodes[j].op != "concat"
    }


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- the space
def test_removable_layers_of_a_small_net():
    graph = _pool_graph()
    index = _index(graph)
    assert list(index) == [
        "x", "conv1", "bn1", "relu1", "pool", "conv2", "bn2", "relu2", "conv3", "relu3", "conv4",
        "avg", "flatten", "drop", "fc1", "relu4", "fc2",
    ]
    space = SearchSpace(graph)
    removable = {graph.nodes[j].name for j in space.removable}
    assert removable == {"bn1", "relu1", "conv2", "bn2", "relu2", "relu3", "avg", "drop", "fc1", "relu4"}
    assert list(space.removable) == sorted(space.removable)
    # Shape-changing layers are not removable: stride-2 pool/conv, channel-changing convs.
    for name in ("x", "conv1", "pool", "conv3", "conv4", "flatten", "fc2"):
        assert index[name] not in space.removable, name


@pytest.mark.parametrize("name", ZOO)
def test_removable_layers_brute_force(name):
    graph = _graph(name)
    nodes = graph.nodes
    expected = [
        j for j, n in enumerate(nodes[:-1]) if n.op in REMOVABLE_OPS and n.in_shape == n.out_shape
    ]
    space = SearchSpace(graph)
    assert list(space.removable) == expected
    for j, n in enumerate(nodes):
        if n.op in ("conv", "maxpool", "avgpool") and n.stride == 2:
            assert j not in space.removable


def test_skip_candidates_of_a_small_net():
    graph = _pool_graph()
    index = _index(graph)
    space = SearchSpace(graph)
    assert set(space.skip_candidates) == _brute_force_skips(graph)
    # e.g. bn2 -> conv3 (8 x 4 x 4 both), flatten -> fc1 is already an edge, drop -> relu4 fits.
    assert (index["bn2"], index["conv3"]) in space.skip_candidates
    assert (index["drop"], index["relu4"]) in space.skip_candidates
    assert (index["flatten"], index["drop"]) not in space.skip_candidates
    assert (index["relu1"], index["conv2"]) not in space.skip_candidates  # 8x8 vs 4x4


@pytest.mark.parametrize("name", ZOO)
def test_skip_candidates_brute_force(name):
    graph = _graph(name)
    space = SearchSpace(graph)
    candidates = space.skip_candidates
    assert list(candidates) == sorted(set(candidates))
    assert set(candidates) == _brute_force_skips(graph)
    nodes = graph.nodes
    for i, j in candidates:
        assert i < j and nodes[i].out_shape == nodes[j].in_shape
        assert i not in nodes[j].inputs and nodes[j].op != "concat"


@pytest.mark.parametrize("name", ZOO)
def test_apply_does_not_mutate_the_teacher(name):
    graph = _graph(name)
    nodes, key = graph.nodes, graph.key()
    table = [column.copy() for column in graph.table]
    space = SearchSpace(graph)
    for edit in space.sample(30, generator=_gen(1)):
        student = space.student(edit)
        assert student.teacher is graph
        assert student.edit is edit
        assert space.apply(edit) == student.graph and student.key() == student.graph.key()
        assert student.graph.num_layers <= graph.num_layers
        assert count_params(student.graph) <= count_params(graph)
    assert graph.nodes == nodes and graph.key() == key
    for before, after in zip(table, graph.table):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", ZOO)
def test_identity_edit_gives_the_teacher(name):
    graph = _graph(name)
    space = SearchSpace(graph)
    edit = space.identity_edit()
    assert edit.remove_mask == (False,) * graph.num_layers
    assert edit.shrink_ratios == (0.0,) * space.num_groups and edit.skips == ()
    student = space.apply(edit)
    assert student == graph
    assert student.nodes == graph.nodes
    assert count_params(student) == count_params(graph)


def test_options_rebuild_the_space():
    graph = _graph("resnet18")
    space = SearchSpace(graph, skip=False, channel_multiple=4, removal_probs=(0.2, 0.4),
                        shrink_range=(0.1, 0.6), skip_probs=(0.01,), max_skips_per_layer=3)
    options = space.options
    assert options == {
        "removal": True, "shrinkage": True, "skip": False, "channel_multiple": 4,
        "removal_probs": [0.2, 0.4], "shrink_range": [0.1, 0.6], "skip_probs": [0.01],
        "max_skips_per_layer": 3, "channel_order": "even", "shrink_spread": None,
    }
    again = SearchSpace(graph, **options)
    assert again.options == options
    assert again.sample(20, generator=_gen(5)) == space.sample(20, generator=_gen(5))
    assert SearchSpace(graph).options["removal_probs"] == list(REMOVAL_PROBS)
    assert SearchSpace(graph).options["skip_probs"] == list(SKIP_PROBS)


# ---------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", ["vgg19", "shufflenet"])
def test_sample_is_reproducible(name):
    space = SearchSpace(_graph(name))
    a = space.sample(40, generator=_gen(3))
    assert a == space.sample(40, generator=_gen(3))
    assert SearchSpace(_graph(name)).sample(40, generator=_gen(3)) == a
    b = space.sample(40, generator=_gen(4))
    assert a != b
    assert len(set(a)) == 40  # random edits of a large space do not repeat
    assert [space.apply(e).key() for e in a] == [space.apply(e).key() for e in space.sample(40, generator=_gen(3))]
    for edit in a:
        space.check(edit)  # every sampled edit is valid


def test_sample_sizes():
    space = SearchSpace(_graph("vgg19"))
    assert space.sample(0, generator=_gen(0)) == []
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(InvalidEditError, match=rf"n must be an integer >= 0, got {bad!r}"):
            space.sample(bad)


@pytest.fixture(scope="module")
def vgg_samples():
    """2000 edits of VGG-19 with the reference sampler, no cap on skips per layer."""
    space = SearchSpace(_graph("vgg19"), max_skips_per_layer=10**6)
    return space, space.sample(2000, generator=_gen(11))


def test_removal_frequency(vgg_samples):
    space, edits = vgg_samples
    removed = np.array([[e.remove_mask[j] for j in space.removable] for e in edits])
    assert not np.array([[e.remove_mask[j] for j in range(space.graph.num_layers) if j not in space.removable]
                         for e in edits]).any()
    assert abs(removed.mean() - np.mean(REMOVAL_PROBS)) < 0.05
    # One removal probability per edit, drawn from {0.3, ..., 0.7}: the per-edit fractions spread
    # much wider than a fixed probability of 0.5 would give (binomial sd ~ 0.075 for 45 layers).
    per_edit = removed.mean(1)
    assert per_edit.std() > 0.11
    assert np.quantile(per_edit, 0.1) < 0.4 and np.quantile(per_edit, 0.9) > 0.6


def test_removal_frequency_follows_removal_probs():
    space = SearchSpace(_graph("vgg19"), removal_probs=(0.3,))
    removed = np.array([[e.remove_mask[j] for j in space.removable] for e in space.sample(1000, generator=_gen(2))])
    assert abs(removed.mean() - 0.3) < 0.02


def test_shrink_ratios_are_uniform(vgg_samples):
    space, edits = vgg_samples
    ratios = np.array([e.shrink_ratios for e in edits])
    assert ratios.shape == (2000, space.num_groups)
    assert ratios.min() >= 0.0 and ratios.max() < 1.0
    assert abs(ratios.mean() - 0.5) < 0.05
    counts, _ = np.histogram(ratios, bins=10, range=(0.0, 1.0))
    np.testing.assert_allclose(counts / ratios.size, 0.1, atol=0.01)


def test_shrink_range():
    space = SearchSpace(_graph("vgg19"), shrink_range=(0.2, 0.4))
    ratios = np.array([e.shrink_ratios for e in space.sample(500, generator=_gen(6))])
    assert ratios.min() >= 0.2 and ratios.max() < 0.4
    assert abs(ratios.mean() - 0.3) < 0.01
    fixed = SearchSpace(_graph("vgg19"), shrink_range=(0.25, 0.25))
    assert {r for e in fixed.sample(20, generator=_gen(6)) for r in e.shrink_ratios} == {0.25}


def test_skip_frequency(vgg_samples):
    space, edits = vgg_samples
    num = sum(len(e.skips) for e in edits)
    fraction = num / (len(edits) * len(space.skip_candidates))
    assert abs(fraction - np.mean(SKIP_PROBS)) < 0.1 * np.mean(SKIP_PROBS)
    allowed = set(space.skip_candidates)
    assert all(s in allowed for e in edits for s in e.skips)


def test_skip_probs():
    graph = _graph("vgg19")
    assert all(e.skips == () for e in SearchSpace(graph, skip_probs=(0.0,)).sample(50, generator=_gen(1)))
    full = SearchSpace(graph, skip_probs=(1.0,), max_skips_per_layer=10**6)
    assert all(e.skips == full.skip_candidates for e in full.sample(5, generator=_gen(1)))


def test_operators_switched_off():
    graph = _graph("resnet18")
    no_removal = SearchSpace(graph, removal=False).sample(200, generator=_gen(1))
    assert not any(any(e.remove_mask) for e in no_removal)
    assert any(e.skips for e in no_removal) and any(r > 0 for e in no_removal for r in e.shrink_ratios)
    no_skip = SearchSpace(graph, skip=False).sample(200, generator=_gen(1))
    assert all(e.skips == () for e in no_skip)
    assert any(any(e.remove_mask) for e in no_skip)
    space = SearchSpace(graph, shrinkage=False)
    for edit in space.sample(100, generator=_gen(1)):
        assert edit.shrink_ratios == (0.0,) * space.num_groups
        student = space.student(edit)
        kept = student.teacher_layers
        for q, node in enumerate(student.graph.nodes):
            teacher_node = graph.nodes[kept[q]]
            if node.op != "add" or teacher_node.op == "add":
                assert node.out_channels == teacher_node.out_channels
                assert node.out_shape == teacher_node.out_shape
    removal_only = SearchSpace(graph, shrinkage=False, skip=False).sample(100, generator=_gen(1))
    assert all(e.skips == () and not any(e.shrink_ratios) for e in removal_only)
    assert any(any(e.remove_mask) for e in removal_only)


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_max_skips_per_layer_keeps_the_first_drawn(cap):
    graph = _graph("resnet34")
    capped = SearchSpace(graph, skip_probs=(0.3,), max_skips_per_layer=cap)
    free = SearchSpace(graph, skip_probs=(0.3,), max_skips_per_layer=10**6)
    n_crowded = 0
    for a, b in zip(capped.sample(50, generator=_gen(8)), free.sample(50, generator=_gen(8))):
        assert a.remove_mask == b.remove_mask and a.shrink_ratios == b.shrink_ratios
        expected, seen = [], {}
        for i, j in b.skips:  # candidates are drawn in sorted order
            seen[j] = seen.get(j, 0) + 1
            if seen[j] <= cap:
                expected.append((i, j))
        assert a.skips == tuple(expected)
        per_layer = np.bincount([j for _, j in a.skips], minlength=graph.num_layers)
        assert per_layer.max(initial=0) <= cap
        n_crowded += len(a.skips) < len(b.skips)
        capped.check(a)
    assert n_crowded > 0


# ---------------------------------------------------------------------------- errors
def _valid_edit(space: SearchSpace) -> Edit:
    return space.sample(1, generator=_gen(0))[0]


def test_check_wrong_lengths():
    space = SearchSpace(_pool_graph())
    n, g = space.graph.num_layers, space.num_groups
    with pytest.raises(InvalidEditError, match=rf"remove_mask has {n - 1} entries.*{n} layers"):
        space.apply(Edit((False,) * (n - 1), (0.0,) * g))
    with pytest.raises(InvalidEditError, match=rf"remove_mask has {n + 1} entries"):
        space.check(Edit((False,) * (n + 1), (0.0,) * g))
    with pytest.raises(InvalidEditError, match=rf"shrink_ratios has {g + 1} entries.*{g} channel groups"):
        space.apply(Edit((False,) * n, (0.0,) * (g + 1)))
    with pytest.raises(InvalidEditError, match="Expected an Edit, got dict"):
        space.check(space.identity_edit().to_dict())
    # An edit of another teacher does not fit.
    with pytest.raises(InvalidEditError, match="remove_mask"):
        space.apply(_valid_edit(SearchSpace(_graph("vgg19"))))


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1, float("nan")])
def test_check_ratio_outside_unit_interval(ratio):
    space = SearchSpace(_pool_graph())
    ratios = (0.0,) * (space.num_groups - 1) + (ratio,)
    with pytest.raises(InvalidEditError, match=rf"shrink_ratios must lie in \[0, 1\), got \[{ratio!r}\]"):
        space.apply(Edit((False,) * space.graph.num_layers, ratios))


def test_check_non_removable_layer():
    graph = _pool_graph()
    index = _index(graph)
    space = SearchSpace(graph)
    for name in ("conv1", "pool", "conv3", "flatten", "fc2", "x"):
        mask = tuple(j == index[name] for j in range(graph.num_layers))
        with pytest.raises(InvalidEditError, match=rf"removes layers \[{index[name]}\] which cannot be removed"):
            space.apply(Edit(mask, (0.0,) * space.num_groups))


def test_check_skip_not_a_candidate():
    graph = _pool_graph()
    index = _index(graph)
    space = SearchSpace(graph)
    for skip in [(index["relu1"], index["conv2"]), (index["conv1"], index["bn1"]),
                 (index["conv3"], index["bn2"]), (index["x"], index["x"])]:
        with pytest.raises(InvalidEditError, match=rf"skips \[{re_tuple(skip)}\] are not allowed"):
            space.apply(Edit((False,) * graph.num_layers, (0.0,) * space.num_groups, (skip,)))


def re_tuple(skip: tuple[int, int]) -> str:
    return rf"\({skip[0]}, {skip[1]}\)"


def test_check_too_many_skips_into_one_layer():
    graph = _graph("resnet18")
    space = SearchSpace(graph, max_skips_per_layer=2)
    by_dst: dict[int, list] = {}
    for s in space.skip_candidates:
        by_dst.setdefault(s[1], []).append(s)
    j, skips = next((j, s) for j, s in by_dst.items() if len(s) >= 3)
    base = space.identity_edit()
    space.check(Edit(base.remove_mask, base.shrink_ratios, skips[:2]))
    with pytest.raises(InvalidEditError, match=rf"max_skips_per_layer=2 skips into layers \{{{j}: 3\}}"):
        space.apply(Edit(base.remove_mask, base.shrink_ratios, skips[:3]))


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"channel_multiple": 0}, r"channel_multiple must be an integer >= 1, got 0"),
        ({"channel_multiple": 2.0}, r"channel_multiple must be an integer >= 1, got 2.0"),
        ({"channel_multiple": True}, r"channel_multiple must be an integer >= 1, got True"),
        ({"max_skips_per_layer": -1}, r"max_skips_per_layer must be an integer >= 0, got -1"),
        ({"removal_probs": [1.5]}, r"removal_probs .*got \[1.5\]"),
        ({"removal_probs": []}, r"removal_probs .*non-empty.*got \[\]"),
        ({"removal_probs": ["a"]}, r"removal_probs must be a sequence of numbers, got \['a'\]"),
        ({"skip_probs": [-0.1]}, r"skip_probs .*got \[-0.1\]"),
        ({"shrink_range": (0.5, 0.2)}, r"shrink_range .*got \(0.5, 0.2\)"),
        ({"shrink_range": (0.0, 1.5)}, r"shrink_range .*got \(0.0, 1.5\)"),
        ({"shrink_range": (1.0, 1.0)}, r"shrink_range .*got \(1.0, 1.0\)"),
        ({"shrink_range": (0.1,)}, r"shrink_range must be \(low, high\), got \(0.1,\)"),
    ],
)
def test_bad_options(options, pattern):
    with pytest.raises(InvalidEditError, match=pattern):
        SearchSpace(_pool_graph(), **options)


def test_bad_graph():
    with pytest.raises(InvalidEditError, match="expects an ArchGraph, got _PoolNet"):
        SearchSpace(_PoolNet())


def test_repr():
    space = SearchSpace(_pool_graph())
    assert repr(space) == (
        f"SearchSpace(layers=17, removable=10, groups={space.num_groups}, "
        f"skip_candidates={len(space.skip_candidates)}, channel_order='even')"
    )
    assert space.num_groups == 5  # conv1, conv2, conv3, conv4, fc1: their own channels each
