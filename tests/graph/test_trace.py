r"""Tests of botorch_archsearch/graph/trace.py."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError, UnsupportedLayerError
from botorch_archsearch.graph import SUPPORTED_FUNCTIONS, SUPPORTED_MODULES, ArchGraph, trace

PARAM_OPS = {nn.Conv2d: "conv", nn.BatchNorm2d: "batchnorm", nn.Linear: "linear"}


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _spec_table(graph: ArchGraph) -> list[tuple]:
    return [(n.op, n.inputs, n.in_shape, n.out_shape) for n in graph.nodes]


def _assert_unsupported(module: nn.Module, x: torch.Tensor, *names: str) -> str:
    with pytest.raises(UnsupportedLayerError) as info:
        trace(module, x)
    message = str(info.value)
    for name in names:
        assert name in message
    # The message lists what is supported.
    for supported in ("Conv2d", "BatchNorm2d", "Linear", "torch.cat(dim=1)"):
        assert supported in message
    return message


# ------------------------------------------------------------------ every teacher traces


def test_every_teacher_traces(teacher_name, traced, all_teachers):
    module, x = all_teachers[teacher_name]
    graph = traced[teacher_name]
    nodes = graph.nodes
    assert nodes[0].op == "input" and nodes[0].inputs == ()
    assert nodes[0].in_shape == nodes[0].out_shape == tuple(x.shape[1:])
    assert graph.input_shape == tuple(x.shape[1:])
    with torch.no_grad():
        y = module(x)
    assert nodes[-1].out_shape == graph.output_shape == tuple(y.shape[1:]) == (10,)
    assert all(n.op != "input" for n in nodes[1:])
    for j, node in enumerate(nodes[1:], start=1):
        assert node.inputs, f"layer {j} has no inputs"
        assert all(0 <= i < j for i in node.inputs), f"layer {j}: inputs {node.inputs}"
        input_shapes = [nodes[i].out_shape for i in node.inputs]
        if node.op == "concat":
            assert node.in_shape == node.out_shape
            assert sum(s[0] for s in input_shapes) == node.out_shape[0]
            assert all(s[1:] == node.out_shape[1:] for s in input_shapes)
        else:
            assert all(s == node.in_shape for s in input_shapes), f"layer {j} ({node.op})"
        if node.op == "add":
            assert len(node.inputs) == 2 and node.out_shape == node.in_shape
        elif node.op == "slice":
            assert node.out_shape == (node.attr("stop") - node.attr("start"),) + node.in_shape[1:]
        else:
            assert len(node.inputs) == 1 or node.op == "concat"
    # Every layer reaches the output (dead branches are pruned).
    consumers = graph.consumers()
    assert all(consumers[j] for j in range(len(nodes) - 1))


def test_every_parametrised_module_is_one_layer_with_the_shapes_it_runs_with(
    teacher_name, traced, all_teachers
):
    module, x = all_teachers[teacher_name]
    graph = traced[teacher_name]
    seen: dict[str, list[tuple]] = {}
    handles = []
    for qualname, mod in module.named_modules():
        if type(mod) in PARAM_OPS:
            hook = lambda m, i, o, q=qualname: seen.setdefault(q, []).append(  # noqa: E731
                (tuple(i[0].shape[1:]), tuple(o.shape[1:]))
            )
            handles.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    by_name = {n.name: n for n in graph.nodes}
    modules = dict(module.named_modules())
    for qualname, calls in seen.items():
        assert len(calls) == 1
        spec, mod = by_name[qualname], modules[qualname]
        assert spec.op == PARAM_OPS[type(mod)]
        assert (spec.in_shape, spec.out_shape) == calls[0]
        if isinstance(mod, nn.Conv2d):
            assert spec.groups == mod.groups
            assert spec.kernel_size == max(mod.kernel_size)
            assert spec.stride == max(mod.stride)
            assert spec.padding == max(mod.padding)
            assert spec.attr("kernel") == tuple(mod.kernel_size)
            assert spec.attr("bias") == (mod.bias is not None)
            assert (spec.in_channels, spec.out_channels) == (mod.in_channels, mod.out_channels)
        elif isinstance(mod, nn.Linear):
            assert (spec.in_channels, spec.out_channels) == (mod.in_features, mod.out_features)
    counts = Counter(n.op for n in graph.nodes)
    for cls, op in PARAM_OPS.items():
        assert counts[op] == sum(type(m) is cls for m in module.modules())


def test_known_layer_counts(traced):
    # Hand-counted from the architectures: ResNet-18 has 1 + 16 + 3 convs (3 downsampling
    # shortcuts), 8 residual additions; VGG-19 has 16 convs and 5 max-pools.
    resnet = Counter(n.op for n in traced["resnet18"].nodes)
    vgg = Counter(n.op for n in traced["vgg19"].nodes)
    assert (resnet["conv"], resnet["batchnorm"], resnet["add"], resnet["linear"]) == (20, 20, 8, 1)
    assert (vgg["conv"], vgg["maxpool"], vgg["linear"]) == (16, 5, 1)
    tv_resnet = Counter(n.op for n in traced["torchvision/resnet18"].nodes)
    assert (tv_resnet["conv"], tv_resnet["add"], tv_resnet["maxpool"]) == (20, 8, 1)
    tv_shuffle = Counter(n.op for n in traced["torchvision/shufflenet_v2_x1_0"].nodes)
    # 16 units, each ending in concat + channel shuffle; 13 non-downsampling units split in two.
    assert (tv_shuffle["concat"], tv_shuffle["shuffle"], tv_shuffle["slice"]) == (16, 16, 26)
    assert traced["torchvision/resnet18"].nodes[1].out_shape == (64, 32, 32)  # 64x64 input, stride 2
    assert traced["torchvision/vgg11_bn"].nodes[-2].out_shape == (4096,)


# ------------------------------------------------------------------ functional ops


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.fc = nn.Linear(40, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))  # 1 conv, 2 batchnorm, 3 relu
        a, b = x.chunk(2, dim=1)  # 4 slice [0, 4), 5 slice [4, 8)
        b = self.conv2(b)  # 6 conv
        y = torch.cat([b, a], dim=1)  # 7 concat (6, 4)
        n, c, h, w = y.size()
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)  # 8 shuffle
        y = y + x  # 9 add (8, 3)
        p = F.adaptive_avg_pool2d(y, 2)  # 10 adaptive_avgpool
        f = torch.flatten(p, 1)  # 11 flatten
        m = y.mean((2, 3))  # 12 mean
        unused = F.relu(m)  # noqa: F841 - not on the path to the output: pruned
        return self.fc(torch.cat([f, m], dim=1))  # 13 concat (11, 12), 14 linear


def test_functional_ops_are_layers():
    graph = trace(_Functional(), _images(2, 3, 8, 8))
    expected = [
        ("input", (), (3, 8, 8), (3, 8, 8)),
        ("conv", (0,), (3, 8, 8), (8, 8, 8)),
        ("batchnorm", (1,), (8, 8, 8), (8, 8, 8)),
        ("relu", (2,), (8, 8, 8), (8, 8, 8)),
        ("slice", (3,), (8, 8, 8), (4, 8, 8)),
        ("slice", (3,), (8, 8, 8), (4, 8, 8)),
        ("conv", (5,), (4, 8, 8), (4, 8, 8)),
        ("concat", (6, 4), (8, 8, 8), (8, 8, 8)),
        ("shuffle", (7,), (8, 8, 8), (8, 8, 8)),
        ("add", (8, 3), (8, 8, 8), (8, 8, 8)),
        ("adaptive_avgpool", (9,), (8, 8, 8), (8, 2, 2)),
        ("flatten", (10,), (8, 2, 2), (32,)),
        ("mean", (9,), (8, 8, 8), (8,)),
        ("concat", (11, 12), (40,), (40,)),
        ("linear", (13,), (40,), (10,)),
    ]
    assert _spec_table(graph) == expected
    nodes = graph.nodes
    assert (nodes[4].attr("start"), nodes[4].attr("stop")) == (0, 4)
    assert (nodes[5].attr("start"), nodes[5].attr("stop")) == (4, 8)
    assert nodes[8].attr("groups") == 2
    assert nodes[10].attr("output_size") == (2, 2)
    assert nodes[12].attr("keepdim") is False
    assert nodes[1].attr("bias") is False and nodes[6].attr("bias") is True
    assert (nodes[6].groups, nodes[6].kernel_size, nodes[6].padding, nodes[6].stride) == (2, 3, 1, 1)
    assert nodes[1].name == "conv1" and nodes[14].name == "fc"
    assert Counter(n.op for n in nodes) == {
        "input": 1, "conv": 2, "batchnorm": 1, "relu": 1, "slice": 2, "concat": 2, "shuffle": 1,
        "add": 1, "adaptive_avgpool": 1, "flatten": 1, "mean": 1, "linear": 1,
    }


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_with_reshape_and_torch_transpose(groups):
    class Shuffle(nn.Module):
        def forward(self, x):
            n, c, h, w = x.shape
            y = torch.transpose(x.reshape(n, groups, c // groups, h, w), 1, 2)
            return F.relu(y.reshape(n, c, h, w))

    graph = trace(Shuffle(), _images(1, 8, 4, 4))
    assert [n.op for n in graph.nodes] == ["input", "shuffle", "relu"]
    assert graph.nodes[1].attr("groups") == groups
    assert graph.nodes[1].out_shape == (8, 4, 4)


@pytest.mark.parametrize(
    "piece, split, expected",
    [
        (1, lambda x: x.split([2, 6], dim=1), (2, 8)),
        (0, lambda x: x.split([2, 6], dim=1), (0, 2)),
        (3, lambda x: x.split(2, dim=1), (6, 8)),
        (1, lambda x: torch.chunk(x, 2, 1), (4, 8)),
        (1, lambda x: x.chunk(2, dim=-3), (4, 8)),
    ],
    ids=["split_sizes_1", "split_sizes_0", "split_2", "torch_chunk", "chunk_dim_minus3"],
)
def test_split_and_chunk_pieces_are_slices(piece, split, expected):
    class Split(nn.Module):
        def forward(self, x):
            return F.relu(split(x)[piece])

    graph = trace(Split(), _images(2, 8, 4, 4))
    assert [n.op for n in graph.nodes] == ["input", "slice", "relu"]
    start, stop = expected
    spec = graph.nodes[1]
    assert (spec.attr("start"), spec.attr("stop")) == expected
    assert spec.in_shape == (8, 4, 4) and spec.out_shape == (stop - start, 4, 4)


def test_chunk_along_the_batch_dimension_is_unsupported():
    # dim=-4 of an `N x C x H x W` tensor is the batch dimension, not the channels.
    class BatchChunk(nn.Module):
        def forward(self, x):
            return F.relu(x.chunk(2, dim=-4)[1])

    _assert_unsupported(BatchChunk(), _images(2, 8, 4, 4), "chunk")


@pytest.mark.parametrize(
    "flatten",
    [
        lambda x: torch.flatten(x, 1),
        lambda x: x.flatten(1),
        lambda x: torch.flatten(x, -3),
        lambda x: x.view(x.size(0), -1),
        lambda x: x.reshape(x.shape[0], -1),
        nn.Flatten(),
        nn.Flatten(start_dim=-3),
    ],
    ids=["torch_flatten", "method", "torch_flatten_minus3", "view", "reshape", "module", "module_minus3"],
)
def test_flatten_forms(flatten):
    class Flatten(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(32, 5)
            self.flatten = flatten if isinstance(flatten, nn.Module) else None

        def forward(self, x):
            y = self.flatten(x) if self.flatten is not None else flatten(x)
            return self.fc(y)

    graph = trace(Flatten(), _images(3, 2, 4, 4))
    assert _spec_table(graph) == [
        ("input", (), (2, 4, 4), (2, 4, 4)),
        ("flatten", (0,), (2, 4, 4), (32,)),
        ("linear", (1,), (32,), (5,)),
    ]


@pytest.mark.parametrize(
    "flatten",
    [lambda x: torch.flatten(x, -4), lambda x: torch.flatten(x), nn.Flatten(start_dim=-4)],
    ids=["torch_flatten_minus4", "torch_flatten_0", "module_minus4"],
)
def test_flattening_the_batch_dimension_is_unsupported(flatten):
    class Flatten(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flatten = flatten if isinstance(flatten, nn.Module) else None

        def forward(self, x):
            return self.flatten(x) if self.flatten is not None else flatten(x)

    _assert_unsupported(Flatten(), _images(3, 2, 4, 4), "flatten")


@pytest.mark.parametrize(
    "pool, kernel, stride, padding, out_side",
    [
        (lambda x: F.max_pool2d(x, 2), 2, 2, 0, 4),
        (lambda x: F.max_pool2d(x, kernel_size=3, stride=2, padding=1), 3, 2, 1, 4),
        (lambda x: F.max_pool2d(x, 3, 1, 1), 3, 1, 1, 8),
    ],
    ids=["kernel_only", "keywords", "positional"],
)
def test_functional_max_pool2d(pool, kernel, stride, padding, out_side):
    class Pool(nn.Module):
        def forward(self, x):
            return pool(x)

    x = _images(2, 3, 8, 8)
    graph = trace(Pool(), x)
    spec = graph.nodes[1]
    assert [n.op for n in graph.nodes] == ["input", "maxpool"]
    assert (spec.kernel_size, spec.stride, spec.padding) == (kernel, stride, padding)
    assert spec.out_shape == (3, out_side, out_side) == tuple(pool(x).shape[1:])


@pytest.mark.parametrize(
    "pool, kernel, stride, padding, out_side",
    [
        (lambda x: F.avg_pool2d(x, 2), 2, 2, 0, 4),
        (lambda x: F.avg_pool2d(x, 3, 1, 1), 3, 1, 1, 8),
        (nn.MaxPool2d(3, 2, 1), 3, 2, 1, 4),
        (nn.AvgPool2d(2), 2, 2, 0, 4),
    ],
    ids=["avg_pool2d", "avg_pool2d_positional", "MaxPool2d", "AvgPool2d"],
)
def test_pools(pool, kernel, stride, padding, out_side):
    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = pool if isinstance(pool, nn.Module) else None

        def forward(self, x):
            return self.pool(x) if self.pool is not None else pool(x)

    x = _images(2, 3, 8, 8)
    graph = trace(Pool(), x)
    spec = graph.nodes[1]
    op = "maxpool" if isinstance(pool, nn.MaxPool2d) else "avgpool"
    assert [n.op for n in graph.nodes] == ["input", op]
    assert (spec.kernel_size, spec.stride, spec.padding) == (kernel, stride, padding)
    assert spec.attr("kernel") == (kernel, kernel) and spec.attr("stride") == (stride, stride)
    assert spec.out_shape == (3, out_side, out_side) == tuple(pool(x).shape[1:])


def test_mean_with_negative_dims_and_keepdim():
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(dim=(-1, -2), keepdim=True) + x.mean((2, 3), keepdim=True)

    graph = trace(Mean(), _images(2, 6, 4, 4))
    assert _spec_table(graph) == [
        ("input", (), (6, 4, 4), (6, 4, 4)),
        ("mean", (0,), (6, 4, 4), (6, 1, 1)),
        ("mean", (0,), (6, 4, 4), (6, 1, 1)),
        ("add", (1, 2), (6, 1, 1), (6, 1, 1)),
    ]
    assert graph.nodes[1].attr("keepdim") is True


def test_shapes_follow_strides_and_padding():
    # H_out = floor((H + 2p - k) / s) + 1: 15 -> conv(k5, s2, p1) -> 7 -> maxpool(k3, s2) -> 3.
    net = nn.Sequential(
        nn.Conv2d(3, 5, 5, stride=2, padding=1), nn.ReLU6(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(45, 2),
    )
    graph = trace(net, _images(1, 3, 15, 15))
    assert [n.out_shape for n in graph.nodes] == [(3, 15, 15), (5, 7, 7), (5, 7, 7), (5, 3, 3), (45,), (2,)]
    assert [n.op for n in graph.nodes] == ["input", "conv", "relu6", "maxpool", "flatten", "linear"]
    assert [n.name for n in graph.nodes[1:]] == ["0", "1", "2", "3", "4"]


def test_identity_and_single_cat_are_not_layers():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.skip = nn.Identity()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(torch.cat([self.skip(x)], dim=1))

    graph = trace(Net(), _images(1, 3, 4, 4))
    assert _spec_table(graph) == [("input", (), (3, 4, 4), (3, 4, 4)), ("conv", (0,), (3, 4, 4), (3, 4, 4))]


def test_parameter_free_module_may_be_reused():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x))))

    graph = trace(Net(), _images(1, 3, 6, 6))
    assert [(n.op, n.inputs) for n in graph.nodes] == [
        ("input", ()), ("conv", (0,)), ("relu", (1,)), ("conv", (2,)), ("relu", (3,))
    ]


# ------------------------------------------------------------------ unsupported networks


class _LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]


class _LayerNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.LayerNorm([4, 4, 4])

    def forward(self, x):
        return self.norm(self.conv(x))


class _Mul(nn.Module):
    def forward(self, x):
        return F.relu(x) * 2.0


class _CatBatch(nn.Module):
    def forward(self, x):
        return torch.cat([x, F.relu(x)], dim=0)


class _AddScalar(nn.Module):
    def forward(self, x):
        return x + 1


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(F.relu(self.conv(x)))


@pytest.mark.parametrize(
    "module, x, names",
    [
        (_LSTMNet(), _images(2, 5, 4), ("rnn",)),
        (_LayerNormNet(), _images(2, 3, 4, 4), ("norm", "LayerNorm")),
        (_Mul(), _images(2, 3, 4, 4), ("mul",)),
        (_CatBatch(), _images(2, 3, 4, 4), ("cat", "dim=0")),
        (_AddScalar(), _images(2, 3, 4, 4), ("add",)),
    ],
    ids=["lstm", "layernorm", "mul", "cat_dim0", "add_scalar"],
)
def test_unsupported_layers(module, x, names):
    _assert_unsupported(module, x, *names)


def test_shared_weights_are_unsupported():
    with pytest.raises(UnsupportedLayerError, match="'conv'.*more than once"):
        trace(_Shared(), _images(2, 3, 4, 4))


def test_unsupported_message_lists_every_supported_entry():
    message = _assert_unsupported(_Mul(), _images(1, 3, 4, 4), "mul")
    for entry in SUPPORTED_MODULES + SUPPORTED_FUNCTIONS:
        assert entry in message


def test_two_input_network_is_unsupported():
    class Two(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(UnsupportedLayerError, match="takes 2 inputs"):
        trace(Two(), _images(1, 3, 4, 4))


def test_tuple_output_is_unsupported():
    class TupleOut(nn.Module):
        def forward(self, x):
            return F.relu(x), x

    with pytest.raises(UnsupportedLayerError, match="output"):
        trace(TupleOut(), _images(1, 3, 4, 4))


def test_data_dependent_control_flow_is_an_arch_search_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return F.relu(x)
            return x

    with pytest.raises(ArchSearchError, match="DataDependent") as info:
        trace(DataDependent(), _images(1, 3, 4, 4))
    assert not isinstance(info.value, UnsupportedLayerError)


@pytest.mark.parametrize("bad", [None, [1.0, 2.0], torch.tensor(1.0)])
def test_bad_example_input(bad):
    with pytest.raises(ArchSearchError, match="example_input"):
        trace(nn.ReLU(), bad)


def test_not_a_module():
    with pytest.raises(ArchSearchError, match="nn.Module"):
        trace(lambda x: x, torch.zeros(1, 3, 4, 4))


def test_wrong_input_shape_is_an_arch_search_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 2 * 2, 2))
    with pytest.raises(ArchSearchError, match=r"\(1, 3, 8, 8\)"):
        trace(net, _images(1, 3, 8, 8))


def test_wrong_input_shape_is_one_message_and_nothing_printed(capfd):
    from botorch_archsearch.models import get_teacher

    teacher = get_teacher("resnet18", num_classes=10, in_channels=3, width=0.125)
    with pytest.raises(ArchSearchError) as info:
        trace(teacher, _images(1, 1, 32, 32))
    try:  # the error the network itself raises on this input, to compare with
        teacher(_images(1, 1, 32, 32))
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
    assert str(info.value) == ("trace: running ResNet on an input of shape (1, 1, 32, 32) failed at node 'conv1' "
                               f"(RuntimeError: {first_line}).")
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained fx traceback
    out, err = capfd.readouterr()
    assert out == err == ""  # torch.fx's ShapeProp printed the node's traceback to stderr


def test_pool_size_computed_from_a_shape_takes_its_value_at_the_example_input():
    class ShapePool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            return F.avg_pool2d(x, x.shape[-1]) + F.max_pool2d(x, (x.size(2) // 2, x.size(3) // 4))[:, :, :1, :1]

    # The slice of the max pool's output is spatial: unsupported, but only after the pools were read.
    with pytest.raises(UnsupportedLayerError, match=r"only channel slices"):
        trace(ShapePool(), _images(1, 3, 8, 8))

    class Pool(ShapePool):
        def forward(self, x):
            x = self.conv(x)
            return F.avg_pool2d(x, x.shape[-1]) + F.max_pool2d(x, (x.size(2), x.size(3) // 2), stride=x.size(-1))

    graph = trace(Pool(), _images(1, 3, 8, 8))
    pools = [n for n in graph.nodes if n.op in ("avgpool", "maxpool")]
    assert [(n.op, n.attr("kernel"), n.attr("stride")) for n in pools] == [
        ("avgpool", (8, 8), (8, 8)), ("maxpool", (8, 4), (8, 8))]
    assert all(isinstance(v, int) for n in pools for v in n.attr("kernel") + n.attr("stride"))


# ------------------------------------------------------------------ the module is left as it was


@pytest.mark.parametrize("training", [True, False])
def test_trace_leaves_training_flag_and_buffers_unchanged(training):
    from botorch_archsearch.models import get_teacher

    torch.manual_seed(0)
    module = get_teacher("resnet18", num_classes=10, in_channels=3, width=0.125).train(training)
    # Non-trivial running statistics, so that a forward pass in train mode would change them.
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    modes = {name: m.training for name, m in module.named_modules()}
    trace(module, _images(4, 3, 32, 32) * 3 + 1)
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert {name: m.training for name, m in module.named_modules()} == modes


def test_trace_keeps_mixed_training_flags():
    # Fine-tuning often freezes some BatchNorm layers (eval) inside a model in train mode.
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
    )
    net.train()
    net[1].eval()
    trace(net, _images(2, 3, 6, 6))
    assert [m.training for m in net] == [True, False, True, True, True]
    assert net.training


def test_trace_with_any_batch_size_gives_the_same_graph(zoo_teachers):
    module, x = zoo_teachers["shufflenet"]
    assert trace(module, x[:1]).nodes == trace(module, torch.cat([x, x, x])).nodes


def test_traces_in_threads_at_once_give_the_graph_of_one_alone():
    """torch.fx patches process-wide functions while it traces: without one trace at a time, two
    threads tracing together broke each other ("CURRENT_PATCHER is None", a traced variable in
    control flow), as the benchmarks' threads did."""
    from concurrent.futures import ThreadPoolExecutor

    from botorch_archsearch.models import get_teacher

    nets = [get_teacher(name, num_classes=10, in_channels=1, width=0.125).eval()
            for name in ("resnet18", "vgg19", "resnet18", "mobilenetv2")]
    x = torch.zeros(1, 1, 32, 32)
    alone = [trace(net, x).key() for net in nets]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda net: trace(net, x).key(), nets)) == alone
