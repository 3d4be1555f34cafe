r"""Randomised composition tests of botorch_archsearch/graph/trace.py with the search space and the
student builder: small networks are composed, per seed, from supported pieces (conv-BN-activation,
squeeze-and-excitation and spatial gates, layer scale, channels-last LayerNorm blocks, group
norms, upsample-and-add, split/cat, residual adds, drop-path, shape-derived pools) and, for some
seeds, one unsupported piece (a scalar multiple, a spatial slice, InstanceNorm2d, an LSTM, a
transposing permute, matmul attention, ...).

Every network either is refused by ``trace`` with our own error naming the unsupported piece, or
traces to a graph whose unedited student computes the network, whose counts match the modules,
and whose sampled students all build, run and keep the output shape; removal-and-skip edits are
compared with the teacher run layer by layer with the edit applied by hand.
"""

from __future__ import annotations

import random
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError, UnsupportedLayerError
from botorch_archsearch.graph import build_student, count_params, trace
from botorch_archsearch.space import Edit, SearchSpace, channel_importance
from botorch_archsearch.utils import import_torchvision

SEEDS = range(48)
SIDE = 16  # input side
SAMPLED = 3  # sampled students per channel order and network
TOL = 1e-10  # float64 throughout



# ---------------------------------------------------------------------------- supported pieces
# Each piece is made from the incoming (channels, side) and a random.Random; ``out`` is the
# outgoing (channels, side).
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "relu6": lambda: nn.ReLU6(),
    "silu": lambda: nn.SiLU(),
    "hardswish": lambda: nn.Hardswish(),
    "gelu": lambda: nn.GELU(),
    "mish": lambda: nn.Mish(),
    "elu": lambda: nn.ELU(0.5),
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
}


class ConvBNAct(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        kind = rng.choice(["plain", "plain", "grouped", "depthwise"])
        c_out = c if kind == "depthwise" else rng.choice([4, 6, 8, 12])
        groups = {"plain": 1, "depthwise": c}.get(kind, 2 if c % 2 == 0 and c_out % 2 == 0 else 1)
        stride = rng.choice([1, 2]) if side >= 8 else 1
        self.conv = nn.Conv2d(c, c_out, 3, stride=stride, padding=1, groups=groups, bias=rng.random() < 0.5)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = ACTIVATIONS[rng.choice(list(ACTIVATIONS))]()
        self.out = (c_out, (side - 1) // stride + 1)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcitation(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(2, c // rng.choice([2, 4])), 1)
        self.fc2 = nn.Conv2d(self.fc1.out_channels, c, 1)
        self.squeeze = rng.choice(["adaptive", "mean", "avg_pool_of_shape"])
        self.gate = rng.choice(["sigmoid", "hardsigmoid", "method_sigmoid"])
        divisions = ["x/s"] if self.gate != "hardsigmoid" else []  # hardsigmoid reaches 0
        self.apply_as = rng.choice(["x*s", "s*x", "expand_as"] + divisions)
        self.out = (c, side)

    def forward(self, x):
        if self.squeeze == "adaptive":
            s = F.adaptive_avg_pool2d(x, 1)
        elif self.squeeze == "mean":
            s = x.mean((2, 3), keepdim=True)
        else:
            s = F.avg_pool2d(x, x.shape[-1])
        s = self.fc2(F.relu(self.fc1(s)))
        s = F.hardsigmoid(s) if self.gate == "hardsigmoid" else (s.sigmoid() if self.gate == "method_sigmoid"
                                                                 else torch.sigmoid(s))
        if self.apply_as == "x*s":
            return x * s
        if self.apply_as == "s*x":
            return s * x
        if self.apply_as == "expand_as":
            return x * s.expand_as(x)
        return x / s


class SpatialGate(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 1, 3, padding=1)
        self.out = (c, side)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class LayerScale(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c, 1, 1))
        self.first = rng.random() < 0.5
        self.out = (c, side)

    def forward(self, x):
        return self.gamma * x if self.first else x * self.gamma


class DropPath(nn.Module):
    """timm-style drop-path (data-dependent in training; the identity in eval)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        return x * x.new_empty((x.shape[0], 1, 1, 1)).bernoulli_(1 - self.p) / (1 - self.p)


class ConvNeXtBlock(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.functional_norm = rng.random() < 0.5
        self.pw1, self.pw2 = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)
        self.gamma = nn.Parameter(torch.ones(c))
        drop = rng.choice(["DropPath", "StochasticDepth", "none"])
        self.drop = {"DropPath": lambda: DropPath(0.1), "none": nn.Identity,
                     "StochasticDepth": lambda: import_torchvision().ops.StochasticDepth(0.1, "row")}[drop]()
        self.out = (c, side)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        if self.functional_norm:
            y = F.layer_norm(y, (y.shape[-1],), self.norm.weight, self.norm.bias, 1e-6)
        else:
            y = self.norm(y)
        y = self.gamma * self.pw2(F.gelu(self.pw1(y)))
        return x + self.drop(y.permute(0, 3, 1, 2))


class GroupNormAct(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        c_out = rng.choice([4, 8, 12])
        self.conv = nn.Conv2d(c, c_out, 3, padding=1, bias=False)
        self.groups = rng.choice([g for g in (1, 2, 4) if c_out % g == 0])
        self.norm = nn.GroupNorm(self.groups, c_out)
        self.functional = rng.random() < 0.5
        self.out = (c_out, side)

    def forward(self, x):
        x = self.conv(x)
        if self.functional:
            x = F.group_norm(x, self.groups, self.norm.weight, self.norm.bias)
        else:
            x = self.norm(x)
        return F.silu(x)


class UpsampleAdd(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.down = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.mode = rng.choice(["nearest", "bilinear"])
        self.by_size = rng.random() < 0.5
        self.up = None if self.by_size else nn.Upsample(scale_factor=2, mode=self.mode)
        self.out = (c, side)

    def forward(self, x):
        d = F.relu(self.down(x))
        if self.by_size:
            return x + F.interpolate(d, size=x.shape[-2:], mode=self.mode)
        return x + self.up(d)


class SplitCat(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.half = c // 2
        self.conv = nn.Conv2d(c - self.half, c - self.half, 3, padding=1)
        self.by_chunk = rng.random() < 0.5 and c % 2 == 0
        self.out = (c, side)

    def forward(self, x):
        if self.by_chunk:
            a, b = x.chunk(2, dim=1)
        else:
            a, b = x[:, : self.half], x[:, self.half :]
        return torch.cat([F.relu(self.conv(b)), a], 1)


class Residual(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.functional_bn = rng.random() < 0.5
        self.out = (c, side)

    def forward(self, x):
        y = self.conv(F.relu(x))
        bn = self.bn
        if self.functional_bn:
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.1, bn.eps)
        else:
            y = bn(y)
        return x + y


class SumOfHalves(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.out = (c // 2, side)

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return sum([a, b])


class GlobalContext(nn.Module):
    """x plus its global average, pooled with a shape-derived kernel and upsampled back."""

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)
        self.out = (c, side)

    def forward(self, x):
        g = self.conv(F.avg_pool2d(x, x.shape[-1]))
        return x + F.interpolate(g, size=(x.size(2), x.size(3)))


class MaxPool(nn.Module):
    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.out = (c, side // 2)

    def forward(self, x):
        return F.max_pool2d(x, 2)


class ConcatGate(nn.Module):
    """A concatenation, gated as a whole by a squeeze-and-excitation gate."""

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(2 * c, c, 1), nn.Conv2d(c, 2 * c, 1)
        self.out = (2 * c, side)

    def forward(self, x):
        y = torch.cat([x, F.relu(self.conv(x))], dim=1)
        return y * F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle, after a grouped convolution."""

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1, groups=2)
        self.out = (c, side)

    def forward(self, x):
        x = F.relu(self.conv(x))
        n, c, h, w = x.size()
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)


class ChannelsLastMLP(nn.Module):
    """A residual MLP computed channels-last: the add happens before permuting back."""

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, 3 * c), nn.Linear(3 * c, c)
        self.drop = nn.Dropout(0.1)
        self.out = (c, side)

    def forward(self, x):
        y = x.permute(0, 2, 3, 1)
        y = y + self.drop(self.fc2(F.silu(self.fc1(self.norm(y)))))
        return y.permute(0, 3, 1, 2)


class GatedSlice(nn.Module):
    """The first channels of the map, gated by their own pooled sigmoid, concatenated with the rest."""

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.k = rng.randint(1, c - 1)
        self.fc = nn.Conv2d(self.k, self.k, 1)
        self.out = (c, side)

    def forward(self, x):
        a = x[:, : self.k]
        a = a * torch.sigmoid(self.fc(a.mean((2, 3), keepdim=True)))
        return torch.cat([a, x[:, self.k :]], 1)


# Supported pieces and the (channels, side) they need.
SUPPORTED = {
    ConvBNAct: lambda c, side: True,
    SqueezeExcitation: lambda c, side: c >= 2,
    SpatialGate: lambda c, side: True,
    LayerScale: lambda c, side: True,
    ConvNeXtBlock: lambda c, side: True,
    GroupNormAct: lambda c, side: True,
    UpsampleAdd: lambda c, side: side % 2 == 0 and side >= 4,
    SplitCat: lambda c, side: c >= 2,
    Residual: lambda c, side: True,
    SumOfHalves: lambda c, side: c % 2 == 0 and c >= 4,
    GlobalContext: lambda c, side: True,
    MaxPool: lambda c, side: side >= 4 and side % 2 == 0,
    ConcatGate: lambda c, side: c <= 8,
    Shuffle: lambda c, side: c % 2 == 0,
    ChannelsLastMLP: lambda c, side: True,
    GatedSlice: lambda c, side: c >= 2,
}


# ---------------------------------------------------------------------------- unsupported pieces
# Each names (a regular expression) what the error must say.
class ScalarMul(nn.Module):
    error = r"node 'mul(_\d+)?'.*mul of"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.out = (c, side)

    def forward(self, x):
        return x * 0.5


class SpatialSlice(nn.Module):
    error = r"node 'getitem(_\d+)?'.*only channel slices"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.out = (c, side - 1)

    def forward(self, x):
        return x[:, :, 1:, 1:]


class InstanceNorm(nn.Module):
    error = r"InstanceNorm2d"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(c, affine=True)
        self.out = (c, side)

    def forward(self, x):
        return self.norm(x)


class LSTMOverRows(nn.Module):
    error = r"flatten|transpose|LSTM"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.rnn = nn.LSTM(c, c, batch_first=True)
        self.out = (c, side)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.rnn(x.flatten(2).transpose(1, 2))[0]
        return y.transpose(1, 2).reshape(n, c, h, w)


class OddPermute(nn.Module):
    error = r"node 'permute(_\d+)?'.*permute\(0, 1, 3, 2\)"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.out = (c, side)

    def forward(self, x):
        return x.permute(0, 1, 3, 2)


class MatmulAttention(nn.Module):
    error = r"attention models .*not supported yet"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = (c, side)

    def forward(self, x):
        q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)
        attention = torch.matmul(q.transpose(1, 2), k).softmax(-1)
        return x + torch.matmul(v, attention).view_as(x)


class LayerNormOverMap(nn.Module):
    error = r"node '\w*norm'.*layer_norm over"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.norm = nn.LayerNorm([c, side, side])
        self.out = (c, side)

    def forward(self, x):
        return self.norm(x)


class PositionEmbedding(nn.Module):
    error = r"node 'add(_\d+)?'.*add of"

    def __init__(self, c: int, side: int, rng: random.Random) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, c, side, side))
        self.out = (c, side)

    def forward(self, x):
        return x + self.pos


UNSUPPORTED = (ScalarMul, SpatialSlice, InstanceNorm, LSTMOverRows, OddPermute, MatmulAttention,
               LayerNormOverMap, PositionEmbedding)


# ---------------------------------------------------------------------------- the composed network
class Composed(nn.Module):
    """A stem, the pieces in order (but those whose needs are not met), and one of four heads, on
    `N x 3 x 16 x 16` inputs."""

    def __init__(self, pieces: list[type], rng: random.Random) -> None:
        super().__init__()
        c, side = rng.choice([4, 6, 8]), SIDE
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        blocks = []
        for piece in pieces:
            if piece in SUPPORTED and not SUPPORTED[piece](c, side):
                continue  # the channels and side before it do not meet its needs
            block = piece(c, side, rng)
            c, side = block.out
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.head_kind = rng.choice(["mean", "adaptive", "avg_pool_of_shape", "layer_norm"])
        self.norm = nn.LayerNorm(c) if self.head_kind == "layer_norm" else None
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        if self.head_kind == "mean":
            f = x.mean((2, 3))
        elif self.head_kind == "adaptive":
            f = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        elif self.head_kind == "avg_pool_of_shape":
            f = F.avg_pool2d(x, x.shape[-1]).view(x.size(0), -1)
        else:
            f = self.norm(x.mean((2, 3)))
        return self.head(f)


def _compose(seed: int) -> tuple[Composed, type | None]:
    """The network of ``seed`` (random weights, non-trivial norms and scales, eval mode) and its
    unsupported piece, if it has one (about one seed in four)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pieces = [rng.choice(list(SUPPORTED)) for _ in range(rng.randint(2, 5))]
    bad = rng.choice(UNSUPPORTED) if rng.random() < 0.25 else None
    if bad is not None:
        pieces.insert(rng.randint(0, len(pieces)), bad)
    net = Composed(pieces, random.Random(seed))
    return _randomize(net, seed), bad


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    with torch.no_grad():
        for name, p in module.named_parameters():
            owner = module.get_submodule(name.rpartition(".")[0])
            if isinstance(owner, (nn.Conv2d, nn.Linear, nn.LSTM)):
                continue
            p.copy_(uniform(p.shape, -0.2, 0.2) if name.endswith("bias") else uniform(p.shape, 0.5, 1.5))
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.copy_(uniform(b.shape, -0.2, 0.2) if name.endswith("mean") else uniform(b.shape, 0.5, 1.5))
    return module.eval()


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, msg: str) -> None:
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=TOL, atol=TOL * scale, msg=msg)


# ---------------------------------------------------------------------------- the test
@pytest.mark.parametrize("seed", SEEDS)
def test_composed_network(seed, edited_teacher):
    module, bad = _compose(seed)
    module = module.double()
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    where = f"seed {seed}: {[type(b).__name__ for b in module.blocks]}"
    try:
        graph = trace(module, x)
    except ArchSearchError as e:  # our errors only: any other type fails the test here
        assert bad is not None, f"{where}: a network of supported pieces was refused: {e}"
        assert isinstance(e, UnsupportedLayerError), where
        assert re.search(bad.error, str(e)), f"{where}: {e}"
        return
    assert bad is None, f"{where}: {bad.__name__} was traced"
    with torch.no_grad():
        expected = module(x)
    teacher_params = _num_params(module)
    assert count_params(graph) == teacher_params, where
    net = build_student(graph, module).eval()
    assert _num_params(net) == teacher_params, where
    with torch.no_grad():
        _assert_close(net(x), expected, where)

    importance = channel_importance(graph, module)
    for order in ("even", "magnitude"):
        space = SearchSpace(graph, channel_importance=importance, channel_order=order)
        edits = space.sample(SAMPLED, generator=torch.Generator().manual_seed(seed))
        for c, edit in enumerate(edits):
            edited = space.student(edit)
            student_graph = edited.graph
            student = build_student(edited, module).eval()
            with torch.no_grad():
                y = student(x)
            assert y.shape == expected.shape and torch.isfinite(y).all(), f"{where} {order} {c}: {edit}"
            assert count_params(student_graph) == _num_params(student) <= teacher_params, (where, order, c)
        # Removal and skips only: the student is the teacher edited by hand.
        for c, edit in enumerate(edits[:2]):
            edit = Edit(edit.remove_mask, (0.0,) * space.num_groups, edit.skips, order)
            plan = space.plan(edit)
            student = build_student(space.student(edit), module).eval()
            with torch.no_grad():
                reference = edited_teacher(graph, net, plan.removed, plan.skips, x)
                _assert_close(student(x), reference, f"{where} {order} removal/skip {c}: {edit}")


def test_compositions_cover_every_piece():
    """The seeds above compose every piece, and a fair share of networks with an unsupported one."""
    seen: set[type] = set()
    unsupported = 0
    for seed in SEEDS:
        module, bad = _compose(seed)
        seen.update(type(b) for b in module.blocks)
        unsupported += bad is not None
    assert set(SUPPORTED) <= seen
    assert 6 <= unsupported <= len(SEEDS) // 2
    assert len(seen & set(UNSUPPORTED)) >= 5
