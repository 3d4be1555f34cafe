r"""Tests of MorphNet (botorch_archsearch/field/morphnet.py): the FLOP regulariser and the pruning
rule against hand-computed values, and the method end to end through ``compress``."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.groups import channel_slices
from botorch_archsearch.field.morphnet import (
    MorphNet,
    alive_flops,
    flop_regularizer,
    layer_costs,
    morphnet_edit,
    morphnet_gammas,
)
from botorch_archsearch.graph import build_student, count_flops, trace
from botorch_archsearch.search import POLICIES, compress, read_journal
from botorch_archsearch.space import SearchSpace

DTYPES = (torch.float32, torch.float64)


def _two_layer(dtype):
    """conv 3x3 (1 -> 2, pad 1) - BN - ReLU - conv 1x1 (2 -> 3, stride 2) - BN - ReLU - pool -
    flatten - linear (3 -> 2), on 1 x 4 x 4 images."""
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
        nn.Conv2d(2, 3, 1, stride=2, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2),
    ).to(dtype)
    graph = trace(net, torch.zeros(1, 1, 4, 4, dtype=dtype))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.5, 0.005], dtype=dtype))
        net[4].weight.copy_(torch.tensor([0.2, -0.3, 0.0], dtype=dtype))
    return net, graph


class _Tied(nn.Module):
    """Two 1x1 convolutions (1 -> 2) with BNs added (one group, two scales), a depthwise 3x3
    convolution in that group, a 1x1 convolution (2 -> 3) without a norm, and a linear layer
    reading its flattened 3 x 2 x 2 map; on 1 x 2 x 2 images."""

    def __init__(self):
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2)
        self.b, self.bn_b = nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2)
        self.dw = nn.Conv2d(2, 2, 3, padding=1, groups=2, bias=False)
        self.head = nn.Conv2d(2, 3, 1)
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        y = self.bn_a(self.a(x)) + self.bn_b(self.b(x))
        return self.fc(self.head(self.dw(y)).flatten(1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_flop_regulariser_of_a_two_layer_net_by_hand(dtype):
    net, graph = _two_layer(dtype)
    costs = layer_costs(graph)
    gammas = morphnet_gammas(channel_slices(graph, net))
    # group 0 (2 channels): |gamma| (0.5, 0.005): A = 1 alive above 0.01, sum 0.505
    # group 1 (3 channels): |gamma| (0.2, 0.3, 0): A = 2, sum 0.5
    torch.testing.assert_close(gammas[0], torch.tensor([0.5, 0.005], dtype=dtype))
    torch.testing.assert_close(gammas[1], torch.tensor([0.2, 0.3, 0.0], dtype=dtype))
    # conv1: c = 4 * 4 * 3 * 3 = 144, input the image (A_in = 1, no gammas): 144 * (1 * 0.505) = 72.72
    # conv2: c = 2 * 2 * 1 * 1 = 4: 4 * (A_in 1 * 0.5 + A_out 2 * 0.505) = 6.04
    # linear: c = 1, outputs not a group (A_out = 2, no gammas): 1 * (2 * 0 + 2 * 0.5) = 1
    assert [(c.layer, c.pair_macs, c.in_group, c.out_group) for c in costs] == [
        (1, 144.0, None, 0), (4, 4.0, 0, 1), (9, 1.0, 1, None)]
    value = flop_regularizer(costs, gammas, 0.01)
    assert value.item() == pytest.approx(72.72 + 6.04 + 1.0, rel=1e-6)
    # the alive counts are constants of the gradient: dG/dgamma = sign(gamma) * sum of c * A
    value.backward()
    # bn1 channel 0: conv1 144 * A_in 1 + conv2 4 * A_out 2 = 152; bn2 channel 1 (negative):
    # -(conv2 4 * A_in 1 + linear 1 * A_out 2) = -6
    assert net[1].weight.grad[0].item() == pytest.approx(152.0)
    assert net[4].weight.grad[1].item() == pytest.approx(-6.0)
    # the alive network's MACs: 144 * 1 * 1 + 4 * 1 * 2 + 1 * 2 * 2 = 156; all alive: the teacher's
    assert alive_flops(costs, gammas, 0.01) == pytest.approx(156.0)
    ones = [torch.ones_like(g) for g in gammas]
    assert alive_flops(costs, ones, 0.01) == count_flops(graph) == 144 * 2 + 4 * 6 + 6


def test_tied_groups_take_the_largest_gamma_and_groups_without_a_norm_their_filters():
    net = _Tied().double()
    graph = trace(net, torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    with torch.no_grad():
        net.bn_a.weight.copy_(torch.tensor([0.1, -0.004], dtype=torch.float64))
        net.bn_b.weight.copy_(torch.tensor([-0.3, 0.002], dtype=torch.float64))
        filters = torch.tensor([[0.3, 0.4], [0.0, 0.0], [0.003, 0.004]], dtype=torch.float64)
        net.head.weight.copy_(filters.view(3, 2, 1, 1))
        net.head.bias.zero_()
    costs = layer_costs(graph)
    gammas = morphnet_gammas(channel_slices(graph, net))
    # group 0 (a, b, the depthwise conv): max(|0.1|, |-0.3|), max(|-0.004|, |0.002|): A = 1, sum 0.304
    # group 1 (head, no norm): filter norms 0.5, 0, 0.005: A = 1, sum 0.505
    torch.testing.assert_close(gammas[0], torch.tensor([0.3, 0.004], dtype=torch.float64))
    torch.testing.assert_close(gammas[1], torch.tensor([0.5, 0.0, 0.005], dtype=torch.float64))
    assert [(c.layer, c.pair_macs, c.in_group, c.out_group, c.depthwise) for c in costs] == [
        (1, 4.0, None, 0, False), (3, 4.0, None, 0, False), (6, 36.0, 0, 0, True), (7, 4.0, 0, 1, False),
        (9, 4.0, 1, None, False)]
    # a, b: c = 2 * 2 * 1: 4 * (1 * 0.304) = 1.216 each
    # depthwise: c = 2 * 2 * 3 * 3 = 36: 36 * (0.304 + 0.304) = 21.888
    # head: c = 4: 4 * (1 * 0.505 + 1 * 0.304) = 3.236
    # fc reads the flattened 3 x 2 x 2 map, each channel 4 times: c = 4: 4 * (2 * 0.505) = 4.04
    expected = 2 * 1.216 + 21.888 + 3.236 + 4.04
    assert flop_regularizer(costs, gammas, 0.01).item() == pytest.approx(expected, rel=1e-9)
    ones = [torch.ones_like(g) for g in gammas]
    assert alive_flops(costs, ones, 0.01) == count_flops(graph) == 2 * 4 * 2 + 36 * 2 + 4 * 6 + 12 * 2


def test_the_regulariser_refuses_bad_inputs():
    net, graph = _two_layer(torch.float32)
    gammas = morphnet_gammas(channel_slices(graph, net))
    with pytest.raises(ArchSearchError, match="flop_regularizer: threshold must be a finite number >= 0, got -1"):
        flop_regularizer(layer_costs(graph), gammas, -1)
    with pytest.raises(ArchSearchError, match="gammas has 1 channel groups; the layer costs refer to group 1"):
        flop_regularizer(layer_costs(graph), gammas[:1], 0.01)
    with pytest.raises(ArchSearchError, match="layer_costs expects an ArchGraph, got Sequential"):
        layer_costs(net)


def _pruning_space():
    """conv 3x3 (3 -> 8) - BN - ReLU - conv 3x3 (8 -> 8) - BN - ReLU - conv 1x1 (8 -> 16) - BN - ReLU -
    pool - linear (16 -> 4), on 3 x 8 x 8 images. With widths w0, w1, w2 its MACs are
    w0 * 3 * 9 * 64 + w1 * w0 * 9 * 64 + w2 * w1 * 64 + w2 * 4 = 1728 w0 + 576 w0 w1 + 64 w1 w2 + 4 w2;
    the teacher's (8, 8, 16): 13824 + 36864 + 8192 + 64 = 58944."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    graph = trace(net, torch.zeros(1, 3, 8, 8))
    assert count_flops(graph) == 58944
    # alive (above 0.01): 4 of 8 (indices 0, 2, 4, 5), 2 of 8, 8 of 16
    gammas = (np.array([0.5, 0.001, 0.3, 0.002, 0.2, 0.1, 0.0, 0.003]),
              np.array([0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.4, 0.005]),
              np.array([0.1] * 8 + [0.001] * 8))
    return SearchSpace(graph), gammas


def _macs(w0, w1, w2):
    return 1728 * w0 + 576 * w0 * w1 + 64 * w1 * w2 + 4 * w2


def test_morphnet_pruning_expands_the_alive_widths_to_the_target_by_hand():
    space, gammas = _pruning_space()
    assert _macs(8, 8, 16) == 58944
    # target 1/3: at most 19648 MACs. Alive (4, 2, 8); the widths ceil(f * alive) change at f = k/4,
    # k/2, k/8: f = 1.25 gives (5, 3, 10): 8640 + 8640 + 1920 + 40 = 19240, within; the next notch,
    # f = 1.375, gives (6, 3, 11): 10368 + 10368 + 2112 + 44 = 22892, over.
    assert _macs(5, 3, 10) == 19240 <= 58944 / 3 < _macs(6, 3, 11) == 22892
    edit = morphnet_edit(space, gammas, 1 / 3, threshold=0.01, measure="flops")
    assert edit.channel_order == "magnitude" and not any(edit.remove_mask) and not edit.skips
    student = space.with_importance(gammas).student(edit)
    assert count_flops(student.graph) == 19240
    # each group keeps its largest-|gamma| channels: the alive ones, then the next largest
    assert student.kept_channels(1).tolist() == [0, 2, 4, 5, 7]
    assert student.kept_channels(4).tolist() == [1, 6, 7]
    assert student.kept_channels(7).tolist() == list(range(10))
    # target 1/10 (5894.4 MACs): below the alive widths, f = 0.5 gives (2, 1, 4): 3456 + 1152 + 256 + 16
    # = 4880; the next notch, f = 0.625, gives (3, 2, 5): 5184 + 3456 + 640 + 20 = 9300
    assert _macs(2, 1, 4) == 4880 <= 58944 / 10 < _macs(3, 2, 5) == 9300
    small = space.with_importance(gammas).student(morphnet_edit(space, gammas, 0.1, threshold=0.01))
    assert count_flops(small.graph) == 4880
    assert small.kept_channels(1).tolist() == [0, 2] and small.kept_channels(4).tolist() == [1]
    # the whole teacher fits target 1: every group at its full width
    assert morphnet_edit(space, gammas, 1.0, threshold=0.01).shrink_ratios == (0.0, 0.0, 0.0)


def test_morphnet_pruning_is_the_largest_common_factor_student_within_the_target():
    space, gammas = _pruning_space()
    alive, sizes = (4, 2, 8), (8, 8, 16)
    # every common factor's widths by the rule: min(C, ceil(f * alive)), where they change
    factors = sorted({k / a for a, c in zip(alive, sizes) for k in range(1, c + 1)})
    widths = [tuple(min(c, int(np.ceil(f * a - 1e-9))) for a, c in zip(alive, sizes)) for f in factors]
    for target in (0.6, 0.45, 0.25, 0.15):
        edit = replace(morphnet_edit(space, gammas, target, threshold=0.01), channel_order="even")
        chosen = tuple(space.student(edit).kept_channels(j).size for j in (1, 4, 7))
        fitting = [w for w in widths if _macs(*w) <= target * 58944]
        assert chosen == max(fitting, key=lambda w: _macs(*w))
        # one notch larger (any larger common-factor student) exceeds the target
        assert all(_macs(*w) > target * 58944 for w in widths if _macs(*w) > _macs(*chosen))


def test_morphnet_pruning_refuses_bad_inputs():
    space, gammas = _pruning_space()
    with pytest.raises(ArchSearchError, match="morphnet cannot reach a target of 0.001 of the teacher's flops"):
        morphnet_edit(space, gammas, 0.001)
    with pytest.raises(ArchSearchError, match="gammas must hold one value per channel of each of the 3 channel"):
        morphnet_edit(space, gammas[:2], 0.5)
    with pytest.raises(ArchSearchError, match="gammas must be finite values >= 0"):
        morphnet_edit(space, (gammas[0], -gammas[1], gammas[2]), 0.5)
    with pytest.raises(ArchSearchError, match="morphnet_edit: target must be a fraction of the teacher's size"):
        morphnet_edit(space, gammas, 1.5)


def test_morphnet_end_to_end(tmp_path, small_config, search_data, search_teacher):
    assert POLICIES["morphnet"] is MorphNet
    config = small_config(method="morphnet", targets=[0.5])
    config.methods.epochs = 1
    config.methods.max_batches = 2
    config.methods.batch_size = 32
    config.reward.measure = "flops"
    config.final.top_k = 0
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    [record] = result.records
    assert (record.method, record.source, record.target) == ("morphnet", "morphnet", 0.5)
    assert record.ok and record.flops <= 0.5 * result.teacher["flops"]
    source = torch.load(tmp_path / "sources" / "morphnet.pt", weights_only=True)
    info = source["info"]
    assert info["method"] == "morphnet" and info["strength"] == pytest.approx(1 / info["initial_regularizer"])
    assert info["threshold"] == 0.01 and record.overhead_cost == pytest.approx(info["cost"])
    # the importance is the |gamma| of the regularised copy; G at the end by the same function
    model = search_teacher.model
    graph = trace(model, torch.zeros(1, 3, 16, 16))
    regularised = copy.deepcopy(model)
    regularised.load_state_dict(source["state_dict"])
    importance = tuple(v.numpy() for v in source["importance"])
    np.testing.assert_allclose(importance[1], regularised.layer1[0].bn1.weight.detach().abs().double().numpy(),
                               rtol=1e-6)
    gammas = morphnet_gammas(channel_slices(graph, regularised))
    regularizer = flop_regularizer(layer_costs(graph), gammas, 0.01).item()
    assert info["regularizer"] == pytest.approx(regularizer, rel=1e-5)
    # the record is MorphNet's edit, and the student inherits the regularised weights, keeping the
    # largest-|gamma| channels of every group
    space = SearchSpace(graph, channel_importance=importance, channel_order="magnitude")
    student = space.student_from_dict(read_journal(tmp_path / "journal.jsonl").records[0])
    assert student.edit == morphnet_edit(SearchSpace(graph), importance, 0.5, threshold=0.01)
    from_source = build_student(student, regularised).state_dict()
    from_teacher = build_student(student, model).state_dict()
    assert any(not torch.equal(from_source[k], from_teacher[k]) for k in from_source)
    kept = student.kept_channels(1)
    torch.testing.assert_close(from_source["layers.2.weight"], regularised.bn1.weight[kept])
    for g, members in enumerate(space.channels.group_members):
        kept = student.kept_channels(members[0])
        assert np.array_equal(kept, np.sort(np.argsort(-importance[g], kind="stable")[:len(kept)]))
