r"""Encode architectures as rows of a BoTorch ``X`` tensor, and expand them to the paper's
per-layer vectors (ESNAC appendix 6.2).

The paper describes layer ``j`` of a network with at most ``n`` layers by a vector of length
``m + 2n + 6``: a one-hot layer type (``m`` types), kernel size, stride, padding, groups, input
channels, output channels, then an ``n``-dim incoming-edge vector and an ``n``-dim outgoing-edge
vector, where an edge ``i -> j`` sets entry ``j - i`` of both. Stored densely this is
``n x n x (m + 2n + 6)`` numbers per architecture, too much for thousands of candidates, so ``X``
stores per layer only ``7 + max_edges`` numbers:

``[type + 1, kernel, stride, padding, groups, in_channels, out_channels, o_1, ..., o_E]``

with type 0 marking padding rows and ``o_k = j - i`` the offsets of the incoming edges (0 = no
edge). :func:`expand` rebuilds the paper's vectors from it, inside the feature extractor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sized
from typing import Any

import numpy as np
import torch

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.graph.arch_graph import LAYER_TYPES, ArchGraph
from botorch_archsearch.utils.validation import check_int

NUM_LAYER_TYPES = len(LAYER_TYPES)
NUM_ATTRIBUTES = 6  # kernel, stride, padding, groups, in channels, out channels
DEFAULT_MAX_EDGES = 8


def num_features(max_edges: int = DEFAULT_MAX_EDGES) -> int:
    """Numbers stored per layer in the compact encoding: ``7 + max_edges``."""
    return 1 + NUM_ATTRIBUTES + max_edges


def encode(
    graphs: Iterable[ArchGraph] | ArchGraph,
    max_layers: int,
    max_edges: int = DEFAULT_MAX_EDGES,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Encode architectures as a `n x d` tensor, ``d = max_layers * (7 + max_edges)``.

    Args:
        graphs: The architectures (or one architecture); an iterator is consumed one graph at
            a time, so the graphs need not be kept alive.
        max_layers: Layers per row; shorter graphs are padded with zero rows.
        max_edges: Incoming edges stored per layer.
        dtype: Floating dtype of the result (default: torch's default dtype). All entries are
            integers, exact in float32 and float64 (not in bfloat16/float16 past 256/2048).

    Returns:
        A `n x (max_layers * (7 + max_edges))` tensor; ``X.view(n, max_layers, 7 + max_edges)``
        gives one row per layer.

    Raises:
        EncodingError: If a graph has more than ``max_layers`` layers or a layer has more than
            ``max_edges`` inputs.

    Example:
        >>> X = encode([space.apply(e) for e in space.sample(1000)], max_layers=space.graph.num_layers)
    """
    if isinstance(graphs, ArchGraph):
        graphs = [graphs]
    check_int("max_layers", max_layers, 1, where="encode", error=EncodingError)
    check_int("max_edges", max_edges, 1, where="encode", error=EncodingError)
    width = num_features(max_edges)
    if isinstance(graphs, Sized):
        out = np.zeros((len(graphs), max_layers, width), dtype=np.float32)
        rows_of = out.__getitem__
    else:  # an iterator: graphs need not all be alive at once
        chunks: list[np.ndarray] = []

        def rows_of(b: int) -> np.ndarray:
            chunks.append(np.zeros((max_layers, width), dtype=np.float32))
            return chunks[-1]

    for b, graph in enumerate(graphs):
        if not isinstance(graph, ArchGraph):
            raise EncodingError(f"encode: item {b} is a {type(graph).__name__}, not an ArchGraph.")
        t = graph.table
        n = len(t.op)
        if n > max_layers:
            raise EncodingError(
                f"encode: architecture {b} has {n} layers but max_layers={max_layers}; "
                "raise max_layers to at least the teacher's number of layers."
            )
        rows = rows_of(b)
        rows[:n, 0] = t.op + 1
        rows[:n, 1] = t.kernel_size
        rows[:n, 2] = t.stride
        rows[:n, 3] = t.padding
        rows[:n, 4] = t.groups
        rows[:n, 5] = t.in_channels
        rows[:n, 6] = t.out_channels
        dst = t.edge_dst
        if len(dst):
            slot = np.arange(len(dst)) - np.searchsorted(dst, dst, side="left")
            if slot.max() >= max_edges:
                j = int(dst[np.argmax(slot)])
                raise EncodingError(
                    f"encode: layer {j} of architecture {b} has {int((dst == j).sum())} inputs "
                    f"but max_edges={max_edges}; raise max_edges."
                )
            rows[dst, 1 + NUM_ATTRIBUTES + slot] = dst - t.edge_src
    if not isinstance(graphs, Sized):
        out = np.stack(chunks) if chunks else np.zeros((0, max_layers, width), dtype=np.float32)
    return torch.from_numpy(out.reshape(len(out), max_layers * width)).to(
        dtype or torch.get_default_dtype()
    )


def expand(X: torch.Tensor, max_layers: int) -> torch.Tensor:
    r"""Expand compact encodings into the paper's per-layer vectors (appendix 6.2).

    Args:
        X: A `batch_shape x n x d` (or `batch_shape x d`) tensor from :func:`encode`, with
            ``d = max_layers * (7 + max_edges)``.
        max_layers: The ``max_layers`` that ``X`` was encoded with (the paper's ``n``).

    Returns:
        A `batch_shape x (n) x max_layers x (m + 2 * max_layers + 6)` tensor: one-hot type
        (``m = len(LAYER_TYPES)``), kernel, stride, padding, groups, in and out channels, incoming
        offsets, outgoing offsets. Padding layers are all zeros. An edge entry counts the
        edges with that offset (1 unless a layer takes the same input twice, as in ``x + x``).
    """
    width = X.shape[-1] // max_layers if max_layers > 0 else 0
    if max_layers < 1 or X.shape[-1] != max_layers * width or width <= 1 + NUM_ATTRIBUTES:
        raise EncodingError(
            f"expand: X has last dimension {X.shape[-1]}, which is not max_layers={max_layers} "
            f"times (7 + max_edges) for any max_edges >= 1."
        )
    rows = X.reshape(*X.shape[:-1], max_layers, width)
    types = rows[..., 0].round().long()
    if types.min() < 0 or types.max() > NUM_LAYER_TYPES:
        raise EncodingError(
            f"expand: layer type codes must lie in [0, {NUM_LAYER_TYPES}], got "
            f"[{int(types.min())}, {int(types.max())}]."
        )
    one_hot = torch.nn.functional.one_hot(types, NUM_LAYER_TYPES + 1)[..., 1:].to(X)
    attributes = rows[..., 1 : 1 + NUM_ATTRIBUTES]
    offsets = rows[..., 1 + NUM_ATTRIBUTES :].round().long()  # `... x L x E`
    valid = offsets > 0
    L = max_layers
    incoming = torch.zeros(*rows.shape[:-1], L, dtype=X.dtype, device=X.device)
    incoming.scatter_add_(-1, offsets.clamp(0, L - 1), valid.to(X.dtype))
    # Outgoing: an edge into layer j with offset o leaves layer j - o at entry o.
    outgoing = torch.zeros_like(incoming)
    j = torch.arange(L, device=X.device).view(L, 1).expand_as(offsets)
    src = (j - offsets).clamp(0, L - 1)
    flat = outgoing.view(-1, L * L)
    index = (src * L + offsets.clamp(0, L - 1)).reshape(flat.shape[0], -1)
    flat.scatter_add_(-1, index, valid.reshape(flat.shape[0], -1).to(X.dtype))
    return torch.cat([one_hot, attributes, incoming, outgoing], dim=-1)


def row_digests(X: torch.Tensor) -> list[bytes]:
    """A digest per row of an `n x d` tensor, equal exactly when the rows' values are equal."""
    rows = np.ascontiguousarray(X.detach().cpu().to(torch.float64).numpy()) + 0.0  # -0.0 -> 0.0
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


class EncodingTable:
    r"""Values kept by the exact values of encoded architectures: for what an encoding alone does
    not say (a student's exact size, its edit), registered as the students are encoded and looked
    up when a model reads the encodings.

    Args:
        missing: The error message for a row that was never registered.
    """

    def __init__(self, missing: str) -> None:
        self.missing = missing
        self._values: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._values)

    def add(self, X: torch.Tensor, value: Callable[[int], Any]) -> None:
        r"""Register row ``i`` of ``X`` (`n x d`) with ``value(i)``, computed once per distinct row."""
        for i, digest in enumerate(row_digests(X)):
            if digest not in self._values:
                self._values[digest] = value(i)

    def lookup(self, X: torch.Tensor) -> list[Any]:
        r"""The values of the rows of `batch_shape x d` encodings, in row order.

        Raises:
            ArchSearchError: If a row was never registered (with :attr:`missing`).
        """
        values = []
        for digest in row_digests(X.reshape(-1, X.shape[-1])):
            value = self._values.get(digest)
            if value is None:
                raise ArchSearchError(self.missing)
            values.append(value)
        return values


__all__ = [
    "DEFAULT_MAX_EDGES",
    "EncodingTable",
    "NUM_ATTRIBUTES",
    "NUM_LAYER_TYPES",
    "encode",
    "expand",
    "num_features",
    "row_digests",
]
