r"""Tests of botorch_archsearch/graph/arch_graph.py."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import LAYER_TYPES, ArchGraph, LayerSpec

# Layer ``j`` of the small graph below, with the inputs it takes.
#   0 input -> 1 conv -> 2 relu -> 3 conv -> 4 add(3, 2) -> 5 concat(4, 1) -> 6 flatten -> 7 linear
_SMALL_CONSUMERS = ((1,), (2, 5), (3, 4), (4,), (5,), (6,), (7,), ())


def _small_nodes() -> list[LayerSpec]:
    return [
        LayerSpec("input", (), (3, 4, 4), (3, 4, 4), name="x"),
        LayerSpec("conv", (0,), (3, 4, 4), (4, 4, 4), 3, 1, 1, 1,
                  attrs=(("bias", False), ("kernel", (3, 3)), ("stride", (1, 1))), name="conv1"),
        LayerSpec("relu", (1,), (4, 4, 4), (4, 4, 4), name="relu"),
        LayerSpec("conv", (2,), (4, 4, 4), (4, 4, 4), 3, 1, 1, 2,
                  attrs=(("bias", True), ("kernel", (3, 3)), ("stride", (1, 1))), name="conv2"),
        LayerSpec("add", (3, 2), (4, 4, 4), (4, 4, 4), name="add"),
        LayerSpec("concat", (4, 1), (8, 4, 4), (8, 4, 4), name="cat"),
        LayerSpec("flatten", (5,), (8, 4, 4), (128,), name="flatten"),
        LayerSpec("linear", (6,), (128,), (10,), attrs=(("bias", True),), name="fc"),
    ]


def _roundtrip(graph: ArchGraph) -> ArchGraph:
    return ArchGraph.from_dict(json.loads(json.dumps(graph.to_dict())))


def test_layer_types_are_append_only():
    # The one-hot type of the encoding depends on this order: stored encodings and learned
    # kernels would silently change meaning if it changed.
    assert LAYER_TYPES[:17] == (
        "input", "conv", "linear", "batchnorm", "relu", "relu6", "activation", "maxpool", "avgpool",
        "adaptive_avgpool", "mean", "flatten", "dropout", "add", "concat", "slice", "shuffle",
    )
    assert len(set(LAYER_TYPES)) == len(LAYER_TYPES)


def test_basic_properties():
    graph = ArchGraph(_small_nodes())
    assert graph.num_layers == 8
    assert graph.input_shape == (3, 4, 4) and graph.output_shape == (10,)
    # A graph is the architecture only: what a student keeps of its teacher is the space's Student.
    assert not any(hasattr(graph, name) for name in ("base", "edit", "origin"))
    assert graph.nodes == tuple(_small_nodes())
    conv2 = graph.nodes[3]
    assert (conv2.in_channels, conv2.out_channels, conv2.merge) == (4, 4, "sum")
    assert graph.nodes[5].merge == "concat"
    assert conv2.attr("bias") is True and conv2.attr("kernel") == (3, 3)
    assert conv2.attr("missing") is None and conv2.attr("missing", 7) == 7
    assert "num_layers=8" in repr(graph) and "conv=2" in repr(graph)


def test_table_by_hand():
    table = ArchGraph(_small_nodes()).table
    ops = ("input", "conv", "relu", "conv", "add", "concat", "flatten", "linear")
    ids = [LAYER_TYPES.index(op) for op in ops]
    assert table.op.tolist() == ids
    assert table.kernel_size.tolist() == [0, 3, 0, 3, 0, 0, 0, 0]
    assert table.groups.tolist() == [1, 1, 1, 2, 1, 1, 1, 1]
    assert table.in_channels.tolist() == [3, 3, 4, 4, 4, 8, 8, 128]
    assert table.out_channels.tolist() == [3, 4, 4, 4, 4, 8, 128, 10]
    # Ordered by destination, then input position.
    assert table.edge_src.tolist() == [0, 1, 2, 3, 2, 4, 1, 5, 6]
    assert table.edge_dst.tolist() == [1, 2, 3, 4, 4, 5, 5, 6, 7]


def test_table_is_consistent_with_nodes(teacher_name, traced):
    graph = traced[teacher_name]
    table, nodes = graph.table, graph.nodes
    for column in table:
        assert column.dtype == np.int64
    assert table.op.tolist() == [LAYER_TYPES.index(n.op) for n in nodes]
    assert table.kernel_size.tolist() == [n.kernel_size for n in nodes]
    assert table.stride.tolist() == [n.stride for n in nodes]
    assert table.padding.tolist() == [n.padding for n in nodes]
    assert table.groups.tolist() == [n.groups for n in nodes]
    assert table.in_channels.tolist() == [n.in_shape[0] for n in nodes]
    assert table.out_channels.tolist() == [n.out_shape[0] for n in nodes]
    edges = [(i, j) for j, n in enumerate(nodes) for i in n.inputs]
    assert list(zip(table.edge_src.tolist(), table.edge_dst.tolist())) == edges
    assert graph.num_layers == len(nodes)


def test_consumers_by_hand():
    assert ArchGraph(_small_nodes()).consumers() == _SMALL_CONSUMERS


def test_consumers_brute_force(teacher_name, traced):
    graph = traced[teacher_name]
    nodes = graph.nodes
    expected = tuple(
        tuple(j for j in range(len(nodes)) for k in nodes[j].inputs if k == i) for i in range(len(nodes))
    )
    assert graph.consumers() == expected


def test_roundtrip_small_graph():
    graph = ArchGraph(_small_nodes())
    again = _roundtrip(graph)
    assert again == graph and again.key() == graph.key() and hash(again) == hash(graph)
    assert again.nodes == graph.nodes  # attrs (tuples included) and names survive
    assert again.nodes[1].attr("kernel") == (3, 3)


def test_roundtrip_every_teacher(teacher_name, traced):
    graph = traced[teacher_name]
    again = _roundtrip(graph)
    assert again == graph and again.key() == graph.key()
    assert again.nodes == graph.nodes


def test_to_dict_is_plain_json():
    data = ArchGraph(_small_nodes()).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["nodes"][4]["inputs"] == [3, 2]
    assert data["nodes"][1]["attrs"] == [["bias", False], ["kernel", [3, 3]], ["stride", [1, 1]]]


def _replace(nodes: list[LayerSpec], j: int, **fields) -> ArchGraph:
    nodes = list(nodes)
    nodes[j] = nodes[j]._replace(**fields)
    return ArchGraph(nodes)


def test_key_differs_when_the_architecture_differs():
    nodes = _small_nodes()
    graph = ArchGraph(nodes)
    changed = [
        _replace(nodes, 3, out_shape=(5, 4, 4)),  # one channel count
        _replace(nodes, 3, in_shape=(5, 4, 4)),
        _replace(nodes, 3, kernel_size=5),
        _replace(nodes, 3, stride=2),
        _replace(nodes, 3, padding=0),
        _replace(nodes, 3, groups=4),
        _replace(nodes, 2, op="relu6"),
        _replace(nodes, 4, inputs=(3, 1)),  # an edge moved
        _replace(nodes, 4, inputs=(2, 3)),  # input order
        _replace(nodes, 7, inputs=(6, 5)),  # an extra edge
    ]
    keys = {graph.key()} | {g.key() for g in changed}
    assert len(keys) == len(changed) + 1
    assert all(g != graph for g in changed)
    assert len({graph, *changed, ArchGraph(_small_nodes())}) == len(changed) + 1


def test_key_ignores_names():
    renamed = [n._replace(name=f"layer{j}") for j, n in enumerate(_small_nodes())]
    assert ArchGraph(renamed).key() == ArchGraph(_small_nodes()).key()


def _layer_dict(**fields) -> dict:
    data = ArchGraph(_small_nodes()).to_dict()
    node = copy.deepcopy(data["nodes"][1])
    node.update(fields)
    return {"format": data["format"], "nodes": [data["nodes"][0], node]}


@pytest.mark.parametrize(
    "data",
    [
        "not a dict",
        [1, 2],
        None,
        {"nodes": []},
        {"format": "something/else", "nodes": []},
        {"format": "botorch_archsearch.ArchGraph/1", "nodes": 5},
        {"format": "botorch_archsearch.ArchGraph/1", "nodes": None},
        {"format": "botorch_archsearch.ArchGraph/1", "nodes": []},
        {"format": "botorch_archsearch.ArchGraph/1", "nodes": [{"op": "input"}]},
        {"format": "botorch_archsearch.ArchGraph/1", "nodes": [7]},
        _layer_dict(inputs=4),
        _layer_dict(inputs=[1]),
        _layer_dict(op="lstm"),
        _layer_dict(attrs=[["bias"]]),
        _layer_dict(in_shape=[]),
        _layer_dict(kernel_size="three"),
    ],
    ids=[
        "str", "list", "none", "no_format", "wrong_format", "nodes_int", "nodes_none", "nodes_empty",
        "missing_fields", "node_int", "inputs_int", "forward_edge", "unknown_op", "attr_not_a_pair",
        "empty_shape", "kernel_not_int",
    ],
)
def test_from_dict_rejects_garbage(data):
    with pytest.raises(ArchSearchError):
        ArchGraph.from_dict(data)


@pytest.mark.parametrize(
    "nodes, match",
    [
        ([], "layer 0"),
        (_small_nodes()[1:], "layer 0"),
        ([LayerSpec("relu", (), (3,), (3,))], "layer 0"),
        (_small_nodes()[:3] + [LayerSpec("relu", (3,), (4, 4, 4), (4, 4, 4))], r"layer 3 .*\(3,\)"),
        (_small_nodes()[:3] + [LayerSpec("add", (1, 5), (4, 4, 4), (4, 4, 4))], r"layer 3 .*\(1, 5\)"),
        (_small_nodes()[:3] + [LayerSpec("relu", (-1,), (4, 4, 4), (4, 4, 4))], "layer 3"),
        (_small_nodes()[:3] + [LayerSpec("relu", (), (4, 4, 4), (4, 4, 4))], "layer 3 .*no inputs"),
        (_small_nodes()[:3] + [LayerSpec("lstm", (2,), (4, 4, 4), (4, 4, 4))], "'lstm'"),
    ],
    ids=["empty", "no_input", "first_not_input", "self_edge", "forward_edge", "negative", "no_inputs",
         "unknown_op"],
)
def test_invalid_graphs(nodes, match):
    with pytest.raises(ArchSearchError, match=match):
        ArchGraph(nodes)


def test_from_table_materialises_layers_once_and_lazily():
    reference = ArchGraph(_small_nodes())
    calls = []

    def materialize():
        calls.append(1)
        return tuple(_small_nodes())

    graph = ArchGraph.from_table(reference.table, materialize)
    assert graph.num_layers == 8 and graph.key() == reference.key() and graph == reference
    assert graph.consumers() == _SMALL_CONSUMERS
    assert calls == []
    assert graph.nodes == reference.nodes and graph.output_shape == (10,)
    assert graph.nodes is graph.nodes
    assert calls == [1]
    again = _roundtrip(graph)
    assert again == reference and again.nodes == reference.nodes
