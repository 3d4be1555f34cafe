r"""Tests of botorch_archsearch/space/student.py: a student carries its architecture, its edit and
what it keeps of the teacher; written as JSON and read back on the same teacher it inherits
exactly the same weights, and on another teacher it is refused."""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import botorch_archsearch
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import (
    ArchGraph,
    InheritedGraph,
    build_student,
    load_student,
    save_student,
    trace,
)
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import Edit, SearchSpace, Student, channel_importance

TEACHERS = ("resnet18", "mobilenetv2", "shufflenet")


@functools.lru_cache(maxsize=None)
def _teacher(name: str) -> tuple[nn.Module, ArchGraph]:
    """A tiny zoo teacher with distinct BatchNorm statistics (so every channel is told apart)."""
    torch.manual_seed(0)
    module = get_teacher(name, num_classes=10, in_channels=3, width=0.125)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=generator))
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator))
    module.eval()
    return module, trace(module, torch.zeros(1, 3, 16, 16))


@functools.lru_cache(maxsize=None)
def _space(name: str, order: str) -> SearchSpace:
    module, graph = _teacher(name)
    return SearchSpace(graph, channel_importance=channel_importance(graph, module), channel_order=order)


def _through_json(student: Student) -> dict:
    return json.loads(json.dumps(student.to_dict()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", ["even", "magnitude"])
@pytest.mark.parametrize("name", TEACHERS)
def test_a_student_read_back_from_json_inherits_the_same_weights(name, order, dtype):
    module, _ = _teacher(name)
    teacher = copy.deepcopy(module).to(dtype)
    space = _space(name, order)
    shrunk = 0
    for c, edit in enumerate(space.sample(4, generator=torch.Generator().manual_seed(5))):
        student = space.student(edit)
        again = space.student_from_dict(_through_json(student))
        assert again.edit == edit and again.key() == student.key(), c
        assert again.graph.nodes == student.graph.nodes, c
        np.testing.assert_array_equal(again.teacher_layers, student.teacher_layers)
        before = build_student(student, teacher).state_dict()
        after = build_student(again, teacher).state_dict()
        assert list(after) == list(before), c
        for key, value in before.items():
            assert after[key].dtype == value.dtype == (dtype if value.is_floating_point() else value.dtype)
            assert torch.equal(after[key], value), (c, key)
        # The architecture alone does not say which channels were kept: it is refused, not guessed.
        plain = ArchGraph.from_dict(student.to_dict()["architecture"])
        teacher_nodes = [student.teacher.nodes[t] for t in student.teacher_layers.tolist()]
        if any(n.op in ("conv", "linear") and (n.in_shape, n.out_shape) != (t.in_shape, t.out_shape)
               for n, t in zip(plain.nodes, teacher_nodes)):
            shrunk += 1
            with pytest.raises(ArchSearchError, match="SearchSpace.student"):
                build_student(plain, teacher)
    assert shrunk > 0  # the test exercises kept channels that the architecture alone hides


@pytest.mark.parametrize("name", TEACHERS)
def test_a_student_is_its_graph_edit_and_plan(name):
    module, graph = _teacher(name)
    space = _space(name, "even")
    edit = space.sample(1, generator=torch.Generator().manual_seed(2))[0]
    student = space.student(edit)
    assert isinstance(student, InheritedGraph)
    assert student.teacher is graph and student.edit is edit
    assert student.key() == student.graph.key() == space.apply(edit).key()
    assert student.teacher_layers.shape == (student.graph.num_layers,)
    assert np.all(np.diff(student.teacher_layers) > 0)  # layers keep the teacher's order
    plan = space.plan(edit)
    for q, t in enumerate(student.teacher_layers.tolist()):
        np.testing.assert_array_equal(student.kept_channels(t), plan.indices(t))
        assert student.graph.nodes[q].out_channels == len(student.kept_channels(t)) == plan.counts[t]
    assert student.to_dict() == {"architecture": student.graph.to_dict(), "edit": edit.to_dict()}
    assert repr(student).startswith(f"Student(key={student.key()[:12]!r}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        student.edit = space.identity_edit()
    # Picklable before its layers are materialised (a process backend may ship it).
    fresh = space.student(edit)
    assert fresh.graph._nodes is None
    assert pickle.loads(pickle.dumps(fresh)).graph.nodes == student.graph.nodes
    # The identity edit gives the teacher, inheriting every weight.
    identity = space.student(space.identity_edit())
    assert identity.graph == graph
    expected = build_student(graph, module).state_dict()
    for key, value in build_student(identity, module).state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_graphs_carry_no_provenance():
    _, graph = _teacher("resnet18")
    student = _space("resnet18", "even").student(_space("resnet18", "even").uniform_edit(0.5))
    for g in (graph, student.graph, ArchGraph.from_dict(student.graph.to_dict())):
        for name in ("base", "edit", "origin", "_base", "_edit", "_origin"):
            assert not hasattr(g, name), name


def test_the_graph_package_does_not_import_the_space_package():
    # graph/ sits below space/ on the one way through (STYLE.md): no import reaches back up.
    folder = Path(botorch_archsearch.__file__).parent / "graph"
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(m.startswith("botorch_archsearch.space") for m in modules), path.name


def test_student_from_dict_refuses_another_teacher_or_space():
    space = _space("resnet18", "even")
    student = space.student(space.sample(1, generator=torch.Generator().manual_seed(3))[0])
    data = _through_json(student)
    with pytest.raises(ArchSearchError, match="edit does not apply to this teacher.*another teacher"):
        _space("mobilenetv2", "even").student_from_dict(data)
    # Same teacher, other space options: the edit applies but gives another architecture.
    coarse = SearchSpace(space.graph, channel_multiple=8)
    edit = Edit(student.edit.remove_mask, tuple(0.3 for _ in student.edit.shrink_ratios), student.edit.skips)
    other = space.student(edit)
    assert coarse.student(edit).key() != other.key()
    with pytest.raises(ArchSearchError, match="another architecture on this teacher"):
        coarse.student_from_dict(_through_json(other))
    # An architecture that is not the edit's.
    with pytest.raises(ArchSearchError, match="another architecture"):
        space.student_from_dict({"architecture": space.graph.to_dict(), "edit": data["edit"]})
    with pytest.raises(ArchSearchError, match="'architecture' and 'edit'"):
        space.student_from_dict({"edit": data["edit"]})
    with pytest.raises(ArchSearchError, match="'architecture' and 'edit'"):
        space.student_from_dict([data])
    with pytest.raises(ArchSearchError, match="edit does not apply"):
        space.student_from_dict({"architecture": data["architecture"], "edit": {"remove": "x"}})
    with pytest.raises(ArchSearchError, match="ArchGraph.from_dict"):
        space.student_from_dict({"architecture": {"nodes": []}, "edit": data["edit"]})


def test_a_saved_student_keeps_its_edit_and_is_rebuilt_from_it(tmp_path):
    module, graph = _teacher("mobilenetv2")
    space = _space("mobilenetv2", "magnitude")
    student = space.student(space.sample(1, generator=torch.Generator().manual_seed(4))[0])
    net = build_student(student, module)
    assert net.edit is student.edit
    directory = save_student(net, tmp_path / "best")
    record = json.loads((directory / "graph.json").read_text())
    assert Edit.from_dict(record["edit"]) == student.edit
    again = space.student_from_dict({"architecture": record["graph"], "edit": record["edit"]})
    loaded = load_student(directory)
    for key, value in build_student(again, module).state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # A traced graph has no edit to write.
    save_student(build_student(graph, module), tmp_path / "teacher")
    assert "edit" not in json.loads((tmp_path / "teacher" / "graph.json").read_text())


def test_build_student_takes_any_inherited_graph():
    """graph/ needs only the protocol: a hand-made mapping (every layer keeps itself and all its
    channels) builds without the search space."""
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4 * 2 * 2, 2)).eval()
    teacher = trace(net, torch.zeros(1, 3, 2, 2))

    @dataclasses.dataclass(frozen=True)
    class KeepAll:
        graph: ArchGraph
        teacher: ArchGraph
        teacher_layers: np.ndarray
        edit: Edit

        def kept_channels(self, layer: int) -> np.ndarray:
            return np.arange(self.teacher.nodes[layer].out_channels)

    built = build_student(KeepAll(teacher, teacher, np.arange(teacher.num_layers), Edit((False,) * 4, ())), net)
    assert built.edit == Edit((False,) * 4, ())
    for key, value in net.state_dict().items():
        assert torch.equal(built.state_dict()[f"layers.{int(key[0]) + 1}.{key.split('.', 1)[1]}"], value), key
    with pytest.raises(ArchSearchError, match="ArchGraph or a Student.*got str"):
        build_student("resnet18", net)
