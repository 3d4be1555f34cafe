r"""The Bi-LSTM architecture embedding ``h(x)`` of ESNAC (paper section 3.1).

A bidirectional LSTM reads the per-layer vectors of an architecture (appendix 6.2: one-hot type,
kernel, stride, padding, groups, in and out channels, incoming and outgoing edge vectors), its
hidden states are average-pooled over the layers and L2-normalised.

The layer vectors are sparse (one type, a few edges), so they are not formed densely: the LSTM
reads ``u = P v + b``, a learned linear projection of the paper's vector ``v``, computed as a sum
of looked-up columns of ``P`` (type, incoming offsets, outgoing offsets) plus ``P_attr`` times the
scaled attributes. This equals ``expand(X) @ P.T + b`` exactly (see :meth:`BiLSTMEmbedding.project`)
at a fraction of the cost. Numeric attributes are scaled as ``log2(1 + value) / 10``, so 1,023
channels map to 1.0 and a 3x3 kernel to 0.2, with no dependence on the data (a kernel learned on
one teacher can score another's candidates).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import EncodingError
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, NUM_ATTRIBUTES, NUM_LAYER_TYPES, num_features
from botorch_archsearch.utils.validation import check_float, check_int

ATTRIBUTE_SCALE = 10.0  # log2(1 + value) / ATTRIBUTE_SCALE


def scale_attributes(attributes: Tensor) -> Tensor:
    r"""Scale raw layer attributes (kernel, stride, padding, groups, channels) to about [0, 1].

    Args:
        attributes: A tensor of non-negative attribute values.

    Returns:
        ``log2(1 + attributes) / 10``.
    """
    return torch.log2(1.0 + attributes) / ATTRIBUTE_SCALE


class BiLSTMEmbedding(nn.Module):
    r"""``h(x) = normalize(mean_t BiLSTM(P v_t + b))``: the architecture embedding of ESNAC.

    A GPyTorch deep-kernel feature extractor: it takes encoded architectures (from
    :func:`~botorch_archsearch.graph.encode`) and returns unit-norm embeddings; one call embeds a
    whole batch, each sequence read over its own layers only (in both directions), so padding
    never changes the result.

    Example:
        >>> embedding = BiLSTMEmbedding(max_layers=graph.num_layers)
        >>> H = embedding(encode(students, max_layers=graph.num_layers))  # n x 128
    """

    def __init__(
        self,
        max_layers: int,
        max_edges: int = DEFAULT_MAX_EDGES,
        hidden_size: int = 64,
        num_layers: int = 4,
        bidirectional: bool = True,
        input_size: int | None = None,
        compute_dtype: torch.dtype | None = torch.float32,
        batch_size: int = 256,
        init_scale: float = 1.0,
    ) -> None:
        r"""Create the embedding.

        Args:
            max_layers: Layers per encoded architecture (the paper's ``n``).
            max_edges: Incoming edges per layer in the encoding.
            hidden_size: LSTM hidden size (reference: 64).
            num_layers: Stacked LSTM layers (reference: 4).
            bidirectional: Bidirectional LSTM (reference: True).
            input_size: Width of the projected layer vectors that the LSTM reads (default:
                ``hidden_size``).
            compute_dtype: dtype the network computes in, whatever the dtype of its weights and
                inputs (BoTorch moves models to the data's dtype, usually float64; the LSTM runs
                several times faster in float32). ``None``: the weights' dtype. Embeddings are
                returned in the inputs' dtype.
            batch_size: Most sequences per LSTM call. Larger inputs are sorted by length and
                embedded in chunks of this size, each only as long as its longest sequence (less
                padding, and a working set that stays in cache: about 2x faster on a CPU for
                1,000 candidates). Does not change the result.
            init_scale: Scale of the projection's initial weights (the LSTM inputs): they are
                drawn from ``U(-b, b)`` with ``b = init_scale / sqrt(fan_in)``. At 1 a fresh
                network maps all architectures to nearly the same unit vector (median pairwise
                distance below 0.01), so the first fitting steps barely move the objective and
                the moving-average rule can stop a fit that has learned nothing; a larger scale
                spreads the fresh embeddings (``benchmarks/kernel_quality.py`` measures it).
        """
        super().__init__()
        input_size = hidden_size if input_size is None else input_size
        for name, value in (("max_layers", max_layers), ("max_edges", max_edges), ("hidden_size", hidden_size),
                            ("num_layers", num_layers), ("input_size", input_size),
                            ("batch_size", batch_size)):
            check_int(name, value, 1, where="BiLSTMEmbedding", error=EncodingError)
        self.init_scale = check_float(
            "init_scale", init_scale, 0, exclusive_minimum=True, finite=True, where="BiLSTMEmbedding", error=EncodingError
        )
        self.max_layers, self.max_edges = max_layers, max_edges
        self.hidden_size, self.num_layers, self.bidirectional = hidden_size, num_layers, bool(bidirectional)
        self.input_size = input_size
        self.compute_dtype = compute_dtype
        self.batch_size = batch_size
        # Columns of the projection P of the paper's vector, by block (row 0 = "nothing").
        self.type_columns = nn.Embedding(NUM_LAYER_TYPES + 1, input_size, padding_idx=0)
        self.attribute_columns = nn.Linear(NUM_ATTRIBUTES, input_size)
        self.incoming_columns = nn.Embedding(max_layers, input_size, padding_idx=0)
        self.outgoing_columns = nn.Embedding(max_layers, input_size, padding_idx=0)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=self.bidirectional)
        self.reset_parameters()

    @property
    def output_dim(self) -> int:
        """Size of the embedding ``h(x)``."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def config(self) -> dict:
        """The constructor arguments (to rebuild the module for kernel transfer)."""
        return {
            "max_layers": self.max_layers,
            "max_edges": self.max_edges,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "input_size": self.input_size,
            "init_scale": self.init_scale,
        }

    def reset_parameters(self) -> None:
        """Re-initialise every weight (the paper trains the kernel from scratch at every step)."""
        bound = self.init_scale / math.sqrt(NUM_LAYER_TYPES + NUM_ATTRIBUTES + 2 * self.max_layers)
        for table in (self.type_columns, self.incoming_columns, self.outgoing_columns):
            nn.init.uniform_(table.weight, -bound, bound)
            with torch.no_grad():
                table.weight[0].zero_()
        nn.init.uniform_(self.attribute_columns.weight, -bound, bound)
        nn.init.uniform_(self.attribute_columns.bias, -bound, bound)
        self.lstm.reset_parameters()

    def project(self, rows: Tensor) -> Tensor:
        r"""The LSTM inputs ``P v + b`` of every layer, computed from the compact encoding.

        Args:
            rows: A `b x layers x (7 + max_edges)` tensor of encoded layers.

        Returns:
            A `b x layers x input_size` tensor (zero for padding layers).
        """
        dtype = rows.dtype
        types = rows[..., 0].long()
        valid = (types > 0).unsqueeze(-1)
        embed = nn.functional.embedding
        attributes = self.attribute_columns
        u = embed(types, self.type_columns.weight.to(dtype), padding_idx=0) + nn.functional.linear(
            scale_attributes(rows[..., 1 : 1 + NUM_ATTRIBUTES]), attributes.weight.to(dtype), attributes.bias.to(dtype)
        )
        # Edges: an edge into layer j with offset o > 0 adds incoming column o at layer j and
        # outgoing column o at layer j - o (where it leaves). Only the real edges are gathered.
        b, L, p = u.shape
        offsets = rows[..., 1 + NUM_ATTRIBUTES :].long()  # `b x L x E`, 0 = no edge
        batch, layer, slot = offsets.nonzero(as_tuple=True)
        o = offsets[batch, layer, slot]
        column = o.clamp_max(self.max_layers - 1)  # a deeper teacher's longer edges: the longest column
        target = batch * L + layer
        u = (
            u.reshape(b * L, p)
            .index_add(0, target, self.incoming_columns.weight.to(dtype)[column])
            .index_add(0, target - o.clamp_max(layer), self.outgoing_columns.weight.to(dtype)[column])
            .view(b, L, p)
        )
        return u * valid

    def forward(self, X: Tensor) -> Tensor:
        r"""Embed encoded architectures.

        Encodings of any number of layers are read (padding never changes the result), so a kernel
        learned on one teacher scores a deeper one (kernel transfer): an edge longer than
        ``max_layers - 1`` layers, which the kernel has no column for, reads as the longest it
        has.

        Args:
            X: A `batch_shape x d` tensor of encoded architectures, ``d = layers * (7 + max_edges)``
                (``layers = max_layers`` as the kernel was built for, or any other).

        Returns:
            A `batch_shape x output_dim` tensor of unit-norm embeddings, in ``X``'s dtype.
        """
        width = num_features(self.max_edges)
        if X.shape[-1] == 0 or X.shape[-1] % width:
            raise EncodingError(
                f"BiLSTMEmbedding: X has last dimension {X.shape[-1]}, expected a multiple of 7 + max_edges = {width} "
                f"(layers x {width}; this kernel was built for {self.max_layers} * {width} = "
                f"{self.max_layers * width}); encode with max_edges={self.max_edges}."
            )
        batch_shape = X.shape[:-1]
        flat = X.reshape(-1, X.shape[-1])
        if flat.shape[0] == 0:
            return X.new_zeros(*batch_shape, self.output_dim)
        # Batched posteriors repeat the same architectures (the training set in every t-batch,
        # qNEI's baseline): embed each distinct row once.
        unique, inverse = _distinct_rows(flat)
        if unique.shape[0] < flat.shape[0]:
            return self._embed(unique)[inverse].to(X.dtype).reshape(*batch_shape, self.output_dim)
        return self._embed(flat).to(X.dtype).reshape(*batch_shape, self.output_dim)

    def _embed(self, flat: Tensor) -> Tensor:
        """Embeddings of a `b x d` tensor of encodings (in ``compute_dtype``)."""
        dtype = self.compute_dtype or self.attribute_columns.weight.dtype
        width = num_features(self.max_edges)
        rows = flat.reshape(-1, flat.shape[-1] // width, width).to(dtype)
        lengths = (rows[..., 0] > 0).sum(-1)
        if int(lengths.min()) == 0:
            raise EncodingError("BiLSTMEmbedding: an encoded architecture has no layers (an all-zero row).")
        n, chunk = rows.shape[0], self.batch_size
        if n <= chunk:
            return self._embed_rows(rows[:, : int(lengths.max())], lengths)
        # Sequences of similar lengths together, each chunk only as long as its longest one.
        order = torch.argsort(lengths, stable=True)
        parts = []
        for start in range(0, n, chunk):
            index = order[start : start + chunk]
            part_lengths = lengths[index]
            parts.append(self._embed_rows(rows[index, : int(part_lengths.max())], part_lengths))
        return torch.cat(parts)[torch.argsort(order)]

    def _embed_rows(self, rows: Tensor, lengths: Tensor) -> Tensor:
        """Embeddings of `b x T x (7 + max_edges)` encoded layers, sequences of ``lengths <= T``."""
        hidden = self._run_lstm(self.project(rows), lengths)
        valid = (torch.arange(rows.shape[1], device=rows.device) < lengths.unsqueeze(-1)).unsqueeze(-1)
        pooled = (hidden * valid).sum(1) / lengths.unsqueeze(-1).to(hidden.dtype)
        return nn.functional.normalize(pooled, dim=-1)

    def _run_lstm(self, u: Tensor, lengths: Tensor) -> Tensor:
        r"""Run ``self.lstm`` over each sequence's first ``lengths`` steps, layer by layer.

        Same result as packing the sequences, but on padded tensors (packed LSTMs are several
        times slower on CPU): the forward direction never sees the padding before a valid step,
        and the backward direction runs forward over each sequence reversed within its length,
        so padding stays at the end. Outputs past a sequence's length are garbage and are
        masked by the caller.
        """
        lstm = self.lstm
        T = u.shape[1]
        steps = torch.arange(T, device=u.device)
        reverse = torch.where(steps < lengths.unsqueeze(-1), lengths.unsqueeze(-1) - 1 - steps, steps)
        # as row indices into the `(b * T) x features` view
        reverse = (reverse + T * torch.arange(u.shape[0], device=u.device).unsqueeze(-1)).reshape(-1)

        def flip(x: Tensor) -> Tensor:
            return x.reshape(-1, x.shape[-1]).index_select(0, reverse).view(x.shape)

        x = u
        for layer in range(lstm.num_layers):
            outputs = []
            for suffix in ("", "_reverse") if lstm.bidirectional else ("",):
                params = [getattr(lstm, f"{kind}_l{layer}{suffix}").to(u.dtype)
                          for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inp = x if not suffix else flip(x)
                zeros = inp.new_zeros(1, inp.shape[0], lstm.hidden_size)
                out = torch.lstm(inp, (zeros, zeros), params, True, 1, 0.0, self.training, False, True)[0]
                outputs.append(out if not suffix else flip(out))
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        return x


def _distinct_rows(flat: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows of a `b x d` tensor and, per row, the index of its distinct row.

    Rows are keyed by a fixed random projection (sorting 1-d keys is far cheaper than
    ``torch.unique(dim=0)`` on wide rows); the grouping is then checked exactly and the exact
    method used if two different rows ever shared a key.
    """
    with torch.no_grad():
        g = torch.Generator(device="cpu").manual_seed(0)
        direction = torch.rand(flat.shape[-1], generator=g, dtype=torch.float64).to(flat.device)
        keys = flat.detach().to(torch.float64) @ direction
        _, first, inverse = _unique_1d(keys)
        if not torch.equal(flat[first][inverse], flat):
            unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
            return unique, inverse
    return flat[first], inverse


def _unique_1d(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Distinct values of a 1-d tensor, the index of one occurrence of each, and the inverse."""
    values, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(values),), len(keys), dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys), device=keys.device), reduce="amin")
    return values, first, inverse


__all__ = ["ATTRIBUTE_SCALE", "BiLSTMEmbedding", "scale_attributes"]
