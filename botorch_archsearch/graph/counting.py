r"""Parameter and FLOP counts of an architecture, computed from its graph without building it.

The N2N reward of the paper (appendix 6.1) compares parameter counts; FLOPs are counted as
multiply-accumulates (MACs) of the convolution and linear layers for one sample.
"""

from __future__ import annotations

import math

from botorch_archsearch.graph.arch_graph import ArchGraph, LayerSpec


def count_params(graph: ArchGraph) -> int:
    r"""Number of trainable parameters of the network ``graph`` describes.

    Args:
        graph: The architecture.

    Returns:
        The count, equal to ``sum(p.numel() for p in build_student(graph).parameters())``.
    """
    return sum(_layer_params(node) for node in graph.nodes)


def count_flops(graph: ArchGraph) -> int:
    r"""Multiply-accumulates of one forward pass of one sample (convolutions and linear layers).

    Args:
        graph: The architecture.

    Returns:
        The MAC count.
    """
    total = 0
    for node in graph.nodes:
        if node.op == "conv":
            total += _conv_weights(node) * math.prod(node.out_shape[1:])
        elif node.op == "linear":
            total += node.in_channels * node.out_channels
    return total


def _layer_params(node: LayerSpec) -> int:
    if node.op == "conv":
        return _conv_weights(node) + (node.out_channels if node.attr("bias") else 0)
    if node.op == "linear":
        return node.in_channels * node.out_channels + (node.out_channels if node.attr("bias") else 0)
    if node.op in ("batchnorm", "groupnorm") and node.attr("affine"):
        return 2 * node.out_channels
    if node.op == "layernorm" and node.attr("affine"):
        return node.out_channels * (2 if node.attr("bias") else 1)
    if node.op == "scale":
        return 0 if node.attr("buffer") else node.out_channels
    if node.op == "channelconv":  # one kernel shared by every channel
        return node.kernel_size + (1 if node.attr("bias") else 0)
    return 0


def _conv_weights(node: LayerSpec) -> int:
    kh, kw = node.attr("kernel")
    sizes = node.attr("group_sizes")
    if sizes is not None:
        return sum(a * b for a, b in sizes if a and b) * kh * kw
    return node.out_channels * (node.in_channels // node.groups) * kh * kw


__all__ = ["count_flops", "count_params"]
