r"""Tests of Group Lasso (botorch_archsearch/field/group_lasso.py): the proximal step and the penalty
against hand-computed values, the training's effect, and the method end to end through ``compress``."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.group_lasso import (
    GroupLasso,
    group_lasso_penalty,
    group_lasso_prox,
    train_group_lasso,
)
from botorch_archsearch.field.groups import channel_slices, group_norms, group_sizes, zero_channels
from botorch_archsearch.graph import build_student, trace
from botorch_archsearch.search import POLICIES, compress, read_journal
from botorch_archsearch.space import SearchSpace

DTYPES = (torch.float32, torch.float64)


def _two_layer(dtype):
    """conv 1x1 (1 -> 2, bias) + BN(2) + ReLU, then a linear layer. Each channel has 4 output
    weights (conv weight, conv bias, BN scale, BN shift): |g| = 4, sqrt(|g|) = 2.

    channel 0: (3, 0, 4, 0), norm 5; channel 1: (0.3, 0.4, 0, 0), norm 0.5."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)).to(dtype)
    graph = trace(net, torch.zeros(1, 1, 2, 2, dtype=dtype))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([3.0, 0.3], dtype=dtype).view(2, 1, 1, 1))
        net[0].bias.copy_(torch.tensor([0.0, 0.4], dtype=dtype))
        net[1].weight.copy_(torch.tensor([4.0, 0.0], dtype=dtype))
        net[1].bias.zero_()
    return net, graph


class _Residual(nn.Module):
    """Two 1x1 convolutions (1 -> 2, no bias) whose outputs are added: one channel group with
    two coupled layers, |g| = 2."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 1, bias=False)
        self.b = nn.Conv2d(1, 2, 1, bias=False)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc((self.a(x) + self.b(x)).flatten(1))


def _residual(dtype):
    net = _Residual().to(dtype)
    graph = trace(net, torch.zeros(1, 1, 2, 2, dtype=dtype))
    with torch.no_grad():
        net.a.weight.copy_(torch.tensor([3.0, 0.1], dtype=dtype).view(2, 1, 1, 1))
        net.b.weight.copy_(torch.tensor([4.0, 0.1], dtype=dtype).view(2, 1, 1, 1))
    return net, graph


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_proximal_step_shrinks_each_channel_by_hand(dtype):
    net, graph = _two_layer(dtype)
    slices = channel_slices(graph, net)
    assert group_sizes(slices) == [4]
    fc_before = net[4].weight.detach().clone()
    mean_before = net[1].running_mean.clone()
    # step 0.5: threshold 0.5 * sqrt(4) = 1. Channel 0 (norm 5) keeps 1 - 1/5 = 0.8 of its weights;
    # channel 1 (norm 0.5 <= 1) becomes exactly zero.
    zeros = group_lasso_prox(slices, 0.5)
    assert zeros == 1
    tol = {"rtol": 1e-6, "atol": 1e-7}
    torch.testing.assert_close(net[0].weight.view(-1), torch.tensor([2.4, 0.0], dtype=dtype), **tol)
    torch.testing.assert_close(net[0].bias, torch.tensor([0.0, 0.0], dtype=dtype), **tol)
    torch.testing.assert_close(net[1].weight, torch.tensor([3.2, 0.0], dtype=dtype), **tol)
    torch.testing.assert_close(net[1].bias, torch.tensor([0.0, 0.0], dtype=dtype), **tol)
    assert (net[0].weight[1] == 0).all() and net[0].bias[1] == 0 and net[1].weight[1] == 0  # exactly
    # only the channels' output weights change
    assert torch.equal(net[4].weight, fc_before) and torch.equal(net[1].running_mean, mean_before)
    # a second step: channel 0 has norm 4 now, keeps 1 - 1/4 = 0.75: weight 1.8, scale 2.4
    assert group_lasso_prox(slices, 0.5) == 1
    torch.testing.assert_close(net[0].weight.view(-1), torch.tensor([1.8, 0.0], dtype=dtype), **tol)
    torch.testing.assert_close(net[1].weight, torch.tensor([2.4, 0.0], dtype=dtype), **tol)
    assert [z.tolist() for z in zero_channels(slices)] == [[False, True]]
    # a channel driven to zero by a larger step: threshold 2 * 2 = 4 >= norm 3
    assert group_lasso_prox(slices, 2.0) == 2
    assert all((s.tensor == 0).all() for s in slices[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_proximal_step_couples_every_layer_of_a_group(dtype):
    net, graph = _residual(dtype)
    slices = channel_slices(graph, net)
    assert len(slices) == 1 and group_sizes(slices) == [2]
    # channel 0: (3, 4), norm 5; channel 1: (0.1, 0.1), norm sqrt(0.02). Step sqrt(2) / 2:
    # threshold sqrt(2) / 2 * sqrt(2) = 1, so channel 0 keeps 0.8: (2.4, 3.2); channel 1 -> 0.
    assert group_lasso_prox(slices, math.sqrt(2) / 2) == 1
    torch.testing.assert_close(net.a.weight.view(-1), torch.tensor([2.4, 0.0], dtype=dtype))
    torch.testing.assert_close(net.b.weight.view(-1), torch.tensor([3.2, 0.0], dtype=dtype))
    # step 0 changes nothing
    before = net.a.weight.detach().clone()
    assert group_lasso_prox(slices, 0.0) == 1
    assert torch.equal(net.a.weight, before)


def test_the_proximal_step_refuses_a_bad_step():
    net, graph = _two_layer(torch.float32)
    with pytest.raises(ArchSearchError, match="group_lasso_prox: step must be a finite number >= 0, got -0.1"):
        group_lasso_prox(channel_slices(graph, net), -0.1)
    with pytest.raises(ArchSearchError, match="group_lasso_penalty: strength must be a finite number >= 0"):
        group_lasso_penalty(channel_slices(graph, net), float("nan"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_penalty_by_hand(dtype):
    net, graph = _two_layer(dtype)
    slices = channel_slices(graph, net)
    # 0.01 * sqrt(4) * (5 + 0.5) = 0.11
    penalty = group_lasso_penalty(slices, 0.01)
    assert penalty.dtype == dtype
    assert penalty.item() == pytest.approx(0.11, rel=1e-6)
    # the input slices of channel_slices(inputs=True) do not count
    with_inputs = channel_slices(graph, net, inputs=True)
    assert group_lasso_penalty(with_inputs, 0.01).item() == pytest.approx(0.11, rel=1e-6)
    res, res_graph = _residual(dtype)
    # 1 * sqrt(2) * (5 + sqrt(0.02)) = 5 sqrt(2) + 0.2
    assert group_lasso_penalty(channel_slices(res_graph, res), 1.0).item() == pytest.approx(
        5 * math.sqrt(2) + 0.2, rel=1e-6)
    assert group_lasso_penalty(slices, 0.0).item() == 0.0


def test_the_penalty_s_gradient_at_a_zero_channel_is_zero():
    net, graph = _two_layer(torch.float64)
    slices = channel_slices(graph, net)
    group_lasso_prox(slices, 0.5)  # channel 1 is exactly zero now
    net.zero_grad()
    group_lasso_penalty(slices, 1.0).backward()
    # d/dw of sqrt(4) * ||theta_0|| = 2 * w / ||theta_0|| = 2 * 2.4 / 4 = 1.2 for channel 0; 0 for channel 1
    torch.testing.assert_close(net[0].weight.grad.view(-1), torch.tensor([1.2, 0.0], dtype=torch.float64))
    torch.testing.assert_close(net[1].weight.grad, torch.tensor([2 * 3.2 / 4, 0.0], dtype=torch.float64))
    norms = group_norms(slices)[0]
    torch.testing.assert_close(norms, torch.tensor([4.0, 0.0], dtype=torch.float64))


def test_a_strong_group_lasso_drives_more_channels_to_zero_than_none(search_data, search_teacher):
    runs, lasso = {}, {}
    for strength in (0.0, 2.0):
        model = copy.deepcopy(search_teacher.model).train()
        graph = trace(model, torch.zeros(1, 3, 16, 16))
        importance, info = train_group_lasso(model, graph, search_data, strength=strength, epochs=1, lr=0.05,
                                             batch_size=32, max_batches=2, seed=0, progress=False)
        slices = channel_slices(graph, model)
        # the recorded count is the channels whose output weights are exactly zero in the model
        assert info["zero_channels"] == sum(int(z.sum()) for z in zero_channels(slices))
        assert info["zero_channels"] == sum(int((v == 0).sum()) for v in importance)
        assert info["channels"] == sum(len(v) for v in importance) == sum(len(z) for z in zero_channels(slices))
        assert info["strength"] == strength and np.isfinite(info["loss"])
        assert info["penalty"] == pytest.approx(group_lasso_penalty(slices, strength).item(), rel=1e-6)
        runs[strength], lasso[strength] = info, group_lasso_penalty(slices, 1.0).item()
    assert runs[0.0]["zero_channels"] == 0
    assert 0 < runs[2.0]["zero_channels"] < runs[2.0]["channels"]
    assert lasso[2.0] < 0.5 * lasso[0.0]  # the group lasso itself shrank


def test_group_lasso_end_to_end(tmp_path, small_config, search_data, search_teacher):
    assert POLICIES["group_lasso"] is GroupLasso
    config = small_config(method="group_lasso", targets=[0.5])
    config.methods.epochs = 1
    config.methods.max_batches = 2
    config.methods.batch_size = 32
    config.methods.group_lasso_strength = 2.0
    config.methods.lr = 0.05
    config.reward.measure = "flops"
    config.final.top_k = 0
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    [record] = result.records
    assert (record.method, record.source, record.target) == ("group_lasso", "group_lasso", 0.5)
    assert record.ok and record.flops <= 0.5 * result.teacher["flops"]
    source = torch.load(tmp_path / "sources" / "group_lasso.pt", weights_only=True)
    info = source["info"]
    assert info["method"] == "group_lasso" and info["strength"] == 2.0 and info["zero_channels"] > 0
    assert record.overhead_cost == pytest.approx(info["cost"])
    # the importance is the channels' output norm in the regularised weights
    model = search_teacher.model
    graph = trace(model, torch.zeros(1, 3, 16, 16))
    regularised = copy.deepcopy(model)
    regularised.load_state_dict(source["state_dict"])
    importance = tuple(v.numpy() for v in source["importance"])
    norms = group_norms(channel_slices(graph, regularised))
    for v, n in zip(importance, norms):
        np.testing.assert_allclose(v, n.detach().double().numpy(), rtol=1e-5, atol=1e-8)
    # the student inherits the regularised weights, and keeps each group's largest-norm channels
    space = SearchSpace(graph, channel_importance=importance, channel_order="magnitude")
    student = space.student_from_dict(read_journal(tmp_path / "journal.jsonl").records[0])
    from_source = build_student(student, regularised).state_dict()
    from_teacher = build_student(student, model).state_dict()
    assert any(not torch.equal(from_source[k], from_teacher[k]) for k in from_source)
    kept = student.kept_channels(1)  # conv1 is layer 1 of the teacher and of the student
    torch.testing.assert_close(from_source["layers.1.weight"], regularised.conv1.weight[kept])
    torch.testing.assert_close(from_source["layers.2.weight"], regularised.bn1.weight[kept])
    for g, members in enumerate(space.channels.group_members):
        kept = student.kept_channels(members[0])
        assert np.array_equal(kept, np.sort(np.argsort(-importance[g], kind="stable")[:len(kept)]))
