r"""The architecture graph: a network as an immutable list of layers in topological order.

Paper section 3.2 and appendix 6.2 (ESNAC, ICLR 2019): a network is a sequence of layers, each
with a type, its kernel size, stride, padding, groups, input and output channels, and the layers
it takes its input from. Several inputs of one layer are merged by summation, except for an
explicit ``concat`` layer which concatenates them along the channels and a ``mul`` layer which
multiplies its first input by its second (a channel gate, broadcast over the spatial dimensions).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, NamedTuple

import numpy as np

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils.validation import is_int

_FORMAT = "botorch_archsearch.ArchGraph/1"

# The layer vocabulary; its order fixes the one-hot type of the encoding, so only append to it.
LAYER_TYPES: tuple[str, ...] = (
    "input",
    "conv",
    "linear",
    "batchnorm",
    "relu",
    "relu6",
    "activation",
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "mean",
    "flatten",
    "dropout",
    "add",
    "concat",
    "slice",
    "shuffle",
    "mul",
    "scale",
    "layernorm",
    "groupnorm",
    "upsample",
    "channelconv",
)

# Layers that act on each channel independently: a student keeps the same channels on both sides.
CHANNELWISE_TYPES = frozenset(
    {
        "batchnorm",
        "relu",
        "relu6",
        "activation",
        "maxpool",
        "avgpool",
        "adaptive_avgpool",
        "mean",
        "dropout",
        "add",
        "mul",
        "scale",
        "layernorm",
        "groupnorm",
        "upsample",
        "channelconv",
    }
)

# Layers that the removal operator may turn into identities (when their input and output shapes
# agree); merges, reshapes and the network input are structure, not layers to remove. A removed
# ``mul`` (a channel gate) keeps its first input, the gated feature map, and drops the gate.
REMOVABLE_TYPES = (CHANNELWISE_TYPES - {"mean", "add", "upsample"}) | {"conv", "linear"}


class LayerSpec(NamedTuple):
    r"""One layer of an :class:`ArchGraph`.

    Shapes are per sample (no batch dimension): ``(C, H, W)`` for feature maps, ``(F,)`` after a
    flatten. The first entry is the channel (feature) count.

    Args:
        op: The layer type, one of :data:`LAYER_TYPES`.
        inputs: Indices of the layers whose outputs feed this one, in order.
        in_shape: Shape of the merged input (for ``concat``, the output shape).
        out_shape: Shape of the output.
        kernel_size: Kernel size (largest side), 0 where it does not apply.
        stride: Stride (largest side), 0 where it does not apply.
        padding: Padding (largest side), 0 where it does not apply.
        groups: Convolution groups, 1 elsewhere.
        attrs: Sorted ``(name, value)`` pairs needed to build the layer (bias, eps, ...).
        name: Where the layer came from in the traced module (for messages).
    """

    op: str
    inputs: tuple[int, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel_size: int = 0
    stride: int = 0
    padding: int = 0
    groups: int = 1
    attrs: tuple[tuple[str, Any], ...] = ()
    name: str = ""

    @property
    def in_channels(self) -> int:
        """Channels (or features) of the merged input."""
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        """Channels (or features) of the output."""
        return self.out_shape[0]

    @property
    def merge(self) -> str:
        """How several inputs are merged: ``"concat"`` for concat layers, ``"mul"`` or ``"div"``
        for ``mul`` layers (the first input times, or divided by, the second, which may
        broadcast), ``"sum"`` otherwise."""
        if self.op == "concat":
            return "concat"
        if self.op == "mul":
            return "div" if self.attr("divide", False) else "mul"
        return "sum"

    def attr(self, key: str, default: Any = None) -> Any:
        """The value of attribute ``key`` (``default`` if absent)."""
        for name, value in self.attrs:
            if name == key:
                return value
        return default


class LayerTable(NamedTuple):
    r"""The columns of an :class:`ArchGraph` that the encoding reads, as integer arrays.

    Args:
        op: `n` layer type indices into :data:`LAYER_TYPES`.
        kernel_size: `n` kernel sizes.
        stride: `n` strides.
        padding: `n` paddings.
        groups: `n` group counts.
        in_channels: `n` input channel counts.
        out_channels: `n` output channel counts.
        edge_src: `e` edge sources, ordered by destination then input position.
        edge_dst: `e` edge destinations (non-decreasing).
    """

    op: np.ndarray
    kernel_size: np.ndarray
    stride: np.ndarray
    padding: np.ndarray
    groups: np.ndarray
    in_channels: np.ndarray
    out_channels: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray


class ArchGraph:
    r"""An immutable network architecture: layers in topological order, the last one the output.

    Layer 0 is always the network input. Graphs come from :func:`~botorch_archsearch.graph.trace`
    (a teacher) or from :meth:`~botorch_archsearch.space.SearchSpace.apply` (a student's
    architecture; what it keeps of the teacher is in its
    :class:`~botorch_archsearch.space.Student`, not here).
    A graph is a list of :class:`LayerSpec` (``nodes``) and, equivalently, a :class:`LayerTable`
    of integer columns (``table``); a student made by the search space is built as a table and
    its layers are only materialised when asked for.

    Example:
        >>> graph = trace(teacher, torch.randn(1, 3, 32, 32))
        >>> graph.nodes[1].op
        'conv'
    """

    __slots__ = ("_nodes", "_table", "_materialize", "_key")

    def __init__(self, nodes: tuple[LayerSpec, ...] | list[LayerSpec]) -> None:
        r"""Create a graph from its layers.

        Args:
            nodes: The layers in topological order; ``nodes[0]`` is the input and the last
                layer is the output.
        """
        nodes = tuple(nodes)
        _check_nodes(nodes)
        self._nodes: tuple[LayerSpec, ...] | None = nodes
        self._table: LayerTable | None = None
        self._materialize: Callable[[], tuple[LayerSpec, ...]] | None = None
        self._key: str | None = None

    @classmethod
    def from_table(cls, table: LayerTable, materialize: Callable[[], tuple[LayerSpec, ...]]) -> ArchGraph:
        r"""Create a graph from its columns; the layers are built by ``materialize`` on demand.

        Args:
            table: The columns.
            materialize: Returns the layers (consistent with ``table``) when first needed.

        Returns:
            The graph.
        """
        graph = cls.__new__(cls)
        graph._nodes, graph._table, graph._materialize = None, table, materialize
        graph._key = None
        return graph

    @property
    def nodes(self) -> tuple[LayerSpec, ...]:
        """The layers in topological order."""
        if self._nodes is None:
            self._nodes = self._materialize()
            self._materialize = None
        return self._nodes

    @property
    def table(self) -> LayerTable:
        """The integer columns of the graph (what the encoding reads)."""
        if self._table is None:
            self._table = _table_of(self.nodes)
        return self._table

    @property
    def num_layers(self) -> int:
        """Number of layers, the input included."""
        return len(self._nodes) if self._nodes is not None else len(self._table.op)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the network input."""
        return self.nodes[0].out_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the network output."""
        return self.nodes[-1].out_shape

    def consumers(self) -> tuple[tuple[int, ...], ...]:
        """For each layer, the indices of the layers that take its output."""
        out: list[list[int]] = [[] for _ in range(self.num_layers)]
        table = self.table
        for i, j in zip(table.edge_src.tolist(), table.edge_dst.tolist()):
            out[i].append(j)
        return tuple(tuple(c) for c in out)

    def key(self) -> str:
        """A digest of the architecture (its table: layer types, sizes, edges) for deduplication."""
        if self._key is None:
            digest = hashlib.sha1()
            for column in self.table:
                digest.update(np.ascontiguousarray(column, dtype=np.int64).tobytes())
                digest.update(b"|")
            self._key = digest.hexdigest()
        return self._key

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description of the layers."""
        return {
            "format": _FORMAT,
            "nodes": [
                {
                    "op": n.op,
                    "inputs": list(n.inputs),
                    "in_shape": list(n.in_shape),
                    "out_shape": list(n.out_shape),
                    "kernel_size": n.kernel_size,
                    "stride": n.stride,
                    "padding": n.padding,
                    "groups": n.groups,
                    "attrs": [[k, _jsonable(v)] for k, v in n.attrs],
                    "name": n.name,
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchGraph:
        """Rebuild a graph written by :meth:`to_dict`.

        Args:
            data: The dictionary (as read from JSON).

        Returns:
            The graph.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ArchSearchError(
                "ArchGraph.from_dict expects a dictionary written by ArchGraph.to_dict with "
                f"format {_FORMAT!r}, got {str(data)[:80]!r}."
            )
        try:
            nodes = tuple(
                LayerSpec(
                    op=n["op"],
                    inputs=tuple(n["inputs"]),
                    in_shape=tuple(n["in_shape"]),
                    out_shape=tuple(n["out_shape"]),
                    kernel_size=n["kernel_size"],
                    stride=n["stride"],
                    padding=n["padding"],
                    groups=n["groups"],
                    attrs=tuple((k, _from_jsonable(v)) for k, v in n["attrs"]),
                    name=n["name"],
                )
                for n in data["nodes"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArchSearchError(f"ArchGraph.from_dict: malformed layer entry ({e!r}).") from e
        for j, n in enumerate(nodes):
            ints = (n.kernel_size, n.stride, n.padding, n.groups) + n.in_shape + n.out_shape
            if not n.in_shape or not n.out_shape or not all(
                is_int(v, 0) for v in ints
            ):
                raise ArchSearchError(
                    f"ArchGraph.from_dict: layer {j} needs non-empty shapes and non-negative integer "
                    f"kernel_size, stride, padding, groups and shape entries, got {n!r}."
                )
        return cls(nodes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchGraph) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        ops: dict[str, int] = {}
        for op in self.table.op.tolist():
            ops[LAYER_TYPES[op]] = ops.get(LAYER_TYPES[op], 0) + 1
        summary = ", ".join(f"{k}={v}" for k, v in sorted(ops.items()))
        return (
            f"ArchGraph(num_layers={self.num_layers}, input_shape={self.input_shape}, "
            f"output_shape={self.output_shape}, {summary})"
        )


def _check_nodes(nodes: tuple[LayerSpec, ...]) -> None:
    """Raise if the layers do not form a valid graph (input first, topological edges)."""
    if not nodes or nodes[0].op != "input":
        raise ArchSearchError("ArchGraph needs at least one layer and layer 0 must be the input.")
    for j, node in enumerate(nodes):
        if node.op not in LAYER_TYPES:
            raise ArchSearchError(
                f"ArchGraph layer {j} has op {node.op!r}; accepted ops are {list(LAYER_TYPES)}."
            )
        if j and not node.inputs:
            raise ArchSearchError(f"ArchGraph layer {j} ({node.op}) has no inputs.")
        if any(not 0 <= i < j for i in node.inputs):
            raise ArchSearchError(
                f"ArchGraph layer {j} ({node.op}) has inputs {node.inputs}; inputs must be "
                f"earlier layers (0..{j - 1})."
            )


def _table_of(nodes: tuple[LayerSpec, ...]) -> LayerTable:
    """The columns of a list of layers."""
    ids = {op: i for i, op in enumerate(LAYER_TYPES)}
    cols = np.array(
        [(ids[n.op], n.kernel_size, n.stride, n.padding, n.groups, n.in_shape[0], n.out_shape[0])
         for n in nodes],
        dtype=np.int64,
    ).T
    src = [i for n in nodes for i in n.inputs]
    dst = [j for j, n in enumerate(nodes) for _ in n.inputs]
    return LayerTable(*cols, np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64))


def _jsonable(value: Any) -> Any:
    """Tuples to lists, recursively, for JSON."""
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    """Lists back to tuples, recursively (attrs are immutable)."""
    if isinstance(value, list):
        return tuple(_from_jsonable(v) for v in value)
    return value


__all__ = [
    "ArchGraph",
    "CHANNELWISE_TYPES",
    "LAYER_TYPES",
    "LayerSpec",
    "LayerTable",
    "REMOVABLE_TYPES",
]
