r"""Building blocks of third-party model zoos (timm, GhostNet, ResNeSt, HRNet, CBAM, ECA-Net, SENet)
through botorch_archsearch/graph/trace.py, the search space and the student builder.

timm and the other zoos are not dependencies: each block is a small replica, written here after
the published code of its zoo (the same module structure, calls and forms, at tiny width), in a
small network on 32 x 32 inputs. A replica that should trace is checked like a teacher: its graph
counts the module's parameters, the unedited student computes what it computes (float32 and
float64, with random norm statistics, affines and layer scales), and 20 sampled magnitude-ordered
edits build students that run, keep the output shape and count what they hold (no more than the
teacher). A replica of a form the graph cannot represent must raise ``UnsupportedLayerError``
naming the node or op (or, where torch.fx itself cannot trace it, ``ArchSearchError`` saying so),
and no other exception type.
"""

from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError, UnsupportedLayerError
from botorch_archsearch.graph import ArchGraph, build_student, count_params, trace
from botorch_archsearch.space import SearchSpace, channel_importance
from botorch_archsearch.utils import import_torchvision

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
SAMPLES = 20
SIDE = 32
NUM_CLASSES = 10



# ---------------------------------------------------------------------------- helpers
def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random norm statistics, affine parameters and layer scales (away from their defaults, the
    timm layer scale's 1e-6 included); convolution and linear weights keep their random default
    initialisation. Returns the module in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    with torch.no_grad():
        for name, p in module.named_parameters():
            if isinstance(module.get_submodule(name.rpartition(".")[0]), (nn.Conv1d, nn.Conv2d, nn.Linear)):
                continue
            p.copy_(uniform(p.shape, -0.3, 0.3) if name.endswith("bias") else uniform(p.shape, 0.5, 1.5))
        for name, b in module.named_buffers():
            if b.is_floating_point():
                low, high = (-0.3, 0.3) if name.endswith(("mean", "bias")) else (0.5, 1.5)
                b.copy_(uniform(b.shape, low, high))
    return module.eval()


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    tol = TOL[expected.dtype]
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=msg or None)


def _assert_unedited_student_equals(graph: ArchGraph, module: nn.Module, x: torch.Tensor) -> None:
    for dtype in (torch.float32, torch.float64):
        teacher = copy.deepcopy(module).to(dtype).eval()
        student = build_student(graph, teacher).eval()
        assert _num_params(student) == count_params(graph)
        with torch.no_grad():
            _assert_close(student(x.to(dtype)), teacher(x.to(dtype)), msg=f"{dtype}")


def _assert_sampled_students_build(graph: ArchGraph, module: nn.Module, x: torch.Tensor) -> None:
    """20 magnitude-ordered sampled edits build students that run, keep the output shape and have
    ``count_params`` == their module's count <= the teacher's."""
    teacher_params = _num_params(module)
    with torch.no_grad():
        expected = module(x)
    importance = channel_importance(graph, module)
    space = SearchSpace(graph, channel_importance=importance, channel_order="magnitude")
    assert space.num_groups > 0 and space.removable and space.skip_candidates
    counts = []
    for c, edit in enumerate(space.sample(SAMPLES, generator=torch.Generator().manual_seed(0))):
        where = f"sample {c}: {edit}"
        edited = space.student(edit)
        student_graph = edited.graph
        student = build_student(edited, module).eval()
        with torch.no_grad():
            y = student(x)
        assert y.shape == expected.shape, where
        assert torch.isfinite(y).all(), where
        counts.append(count_params(student_graph))
        assert counts[-1] == _num_params(student) <= teacher_params, where
    assert min(counts) < teacher_params  # the edits do compress


def _ops(graph: ArchGraph) -> Counter:
    return Counter(n.op for n in graph.nodes)


# ---------------------------------------------------------------------------- timm: ConvNeXt
def _timm_drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False,
                    scale_by_keep: bool = True) -> torch.Tensor:
    """timm.layers.drop_path: one Bernoulli draw per sample, in training only."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


class DropPath(nn.Module):
    """timm.layers.DropPath."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return _timm_drop_path(x, self.drop_prob, self.training, self.scale_by_keep)


class LayerNorm2d(nn.LayerNorm):
    """timm.layers.LayerNorm2d: a LayerNorm subclass normalising the channels of an NCHW map."""

    def __init__(self, num_channels: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__(num_channels, eps=eps, elementwise_affine=affine)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)
        return x


class Mlp(nn.Module):
    """timm.layers.Mlp (fc1, act, drop, norm, fc2, drop)."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(x)))


class ConvNeXtBlock(nn.Module):
    """timm's ConvNeXtBlock (conv_mlp=False): depthwise 7x7, channels-last LayerNorm and Mlp, layer
    scale, DropPath, residual. ``gamma_form``, where the layer scale is applied: facebookresearch's
    ``self.gamma * x`` or older timm's ``x.mul(self.gamma)`` in channels-last, or timm >= 0.6's
    ``x.mul(self.gamma.reshape(1, -1, 1, 1))`` after permuting back."""

    def __init__(self, chs: int, drop_path: float = 0.0, ls_init_value: float = 1e-6,
                 gamma_form: str = "x.mul(gamma)") -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(chs, chs, 7, padding=3, groups=chs)
        self.norm = nn.LayerNorm(chs, eps=1e-6)
        self.mlp = Mlp(chs, 4 * chs)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(chs))
        self.gamma_form = gamma_form
        self.shortcut = nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.norm(x)
        x = self.mlp(x)
        if self.gamma_form == "gamma*x":
            x = self.gamma * x
        elif self.gamma_form == "x.mul(gamma)":
            x = x.mul(self.gamma)
        x = x.permute(0, 3, 1, 2)
        if self.gamma_form == "x.mul(gamma.reshape)":
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        x = self.drop_path(x) + self.shortcut(shortcut)
        return x


class ConvNeXt(nn.Module):
    """timm's ConvNeXt: patchify stem with LayerNorm2d, stages with LayerNorm2d + strided conv
    downsampling, and NormMlpClassifierHead (pool, LayerNorm2d, flatten, dropout, fc)."""

    def __init__(self, dims: tuple[int, ...] = (8, 16), depths: tuple[int, ...] = (1, 1),
                 drop_path_rate: float = 0.1, gamma_form: str = "x.mul(gamma)") -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        rates = torch.linspace(0, drop_path_rate, sum(depths) + 1)[1:].tolist()  # every block drops
        stages, prev, k = [], dims[0], 0
        for dim, depth in zip(dims, depths):
            down = nn.Identity() if dim == prev else nn.Sequential(
                LayerNorm2d(prev), nn.Conv2d(prev, dim, 2, stride=2))
            blocks = [ConvNeXtBlock(dim, rates[k + i], gamma_form=gamma_form) for i in range(depth)]
            stages.append(nn.Sequential(down, *blocks))
            prev, k = dim, k + depth
        self.stages = nn.Sequential(*stages)
        self.norm_pre = nn.Identity()
        self.head = nn.ModuleDict({"global_pool": nn.AdaptiveAvgPool2d(1), "norm": LayerNorm2d(prev),
                                   "flatten": nn.Flatten(1), "drop": nn.Dropout(0.2),
                                   "fc": nn.Linear(prev, NUM_CLASSES)})

    def forward(self, x):
        x = self.norm_pre(self.stages(self.stem(x)))
        h = self.head
        return h.fc(h.drop(h.flatten(h.norm(h.global_pool(x)))))


# ---------------------------------------------------------------------------- functional batch norm
class BatchNormAct2d(nn.BatchNorm2d):
    """timm.layers.BatchNormAct2d: a BatchNorm2d subclass calling F.batch_norm with its own buffers
    and parameters, then drop and activation."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 apply_act: bool = True, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.drop = nn.Identity()
        self.act = act_layer() if apply_act else nn.Identity()

    def forward(self, x):
        exponential_average_factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                exponential_average_factor = 1.0 / float(self.num_batches_tracked)
        bn_training = True if self.training else (self.running_mean is None) and (self.running_var is None)
        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, bn_training, exponential_average_factor, self.eps)
        return self.act(self.drop(x))


class ConvNormAct(nn.Module):
    """timm.layers.ConvNormAct: conv, then BatchNormAct2d."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 apply_act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = BatchNormAct2d(out_chs, apply_act=apply_act)

    def forward(self, x):
        return self.bn(self.conv(x))


class ConvBnActBuffers(nn.Module):
    """A conv-BN-act block holding the BN's buffers and affine itself, calling F.batch_norm with
    them (as some zoos' fused blocks do)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, eps: float = 1e-3,
                 momentum: float = 0.03) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.register_buffer("running_mean", torch.zeros(out_chs))
        self.register_buffer("running_var", torch.ones(out_chs))
        self.weight = nn.Parameter(torch.ones(out_chs))
        self.bias = nn.Parameter(torch.zeros(out_chs))
        self.momentum, self.eps = momentum, eps
        self.act = nn.SiLU()

    def forward(self, x):
        x = self.conv(x)
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         self.momentum, self.eps)
        return self.act(x)


class FunctionalBatchNormNet(nn.Module):
    """A small residual network of timm ConvNormAct blocks and buffer-holding conv-BN-act blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, 8, 3, stride=2)
        self.conv1 = ConvNormAct(8, 8, 3)
        self.conv2 = ConvNormAct(8, 8, 3, apply_act=False)
        self.down = ConvBnActBuffers(8, 16, stride=2)
        self.conv3 = ConvBnActBuffers(16, 16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, NUM_CLASSES)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.conv2(self.conv1(x)))
        x = self.down(x)
        x = x + self.conv3(x)
        return self.fc(self.pool(x).flatten(1))


class FrozenBatchNorm2dDetectron(nn.Module):
    """detectron2's FrozenBatchNorm2d: fixed statistics and affine as buffers, folded into a
    scale and a bias computed in forward."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        scale = scale.reshape(1, -1, 1, 1)
        bias = bias.reshape(1, -1, 1, 1)
        return x * scale.to(x.dtype) + bias.to(x.dtype)


class FrozenBatchNormNet(nn.Module):
    def __init__(self, norm: type[nn.Module]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = norm(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(F.relu(self.conv2(x)).mean((2, 3)))


# ---------------------------------------------------------------------------- GhostNet
def hard_sigmoid(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """GhostNet's gate function."""
    if inplace:
        return x.add_(3.0).clamp_(0.0, 6.0).div_(6.0)
    return F.relu6(x + 3.0) / 6.0


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class SqueezeExcite(nn.Module):
    """GhostNet's SqueezeExcite: pooled, 1x1 reduce, ReLU, 1x1 expand, gate function."""

    def __init__(self, in_chs: int, se_ratio: float = 0.25, gate: str = "hard_sigmoid",
                 divisor: int = 4) -> None:
        super().__init__()
        self.gate_fn = hard_sigmoid if gate == "hard_sigmoid" else nn.Hardsigmoid()
        reduced_chs = _make_divisible(in_chs * se_ratio, divisor)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(in_chs, reduced_chs, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced_chs, in_chs, 1, bias=True)

    def forward(self, x):
        x_se = self.avg_pool(x)
        x_se = self.conv_reduce(x_se)
        x_se = self.act1(x_se)
        x_se = self.conv_expand(x_se)
        x = x * self.gate_fn(x_se)
        return x


class ConvBnAct(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act1(self.bn1(self.conv(x)))


class GhostModule(nn.Module):
    """GhostNet's Ghost module: a primary conv makes ceil(oup / ratio) maps, a cheap depthwise conv
    the rest; concatenated and cut to ``oup`` channels."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 1, ratio: int = 2, dw_size: int = 3,
                 stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels),
            nn.ReLU(inplace=True) if relu else nn.Sequential(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2, groups=init_channels,
                      bias=False),
            nn.BatchNorm2d(new_channels),
            nn.ReLU(inplace=True) if relu else nn.Sequential(),
        )

    def forward(self, x):
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, : self.oup, :, :]


class GhostBottleneck(nn.Module):
    """GhostNet's bottleneck: ghost module, depthwise conv when strided, SE, ghost module, shortcut."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, gate: str = "hard_sigmoid") -> None:
        super().__init__()
        has_se = se_ratio is not None and se_ratio > 0.0
        self.stride = stride
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if self.stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride=stride,
                                     padding=(dw_kernel_size - 1) // 2, groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio=se_ratio, gate=gate) if has_se else None
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and self.stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride=stride, padding=(dw_kernel_size - 1) // 2,
                          groups=in_chs, bias=False),
                nn.BatchNorm2d(in_chs),
                nn.Conv2d(in_chs, out_chs, 1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(out_chs),
            )

    def forward(self, x):
        residual = x
        x = self.ghost1(x)
        if self.stride > 1:
            x = self.conv_dw(x)
            x = self.bn_dw(x)
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        x += self.shortcut(residual)
        return x


class GhostNet(nn.Module):
    """GhostNet (v1) at tiny width: stem, three bottlenecks (one strided with SE, one with an odd
    width so that a Ghost module really cuts its concatenation), 1x1 conv, pooled 1x1 head."""

    def __init__(self, gate: str = "hard_sigmoid") -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU(inplace=True)
        self.blocks = nn.Sequential(
            GhostBottleneck(8, 12, 8, 3, 1),
            GhostBottleneck(8, 24, 12, 3, 2, se_ratio=0.25, gate=gate),
            GhostBottleneck(12, 21, 12, 5, 1, se_ratio=0.25, gate=gate),  # 21: cat of 11 + 11, cut to 21
            ConvBnAct(12, 24, 1),
        )
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv_head = nn.Conv2d(24, 32, 1, 1, 0, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(32, NUM_CLASSES)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act2(self.conv_head(self.global_pool(x)))
        x = x.view(x.size(0), -1)
        x = F.dropout(x, p=0.2, training=self.training)
        return self.classifier(x)


# ---------------------------------------------------------------------------- ResNeSt
class rSoftMax(nn.Module):  # ResNeSt's name
    """ResNeSt's radix softmax (sigmoid for radix 1)."""

    def __init__(self, radix: int, cardinality: int) -> None:
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, x):
        batch = x.size(0)
        if self.radix > 1:
            x = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
            x = F.softmax(x, dim=1)
            x = x.reshape(batch, -1)
        else:
            x = torch.sigmoid(x)
        return x


class SplAtConv2d(nn.Module):
    """ResNeSt's split-attention convolution (zhanghang1989/ResNeSt, no DropBlock, no rectify)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = True, radix: int = 2, reduction_factor: int = 4,
                 norm_layer: type[nn.Module] | None = nn.BatchNorm2d, unpack: bool = False) -> None:
        super().__init__()
        self.unpack = unpack
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix = radix
        self.cardinality = groups
        self.channels = channels
        self.conv = nn.Conv2d(in_channels, channels * radix, kernel_size, stride, padding,
                              groups=groups * radix, bias=bias)
        self.use_bn = norm_layer is not None
        if self.use_bn:
            self.bn0 = norm_layer(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=self.cardinality)
        if self.use_bn:
            self.bn1 = norm_layer(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=self.cardinality)
        self.rsoftmax = rSoftMax(radix, groups)

    def forward(self, x):
        x = self.conv(x)
        if self.use_bn:
            x = self.bn0(x)
        x = self.relu(x)
        batch, rchannel = x.shape[:2]
        if self.radix > 1:
            splited = torch.split(x, rchannel // self.radix, dim=1)
            if self.unpack:  # radix 2, the pieces unpacked so that torch.fx knows how many there are
                first, second = splited
                splited = (first, second)
            gap = sum(splited)
        else:
            gap = x
        gap = F.adaptive_avg_pool2d(gap, 1)
        gap = self.fc1(gap)
        if self.use_bn:
            gap = self.bn1(gap)
        gap = self.relu(gap)
        atten = self.fc2(gap)
        atten = self.rsoftmax(atten).view(batch, -1, 1, 1)
        if self.radix > 1:
            attens = torch.split(atten, rchannel // self.radix, dim=1)
            if self.unpack:
                first, second = attens
                attens = (first, second)
            out = sum([att * split for (att, split) in zip(attens, splited)])
        else:
            out = atten * x
        return out.contiguous()


class ResNeStBottleneck(nn.Module):
    """ResNeSt's Bottleneck (no avd, no DropBlock): 1x1, split-attention 3x3, 1x1, residual."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 radix: int = 2, cardinality: int = 1, bottleneck_width: int = 64,
                 unpack: bool = False) -> None:
        super().__init__()
        group_width = int(planes * (bottleneck_width / 64.0)) * cardinality
        self.conv1 = nn.Conv2d(inplanes, group_width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(group_width)
        self.conv2 = SplAtConv2d(group_width, group_width, kernel_size=3, stride=stride, padding=1,
                                 groups=cardinality, bias=False, radix=radix, unpack=unpack)
        self.conv3 = nn.Conv2d(group_width, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class ResNeSt(nn.Module):
    """A stem, two ResNeSt bottlenecks (the second strided, with an avg-pool + 1x1 downsample as
    ResNeSt's ``avg_down``) and a linear head."""

    def __init__(self, radix: int, unpack: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                   nn.ReLU(inplace=True))
        self.layer1 = ResNeStBottleneck(8, 2, radix=radix, unpack=unpack, downsample=nn.Sequential(
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)))
        self.layer2 = ResNeStBottleneck(8, 4, stride=2, radix=radix, unpack=unpack, downsample=nn.Sequential(
            nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False), nn.Conv2d(8, 16, 1, bias=False),
            nn.BatchNorm2d(16)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, NUM_CLASSES)

    def forward(self, x):
        x = self.layer2(self.layer1(self.conv1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SplitAttn(nn.Module):
    """timm's SplitAttn (radix 2): a 5-D view of the radix splits summed over the radix dim."""

    def __init__(self, in_channels: int, out_channels: int, radix: int = 2) -> None:
        super().__init__()
        self.radix = radix
        mid_chs = out_channels * radix
        attn_chs = 8
        self.conv = nn.Conv2d(in_channels, mid_chs, 3, 1, 1, groups=radix, bias=False)
        self.bn0 = nn.BatchNorm2d(mid_chs)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1)
        self.bn1 = nn.BatchNorm2d(attn_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, mid_chs, 1)
        self.rsoftmax = rSoftMax(radix, 1)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv(x)))
        B, RC, H, W = x.shape
        x = x.reshape((B, self.radix, RC // self.radix, H, W))
        x_gap = x.sum(dim=1)
        x_gap = x_gap.mean((2, 3), keepdim=True)
        x_gap = self.act1(self.bn1(self.fc1(x_gap)))
        x_attn = self.fc2(x_gap)
        x_attn = self.rsoftmax(x_attn).view(B, -1, 1, 1)
        out = (x * x_attn.reshape((B, self.radix, RC // self.radix, 1, 1))).sum(dim=1)
        return out.contiguous()


class TimmSplitAttnNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.attn = SplitAttn(8, 8)
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x):
        return self.fc(self.attn(F.relu(self.stem(x))).mean((2, 3)))


# ---------------------------------------------------------------------------- HRNet
class BasicBlock(nn.Module):
    """HRNet's (ResNet's) BasicBlock."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class HighResolutionModule(nn.Module):
    """HRNet's HighResolutionModule with two branches: a BasicBlock per branch, then each output is
    the sum of every branch brought to its resolution (1x1 conv + BN + upsampling upwards, strided
    3x3 conv + BN downwards), ReLU. ``upsample``: HRNet-classification's ``nn.Upsample(scale_factor=2,
    mode="nearest")`` in the fuse layer, or HRNet-segmentation's ``F.interpolate(size=...)`` bilinear."""

    def __init__(self, channels: tuple[int, int], upsample: str) -> None:
        super().__init__()
        self.num_branches = 2
        self.upsample = upsample
        self.branches = nn.ModuleList([BasicBlock(c, c) for c in channels])
        c0, c1 = channels
        up = [nn.Conv2d(c1, c0, 1, 1, 0, bias=False), nn.BatchNorm2d(c0)]
        if upsample == "nearest":
            up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        down = nn.Sequential(nn.Sequential(nn.Conv2d(c0, c1, 3, 2, 1, bias=False), nn.BatchNorm2d(c1)))
        self.fuse_layers = nn.ModuleList([nn.ModuleList([None, nn.Sequential(*up)]),
                                          nn.ModuleList([down, None])])
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        for i in range(self.num_branches):
            x[i] = self.branches[i](x[i])
        x_fuse = []
        for i in range(len(self.fuse_layers)):
            y = x[0] if i == 0 else self.fuse_layers[i][0](x[0])
            for j in range(1, self.num_branches):
                if i == j:
                    y = y + x[j]
                elif j > i and self.upsample == "bilinear":
                    height_output, width_output = x[i].shape[-2], x[i].shape[-1]
                    y = y + F.interpolate(self.fuse_layers[i][j](x[j]), size=[height_output, width_output],
                                          mode="bilinear", align_corners=False)
                else:
                    y = y + self.fuse_layers[i][j](x[j])
            x_fuse.append(self.relu(y))
        return x_fuse


class HRNet(nn.Module):
    """A two-branch HRNet: stem, transition to two resolutions (a strided conv down), one
    high-resolution module, then HRNet-classification's head (the high branch brought down by a
    strided conv and added) or HRNet-segmentation's (the low branch interpolated up to
    ``x.shape[-2:]`` and concatenated, a 1x1 classifier per pixel)."""

    def __init__(self, upsample: str = "nearest", head: str = "classification") -> None:
        super().__init__()
        c0, c1 = 8, 16
        self.conv1 = nn.Conv2d(3, c0, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU(inplace=True)
        self.transition1 = nn.ModuleList([
            None,
            nn.Sequential(nn.Conv2d(c0, c1, 3, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True)),
        ])
        self.stage2 = HighResolutionModule((c0, c1), upsample)
        self.head_kind = head
        if head == "classification":
            self.downsamp = nn.Sequential(nn.Conv2d(c0, c1, 3, 2, 1), nn.BatchNorm2d(c1),
                                          nn.ReLU(inplace=True))
            self.classifier = nn.Linear(c1, NUM_CLASSES)
        else:
            self.last_layer = nn.Sequential(nn.Conv2d(c0 + c1, c0 + c1, 1), nn.BatchNorm2d(c0 + c1),
                                            nn.ReLU(inplace=True), nn.Conv2d(c0 + c1, NUM_CLASSES, 1))

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x_list = [x if t is None else t(x) for t in self.transition1]
        y = self.stage2(x_list)
        if self.head_kind == "classification":
            z = y[1] + self.downsamp(y[0])
            return self.classifier(F.adaptive_avg_pool2d(z, 1).flatten(1))
        up = F.interpolate(y[1], size=y[0].shape[-2:], mode="bilinear", align_corners=False)
        return self.last_layer(torch.cat([y[0], up], 1))


# ---------------------------------------------------------------------------- CBAM
class ChannelAttention(nn.Module):
    """CBAM's channel attention (luuuyi/CBAM.PyTorch), an MLP of 1x1 convolutions on the average-
    and max-pooled maps. ``mlp="shared"`` is CBAM's one MLP applied to both pools (shared weights);
    ``"separate"`` gives each pool its own. ``max_pool``: ``AdaptiveMaxPool2d(1)`` or CBAM-official's
    ``F.max_pool2d`` over the whole map."""

    def __init__(self, in_planes: int, ratio: int = 4, mlp: str = "shared",
                 max_pool: str = "adaptive") -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1) if max_pool == "adaptive" else None

        def make_mlp() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(in_planes, in_planes // ratio, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(in_planes // ratio, in_planes, 1, bias=False))

        self.fc = make_mlp()
        self.fc_max = self.fc if mlp == "shared" else make_mlp()
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = self.fc(self.avg_pool(x))
        if self.max_pool is not None:
            pooled = self.max_pool(x)
        else:
            pooled = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        max_out = self.fc_max(pooled)
        return self.sigmoid(avg_out + max_out)


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: channel mean and max, 7x7 conv, sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out = x.amax(1, keepdim=True)
        return self.sigmoid(self.conv1(torch.cat([avg_out, max_out], dim=1)))


class CBAMBlock(nn.Module):
    """CBAM's BasicBlock: conv-BN-ReLU-conv-BN, channel then (optionally) spatial attention, residual."""

    def __init__(self, planes: int, mlp: str, max_pool: str, spatial: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.ca = ChannelAttention(planes, mlp=mlp, max_pool=max_pool)
        self.sa = SpatialAttention() if spatial else None

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.ca(out) * out
        if self.sa is not None:
            out = self.sa(out) * out
        out += residual
        return self.relu(out)


class CBAMNet(nn.Module):
    def __init__(self, mlp: str = "separate", max_pool: str = "functional", spatial: bool = False) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True))
        self.block = CBAMBlock(8, mlp, max_pool, spatial)
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.block(self.stem(x)), 1).flatten(1))


# ---------------------------------------------------------------------------- ECA-Net, SENet
class eca_layer(nn.Module):  # ECA-Net's name
    """ECA-Net's eca_layer: pooled channels, a Conv1d(1, 1, k) across them, sigmoid gate."""

    def __init__(self, channel: int, k_size: int = 3) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


class EcaModule(nn.Module):
    """timm's EcaModule: mean over the map, view(B, 1, C), Conv1d, view(B, C, 1, 1), sigmoid."""

    def __init__(self, channels: int, gamma: int = 2, beta: int = 1) -> None:
        super().__init__()
        t = int(abs(math.log2(channels) + beta) / gamma)
        kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.conv(y)
        y = y.view(x.shape[0], -1, 1, 1).sigmoid()
        return x * y.expand_as(x)


class SELayer(nn.Module):
    """The classic SE layer with Linear layers (moskomule/senet.pytorch)."""

    def __init__(self, channel: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class GatedBasicBlock(nn.Module):
    """ECA-ResNet's / SE-ResNet's BasicBlock: the gate after bn2, before the residual add."""

    def __init__(self, inplanes: int, planes: int, gate: type[nn.Module], stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.gate = gate(planes)
        self.downsample = None if stride == 1 and inplanes == planes else nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.gate(self.bn2(self.conv2(out)))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class GatedResNet(nn.Module):
    def __init__(self, gate: type[nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = GatedBasicBlock(8, 8, gate)
        self.layer2 = GatedBasicBlock(8, 16, gate, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, NUM_CLASSES)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


# ---------------------------------------------------------------------------- the replicas
# name -> (builder, how often each of these layer types is in its graph). The counts follow from the
# architectures: e.g. ConvNeXt's 5 layer norms are the stem's, two blocks', the downsampling's and
# the head's; GhostNet's 6 concatenations are its 3 bottlenecks' 2 Ghost modules, and one of them
# (21 channels of 11 + 11) is cut by a slice; DropPath and nn.Identity leave no layer.
TRACEABLE = {
    "timm_convnext[gamma*x]": (
        lambda: ConvNeXt(gamma_form="gamma*x"),
        {"conv": 8, "layernorm": 5, "scale": 2, "add": 2, "dropout": 5, "linear": 1}),
    "timm_convnext[x.mul(gamma)]": (
        lambda: ConvNeXt(gamma_form="x.mul(gamma)"),
        {"conv": 8, "layernorm": 5, "scale": 2, "add": 2, "dropout": 5, "linear": 1}),
    # timm >= 0.6 applies the layer scale after permuting back, as x.mul(gamma.reshape(1, -1, 1, 1)):
    # the channels-first form of a layer scale of C entries, to be read as one.
    "timm_convnext[x.mul(gamma.reshape)]": (
        lambda: ConvNeXt(gamma_form="x.mul(gamma.reshape)"),
        {"conv": 8, "layernorm": 5, "scale": 2, "add": 2, "dropout": 5, "linear": 1}),
    "timm_functional_batch_norm": (
        FunctionalBatchNormNet, {"conv": 5, "batchnorm": 5, "add": 2, "activation": 2}),
    "ghostnet[nn.Hardsigmoid]": (
        lambda: GhostNet(gate="Hardsigmoid"),
        {"conv": 22, "batchnorm": 17, "concat": 6, "slice": 1, "mul": 2, "add": 3}),
    "resnest[radix=1]": (lambda: ResNeSt(radix=1), {"conv": 13, "mul": 2, "add": 2, "avgpool": 1}),
    "hrnet[nn.Upsample]": (HRNet, {"conv": 9, "upsample": 1, "add": 5}),
    "hrnet[F.interpolate]": (
        lambda: HRNet("bilinear", head="segmentation"), {"conv": 10, "upsample": 2, "concat": 1, "add": 4}),
    "cbam_channel[separate MLPs, F.max_pool2d]": (
        CBAMNet, {"conv": 7, "maxpool": 1, "adaptive_avgpool": 2, "add": 2, "mul": 1}),
    "eca_net[eca_layer]": (lambda: GatedResNet(eca_layer), {"conv": 6, "channelconv": 2, "mul": 2, "add": 2}),
    "eca_net[timm EcaModule]": (
        lambda: GatedResNet(EcaModule), {"conv": 6, "channelconv": 2, "mul": 2, "add": 2}),
    "senet[Linear]": (lambda: GatedResNet(SELayer), {"conv": 6, "linear": 5, "mul": 2, "add": 2}),
}

# name -> (builder, error type, pattern its message must match: the node or op refused)
UNSUPPORTED = {
    # x * scale + bias with scale and bias computed from buffers in forward.
    "frozen_batch_norm[detectron2]": (
        lambda: FrozenBatchNormNet(FrozenBatchNorm2dDetectron), UnsupportedLayerError,
        r"node 'mul' .*mul of a tensor"),
    "frozen_batch_norm[torchvision]": (
        lambda: FrozenBatchNormNet(import_torchvision().ops.FrozenBatchNorm2d), UnsupportedLayerError,
        r"node 'mul' .*mul of a tensor"),
    # hard_sigmoid's x + 3.
    "ghostnet[hard_sigmoid]": (
        GhostNet, UnsupportedLayerError, r"node 'add_\d+' .*add of a tensor and a number"),
    # sum() and zip() iterate the Proxy that torch.split returns: torch.fx itself cannot trace it.
    "resnest[radix=2]": (lambda: ResNeSt(radix=2), ArchSearchError,
                         r"torch\.fx could not trace ResNeSt .*Proxy object cannot be iterated"),
    # With the pieces unpacked, rSoftMax's view(batch, cardinality, radix, -1) is refused.
    "resnest[radix=2, pieces unpacked]": (lambda: ResNeSt(radix=2, unpack=True), UnsupportedLayerError,
                                          r"node 'view' .*uses view from \(4, 1, 1\) to \(1, 2, 2\)"),
    "timm_split_attn[radix=2]": (
        TimmSplitAttnNet, UnsupportedLayerError, r"node 'sum\w*' .*grouped 5-d view"),
    "cbam_channel[shared MLP]": (
        lambda: CBAMNet(mlp="shared"), UnsupportedLayerError,
        r"module 'block\.ca\.fc\.0' \(Conv2d\) is called more than once; shared weights"),
    "cbam_channel[AdaptiveMaxPool2d]": (lambda: CBAMNet(max_pool="adaptive"), UnsupportedLayerError,
                                        r"node 'block_ca_max_pool' .*AdaptiveMaxPool2d"),
    "cbam_spatial": (
        lambda: CBAMNet(spatial=True), UnsupportedLayerError, r"node 'mean' .*mean\(dim=\(1,\)\)"),
}


def _teacher(build) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return _randomize(build()), _images(2, 3, SIDE, SIDE)


@pytest.mark.parametrize("name", list(TRACEABLE))
def test_replica_traces_and_compresses(name):
    build, expected_ops = TRACEABLE[name]
    module, x = _teacher(build)
    graph = trace(module, x)
    ops = _ops(graph)
    assert {op: ops[op] for op in expected_ops} == expected_ops, ops
    assert count_params(graph) == _num_params(module)
    _assert_unedited_student_equals(graph, module, x)
    _assert_sampled_students_build(graph, module, x)


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_replica_is_refused_naming_the_node(name):
    build, error, pattern = UNSUPPORTED[name]
    module, x = _teacher(build)
    state = copy.deepcopy(module.state_dict())
    with pytest.raises(error, match=pattern) as info:
        trace(module, x)
    assert error is ArchSearchError or type(info.value) is UnsupportedLayerError
    for key, value in module.state_dict().items():  # trace leaves the module as it was
        assert torch.equal(value, state[key]), key


def test_timm_drop_path_in_training_mode_traces_as_the_identity():
    """timm's DropPath draws a random mask in training; trace reads the network in eval mode, where
    DropPath is the identity, and leaves the module in training mode."""
    module, x = _teacher(ConvNeXt)
    module.train()
    graph = trace(module, x)
    assert module.training and all(m.training for m in module.modules())
    assert not any("drop_path" in n.name for n in graph.nodes)
    _assert_unedited_student_equals(graph, module.eval(), x)


def test_ghost_module_cut_keeps_the_first_oup_channels():
    """The Ghost module with 21 output channels concatenates 11 + 11 maps and keeps the first 21."""
    module, x = _teacher(lambda: GhostNet(gate="Hardsigmoid"))
    graph = trace(module, x)
    (cut,) = [n for n in graph.nodes if n.op == "slice"]
    (source,) = cut.inputs
    assert graph.nodes[source].op == "concat" and graph.nodes[source].out_channels == 22
    assert (cut.attr("start"), cut.attr("stop"), cut.out_channels) == (0, 21, 21)
