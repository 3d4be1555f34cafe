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

import hashlib
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, NUM_ATTRIBUTES, EncodingTable, num_features, row_digests
from botorch_archsearch.utils.validation import check_int


def wl_hash(*parts: int | str) -> int:
    """A stable 63-bit hash of a label's parts (the same in every process)."""
    data = "|".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def wl_labels(row: Tensor | np.ndarray, max_edges: int = DEFAULT_MAX_EDGES, iterations: int = 2) -> Counter:
    r"""The Weisfeiler-Lehman subtree labels of one encoded architecture, with their counts.

    A layer's first label is (a hash of) its type and channel bucket
    (``round(log2(1 + out_channels))``); each iteration relabels a layer by a hash of its label,
    the sorted labels of the layers feeding it and the sorted labels of the layers it feeds. The
    labels of every iteration ``0..iterations`` are counted.

    Args:
        row: One encoding (`d`, ``d = layers * (7 + max_edges)``).
        max_edges: ``max_edges`` of the encoding.
        iterations: WL iterations ``h``.

    Returns:
        A ``Counter`` of labels (integers from :func:`wl_hash`).
    """
    width = num_features(max_edges)
    rows = np.asarray(row, dtype=np.float64).reshape(-1, width)
    valid = np.flatnonzero(rows[:, 0] > 0)
    labels = {int(j): wl_hash(int(rows[j, 0]), round(math.log2(1 + rows[j, NUM_ATTRIBUTES]))) for j in valid}
    inputs: dict[int, list[int]] = {j: [] for j in labels}
    outputs: dict[int, list[int]] = {j: [] for j in labels}
    for j in labels:
        for o in rows[j, 1 + NUM_ATTRIBUTES :]:
            if o > 0 and int(j - o) in labels:
                inputs[j].append(int(j - o))
                outputs[int(j - o)].append(j)
    counts = Counter(labels.values())
    for _ in range(iterations):
        labels = {
            j: wl_hash(labels[j], "in", *sorted(labels[i] for i in inputs[j]), "out",
                       *sorted(labels[k] for k in outputs[j]))
            for j in labels
        }
        counts.update(labels.values())
    return counts


class WLFeatures(nn.Module):
    r"""Weisfeiler-Lehman subtree features: the counts of :func:`wl_labels`, hashed into ``dim``
    buckets and scaled to unit norm. Under an RBF (``ArchitectureKernel(WLFeatures())``) the
    kernel is a function of the normalised WL subtree kernel: ``||phi(x) - phi(x')||^2 = 2 - 2
    k_WL(x, x') / sqrt(k_WL(x, x) k_WL(x', x'))`` (up to hash collisions).

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
        self._cache: dict[bytes, Tensor] = {}

    @property
    def config(self) -> dict:
        """The constructor arguments."""
        return {"max_edges": self.max_edges, "iterations": self.iterations, "dim": self.dim}

    def bucket(self, label: int) -> int:
        """The bucket of a label (labels are stable hashes, the same in every process)."""
        return label % self.dim

    def vector(self, row: Tensor) -> Tensor:
        """The unit-norm feature vector of one encoding (float64)."""
        counts = wl_labels(row.detach().cpu(), self.max_edges, self.iterations)
        if not counts:
            raise EncodingError("WLFeatures: an encoded architecture has no layers (an all-zero row).")
        labels = np.fromiter(counts.keys(), dtype=np.uint64, count=len(counts))
        phi = np.bincount((labels % np.uint64(self.dim)).astype(np.int64),
                          weights=np.fromiter(counts.values(), dtype=np.float64, count=len(counts)), minlength=self.dim)
        return torch.from_numpy(phi / np.linalg.norm(phi))

    def forward(self, X: Tensor) -> Tensor:
        r"""Features of `batch_shape x d` encodings: a `batch_shape x dim` tensor in ``X``'s dtype."""
        width = num_features(self.max_edges)
        if X.shape[-1] == 0 or X.shape[-1] % width:
            raise EncodingError(f"WLFeatures: X has last dimension {X.shape[-1]}, expected a multiple of {width}.")
        flat = X.reshape(-1, X.shape[-1])
        out = []
        for row, digest in zip(flat, row_digests(flat)):
            if digest not in self._cache:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[digest] = self.vector(row)
            out.append(self._cache[digest])
        stacked = torch.stack(out) if out else torch.zeros(0, self.dim, dtype=torch.float64)
        return stacked.to(device=X.device, dtype=X.dtype).reshape(*X.shape[:-1], self.dim)


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


__all__ = ["EditFeatures", "WLFeatures", "edit_vector", "wl_hash", "wl_labels"]
