r"""Tests of botorch_archsearch/space/importance.py (the group magnitude importance of every channel
of every channel group) and of the ``"magnitude"`` channel order of
:class:`~botorch_archsearch.space.SearchSpace` that uses it.

References are brute force and independent of the library's propagation: per channel, every
coupled weight scalar is collected by hand (by module name and the channel classes of
``ChannelModel.parent``), or the importance of a set of channels is read off as the ``|w|^p`` mass
that a student which drops exactly those channels loses.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError, InvalidEditError
from botorch_archsearch.graph import ArchGraph, build_student, count_params, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import ChannelModel, Edit, SearchSpace, channel_importance
from botorch_archsearch.utils.torchvision import import_torchvision

RTOL = 1e-12  # float64 sums of float32 weights, summed in different orders


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randomize_batchnorm(module: nn.Module, seed: int) -> nn.Module:
    """Distinct BN scales (the zoo initialises them to 1), so that their channel is observable."""
    generator = _gen(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=generator))
                m.bias.copy_(torch.rand(m.num_features, generator=generator))
    return module


@functools.lru_cache(maxsize=None)
def _zoo(name: str = "resnet18") -> tuple[nn.Module, ArchGraph]:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125)
    teacher = _randomize_batchnorm(teacher, seed=1).eval()
    return teacher, trace(teacher, torch.zeros(1, 3, 16, 16))


@functools.lru_cache(maxsize=None)
def _importance(name: str = "resnet18") -> tuple[np.ndarray, ...]:
    teacher, graph = _zoo(name)
    return channel_importance(graph, teacher)


@functools.lru_cache(maxsize=None)
def _magnitude_space(name: str = "resnet18", order: str = "even") -> SearchSpace:
    _, graph = _zoo(name)
    return SearchSpace(graph, channel_importance=_importance(name), channel_order=order)


def _abs_pow(t: torch.Tensor, p: float) -> float:
    return float(t.detach().to(torch.float64).abs().pow(p).sum())


def _layer_index(graph: ArchGraph) -> dict[str, int]:
    return {node.name: j for j, node in enumerate(graph.nodes)}


# ---------------------------------------------------------------------------- (a) residual net
def _brute_force_plain(graph: ArchGraph, model: nn.Module, p: float) -> list[np.ndarray]:
    """Per group, per channel: the scalars coupled to it, collected module by module (no derived
    dimensions in between: every reader reads a group member's class directly)."""
    channels = ChannelModel(graph)
    cls = channels.parent
    index = _layer_index(graph)
    out = []
    for r in channels.group_roots:
        size = graph.nodes[r].out_channels
        values = np.zeros(size)
        for name, module in model.named_modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
                continue
            j = index[name]  # every weighted module of these teachers is a graph layer
            w = module.weight
            in_class = cls[graph.nodes[j].inputs[0]]
            for c in range(size):
                if cls[j] == r:
                    values[c] += _abs_pow(w[c], p)  # output filter or BN scale
                if not isinstance(module, nn.BatchNorm2d) and in_class == r:
                    assert getattr(module, "groups", 1) == 1
                    values[c] += _abs_pow(w[:, c], p)  # input slice of a reader
        out.append(values)
    return out


@pytest.mark.parametrize("p", [2.0, 1.0, 3])
def test_resnet_importance_equals_brute_force(p):
    teacher, graph = _zoo()
    got = channel_importance(graph, teacher, p=p)
    channels = ChannelModel(graph)
    assert len(got) == channels.num_groups == len(channels.group_roots)
    expected = _brute_force_plain(graph, teacher, p)
    for g, (a, b) in enumerate(zip(got, expected)):
        assert a.dtype == np.float64 and a.shape == (graph.nodes[channels.group_roots[g]].out_channels,)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
    # Residual adds tie several convolutions into one group (their filters all count).
    sizes = [len(m) for m in channels.group_members]
    assert max(sizes) >= 3


def test_resnet_importance_ignores_biases_and_counts_every_tied_filter():
    teacher, graph = _zoo()
    base = channel_importance(graph, teacher)
    channels = ChannelModel(graph)
    index = _layer_index(graph)
    # Biases and BN statistics do not count.
    with torch.no_grad():
        saved = {n: b.clone() for n, b in teacher.named_parameters() if n.endswith("bias")}
        try:
            for n, b in teacher.named_parameters():
                if n.endswith("bias"):
                    b.add_(10.0)
            for a, b in zip(channel_importance(graph, teacher), base):
                np.testing.assert_array_equal(a, b)
        finally:
            for n, b in teacher.named_parameters():
                if n in saved:
                    b.copy_(saved[n])
    # Scaling one tied conv's filter c changes channel c of its group by exactly the added mass.
    g = max(range(channels.num_groups), key=lambda k: len(channels.group_members[k]))
    j = channels.group_members[g][-1]
    module = teacher.get_submodule(graph.nodes[j].name)
    c = 3
    with torch.no_grad():
        before = module.weight[c].clone()
        try:
            module.weight[c].mul_(2.0)
            changed = channel_importance(graph, teacher)
        finally:
            module.weight[c].copy_(before)
    # Its group gains 3 |w[c]|^2 at channel c; the group it reads gains 3 |w[c, i]|^2 at each i.
    expected = [b.copy() for b in base]
    expected[g][c] += 3.0 * _abs_pow(before, 2.0)
    h = channels.group_of_root[channels.parent[graph.nodes[j].inputs[0]]]
    assert h != g
    expected[h] += 3.0 * before.to(torch.float64).pow(2).sum((1, 2)).numpy()
    for k in range(channels.num_groups):
        if k in (g, h):
            np.testing.assert_allclose(changed[k], expected[k], rtol=RTOL, atol=0)
        else:
            np.testing.assert_array_equal(changed[k], base[k])
    assert index[graph.nodes[j].name] == j


# ---------------------------------------------------------------------------- (b) concat + flatten head
class _ConcatNet(nn.Module):
    """stem conv -> bn -> relu, two conv -> bn -> relu branches, cat, conv -> bn -> relu,
    flatten of C x H x W (no pooling), linear; on 3 x 4 x 4 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(4)
        self.a = nn.Conv2d(4, 3, 3, padding=1)
        self.a_bn = nn.BatchNorm2d(3)
        self.b = nn.Conv2d(4, 5, 1)
        self.b_bn = nn.BatchNorm2d(5)
        self.mix = nn.Conv2d(8, 6, 3, padding=1)
        self.mix_bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem(x)))
        a = torch.relu(self.a_bn(self.a(x)))
        b = torch.relu(self.b_bn(self.b(x)))
        y = torch.relu(self.mix_bn(self.mix(torch.cat([a, b], dim=1))))
        return self.fc(torch.flatten(y, 1))


@functools.lru_cache(maxsize=None)
def _concat_net() -> tuple[nn.Module, ArchGraph]:
    torch.manual_seed(3)
    net = _randomize_batchnorm(_ConcatNet(), seed=4).eval()
    return net, trace(net, torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("p", [2.0, 1.5])
def test_concat_and_flatten_pass_importance_back(p):
    net, graph = _concat_net()
    channels = ChannelModel(graph)
    roots = {graph.nodes[r].name: g for g, r in enumerate(channels.group_roots)}
    assert set(roots) == {"stem", "a", "b", "mix"}  # fc's output is the network's: not a group
    got = channel_importance(graph, net, p=p)
    w = {name: m.weight for name, m in net.named_modules() if hasattr(m, "weight")}

    def ref(name: str, size: int, reader) -> np.ndarray:
        bn = name + "_bn"
        return np.array([_abs_pow(w[name][c], p) + _abs_pow(w[bn][c], p) + reader(c) for c in range(size)])

    expected = {
        "stem": ref("stem", 4, lambda c: _abs_pow(w["a"][:, c], p) + _abs_pow(w["b"][:, c], p)),
        "a": ref("a", 3, lambda c: _abs_pow(w["mix"][:, c], p)),  # concat channels 0..2
        "b": ref("b", 5, lambda c: _abs_pow(w["mix"][:, 3 + c], p)),  # concat channels 3..7
        # flatten of 6 x 4 x 4: channel c is read by fc's columns 16 c .. 16 c + 15
        "mix": ref("mix", 6, lambda c: _abs_pow(w["fc"][:, 16 * c:16 * (c + 1)], p)),
    }
    for name, g in roots.items():
        np.testing.assert_allclose(got[g], expected[name], rtol=RTOL, atol=0, err_msg=name)


# ---------------------------------------------------------------------------- (c) grouped / depthwise
class _GroupedNet(nn.Module):
    """stem conv, a grouped conv (groups=2, not depthwise), a depthwise conv, a pointwise conv,
    global pooling and a linear head; on 3 x 6 x 6 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=2)
        self.grouped_bn = nn.BatchNorm2d(12)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.dw_bn = nn.BatchNorm2d(12)
        self.pw = nn.Conv2d(12, 6, 1)
        self.pw_bn = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = torch.relu(self.grouped_bn(self.grouped(x)))
        x = torch.relu(self.dw_bn(self.dw(x)))
        x = torch.relu(self.pw_bn(self.pw(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@functools.lru_cache(maxsize=None)
def _grouped_net() -> tuple[nn.Module, ArchGraph]:
    torch.manual_seed(5)
    net = _randomize_batchnorm(_GroupedNet(), seed=6).eval()
    return net, trace(net, torch.zeros(1, 3, 6, 6))


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_grouped_and_depthwise_convolutions(p):
    net, graph = _grouped_net()
    channels = ChannelModel(graph)
    roots = {graph.nodes[r].name: g for g, r in enumerate(channels.group_roots)}
    # The depthwise conv is tied to its input: it is in the grouped conv's group, not one of its own.
    assert set(roots) == {"stem", "grouped", "pw"}
    got = channel_importance(graph, net, p=p)
    w = {name: m.weight for name, m in net.named_modules() if hasattr(m, "weight")}
    # stem channel c lies in input group c // 4 of the grouped conv, which only rows 6 (c // 4) ..
    # 6 (c // 4) + 5 of its weight read (as their input column c % 4).
    stem = [
        _abs_pow(w["stem"][c], p) + _abs_pow(w["stem_bn"][c], p)
        + _abs_pow(w["grouped"][6 * (c // 4):6 * (c // 4 + 1), c % 4], p)
        for c in range(8)
    ]
    # The depthwise filter of channel c counts once (as an output filter of the group).
    grouped = [
        _abs_pow(w["grouped"][c], p) + _abs_pow(w["grouped_bn"][c], p) + _abs_pow(w["dw"][c], p)
        + _abs_pow(w["dw_bn"][c], p) + _abs_pow(w["pw"][:, c], p)
        for c in range(12)
    ]
    pw = [_abs_pow(w["pw"][c], p) + _abs_pow(w["pw_bn"][c], p) + _abs_pow(w["fc"][:, c], p) for c in range(6)]
    for name, values in (("stem", stem), ("grouped", grouped), ("pw", pw)):
        np.testing.assert_allclose(got[roots[name]], values, rtol=RTOL, atol=0, err_msg=name)


# ---------------------------------------------------------------------------- dropped mass
def _weight_mass(module: nn.Module, p: float) -> float:
    return sum(_abs_pow(t, p) for n, t in module.named_parameters() if n.endswith("weight"))


def _derived_ops(graph: ArchGraph, channels: ChannelModel, g: int) -> set[str]:
    """The derived layers (concat, slice, shuffle, flatten) that group ``g``'s channels pass through."""
    reach, ops = {channels.group_roots[g]}, set()
    for j, node in enumerate(graph.nodes):
        derived = node.op in ("concat", "slice", "shuffle", "flatten")
        if derived and any(channels.parent[i] in reach for i in node.inputs):
            reach.add(channels.parent[j])
            ops.add(node.op)
    return ops


def _dropped_mass_check(teacher: nn.Module, graph: ArchGraph, seed: int, groups=None) -> int:
    """For every group (of ``groups``), drop a random set of its channels (a magnitude edit whose
    importance ranks exactly those last) and compare the ``|w|^2`` mass the built student loses
    with the summed importance of the dropped channels. Returns the number of groups checked."""
    importance = channel_importance(graph, teacher)
    channels = ChannelModel(graph)
    total = _weight_mass(teacher, 2.0)
    rng = np.random.default_rng(seed)
    checked = 0
    for g, r in enumerate(channels.group_roots):
        if groups is not None and g not in groups:
            continue
        size, blocks = channels.size[r], channels.blocks[r]
        per_block = size // blocks
        drop_per_block = max(1, per_block // 3)
        if drop_per_block >= per_block:
            continue
        score = [np.ones(channels.size[q]) for q in channels.group_roots]
        dropped = []
        for b in range(blocks):
            picks = rng.choice(per_block, drop_per_block, replace=False) + b * per_block
            dropped.extend(picks.tolist())
        score[g][dropped] = 0.1
        space = SearchSpace(graph, channel_importance=score)
        ratios = [0.0] * channels.num_groups
        ratios[g] = drop_per_block / per_block
        edit = Edit((False,) * graph.num_layers, ratios, (), "magnitude")
        kept = space.plan(edit).indices(r)
        assert sorted(set(range(size)) - set(kept.tolist())) == sorted(dropped)
        student = build_student(space.student(edit), teacher)
        lost = total - _weight_mass(student, 2.0)
        np.testing.assert_allclose(lost, importance[g][dropped].sum(), rtol=1e-9, atol=0)
        checked += 1
    return checked


@pytest.mark.parametrize("name", ["resnet18", "shufflenet", "mobilenetv2"])
def test_importance_is_the_mass_a_student_loses(name):
    """Zoo teachers with residual adds, channel splits/concats/shuffles, depthwise convolutions."""
    teacher, graph = _zoo(name)
    assert _dropped_mass_check(teacher, graph, seed=0) >= 1


def test_importance_is_the_mass_a_student_loses_through_slices():
    """torchvision's ShuffleNetV2 splits channels (slices) after every concat and shuffle."""
    torch.manual_seed(0)
    teacher = import_torchvision().models.shufflenet_v2_x0_5(num_classes=10)
    teacher = _randomize_batchnorm(teacher, seed=2).eval()
    graph = trace(teacher, torch.zeros(1, 3, 32, 32))
    channels = ChannelModel(graph)
    through = [
        g for g in range(channels.num_groups)
        if {"slice", "shuffle", "concat"} <= _derived_ops(graph, channels, g)
    ]
    others = [g for g in range(channels.num_groups) if g not in through]
    assert through and others
    chosen = set(through[::max(1, len(through) // 3)][:3]) | set(others[:2])
    assert _dropped_mass_check(teacher, graph, seed=3, groups=chosen) == len(chosen)


def test_importance_is_the_mass_a_student_loses_on_small_nets():
    for net, graph in (_concat_net(), _grouped_net()):
        assert _dropped_mass_check(net, graph, seed=1) == ChannelModel(graph).num_groups


# ---------------------------------------------------------------------------- (d) errors
def test_wrong_model_raises():
    _, graph = _zoo()
    other = get_teacher("vgg19", num_classes=10, in_channels=3, width=0.125)
    with pytest.raises(ArchSearchError, match=r"has no module 'conv1'"):
        channel_importance(graph, other)
    with pytest.raises(ArchSearchError, match=r"expects the teacher nn.Module, got str"):
        channel_importance(graph, "resnet18")
    with pytest.raises(ArchSearchError, match=r"expects an ArchGraph"):
        channel_importance(_zoo()[0], _zoo()[0])


@pytest.mark.parametrize("p", [0, -1.0, 0.0, math.nan, True, "2"])
def test_bad_p_raises(p):
    teacher, graph = _zoo()
    with pytest.raises(ArchSearchError, match=r"p must be a number > 0"):
        channel_importance(graph, teacher, p=p)


def test_space_rejects_malformed_importance():
    _, graph = _zoo()
    good = list(_importance())
    with pytest.raises(InvalidEditError, match=r"has 1 entries"):
        SearchSpace(graph, channel_importance=good[:1])
    for bad in (good[0][:-1], -good[0], np.full_like(good[0], np.nan)):
        with pytest.raises(InvalidEditError, match=r"channel importance of group 0 must be"):
            SearchSpace(graph, channel_importance=[bad] + good[1:])


# ---------------------------------------------------------------------------- magnitude order
def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    return np.sort(np.argsort(-values, kind="stable")[:k])


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_magnitude_edit_keeps_the_most_important_channels(ratio):
    space = _magnitude_space()
    importance = _importance()
    even = space.uniform_edit(ratio, "even")
    magnitude = space.uniform_edit(ratio, "magnitude")
    assert even.channel_order == "even" and magnitude.channel_order == "magnitude"
    plan_even, plan_mag = space.plan(even), space.plan(magnitude)
    channels = space.channels
    for g, members in enumerate(channels.group_members):
        size = channels.size[channels.group_roots[g]]
        k = math.ceil((1 - ratio) * size)
        assert 0 < k < size
        expected = _top_k(importance[g], k)
        assert len(np.unique(importance[g])) == size  # no ties with random weights
        for j in members:
            assert len(plan_even.indices(j)) == k
            np.testing.assert_array_equal(plan_mag.indices(j), expected)
    # The evenly spread choice is a different one for some group.
    assert any(
        not np.array_equal(plan_even.indices(r), plan_mag.indices(r)) for r in channels.group_roots
    )
    student_even, student_mag = space.apply(even), space.apply(magnitude)
    assert student_even.key() == student_mag.key()
    assert count_params(student_even) == count_params(student_mag)


def test_magnitude_student_inherits_the_teacher_weights_at_the_top_channels():
    teacher, graph = _zoo()
    space = _magnitude_space()
    importance = _importance()
    ratio = 0.4
    channels = space.channels

    def kept(j: int) -> np.ndarray:
        r = channels.parent[j]
        if r in channels.group_of_root:
            g = channels.group_of_root[r]
            return _top_k(importance[g], math.ceil((1 - ratio) * channels.size[r]))
        return np.arange(graph.nodes[j].out_channels)  # the input and the output: every channel

    student_mag = build_student(space.student(space.uniform_edit(ratio, "magnitude")), teacher)
    student_even = build_student(space.student(space.uniform_edit(ratio, "even")), teacher)
    checked = 0
    for q, node in enumerate(student_mag.graph.nodes):
        assert node.name == graph.nodes[q].name  # no removals: layer q is teacher layer q
        if node.op not in ("conv", "linear", "batchnorm"):
            continue
        source = teacher.get_submodule(node.name)
        layer = student_mag.layers[q]
        out_idx = torch.as_tensor(kept(q))
        if node.op == "batchnorm":
            for attr in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(getattr(layer, attr), getattr(source, attr)[out_idx]), (node.name, attr)
        else:
            in_idx = torch.as_tensor(kept(graph.nodes[q].inputs[0]))
            assert torch.equal(layer.weight, source.weight[out_idx][:, in_idx]), node.name
            if source.bias is not None:
                assert torch.equal(layer.bias, source.bias[out_idx]), node.name
        checked += 1
    assert checked == sum(n.op in ("conv", "linear", "batchnorm") for n in graph.nodes)
    # Same architecture and parameter count as the even student, other weights.
    num_mag = sum(p.numel() for p in student_mag.parameters())
    assert num_mag == sum(p.numel() for p in student_even.parameters()) == count_params(student_mag.graph)
    mag, even = student_mag.state_dict(), student_even.state_dict()
    assert mag.keys() == even.keys()
    assert all(mag[k].shape == even[k].shape for k in mag)
    assert any(not torch.equal(mag[k], even[k]) for k in mag)
    x = torch.randn(2, 3, 16, 16, generator=_gen(0))
    with torch.no_grad():
        assert not torch.allclose(student_mag.eval()(x), student_even.eval()(x))


def test_magnitude_needs_importance():
    _, graph = _zoo()
    plain = SearchSpace(graph)
    assert not plain.has_importance and _magnitude_space().has_importance
    edit = Edit((False,) * graph.num_layers, (0.5,) * plain.num_groups, (), "magnitude")
    message = r"channel order 'magnitude' but this space has no channel importance"
    with pytest.raises(InvalidEditError, match=message):
        plain.check(edit)
    with pytest.raises(InvalidEditError, match=r"magnitude"):
        plain.apply(edit)
    with pytest.raises(InvalidEditError, match=r"magnitude"):
        plain.uniform_edit(0.5, "magnitude")
    with pytest.raises(InvalidEditError, match=r"channel_order='magnitude' needs channel_importance"):
        SearchSpace(graph, channel_order="magnitude")
    with pytest.raises(InvalidEditError, match=r"channel_order must be one of"):
        SearchSpace(graph, channel_importance=_importance(), channel_order="random")
    # The even edit still works in the space without importance.
    plain.apply(Edit(edit.remove_mask, edit.shrink_ratios, ()))


def test_magnitude_space_samples_magnitude_edits_and_identity():
    space = _magnitude_space(order="magnitude")
    assert space.channel_order == "magnitude" and space.options["channel_order"] == "magnitude"
    assert all(e.channel_order == "magnitude" for e in space.sample(5, generator=_gen(0)))
    assert space.identity_edit().channel_order == "magnitude"
    assert space.apply(space.identity_edit()).key() == space.graph.key()
    assert _magnitude_space(order="even").sample(1, generator=_gen(0))[0].channel_order == "even"


def test_sampled_magnitude_students_build_run_and_rank_merged_classes():
    teacher, _ = _zoo()
    space = _magnitude_space(order="magnitude")
    channels = space.channels
    importance = _importance()
    normalized = [v / v.mean() for v in importance]
    x = torch.randn(2, 3, 16, 16, generator=_gen(1))
    edits = space.sample(30, generator=_gen(2))
    assert sum(e.num_removed for e in edits) > 0 and sum(len(e.skips) for e in edits) > 0
    merged_seen = 0
    for edit in edits:
        plan = space.plan(edit)
        for g, members in enumerate(channels.group_members):
            for j in members:
                root = plan.root[j]
                k = int(plan.counts[j])
                mask = plan.mask(j)
                assert mask.sum() == k
                if k == channels.size[j]:
                    continue
                groups = [h for h, r in enumerate(channels.group_roots) if plan.root[r] == root]
                merged_seen += len(groups) > 1
                score = sum(normalized[h] for h in groups)
                np.testing.assert_array_equal(np.flatnonzero(mask), _top_k(score, k))
        student = build_student(space.student(edit), teacher).eval()
        with torch.no_grad():
            y = student(x)
        assert y.shape == (2, 10) and torch.isfinite(y).all()
    assert merged_seen > 0  # some removals or skips did merge groups
