r"""Shared fixtures of the graph tests: one intra-op thread, and a brute-force reference for
edited students."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from botorch_archsearch.graph import ArchGraph


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny networks: with -n 2 on two cores, intra-op threads only oversubscribe the CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def edited_teacher():
    """``edited_teacher(graph, net, removed, skips, x)``: the output of an edited student computed
    by brute force from the unedited student ``net`` of ``graph`` (see below)."""
    return _edited_teacher


def _edited_teacher(graph: ArchGraph, net: nn.Module, removed, skips, x: torch.Tensor) -> torch.Tensor:
    """Brute force: the teacher's layers run one by one, removed layers as identities of their
    (summed) input, a removed gate as its map, added skips summed into their destination's input."""
    extra: dict[int, list[int]] = {}
    for i, j in skips:
        extra.setdefault(j, []).append(i)
    values = [x] + [None] * (graph.num_layers - 1)
    for j, node in enumerate(graph.nodes[1:], 1):
        inputs = [values[i] for i in node.inputs]
        if node.op == "mul" and j in removed:
            inputs = inputs[:1]
        inputs += [values[i] for i in extra.get(j, [])]
        if node.op == "concat":
            h = torch.cat(inputs, 1)
        elif node.op == "mul" and j not in removed:
            h = inputs[0] / inputs[1] if node.attr("divide", False) else inputs[0] * inputs[1]
        else:
            h = inputs[0]
            for v in inputs[1:]:
                h = h + v
        values[j] = h if j in removed else net.layers[j](h)
    return values[-1]

