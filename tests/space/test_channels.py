r"""Tests of botorch_archsearch/space/channels.py: channel groups and the channels a student keeps
(paper appendix 6.4: "for layers in the same group, the number of channels are always shrinked
with the same ratio")."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.graph import ArchGraph, build_student, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import ChannelModel, Edit, SearchSpace, shuffle_permutation

# Layers whose output channel c depends on input channel c only.
CHANNELWISE = {"batchnorm", "relu", "relu6", "activation", "maxpool", "avgpool", "adaptive_avgpool", "dropout", "add"}


@functools.lru_cache(maxsize=None)
def _graph(name: str) -> ArchGraph:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    return trace(teacher, torch.randn(1, 3, 32, 32))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _depthwise(node) -> bool:
    return node.op == "conv" and 1 < node.groups == node.in_channels == node.out_channels


def _expected_keep(ratio: float, channels: int, multiple: int = 1) -> int:
    k = math.ceil((1.0 - ratio) * channels)
    if channels % multiple == 0:
        k = math.ceil(k / multiple) * multiple
    return min(channels, max(1, k))


# ---------------------------------------------------------------------------- shuffle
@pytest.mark.parametrize("channels, groups", [(4, 2), (12, 3), (24, 4), (58, 2), (7, 1), (6, 6)])
def test_shuffle_permutation_matches_channel_shuffle(channels, groups):
    perm = shuffle_permutation(channels, groups)
    assert perm.tolist() == [(p % groups) * (channels // groups) + p // groups for p in range(channels)]
    x = torch.arange(channels, dtype=torch.float64).view(1, channels, 1, 1)
    shuffled = x.view(1, groups, channels // groups, 1, 1).transpose(1, 2).reshape(1, channels, 1, 1)
    assert shuffled.flatten().long().tolist() == perm.tolist()


# ---------------------------------------------------------------------------- keep counts
@pytest.mark.parametrize("multiple", [1, 2, 8])
def test_keep_count_brute_force(multiple):
    model = ChannelModel(_graph("vgg19"), channel_multiple=multiple)
    rng = np.random.default_rng(0)
    for channels in (1, 3, 7, 8, 12, 16, 25, 64, 100):
        for ratio in np.concatenate([rng.random(50), [0.0, 0.5, 0.999999]]):
            k = model.keep_count(float(ratio), channels, 1)
            assert k == _expected_keep(float(ratio), channels, multiple), (channels, ratio)
            assert 1 <= k <= channels
            if channels % multiple == 0:
                assert k % multiple == 0


@pytest.mark.parametrize("multiple", [1, 8])
def test_keep_count_with_blocks(multiple):
    model = ChannelModel(_graph("vgg19"), channel_multiple=multiple)
    for channels, blocks in ((8, 2), (24, 2), (26, 2), (12, 3), (48, 4)):
        for ratio in np.linspace(0.0, 0.99, 34):
            k = model.keep_count(float(ratio), channels, blocks)
            assert k % blocks == 0 and blocks <= k <= channels, (channels, blocks, ratio)
            assert k >= math.ceil((1.0 - ratio) * channels) - 1e-9
            step = multiple * blocks // math.gcd(multiple, blocks)
            if channels % step == 0:
                assert k % step == 0


@pytest.mark.parametrize("multiple", [1, 8])
def test_group_keeps_ceil_of_its_ratio(multiple):
    """VGG-19 (no grouped convolutions, every width divisible by 8): a group with ratio r keeps
    ceil((1 - r) * C) channels, rounded up to the channel multiple, in every layer it holds."""
    graph = _graph("vgg19")
    space = SearchSpace(graph, removal=False, skip=False, channel_multiple=multiple)
    model = space.channels
    roots = model.parent
    for edit in space.sample(60, generator=_gen(1)):
        plan = space.plan(edit)
        for g, root in enumerate(model.group_roots):
            members = [j for j in range(graph.num_layers) if roots[j] == roots[root]]
            assert set(model.group_members[g]) <= set(members)
            channels = graph.nodes[root].out_channels
            expected = _expected_keep(edit.shrink_ratios[g], channels, multiple)
            for j in members:
                assert plan.counts[j] == expected, (g, j)
            if multiple == 8:
                assert expected % 8 == 0


def test_channel_multiple_only_where_it_divides():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 12, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(12, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.fc = nn.Linear(16 * 16, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.relu2(self.conv2(self.relu1(self.conv1(x)))), 1))

    graph = trace(Net(), torch.randn(1, 3, 4, 4))
    space = SearchSpace(graph, channel_multiple=8)
    assert space.num_groups == 2
    # Random ratios: (1 - r) * C is then never within rounding error of an integer.
    for ratio in np.random.default_rng(0).random(30) * 0.95:
        plan = space.plan(Edit((False,) * graph.num_layers, (float(ratio), float(ratio))))
        assert plan.counts[1] == math.ceil((1 - ratio) * 12)  # 12 is no multiple of 8
        assert plan.counts[3] == 8 * math.ceil(math.ceil((1 - ratio) * 16) / 8)
        assert plan.counts[3] in (8, 16)


# ---------------------------------------------------------------------------- groups
def _producers(graph: ArchGraph, j: int) -> set[int]:
    """The convolutions/linear layers whose channels reach layer j through channel-wise layers."""
    node = graph.nodes[j]
    if node.op in CHANNELWISE or _depthwise(node):
        return set().union(*(_producers(graph, i) for i in node.inputs))
    return {j}


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_residual_adds_share_one_group(name):
    graph = _graph(name)
    space = SearchSpace(graph)
    model = space.channels
    group_of = {j: g for g, members in enumerate(model.group_members) for j in members}
    adds = [j for j, n in enumerate(graph.nodes) if n.op == "add"]
    assert len(adds) == (8 if name == "resnet18" else 16)
    plans = [space.plan(e) for e in space.sample(100, generator=_gen(2))]
    for j in adds:
        producers = _producers(graph, j)
        assert all(graph.nodes[p].op == "conv" for p in producers)
        assert len(producers) >= 2  # the block's last conv and the shortcut's
        assert len({group_of[p] for p in producers}) == 1, (j, producers)
        for plan in plans:
            counts = {int(plan.counts[p]) for p in producers} | {int(plan.counts[i]) for i in graph.nodes[j].inputs}
            assert counts == {int(plan.counts[j])}
            for i in graph.nodes[j].inputs:
                np.testing.assert_array_equal(plan.mask(i), plan.mask(j))
    # Different stages are different groups.
    stage_groups = {group_of[min(_producers(graph, j))] for j in adds}
    assert len(stage_groups) == 4


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "shufflenet"])
def test_channelwise_layers_keep_their_input_channels(name):
    graph = _graph(name)
    space = SearchSpace(graph)
    tied = [j for j, n in enumerate(graph.nodes) if n.op in CHANNELWISE - {"add"} or _depthwise(n)]
    depthwise = [j for j in tied if graph.nodes[j].op == "conv"]
    assert any(graph.nodes[j].op == "batchnorm" for j in tied)
    if name != "resnet18":
        assert depthwise
    for edit in space.sample(40, generator=_gen(3)):
        student = space.student(edit)
        plan, kept, nodes = student.plan, student.teacher_layers, student.graph.nodes
        for j in tied:
            i = graph.nodes[j].inputs[0]
            assert plan.counts[j] == plan.counts[i]
            np.testing.assert_array_equal(plan.mask(j), plan.mask(i))
        # Depthwise convolutions stay depthwise in the student.
        for q, t in enumerate(kept.tolist()):
            if t in depthwise and nodes[q].op == "conv":
                node = nodes[q]
                assert node.groups == node.in_channels == node.out_channels == plan.counts[t]


@pytest.mark.parametrize("name", ["vgg19", "resnet18", "shufflenet", "mobilenetv2"])
def test_plan_masks(name):
    graph = _graph(name)
    space = SearchSpace(graph)
    last = graph.num_layers - 1
    for edit in space.sample(25, generator=_gen(4)):
        plan = space.plan(edit)
        assert plan.removed <= {j for j, r in enumerate(edit.remove_mask) if r}
        assert set(plan.skips) <= set(edit.skips)
        assert plan.mask(0).all() and plan.mask(last).all()  # input and logits are never shrunk
        for j, node in enumerate(graph.nodes):
            mask = plan.mask(j)
            assert mask.dtype == bool and mask.shape == (node.out_channels,)
            assert mask.sum() == plan.counts[j] >= 1
            np.testing.assert_array_equal(plan.indices(j), np.flatnonzero(mask))
        for j, node in enumerate(graph.nodes):
            if node.op == "conv" and 1 < node.groups and not _depthwise(node):
                per_in = plan.counts_per_group(node.inputs[0], node.groups)
                per_out = plan.counts_per_group(j, node.groups)
                assert per_in.sum() == plan.counts[node.inputs[0]] and per_out.sum() == plan.counts[j]
                assert np.all((per_out == 0) | (per_in > 0))  # no group with outputs but no inputs
        student = space.student(edit)
        for q, t in enumerate(student.teacher_layers.tolist()):
            assert student.graph.nodes[q].out_channels == plan.counts[t]
            np.testing.assert_array_equal(student.kept_channels(t), plan.indices(t))


def test_grouped_convolutions_shrink_every_block_alike():
    """Without concats in the way, a free group feeding a g=2 conv keeps the same number of
    channels in both halves (the ShuffleNet units that add, not concatenate)."""
    graph = _graph("shufflenet")
    space = SearchSpace(graph, removal=False, skip=False)
    model = space.channels
    grouped = [j for j, n in enumerate(graph.nodes) if n.op == "conv" and 1 < n.groups and not _depthwise(n)]
    assert grouped
    for edit in space.sample(20, generator=_gen(5)):
        plan = space.plan(edit)
        for j in grouped:
            g = graph.nodes[j].groups
            if model.parent[j] in model.group_of_root and graph.nodes[j].out_channels % g == 0:
                per_out = plan.counts_per_group(j, g)
                assert np.ptp(per_out) == 0, (j, per_out)


def test_removal_ties_groups_with_the_first_ratio():
    graph = _graph("vgg19")
    space = SearchSpace(graph, skip=False)
    model = space.channels
    convs = [j for j in space.removable if graph.nodes[j].op == "conv"]
    assert convs
    rng = np.random.default_rng(0)
    for j in convs:
        i = graph.nodes[j].inputs[0]
        gi = model.group_of_root[model.parent[i]]
        gj = model.group_of_root[model.parent[j]]
        assert gi < gj
        ratios = tuple(float(r) for r in rng.random(space.num_groups))
        edit = Edit(tuple(k == j for k in range(graph.num_layers)), ratios)
        plan = space.plan(edit)
        assert plan.removed == frozenset({j})
        expected = _expected_keep(ratios[gi], graph.nodes[i].out_channels)
        assert plan.counts[j] == plan.counts[i] == expected
        np.testing.assert_array_equal(plan.mask(j), plan.mask(i))
        # Layers after the removed conv (its BN and ReLU) follow the tied channels.
        for k, node in enumerate(graph.nodes):
            if model.parent[k] == model.parent[j]:
                assert plan.counts[k] == expected


def test_skip_ties_groups():
    graph = _graph("vgg19")
    space = SearchSpace(graph)
    model = space.channels
    rng = np.random.default_rng(1)
    tested = 0
    for i, j in space.skip_candidates:
        a, b = model.parent[i], model.parent[graph.nodes[j].inputs[0]]
        if a == b or a not in model.group_of_root or b not in model.group_of_root:
            continue
        ratios = tuple(float(r) for r in rng.random(space.num_groups))
        plan = space.plan(Edit((False,) * graph.num_layers, ratios, ((i, j),)))
        assert plan.skips == ((i, j),)
        first = min(model.group_of_root[a], model.group_of_root[b])
        expected = _expected_keep(ratios[first], graph.nodes[i].out_channels)
        assert plan.counts[i] == plan.counts[graph.nodes[j].inputs[0]] == expected
        tested += 1
    assert tested > 10


class _ConflictNet(nn.Module):
    """conv_a's output is added to a concat that comes after it: those channels are frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 3, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 2, 1)
        self.conv_c = nn.Conv2d(3, 1, 1)
        self.fc = nn.Linear(3 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv_a(x)
        y = a + torch.cat([self.conv_b(x), self.conv_c(x)], dim=1)
        return self.fc(torch.flatten(y, 1))


def test_conflicting_removals_and_skips_are_dropped():
    torch.manual_seed(0)
    net = _ConflictNet().eval()
    x = torch.randn(2, 3, 4, 4)
    graph = trace(net, x)
    ops = [n.op for n in graph.nodes]
    assert ops == ["input", "conv", "conv", "conv", "concat", "add", "flatten", "linear"]
    space = SearchSpace(graph)
    assert space.removable == (1,)
    assert space.num_groups == 0  # every channel here feeds the frozen sum
    # Removing conv_a would tie the network input (3 fixed channels) to the frozen sum.
    remove = Edit((False, True) + (False,) * 6, ())
    assert space.plan(remove).removed == frozenset()
    student = space.apply(remove)
    assert student.nodes == graph.nodes
    # Same for a skip from the input into the sum; a skip within one class is kept.
    assert (0, 5) in space.skip_candidates and (1, 6) in space.skip_candidates
    both = Edit((False,) * 8, (), ((0, 5), (1, 6)))
    assert space.plan(both).skips == ((1, 6),)
    student = build_student(space.student(both), net).eval()
    with torch.no_grad():
        a = net.conv_a(x)
        y = a + torch.cat([net.conv_b(x), net.conv_c(x)], dim=1)
        torch.testing.assert_close(student(x), net.fc(torch.flatten(y + a, 1)))
