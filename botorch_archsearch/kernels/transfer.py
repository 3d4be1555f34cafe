r"""Save and load fitted architecture kernels, for kernel transfer (ESNAC section 4.3).

A kernel learned while compressing one teacher scores candidates of another, with no training.
The file holds the embedding's settings and weights, the base kernel's hyperparameters, the GP
noise it was fitted with, and the encoding settings it needs (layer vocabulary, ``max_layers``,
``max_edges``, attribute scaling); it is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.graph.arch_graph import LAYER_TYPES
from botorch_archsearch.kernels.architecture import ArchitectureKernel
from botorch_archsearch.kernels.embedding import ATTRIBUTE_SCALE, BiLSTMEmbedding

_FORMAT = "botorch_archsearch.ArchitectureKernel/1"


class SavedKernel(NamedTuple):
    """A kernel read back by :func:`load_kernel`.

    Args:
        kernel: The architecture kernel, with its fitted weights.
        noise: The GP noise variance it was fitted with (``None`` if not saved).
        metadata: Anything stored with it (teacher, step, ...).
    """

    kernel: ArchitectureKernel
    noise: float | None
    metadata: dict


def save_kernel(kernel: ArchitectureKernel, path: str | Path, noise: float | None = None,
                metadata: dict | None = None) -> Path:
    r"""Save a fitted :class:`ArchitectureKernel` with a :class:`BiLSTMEmbedding`.

    Args:
        kernel: The kernel (for a model: ``model.covar_module``).
        path: The file to write.
        noise: The fitted noise variance (``model.likelihood.noise.item()``).
        metadata: JSON-like extra information (strings, numbers, lists, dicts).

    Returns:
        The path written.
    """
    if not isinstance(kernel, ArchitectureKernel) or not isinstance(kernel.embedding, BiLSTMEmbedding):
        raise ArchSearchError(
            f"save_kernel expects an ArchitectureKernel over a BiLSTMEmbedding, got {type(kernel).__name__}."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": _FORMAT,
        "layer_types": list(LAYER_TYPES),
        "attribute_scale": ATTRIBUTE_SCALE,
        "embedding_config": kernel.embedding.config,
        "base_kernel": type(kernel.base_kernel).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in kernel.state_dict().items()},
        "noise": None if noise is None else float(noise),
        "metadata": dict(metadata or {}),
    }
    torch.save(record, path)
    return path


def load_kernel(path: str | Path) -> SavedKernel:
    r"""Load a kernel written by :func:`save_kernel`.

    Args:
        path: The file.

    Returns:
        A :class:`SavedKernel`; its kernel scores encodings made with
        ``encode(graphs, max_layers=kernel.embedding.max_layers, max_edges=kernel.embedding.max_edges)``.

    Raises:
        EncodingError: If the file was written with another layer vocabulary or attribute scaling.
        ArchSearchError: If the file is not a saved kernel.
    """
    path = Path(path)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise ArchSearchError(f"load_kernel: cannot read {path} as a saved kernel ({e}).") from e
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ArchSearchError(f"load_kernel: {path} is not a kernel written by save_kernel (format {_FORMAT!r}).")
    if tuple(record["layer_types"]) != LAYER_TYPES or record["attribute_scale"] != ATTRIBUTE_SCALE:
        raise EncodingError(
            f"load_kernel: {path} was fitted with layer types {record['layer_types']} and attribute scale "
            f"{record['attribute_scale']}; this version encodes {list(LAYER_TYPES)} with scale {ATTRIBUTE_SCALE}."
        )
    if record["base_kernel"] != "RBFKernel":
        raise ArchSearchError(f"load_kernel: only RBF base kernels can be loaded, {path} has {record['base_kernel']}.")
    state = dict(record["state_dict"])
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    state.setdefault("embedding_scale", torch.tensor(1.0, dtype=dtype))  # saved before the scale existed
    kernel = ArchitectureKernel(BiLSTMEmbedding(**record["embedding_config"])).to(dtype)  # as fitted, exactly
    kernel.load_state_dict(state)
    return SavedKernel(kernel, record["noise"], record["metadata"])


__all__ = ["SavedKernel", "load_kernel", "save_kernel"]
