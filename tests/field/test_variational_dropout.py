r"""Tests of sparse Variational Dropout (botorch_archsearch/field/variational_dropout.py): the KL
approximation and log_alpha against the formulas evaluated by hand, the local reparameterisation
trick against its mean and variance, the dropping and density rule on a hand-built network, a run
through ``compress``, and that a faster-moving ``log_sigma2`` drops more weights."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botorch_archsearch.evaluation import VD_TRAIN_FACTOR, images_per_epoch, training_cost
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.variational_dropout import (
    TIE_BREAK,
    VariationalDropout,
    VariationalDropoutConv2d,
    VariationalDropoutLinear,
    add_variational_dropout,
    channel_density,
    density_importance,
    kl_approximation,
    kl_weight,
    log_alpha,
    remove_variational_dropout,
    variational_dropout_kl,
)
from botorch_archsearch.graph import trace
from botorch_archsearch.search import compress
from botorch_archsearch.search.store import WeightSource
from botorch_archsearch.space import SearchSpace

K1, K2, K3 = 0.63576, 1.87320, 1.48695


def _kl_by_hand(la: float) -> float:
    """KL = -(k1 * sigmoid(k2 + k3 * la) - 0.5 * log1p(1 / alpha) - k1), in plain math."""
    sigmoid = 1.0 / (1.0 + math.exp(-(K2 + K3 * la)))
    return -(K1 * sigmoid - 0.5 * math.log1p(1.0 / math.exp(la)) - K1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_approximation_matches_the_formula_by_hand(dtype):
    values = [-8.0, 0.0, 3.0, 8.0]
    got = kl_approximation(torch.tensor(values, dtype=dtype))
    assert got.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for la, kl in zip(values, got.tolist()):
        assert kl == pytest.approx(_kl_by_hand(la), abs=tol)
    # at log_alpha = 0 by hand: sigmoid(1.8732) = 0.866894, so KL = 0.63576 * 0.133106 + 0.5 * log 2
    at_zero = 0.63576 * (1 - 1 / (1 + math.exp(-1.8732))) + 0.5 * math.log(2)
    assert got[1].item() == pytest.approx(at_zero, abs=tol)
    assert got[1].item() == pytest.approx(0.43120, abs=1e-4)
    # large alpha: almost no KL; small alpha: about 0.5 * log(1 / alpha) + k1 * (1 - sigmoid(k2 - 8 k3))
    at_eight = 0.5 * math.log1p(math.exp(-8)) + K1 * (1 - 1 / (1 + math.exp(-(K2 + 8 * K3))))
    assert got[3].item() == pytest.approx(at_eight, abs=tol)
    assert got[3].item() < 1e-3 and got[0].item() > 4.0
    # summed over a tiny 2 x 2 tensor
    tiny = torch.tensor([[-8.0, 0.0], [3.0, 8.0]], dtype=dtype)
    expected = sum(_kl_by_hand(v) for v in values)
    assert kl_approximation(tiny).sum().item() == pytest.approx(expected, abs=4 * tol)


def test_kl_decreases_as_alpha_grows():
    grid = torch.linspace(-8, 8, 401, dtype=torch.float64)
    kl = kl_approximation(grid)
    assert bool((kl[1:] < kl[:-1]).all())
    assert bool((kl > 0).all())


def test_beta_ramps_linearly_over_the_first_half_of_the_steps():
    assert [kl_weight(t, 10) for t in range(10)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1, 1])
    assert [kl_weight(t, 5) for t in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    assert kl_weight(0, 1) == 1.0
    assert kl_weight(0, 1000) == pytest.approx(1 / 500)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_alpha_is_clamped_log_sigma2_minus_log_theta_squared(dtype):
    weight = torch.tensor([0.1, 1.0, 0.0, -0.5, 0.01], dtype=dtype)
    log_sigma2 = torch.tensor([-10.0, -10.0, -10.0, 2.0, -3.0], dtype=dtype)
    # by hand (eps = 1e-8 inside the log): -10 - log(0.01) = -5.39483; -10 - log(1) = -10, clamped to -8;
    # -10 - log(1e-8) = 8.42, clamped to 8; 2 - log(0.25) = 3.38629; -3 - log(1e-4 + 1e-8) = 6.21024
    expected = [-10 - math.log(0.01 + 1e-8), -8.0, 8.0, 2 - math.log(0.25 + 1e-8), -3 - math.log(1e-4 + 1e-8)]
    got = log_alpha(weight, log_sigma2)
    assert got.dtype == dtype
    assert got.tolist() == pytest.approx(expected, abs=1e-5)


def _samples(layer: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` training-mode outputs of ``layer`` for the one input ``x`` (a batch of copies)."""
    layer.train()
    with torch.no_grad():
        return layer(x.expand(n, *x.shape[1:]))


@pytest.mark.parametrize(
    "groups, stride, padding, dilation, padding_mode",
    [(1, 2, 1, 1, "zeros"), (2, 1, 2, 2, "zeros"), (4, 1, 1, 1, "zeros"), (1, 1, 1, 1, "reflect")],
)
def test_local_reparameterisation_has_the_mean_and_variance_of_the_formula(groups, stride, padding, dilation,
                                                                           padding_mode):
    torch.manual_seed(0)
    dtype, n = torch.float64, 20000
    conv = nn.Conv2d(4, 4, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     padding_mode=padding_mode).to(dtype)
    model = nn.Sequential(conv)
    generator = torch.Generator().manual_seed(1)
    (layer,) = add_variational_dropout(model, generator=generator)
    assert isinstance(layer, VariationalDropoutConv2d) and layer is model[0]
    theta = layer.weight.detach().clone()
    with torch.no_grad():  # log_alpha from -3 to 0 around |theta|: a noise visible in the samples
        layer.log_sigma2.copy_(torch.log(theta ** 2) + torch.empty_like(theta).uniform_(-3, 0))
    x = torch.randn(1, 4, 5, 5, dtype=dtype)
    alpha = torch.exp(torch.clamp(layer.log_sigma2.detach() - torch.log(theta ** 2 + 1e-8), -8, 8))
    xp = F.pad(x, (padding,) * 4, mode="reflect") if padding_mode == "reflect" else x
    pad = 0 if padding_mode == "reflect" else padding
    mean = F.conv2d(xp, theta, conv.bias.detach(), stride, pad, dilation, groups)
    var = F.conv2d(xp ** 2, alpha * theta ** 2, None, stride, pad, dilation, groups)
    out = _samples(model, x, n)
    assert out.shape == (n, *mean.shape[1:])
    se = (var / n).sqrt()
    assert bool(((out.mean(0, keepdim=True) - mean).abs() <= 5 * se + 1e-12).all())
    ratio = out.var(0, keepdim=True) / var
    assert bool(((ratio - 1).abs() <= 5 * math.sqrt(2 / n)).all())
    # evaluation mode: theta with the weights of log_alpha >= 3 zeroed (none here), no noise
    model.eval()
    assert torch.allclose(model(x), mean)


def test_local_reparameterisation_of_a_linear_layer_by_hand():
    torch.manual_seed(0)
    dtype, n = torch.float64, 20000
    model = nn.Sequential(nn.Linear(3, 2).to(dtype))
    (layer,) = add_variational_dropout(model, generator=torch.Generator().manual_seed(2))
    assert isinstance(layer, VariationalDropoutLinear)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [2.0, 0.1, -0.3]], dtype=dtype))
        layer.bias.copy_(torch.tensor([0.1, -0.2], dtype=dtype))
        # log_alpha = log_sigma2 - log(theta^2): [[0, -1, 3.5], [-2, 1, 8 (clamped)]]
        theta2 = layer.weight ** 2
        layer.log_sigma2.copy_(torch.log(theta2 + 1e-8) + torch.tensor([[0.0, -1.0, 3.5], [-2.0, 1.0, 20.0]],
                                                                       dtype=dtype))
    x = torch.tensor([[1.0, 2.0, -1.0]], dtype=dtype)
    # mean: [0.5 - 2 - 0.25 + 0.1, 2 + 0.2 + 0.3 - 0.2] = [-1.65, 2.3]
    # var: [1 * 0.25 * e^0 + 4 * 1 * e^-1 + 1 * 0.0625 * e^3.5,
    #       1 * 4 * e^-2 + 4 * 0.01 * e^1 + 1 * 0.09 * e^8]
    mean = [-1.65, 2.3]
    var = [0.25 + 4 * math.exp(-1) + 0.0625 * math.exp(3.5),
           4 * math.exp(-2) + 0.04 * math.e + 0.09 * math.exp(8)]
    out = _samples(model, x, n)
    for j in range(2):
        assert out[:, j].mean().item() == pytest.approx(mean[j], abs=5 * math.sqrt(var[j] / n))
        assert out[:, j].var().item() == pytest.approx(var[j], rel=5 * math.sqrt(2 / n))
    # evaluation mode: weights of log_alpha >= 3 (theta[0, 2] and theta[1, 2]) dropped
    model.eval()
    assert model(x)[0].tolist() == pytest.approx([0.5 - 2 + 0.1, 2 + 0.2 - 0.2])


class _Tiny(nn.Module):
    """Channel groups: {a, b (residual add), dw (depthwise)} of 4 channels, {c} of 6; fc is the head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.c = nn.Conv2d(4, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        h = h + self.b(h)
        h = F.relu(self.dw(h))
        h = F.relu(self.c(h))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def _hand_sparsified():
    """The tiny net with every weight 0.5 (c's channel k scaled by k + 1), log_sigma2 -10 (kept:
    log_alpha <= -10 + log 4 < 3) except the hand-chosen weights below, set to 8 (dropped:
    log_alpha >= 8 - log 9 > 3)."""
    torch.manual_seed(0)
    model = _Tiny()
    graph = trace(model, torch.zeros(1, 3, 8, 8))
    teacher_keys = list(model.state_dict())
    add_variational_dropout(model)
    with torch.no_grad():
        for layer in (model.a, model.b, model.dw, model.c, model.fc):
            layer.weight.fill_(0.5)
        model.c.weight.mul_(torch.arange(1.0, 7.0).view(6, 1, 1, 1))
        drop = {name: torch.zeros_like(getattr(model, name).weight, dtype=torch.bool) for name in
                ("a", "b", "dw", "c", "fc")}
        drop["a"][1] = True           # channel 1: a's whole filter (27 of 72 weights)
        drop["dw"][2] = True          # channel 2: dw's filter (9 of 72)
        drop["b"][3] = True           # channel 3: b's filter and dw's (36 + 9 of 72)
        drop["dw"][3] = True
        drop["b"][0, 0, 0, 0] = True  # channel 0: one weight of b (1 of 72)
        drop["c"][5] = True           # c's channel 5: all 4 weights
        drop["c"][4, :2] = True       # c's channel 4: 2 of 4
        drop["fc"][1, 3] = True       # the head: dropped, no channel group
        for name, mask in drop.items():
            getattr(model, name).log_sigma2.copy_(torch.where(mask, 8.0, -10.0))
    return model, graph, teacher_keys, drop


def test_dropped_weights_are_zeroed_and_densities_are_the_hand_counted_fractions():
    model, graph, teacher_keys, drop = _hand_sparsified()
    # KL by hand: a, b, dw, fc: log_alpha clamped to -8 (kept: -10 + log 4) or 8 (dropped: 8 + log 4);
    # c's channel k (theta = (k + 1) / 2): log_alpha = -10 or 8, minus log theta^2, clamped
    expected = sum(int((~drop[n]).sum()) * _kl_by_hand(-8.0) + int(drop[n].sum()) * _kl_by_hand(8.0)
                   for n in ("a", "b", "dw", "fc"))
    for k in range(6):
        log_theta2 = 2 * math.log((k + 1) / 2)
        expected += int((~drop["c"][k]).sum()) * _kl_by_hand(max(-8.0, -10 - log_theta2))
        expected += int(drop["c"][k].sum()) * _kl_by_hand(min(8.0, 8 - log_theta2))
    assert variational_dropout_kl(model).item() == pytest.approx(expected, rel=1e-5)
    before = {n: getattr(model, n).weight.detach().clone() for n in drop}
    keep = remove_variational_dropout(model)
    # plain layers again, with the teacher's state_dict keys
    assert type(model.a) is nn.Conv2d and type(model.fc) is nn.Linear and not hasattr(model.a, "log_sigma2")
    assert list(model.state_dict()) == teacher_keys
    copy.deepcopy(_Tiny()).load_state_dict(model.state_dict())
    for name, mask in drop.items():
        assert torch.equal(keep[name], ~mask)
        weight = getattr(model, name).weight.detach()
        assert bool((weight[mask] == 0).all())
        assert torch.equal(weight[~mask], before[name][~mask])
    density = channel_density(graph, model, keep)
    assert len(density) == 2
    np.testing.assert_allclose(density[0], [71 / 72, 45 / 72, 63 / 72, 27 / 72])
    np.testing.assert_allclose(density[1], [1, 1, 1, 1, 0.5, 0])
    importance = density_importance(graph, model, keep)
    for d, i in zip(density, importance):
        assert bool(((i - d >= 0) & (i - d <= TIE_BREAK * (1 + 1e-9))).all())
    # c's dense channels tie on density and rank by norm (scales 1..4); the largest gets the whole tie-break
    assert list(np.argsort(-importance[1])) == [3, 2, 1, 0, 4, 5]
    assert importance[1][3] - 1 == pytest.approx(TIE_BREAK)
    with pytest.raises(ArchSearchError, match="keep has no mask"):
        channel_density(graph, model, {k: v for k, v in keep.items() if k != "dw"})


def test_pruning_keeps_the_densest_channels_by_one_threshold():
    model, graph, _, _ = _hand_sparsified()
    keep = remove_variational_dropout(model)
    importance = density_importance(graph, model, keep)
    space = SearchSpace(graph)
    policy = VariationalDropout(SimpleNamespace(space=space, size_measure="params"))
    source = WeightSource("variational_dropout", model.state_dict(), importance)
    groups = space.channels.group_members
    # Parameters with k0 channels kept in group 0 and k1 in group 1, by hand:
    # a: 28 k0, b: k0 (9 k0 + 1), dw: 10 k0, c: k1 (k0 + 1), fc: 2 k1 + 2 (teacher: 344).
    # Channels by importance: group 1's 0..3 (1 + tie-break), group 0's 0 (71/72), 2 (63/72),
    # 1 (45/72), group 1's 4 (1/2), group 0's 3 (27/72), group 1's 5 (0). One threshold gives
    # (4, 6): 344, (4, 5): 337, (3, 5): 230, (3, 4): 224, (2, 4): 136, (1, 4): 54, ...
    expected = {0.99: ([0, 1, 2, 3], [0, 1, 2, 3, 4]), 0.7: ([0, 1, 2], [0, 1, 2, 3, 4]),
                0.66: ([0, 1, 2], [0, 1, 2, 3]), 0.5: ([0, 2], [0, 1, 2, 3])}
    for target, (kept0, kept1) in expected.items():
        edit = policy.prune(source, target)
        student = space.with_importance(importance).student(edit)
        assert list(student.kept_channels(groups[0][0])) == kept0
        assert list(student.kept_channels(groups[1][0])) == kept1
        k0, k1 = len(kept0), len(kept1)
        params = 28 * k0 + k0 * (9 * k0 + 1) + 10 * k0 + k1 * (k0 + 1) + 2 * k1 + 2
        assert params <= target * 344


def _context(config, data, model):
    graph = trace(model, torch.zeros(1, 3, 16, 16))
    return SimpleNamespace(config=config, data=data, space=SimpleNamespace(graph=graph))


def test_a_faster_log_sigma2_drops_more_weights(small_config, search_data, search_teacher):
    config = small_config(method="variational_dropout")
    m = config.methods
    m.epochs, m.max_batches, m.batch_size = 2, 2, 32
    dropped = {}
    for lr in (1e-6, 3.0):
        m.vd_log_sigma2_lr = lr
        model = copy.deepcopy(search_teacher.model).train()
        policy = VariationalDropout(_context(config, search_data, search_teacher.model))
        trained, importance, info = policy.regularise(model, seed=0)
        weights = [mod.weight for mod in trained.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
        zeros = sum(int((w == 0).sum()) for w in weights)
        total = sum(w.numel() for w in weights)
        assert zeros / total >= info["dropped"]
        assert all(bool(((v >= 0) & (v <= 1 + TIE_BREAK)).all()) for v in importance)
        dropped[lr] = info["dropped"]
    # at 1e-6 only the weights that start below |theta| = e^-6.5 (log_alpha >= 3 at log_sigma2 = -10):
    # about 2% of the teacher's
    assert dropped[1e-6] < 0.05
    assert dropped[3.0] > dropped[1e-6] + 0.3


def test_the_method_runs_through_compress(tmp_path, small_config, search_data, search_teacher):
    config = small_config(method="variational_dropout", targets=[0.5])
    config.methods.epochs = 1
    config.methods.max_batches = 2
    config.methods.batch_size = 32  # two steps, both at beta = 1 (ceil(2 / 2) = 1)
    result = compress(search_teacher, search_data, config, run_dir=tmp_path)
    (record,) = result.records
    assert record.method == "variational_dropout" and record.source == "variational_dropout"
    measure = config.reward.budget_measure or config.reward.measure
    assert getattr(record, measure) <= 0.5 * result.teacher[measure]
    source = torch.load(tmp_path / "sources" / "variational_dropout.pt", weights_only=True)
    model = copy.deepcopy(search_teacher.model)
    model.load_state_dict(source["state_dict"])
    assert list(source["state_dict"]) == list(search_teacher.model.state_dict())
    info = source["info"]
    assert {"loss", "cross_entropy", "kl", "dropped"} <= set(info)
    assert 0 <= info["dropped"] <= 1 and info["kl"] > 0
    assert 0 < info["cross_entropy"] < info["loss"]
    weights = [v for k, v in source["state_dict"].items() if k.endswith("weight") and v.dim() in (2, 4)]
    assert sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights) >= info["dropped"]
    assert all(bool(((v >= 0) & (v <= 1 + TIE_BREAK)).all()) for v in source["importance"])
    images = images_per_epoch(len(search_data.train_y), 32, 2)
    assert info["cost"] == pytest.approx(training_cost(result.teacher["flops"], images, VD_TRAIN_FACTOR))
    assert record.overhead_cost == pytest.approx(info["cost"])


def test_unsupported_layers_are_refused():
    class Odd(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ArchSearchError, match="'1' is a Odd with its own forward"):
        add_variational_dropout(nn.Sequential(nn.Linear(2, 2), Odd(2, 2)))
    weighted = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(2, 2)))
    with pytest.raises(ArchSearchError, match="'0' is a .*parametrised weight"):
        add_variational_dropout(weighted)
    model = nn.Sequential(nn.Linear(2, 2))
    add_variational_dropout(model)
    with pytest.raises(ArchSearchError, match="already has variational dropout"):
        add_variational_dropout(model)
