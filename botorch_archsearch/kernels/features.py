r"""Fixed feature maps over encoded architectures, for the other surrogates of ``kernel.name``:

- :class:`WLFeatures`, Weisfeiler-Lehman subtree features of the architecture graph (as in
  NAS-BOWL, Ru et al., ICLR 2021), computed from the encoding itself;
- :class:`EditFeatures`, the edit vector of each student of one teacher (per channel group the
  kept fraction, per removable layer the removal flag, per skip candidate whether it was added),
  looked up by encoding.

Each is a ``torch.nn.Module`` from `batch_shape x d` encodings to `batch_shape x e` features, so
``ArchitectureKernel(features, base_kernel=...)`` is a GPyTorch kernel over our encodings, like the
learned one (:class:`~botorch_archsearch.kernels.BiLSTMEmbedding`). Neither has weights.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.encoding import (
    DEFAULT_MAX_EDGES,
    NUM_ATTRIBUTES,
    EncodingTable,
    num_features,
)
from botorch_archsearch.utils.validation import check_int

_MASK = (1 << 64) - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_IN, _OUT = 0x243F6A8885A308D3, 0x13198A2E03707344  # salts of the inputs' and the consumers' sums


def wl_mix(x: int) -> int:
    r"""SplitMix64's finaliser: a bijection of 64-bit integers that spreads every input bit over
    the output (the same in every process; :func:`_mix_array` computes it on arrays)."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * _M1) & _MASK
    x = ((x ^ (x >> 27)) * _M2) & _MASK
    return x ^ (x >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    """:func:`wl_mix` of a ``uint64`` array (arithmetic modulo 2^64)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
        return x ^ (x >> np.uint64(31))


def wl_initial_label(layer_type: int, out_channels: int) -> int:
    r"""A layer's first WL label: its type (``type + 1`` of the encoding) and channel bucket
    ``round(log2(1 + out_channels))``, mixed."""
    return wl_mix((int(layer_type) << 32) | round(math.log2(1 + out_channels)))


def wl_relabel(label: int, input_labels: Sequence[int], consumer_labels: Sequence[int]) -> int:
    r"""One WL iteration of one layer: its label with the multisets of its inputs' and its
    consumers' labels. A multiset is hashed as the sum (mod 2^64) of its mixed labels, which does
    not depend on order, so no sorting is needed and a batch is relabelled with array operations.
    """
    s_in = sum(wl_mix(v) for v in input_labels) & _MASK
    s_out = sum(wl_mix(v) for v in consumer_labels) & _MASK
    return wl_mix((label + 3 * wl_mix(s_in ^ _IN) + 5 * wl_mix(wl_mix(s_out ^ _OUT))) & _MASK)


def wl_labels(row: Tensor | np.ndarray, max_edges: int = DEFAULT_MAX_EDGES, iterations: int = 2) -> Counter:
    r"""The Weisfeiler-Lehman subtree labels of one encoded architecture, with their counts: the
    readable reference of :class:`WLFeatures`, one layer at a time.

    A layer's first label is :func:`wl_initial_label` of its type and output channels; each
    iteration relabels every layer by :func:`wl_relabel` with the labels of the layers feeding it
    and of the layers it feeds. The labels of every iteration ``0..iterations`` are counted.

    Args:
        row: One encoding (`d`, ``d = layers * (7 + max_edges)``).
        max_edges: ``max_edges`` of the encoding.
        iterations: WL iterations ``h``.

    Returns:
        A ``Counter`` of labels (64-bit integers).
    """
    width = num_features(max_edges)
    rows = np.asarray(row, dtype=np.float64).reshape(-1, width)
    valid = np.flatnonzero(rows[:, 0] > 0)
    labels = {int(j): wl_initial_label(int(rows[j, 0]), int(rows[j, NUM_ATTRIBUTES])) for j in valid}
    inputs: dict[int, list[int]] = {j: [] for j in labels}
    outputs: dict[int, list[int]] = {j: [] for j in labels}
    for j in labels:
        for o in rows[j, 1 + NUM_ATTRIBUTES :]:
            if o > 0 and int(j - o) in labels:
                inputs[j].append(int(j - o))
                outputs[int(j - o)].append(j)
    counts = Counter(labels.values())
    for _ in range(iterations):
        labels = {j: wl_relabel(labels[j], [labels[i] for i in inputs[j]], [labels[k] for k in outputs[j]])
                  for j in labels}
        counts.update(labels.values())
    return counts


def wl_label_arrays(X: np.ndarray, max_edges: int = DEFAULT_MAX_EDGES, iterations: int = 2) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`wl_labels` of a batch at once, with array operations: the labels of every layer and
    iteration, and which are layers (not padding).

    Args:
        X: `n x d` encodings.
        max_edges: ``max_edges`` of the encodings.
        iterations: WL iterations ``h``.

    Returns:
        ``(labels, valid)``: `n x (iterations + 1) x layers` ``uint64`` labels and the `n x layers`
        mask of real layers; the labels of padding rows are meaningless.
    """
    width = num_features(max_edges)
    n = X.shape[0]
    rows = np.asarray(X, dtype=np.float64).reshape(n, -1, width)
    layers = rows.shape[1]
    valid = rows[:, :, 0] > 0
    bucket = np.rint(np.log2(1 + np.maximum(rows[:, :, NUM_ATTRIBUTES], 0))).astype(np.uint64)
    label = _mix_array((rows[:, :, 0].astype(np.uint64) << np.uint64(32)) | bucket)
    offsets = rows[:, :, 1 + NUM_ATTRIBUTES :].astype(np.int64)  # n x layers x E
    target = np.arange(layers)[None, :, None]
    source = target - offsets
    edge = (offsets > 0) & (source >= 0) & valid[:, :, None]
    edge &= np.take_along_axis(valid[:, :, None].repeat(offsets.shape[2], 2), np.clip(source, 0, layers - 1), 1)
    b, j, _ = np.nonzero(edge)
    i = source[edge]
    flat_source, flat_target = b * layers + i, b * layers + j
    out = [label]
    for _ in range(iterations):
        mixed = _mix_array(label).reshape(-1)
        s_in = np.zeros(n * layers, dtype=np.uint64)
        s_out = np.zeros(n * layers, dtype=np.uint64)
        np.add.at(s_in, flat_target, mixed[flat_source])  # uint64 sums wrap modulo 2^64
        np.add.at(s_out, flat_source, mixed[flat_target])
        with np.errstate(over="ignore"):
            combined = (label.reshape(-1) + np.uint64(3) * _mix_array(s_in ^ np.uint64(_IN))
                        + np.uint64(5) * _mix_array(_mix_array(s_out ^ np.uint64(_OUT))))
        label = _mix_array(combined).reshape(n, layers)
        out.append(label)
    return np.stack(out, axis=1), valid


class WLFeatures(nn.Module):
    r"""Weisfeiler-Lehman subtree features: the counts of :func:`wl_labels`, hashed into ``dim``
    buckets and scaled to unit norm. Under an RBF (``ArchitectureKernel(WLFeatures())``) the
    kernel is a function of the normalised WL subtree kernel: ``||phi(x) - phi(x')||^2 = 2 - 2
    k_WL(x, x') / sqrt(k_WL(x, x) k_WL(x', x'))`` (up to hash collisions). A batch is computed
    at once with array operations (:func:`wl_label_arrays`).

    Example:
        >>> kernel = ArchitectureKernel(WLFeatures())
        >>> model = SingleTaskGP(train_X, train_Y, covar_module=kernel)
    """

    def __init__(self, max_edges: int = DEFAULT_MAX_EDGES, iterations: int = 2, dim: int = 1024) -> None:
        r"""Args:
            max_edges: ``max_edges`` of the encodings.
            iterations: WL iterations ``h`` (NAS-BOWL: 2).
            dim: Buckets the labels are hashed into.
        """
        super().__init__()
        for name, value in (("max_edges", max_edges), ("dim", dim)):
            check_int(name, value, 1, where="WLFeatures", error=EncodingError)
        check_int("iterations", iterations, 0, where="WLFeatures", error=EncodingError)
        self.max_edges, self.iterations, self.dim = max_edges, iterations, dim

    @property
    def config(self) -> dict:
        """The constructor arguments."""
        return {"max_edges": self.max_edges, "iterations": self.iterations, "dim": self.dim}

    def bucket(self, label: int) -> int:
        """The bucket of a label (labels are stable hashes, the same in every process)."""
        return label % self.dim

    def forward(self, X: Tensor) -> Tensor:
        r"""Features of `batch_shape x d` encodings: a `batch_shape x dim` tensor in ``X``'s dtype."""
        width = num_features(self.max_edges)
        if X.shape[-1] == 0 or X.shape[-1] % width:
            raise EncodingError(f"WLFeatures: X has last dimension {X.shape[-1]}, expected a multiple of {width}.")
        flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
        n = flat.shape[0]
        if n == 0:
            return torch.zeros(*X.shape[:-1], self.dim, dtype=X.dtype, device=X.device)
        labels, valid = wl_label_arrays(flat, self.max_edges, self.iterations)
        if not valid.any(axis=1).all():
            raise EncodingError("WLFeatures: an encoded architecture has no layers (an all-zero row).")
        rows = np.broadcast_to(np.arange(n)[:, None, None], labels.shape)
        mask = np.broadcast_to(valid[:, None, :], labels.shape)
        index = rows[mask] * self.dim + (labels[mask] % np.uint64(self.dim)).astype(np.int64)
        phi = np.bincount(index, minlength=n * self.dim).astype(np.float64).reshape(n, self.dim)
        phi /= np.linalg.norm(phi, axis=1, keepdims=True)
        return torch.from_numpy(phi).to(device=X.device, dtype=X.dtype).reshape(*X.shape[:-1], self.dim)


def edit_vector(space, edit) -> np.ndarray:
    r"""The edit vector of a student: per channel group the kept fraction ``1 - ratio``, per
    removable layer whether it is removed, per skip candidate whether it is added.

    Args:
        space: The teacher's :class:`~botorch_archsearch.space.SearchSpace`.
        edit: An :class:`~botorch_archsearch.space.Edit` of it.

    Returns:
        A float64 array of ``num_groups + len(removable) + len(skip_candidates)`` numbers in [0, 1].
    """
    kept = 1.0 - np.asarray(edit.shrink_ratios, dtype=np.float64)
    removed = np.asarray([edit.remove_mask[i] for i in space.removable], dtype=np.float64)
    added = set(edit.skips)
    skips = np.asarray([float(s in added) for s in space.skip_candidates], dtype=np.float64)
    return np.concatenate([kept, removed, skips])


class EditFeatures(nn.Module):
    r"""The edit vectors (:func:`edit_vector`) of one teacher's students, looked up by encoding.

    An encoding does not say which teacher layers a student kept, so the vectors are registered
    with :meth:`add` as students are encoded (the training students, and the candidates through
    ``optimize_acqf_edits(..., on_encoded=features.add)``).

    Args:
        space: The teacher's search space.
    """

    def __init__(self, space) -> None:
        super().__init__()
        self.space = space
        self.dim = space.num_groups + len(space.removable) + len(space.skip_candidates)
        self._table = EncodingTable(
            "EditFeatures: a student's edit is unknown; register it with add(graphs, X, edits) when it is encoded "
            "(optimize_acqf_edits(..., on_encoded=features.add))."
        )

    def __len__(self) -> int:
        return len(self._table)

    def add(self, graphs: Sequence[ArchGraph], X: Tensor, edits: Sequence | None = None) -> None:
        r"""Register the students with these edits, encoded as the rows of ``X``."""
        if edits is None or len(edits) != X.shape[0]:
            raise ArchSearchError("EditFeatures.add needs the students' edits, one per encoded row.")
        self._table.add(X, lambda i: torch.from_numpy(edit_vector(self.space, edits[i])))

    def forward(self, X: Tensor) -> Tensor:
        r"""Edit vectors of `batch_shape x d` encodings: `batch_shape x dim`, in ``X``'s dtype.

        Raises:
            ArchSearchError: If a row was never registered.
        """
        out = self._table.lookup(X)
        stacked = torch.stack(out) if out else torch.zeros(0, self.dim, dtype=torch.float64)
        return stacked.to(device=X.device, dtype=X.dtype).reshape(*X.shape[:-1], self.dim)


__all__ = ["EditFeatures", "WLFeatures", "edit_vector", "wl_initial_label", "wl_label_arrays", "wl_labels", "wl_mix", "wl_relabel"]
