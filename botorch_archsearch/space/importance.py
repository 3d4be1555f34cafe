r"""Channel importance of a teacher: the group magnitude of every channel of every channel group.

A channel of a channel group (see :mod:`~botorch_archsearch.space.channels`) is coupled to the
weights of every layer that produces or reads it: the output filter of every convolution and
linear layer in the group, the scale of every batch, layer or group norm and layer scale tied to
it, and the input slice of every
convolution and linear layer that reads it (through concatenations, slices, shuffles and flattens
too). Its importance is the sum of ``|w|^p`` over all those weights: the ``p``-th power of the
``p``-norm of the channel's whole coupled group, as Torch-Pruning's group magnitude importance
ranks channels (``GroupMagnitudeImportance(p=2)``; its mean over layers ranks them alike). Biases
are left out, as there.

Example:
    >>> graph = trace(teacher, torch.zeros(1, 3, 32, 32))
    >>> space = SearchSpace(graph, channel_importance=channel_importance(graph, teacher))
    >>> edit = space.uniform_edit(0.5, channel_order="magnitude")
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.build import WEIGHTED_TYPES, teacher_tensors
from botorch_archsearch.space.channels import DERIVED, ChannelModel, shuffle_permutation
from botorch_archsearch.utils.validation import check_float


def channel_importance(graph: ArchGraph, model: nn.Module, p: float = 2.0) -> tuple[np.ndarray, ...]:
    r"""The group magnitude importance of every channel of every channel group of a teacher.

    Args:
        graph: The teacher's graph (from :func:`~botorch_archsearch.graph.trace`).
        model: The module ``graph`` was traced from (its weights are read).
        p: The norm's exponent (Torch-Pruning's default: 2).

    Returns:
        Per channel group, in the order of ``ChannelModel(graph).group_roots`` (the order of an
        edit's ``shrink_ratios``), a float64 array with one importance per channel.

    Raises:
        ArchSearchError: If ``model`` lacks a layer of ``graph`` or ``p`` is not positive.
    """
    if not isinstance(graph, ArchGraph):
        raise ArchSearchError(f"channel_importance expects an ArchGraph, got {type(graph).__name__}.")
    if not isinstance(model, nn.Module):
        raise ArchSearchError(f"channel_importance expects the teacher nn.Module, got {type(model).__name__}.")
    check_float("p", p, 0, exclusive_minimum=True, where="channel_importance")
    channels = ChannelModel(graph)
    nodes = graph.nodes
    # Per layer output (a channel dimension): the summed |w|^p of every weight coupled to each channel.
    acc = [np.zeros(channels.size[j]) for j in range(len(nodes))]
    with torch.no_grad():
        for j, node in enumerate(nodes):
            if node.op not in WEIGHTED_TYPES or node.op == "channelconv":  # ECA's kernel is every channel's
                continue
            try:
                weight = teacher_tensors(model, node)["weight"]
            except ArchSearchError as e:
                raise ArchSearchError(
                    f"channel_importance: {e} (layer {j} of the graph); pass the module the graph was traced from."
                ) from None
            if weight is None:  # a normalisation without affine parameters
                continue
            w = weight.detach().to(torch.float64).abs().pow(p)
            if node.op not in ("conv", "linear"):  # per-channel scales: batch, layer and group norms, layer scale
                acc[j] += w.reshape(-1).cpu().numpy()
                continue
            acc[j] += w.reshape(w.shape[0], -1).sum(1).cpu().numpy()  # output filters
            i = node.inputs[0]
            g = node.groups if node.op == "conv" else 1
            if g == 1:
                acc[i] += (w.sum((0, 2, 3)) if w.dim() == 4 else w.sum(0)).cpu().numpy()
            elif not (g == node.in_channels == node.out_channels):  # depthwise: its filter is its output's
                per_group = w.reshape(g, w.shape[0] // g, w.shape[1], -1).sum((1, 3))  # g x C_in / g
                acc[i] += per_group.reshape(-1).cpu().numpy()
    root = channels.parent
    per_class: dict[int, np.ndarray] = {}
    for j, values in enumerate(acc):
        per_class[root[j]] = per_class.get(root[j], 0.0) + values
    # A derived dimension (concat, slice, shuffle, flatten) hands its channels' importance back to
    # the channels it is made of; later layers first, so chains of them pass it all the way back.
    for s in sorted((j for j in range(len(nodes)) if channels.kind[j] == DERIVED), reverse=True):
        node = nodes[s]
        values = per_class[root[s]]
        if node.op == "input":
            continue
        if node.op == "concat":
            start = 0
            for i in node.inputs:
                size = channels.size[i]
                per_class[root[i]] = per_class[root[i]] + values[start:start + size]
                start += size
            continue
        i = node.inputs[0]
        back = np.zeros(channels.size[i])
        if node.op == "slice":
            back[node.attr("start"):node.attr("stop")] = values
        elif node.op == "shuffle":
            back[shuffle_permutation(node.in_channels, node.attr("groups"))] = values
        else:  # flatten of a C x H x W map
            back = values.reshape(node.in_channels, -1).sum(1)
        per_class[root[i]] = per_class[root[i]] + back
    return tuple(np.asarray(per_class[r], dtype=np.float64) for r in channels.group_roots)


__all__ = ["channel_importance"]
