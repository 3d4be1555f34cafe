r"""Tests of botorch_archsearch/graph/encoding.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import EncodingError
from botorch_archsearch.graph import (
    DEFAULT_MAX_EDGES,
    LAYER_TYPES,
    ArchGraph,
    LayerSpec,
    encode,
    expand,
    num_features,
    trace,
)

M = len(LAYER_TYPES)
DTYPES = (torch.float32, torch.float64)


def _small_graph() -> ArchGraph:
    r"""input -> conv(s2) -> bn -> relu -> conv(g2) -> add(conv2, relu) -> flatten -> linear."""
    return ArchGraph(
        [
            LayerSpec("input", (), (3, 8, 8), (3, 8, 8)),
            LayerSpec("conv", (0,), (3, 8, 8), (4, 4, 4), kernel_size=3, stride=2, padding=1,
                      attrs=(("bias", False), ("kernel", (3, 3)))),
            LayerSpec("batchnorm", (1,), (4, 4, 4), (4, 4, 4), attrs=(("affine", True),)),
            LayerSpec("relu", (2,), (4, 4, 4), (4, 4, 4)),
            LayerSpec("conv", (3,), (4, 4, 4), (4, 4, 4), kernel_size=3, stride=1, padding=1, groups=2,
                      attrs=(("bias", True), ("kernel", (3, 3)))),
            LayerSpec("add", (4, 3), (4, 4, 4), (4, 4, 4)),
            LayerSpec("flatten", (5,), (4, 4, 4), (64,)),
            LayerSpec("linear", (6,), (64,), (10,), attrs=(("bias", True),)),
        ]
    )


# The paper's vectors of `_small_graph`, written out by hand: type, [kernel, stride, padding,
# groups, in, out], entries j - i set in the incoming vector (edges i -> j into this layer) and in
# the outgoing vector (edges j -> k out of it, entry k - j).
_SMALL_ROWS = [
    ("input", [0, 0, 0, 1, 3, 3], [], [1]),
    ("conv", [3, 2, 1, 1, 3, 4], [1], [1]),
    ("batchnorm", [0, 0, 0, 1, 4, 4], [1], [1]),
    ("relu", [0, 0, 0, 1, 4, 4], [1], [1, 2]),  # 3 -> 4 and 3 -> 5
    ("conv", [3, 1, 1, 2, 4, 4], [1], [1]),
    ("add", [0, 0, 0, 1, 4, 4], [1, 2], [1]),  # 4 -> 5 and 3 -> 5
    ("flatten", [0, 0, 0, 1, 4, 64], [1], [1]),
    ("linear", [0, 0, 0, 1, 64, 10], [1], []),
]


def _paper_vectors(rows, max_layers: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(max_layers, M + 6 + 2 * max_layers, dtype=dtype)
    for j, (op, attributes, incoming, outgoing) in enumerate(rows):
        out[j, LAYER_TYPES.index(op)] = 1
        out[j, M : M + 6] = torch.tensor(attributes, dtype=dtype)
        for offset in incoming:
            out[j, M + 6 + offset] = 1
        for offset in outgoing:
            out[j, M + 6 + max_layers + offset] = 1
    return out


def _reference_expand(graph: ArchGraph, max_layers: int) -> torch.Tensor:
    """The paper's vectors straight from the layer list (brute force)."""
    L = max_layers
    out = torch.zeros(L, M + 6 + 2 * L, dtype=torch.float64)
    for j, node in enumerate(graph.nodes):
        out[j, LAYER_TYPES.index(node.op)] = 1
        out[j, M : M + 6] = torch.tensor(
            [node.kernel_size, node.stride, node.padding, node.groups, node.in_shape[0], node.out_shape[0]],
            dtype=torch.float64,
        )
        for i in node.inputs:
            out[j, M + 6 + (j - i)] = 1
            out[i, M + 6 + L + (j - i)] = 1
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_layers", [8, 11])
def test_expand_matches_the_paper_vectors_by_hand(max_layers, dtype):
    X = encode([_small_graph()], max_layers=max_layers, dtype=dtype)
    assert X.shape == (1, max_layers * (7 + DEFAULT_MAX_EDGES)) and X.dtype == dtype
    Z = expand(X, max_layers)
    assert Z.shape == (1, max_layers, M + 2 * max_layers + 6) and Z.dtype == dtype
    assert torch.equal(Z[0], _paper_vectors(_SMALL_ROWS, max_layers, dtype))
    assert torch.equal(Z[0, 8:], torch.zeros(max_layers - 8, M + 2 * max_layers + 6, dtype=dtype))


def test_compact_rows_by_hand():
    X = encode(_small_graph(), max_layers=9, max_edges=3, dtype=torch.float64)
    assert X.shape == (1, 9 * num_features(3)) == (1, 90)
    rows = X.view(9, 10)
    code = {op: LAYER_TYPES.index(op) + 1 for op in LAYER_TYPES}
    expected = torch.tensor(
        [
            [code["input"], 0, 0, 0, 1, 3, 3, 0, 0, 0],
            [code["conv"], 3, 2, 1, 1, 3, 4, 1, 0, 0],
            [code["batchnorm"], 0, 0, 0, 1, 4, 4, 1, 0, 0],
            [code["relu"], 0, 0, 0, 1, 4, 4, 1, 0, 0],
            [code["conv"], 3, 1, 1, 2, 4, 4, 1, 0, 0],
            [code["add"], 0, 0, 0, 1, 4, 4, 1, 2, 0],  # inputs (4, 3): offsets in input order
            [code["flatten"], 0, 0, 0, 1, 4, 64, 1, 0, 0],
            [code["linear"], 0, 0, 0, 1, 64, 10, 1, 0, 0],
            [0] * 10,
        ],
        dtype=torch.float64,
    )
    assert torch.equal(rows, expected)


def test_traced_module_encodes_like_the_hand_graph():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            y = self.relu(self.bn(self.conv1(x)))
            return self.fc(torch.flatten(self.conv2(y) + y, 1))

    graph = trace(Net(), torch.zeros(1, 3, 8, 8))
    assert graph.key() == _small_graph().key()
    assert torch.equal(encode(graph, max_layers=10), encode(_small_graph(), max_layers=10))


def test_expand_matches_brute_force_on_every_teacher(teacher_name, traced):
    graph = traced[teacher_name]
    L = graph.num_layers + 2
    Z = expand(encode(graph, max_layers=L, dtype=torch.float64), L)
    assert torch.equal(Z[0], _reference_expand(graph, L))


def test_encoding_a_list_is_encoding_each_alone(traced):
    graphs = [
        traced["resnet18"], _small_graph(), traced["shufflenet"], traced["torchvision/shufflenet_v2_x1_0"]
    ]
    L = max(g.num_layers for g in graphs)
    X = encode(graphs, max_layers=L, max_edges=4)
    assert X.shape == (4, L * 11)
    for b, graph in enumerate(graphs):
        assert torch.equal(X[b : b + 1], encode(graph, max_layers=L, max_edges=4))
        assert torch.equal(X[b : b + 1], encode([graph], max_layers=L, max_edges=4))
    assert torch.equal(encode(graphs[::-1], max_layers=L, max_edges=4), X.flip(0))


def test_distinct_architectures_encode_differently(traced):
    X = encode([traced["resnet18"], traced["resnet34"], traced["vgg19"]], max_layers=130)
    assert not torch.equal(X[0], X[1]) and not torch.equal(X[0], X[2])


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_dtype_argument(dtype):
    X = encode(_small_graph(), max_layers=8, dtype=dtype)
    assert X.dtype == dtype
    assert torch.equal(X.double(), encode(_small_graph(), max_layers=8, dtype=torch.float64))
    assert expand(X, 8).dtype == dtype


def test_default_dtype_is_torch_default():
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        assert encode(_small_graph(), max_layers=8).dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert encode(_small_graph(), max_layers=8).dtype == previous


def test_expand_with_batch_dimensions(traced):
    graphs = [traced["resnet18"], traced["vgg19"], _small_graph(), traced["mobilenetv2"], traced["resnet18"],
              _small_graph()]
    L = max(g.num_layers for g in graphs)
    X = encode(graphs, max_layers=L, dtype=torch.float64)
    Z = expand(X.view(2, 3, -1), L)
    assert Z.shape == (2, 3, L, M + 2 * L + 6)
    flat = expand(X, L)
    assert torch.equal(Z.reshape(6, L, -1), flat)
    for b, graph in enumerate(graphs):
        assert torch.equal(flat[b], _reference_expand(graph, L))
    # No batch dimension at all: `d` -> `L x (m + 2L + 6)`.
    assert torch.equal(expand(X[2], L), flat[2])


def test_too_many_layers():
    with pytest.raises(EncodingError, match=r"8 layers.*max_layers=5"):
        encode(_small_graph(), max_layers=5)


def test_too_many_inputs_for_max_edges():
    with pytest.raises(EncodingError, match=r"layer 5 .*2 inputs.*max_edges=1"):
        encode([_small_graph()], max_layers=8, max_edges=1)
    # Two inputs fit exactly in two slots.
    assert encode([_small_graph()], max_layers=8, max_edges=2).shape == (1, 8 * 9)


@pytest.mark.parametrize("name, kwargs", [
    ("max_layers", {"max_layers": 0}),
    ("max_layers", {"max_layers": True}),
    ("max_layers", {"max_layers": 8.0}),
    ("max_edges", {"max_layers": 8, "max_edges": 0}),
])
def test_bad_sizes(name, kwargs):
    with pytest.raises(EncodingError, match=name):
        encode(_small_graph(), **kwargs)


@pytest.mark.parametrize("shape, max_layers", [
    ((2, 8 * 15 + 1), 8),  # not a multiple of max_layers
    ((2, 8 * 7), 8),  # no room for a single edge
    ((2, 8 * 15), 0),
    ((2, 8 * 15), 7),
])
def test_expand_rejects_widths_that_do_not_fit(shape, max_layers):
    with pytest.raises(EncodingError, match="max_layers"):
        expand(torch.zeros(shape), max_layers)


@pytest.mark.parametrize("code", [-1.0, float(M + 1)])
def test_expand_rejects_unknown_type_codes(code):
    X = encode(_small_graph(), max_layers=8)
    X[0, 15] = code  # the type of layer 1
    with pytest.raises(EncodingError, match="type codes"):
        expand(X, 8)


def test_an_iterator_encodes_like_a_list(traced):
    graphs = [traced["vgg19"], _small_graph(), traced["resnet18"]]
    X = encode(graphs, max_layers=80, max_edges=2)
    assert torch.equal(encode(iter(graphs), max_layers=80, max_edges=2), X)
    assert torch.equal(encode((g for g in graphs), max_layers=80, max_edges=2), X)
    assert encode(iter([]), max_layers=80, max_edges=2).shape == (0, 80 * 9)
    assert encode([], max_layers=80, max_edges=2).shape == (0, 80 * 9)


def test_items_must_be_graphs():
    with pytest.raises(EncodingError, match="item 1 is a dict"):
        encode([_small_graph(), _small_graph().to_dict()], max_layers=8)
