r"""The weights of every channel of every channel group of a teacher, as live tensors, for the
regularisers of the field's methods (Group Lasso, MorphNet, Variational Dropout) and their
pruning rules.

A channel of a channel group (:mod:`~botorch_archsearch.space.channels`) is produced by every
convolution and linear layer of its group (an output filter and its bias) and scaled by every
normalisation of it (a scale and a shift): its *output* weights. The layers that read it hold an
input slice: its *input* weights. Zeroing a channel's output weights (with a normalisation's shift)
makes the channel zero wherever it goes, so removing it changes nothing: this is the group the
regularisers drive to zero. Channels of derived dimensions (concatenations, slices, shuffles,
flattens) are left out.

Example:
    >>> slices = channel_slices(graph, model)
    >>> norms = group_norms(slices)          # per group, one differentiable norm per channel
    >>> penalty = sum((g.numel() ** 0.5) * n.sum() for g, n in zip(...))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.build import WEIGHTED_TYPES, teacher_tensors
from botorch_archsearch.space.channels import ChannelModel

NORM_TYPES: tuple[str, ...] = ("batchnorm", "layernorm", "groupnorm", "scale")
r"""Layer types whose weight scales each channel (MorphNet's gammas are their weights)."""


@dataclass(frozen=True)
class ChannelSlice:
    r"""The weights of one layer that belong to the channels of one channel group.

    Args:
        layer: The teacher layer's index in the graph.
        op: Its type (``"conv"``, ``"linear"``, ``"batchnorm"``, ...).
        role: ``"weight"`` or ``"bias"``.
        tensor: The live parameter (indexing it along ``dim`` gives channel ``c`` of the group).
        dim: The dimension that runs over the group's channels (0 for output weights, 1 for the
            input slice of a convolution or linear layer).
        side: ``"output"`` (produces or scales the channel) or ``"input"`` (reads it).
    """

    layer: int
    op: str
    role: str
    tensor: Tensor
    dim: int
    side: str

    def per_channel(self, values: Tensor) -> Tensor:
        r"""``values`` (shaped like :attr:`tensor`) summed over everything but :attr:`dim`: one
        value per channel."""
        dims = [d for d in range(values.dim()) if d != self.dim]
        return values.sum(dims) if dims else values


def channel_slices(graph: ArchGraph, model: nn.Module, inputs: bool = False) -> list[list[ChannelSlice]]:
    r"""Per channel group (the order of an edit's ``shrink_ratios``), the weights of its channels.

    Args:
        graph: The teacher graph (from :func:`~botorch_archsearch.graph.trace`).
        model: The module ``graph`` was traced from (or a copy of it: its live parameters are
            returned).
        inputs: Add the input slices of the ungrouped convolutions and linear layers that read
            each group (``side="input"``, ``dim=1``).

    Returns:
        One list of :class:`ChannelSlice` per channel group.

    Raises:
        ArchSearchError: If ``model`` lacks a layer of ``graph``.
    """
    channels = ChannelModel(graph)
    groups: list[list[ChannelSlice]] = [[] for _ in channels.group_roots]
    for j, node in enumerate(graph.nodes):
        if node.op not in WEIGHTED_TYPES or node.op == "channelconv":
            continue
        try:
            tensors = teacher_tensors(model, node)
        except ArchSearchError as e:
            raise ArchSearchError(f"channel_slices: {e} (layer {j}); pass the module the graph was traced from.") from None
        g = channels.group_of_root.get(channels.parent[j])
        if g is not None:
            for role in ("weight", "bias"):
                t = tensors.get(role)
                if isinstance(t, Tensor) and t.dim() >= 1 and t.shape[0] == channels.size[j]:
                    groups[g].append(ChannelSlice(j, node.op, role, t, 0, "output"))
        if not inputs or node.op not in ("conv", "linear") or (node.op == "conv" and node.groups != 1):
            continue
        i = node.inputs[0]
        gi = channels.group_of_root.get(channels.parent[i])
        t = tensors.get("weight")
        if gi is not None and isinstance(t, Tensor) and t.dim() >= 2 and t.shape[1] == channels.size[i]:
            groups[gi].append(ChannelSlice(j, node.op, "weight", t, 1, "input"))
    return groups


def group_norms(slices: list[list[ChannelSlice]], side: str = "output") -> list[Tensor]:
    r"""Per channel group, the L2 norm of each channel's weights on ``side`` (differentiable, with a
    zero gradient, a valid subgradient, at a channel whose weights are all zero, where the square
    root's gradient is infinite: a regulariser in the loss stays finite after a proximal step
    zeroed channels).

    Args:
        slices: From :func:`channel_slices`.
        side: ``"output"``, ``"input"`` or ``"both"``.

    Returns:
        Per group, a tensor of one norm per channel (zeros for a group without such weights).
    """
    out = []
    for group in slices:
        total = None
        for s in group:
            if side != "both" and s.side != side:
                continue
            sq = s.per_channel(s.tensor.pow(2))
            total = sq if total is None else total + sq
        if total is None:
            out.append(torch.zeros(next((s.tensor.shape[s.dim] for s in group), 0)))
            continue
        positive = total > 0
        out.append(torch.where(positive, torch.where(positive, total, torch.ones_like(total)).sqrt(),
                               torch.zeros_like(total)))
    return out


def group_sizes(slices: list[list[ChannelSlice]], side: str = "output") -> list[int]:
    r"""Per channel group, how many weights one channel has on ``side`` (``|g|`` of the group lasso)."""
    sizes = []
    for group in slices:
        n = 0
        for s in group:
            if side == "both" or s.side == side:
                n += s.tensor.numel() // s.tensor.shape[s.dim]
        sizes.append(n)
    return sizes


def zero_channels(slices: list[list[ChannelSlice]], side: str = "output") -> list[Tensor]:
    r"""Per channel group, which channels have every weight on ``side`` exactly zero (a channel
    whose output weights are all zero is zero wherever it goes: removing it changes nothing).

    Args:
        slices: From :func:`channel_slices`.
        side: ``"output"``, ``"input"`` or ``"both"``.

    Returns:
        Per group, a boolean tensor with one entry per channel (all ``False`` for a group without
        such weights).
    """
    out = []
    with torch.no_grad():
        for group, norms in zip(slices, group_norms(slices, side)):
            has_weights = any(side == "both" or s.side == side for s in group)
            out.append(norms == 0 if has_weights else torch.zeros_like(norms, dtype=torch.bool))
    return out


__all__ = [
    "ChannelSlice",
    "NORM_TYPES",
    "channel_slices",
    "group_norms",
    "group_sizes",
    "zero_channels",
]
