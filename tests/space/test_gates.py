r"""Tests of channel gates (``mul`` layers) in botorch_archsearch/space: which gates may be removed,
that no skip ends in one, how a gate ties channels (a channel gate ties the gate to the map, a
spatial gate does not), and that a removed gate's branch leaves the student, which then equals the
network without the gate shrunk alike.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.graph import ArchGraph, build_student, count_params, trace
from botorch_archsearch.space import Edit, SearchSpace


class _Gated(nn.Module):
    """conv-BN-ReLU (8 channels), a gate on its output, a conv (6) and a head, on 3 x 8 x 8 inputs.

    ``gate``: ``"se"`` (squeeze-and-excitation: an N x 8 x 1 x 1 gate from 1x1 convolutions),
    ``"spatial"`` (an N x 1 x 8 x 8 gate) or ``"same"`` (a gate of the map's shape); ``gated=False``
    is the same network with the gate replaced by the identity.
    """

    def __init__(self, gate: str, divide: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        if gate == "se":
            self.fc1, self.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        else:
            self.fc2 = nn.Conv2d(8, 1 if gate == "spatial" else 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)
        self.gate, self.divide, self.gated = gate, divide, True

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        if self.gated:
            if self.gate == "se":
                s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
            else:
                s = torch.sigmoid(self.fc2(x))
            x = x / s if self.divide else x * s
        return self.head(F.relu(self.conv2(x)).mean((2, 3)))


def _net(gate: str, divide: bool = False) -> tuple[nn.Module, torch.Tensor, ArchGraph]:
    torch.manual_seed(0)
    module = _Gated(gate, divide)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        module.bn.running_mean.copy_(0.4 * torch.rand(8, generator=generator) - 0.2)
        module.bn.running_var.copy_(0.5 + torch.rand(8, generator=generator))
        module.bn.weight.copy_(0.5 + torch.rand(8, generator=generator))
        module.bn.bias.copy_(0.4 * torch.rand(8, generator=generator) - 0.2)
    module = module.double().eval()
    x = torch.randn(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    return module, x, trace(module, x)


def _layer(graph: ArchGraph, name: str) -> int:
    return [n.name for n in graph.nodes].index(name)


GATES = [("se", False), ("se", True), ("spatial", False), ("spatial", True), ("same", False)]


@pytest.mark.parametrize("gate, divide", GATES)
def test_gates_are_removable_and_no_skip_ends_in_one(gate, divide):
    _, _, graph = _net(gate, divide)
    space = SearchSpace(graph)
    mul = [n.op for n in graph.nodes].index("mul")
    assert mul in space.removable
    assert all(graph.nodes[j].op != "mul" for _, j in space.skip_candidates)
    # A skip into the gate is refused even where the shapes agree.
    source = _layer(graph, "conv")
    assert graph.nodes[source].out_shape == graph.nodes[mul].in_shape
    edit = Edit((False,) * graph.num_layers, (0.0,) * space.num_groups, ((source, mul),))
    with pytest.raises(InvalidEditError, match="not allowed"):
        space.check(edit)


@pytest.mark.parametrize("gate, divide", GATES)
def test_how_a_gate_ties_channels(gate, divide):
    _, _, graph = _net(gate, divide)
    space = SearchSpace(graph)
    groups = space.channels.group_members
    conv, fc2 = _layer(graph, "conv"), _layer(graph, "fc2")
    tied = [g for g, members in enumerate(groups) if conv in members]
    assert len(tied) == 1
    # A channel gate scales channel c of the map by its channel c: one group; a spatial gate's
    # one channel is a group (of one channel) of its own.
    assert (fc2 in groups[tied[0]]) is (gate != "spatial")
    relu = _layer(graph, "relu")
    for c, edit in enumerate(space.sample(40, generator=torch.Generator().manual_seed(0))):
        plan = space.plan(edit)
        if gate == "spatial":
            assert len(plan.indices(fc2)) == 1, c
        else:
            assert np.array_equal(plan.indices(fc2), plan.indices(relu)), c


@pytest.mark.parametrize("ratio", [0.0, 0.5])
@pytest.mark.parametrize("gate, divide", GATES)
def test_removed_gate_equals_the_ungated_network_shrunk_alike(gate, divide, ratio):
    module, x, graph = _net(gate, divide)
    space = SearchSpace(graph)
    mul = [n.op for n in graph.nodes].index("mul")
    mask = tuple(j == mul for j in range(graph.num_layers))
    edited = space.student(Edit(mask, (ratio,) * space.num_groups))
    student_graph = edited.graph
    assert "mul" not in [n.op for n in student_graph.nodes]
    assert "fc2" not in [n.name for n in student_graph.nodes]
    reference = copy.deepcopy(module)
    reference.gated = False
    reference_graph = trace(reference, x)
    reference_space = SearchSpace(reference_graph)
    expected_student = reference_space.student(reference_space.uniform_edit(ratio))
    expected_graph = expected_student.graph
    assert [(n.op, n.inputs, n.out_shape) for n in student_graph.nodes] == [
        (n.op, n.inputs, n.out_shape) for n in expected_graph.nodes]
    assert count_params(student_graph) == count_params(expected_graph)
    student = build_student(edited, module).eval()
    expected = build_student(expected_student, reference).eval()
    assert sum(p.numel() for p in student.parameters()) == count_params(student_graph)
    with torch.no_grad():
        torch.testing.assert_close(student(x), expected(x), rtol=1e-12, atol=1e-12)
