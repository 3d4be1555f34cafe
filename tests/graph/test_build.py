r"""Tests of botorch_archsearch/graph/build.py: students build, run and inherit the teacher's weights.

The property tests (DESIGN.md, "Promises") sample thousands of edits of every zoo teacher and of
four torchvision networks: every sampled student builds, runs forward, keeps the teacher's output
shape, has no more parameters than the teacher, and ``count_params`` matches the built module.
Brute-force references: a hand-run "masked teacher" (the teacher with the dropped channels
zeroed after every layer, removed layers as identities and added skips summed in) must give the
student's output, and small hand-made nets are compared with hand-edited copies of themselves.
"""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import (
    ArchGraph,
    StudentNet,
    build_student,
    count_params,
    load_student,
    save_student,
    trace,
)
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import Edit, SearchSpace, Student
from botorch_archsearch.utils.torchvision import import_torchvision

ZOO = ("vgg19", "resnet18", "resnet34", "shufflenet", "mobilenetv2")
TORCHVISION = ("tv_resnet18", "tv_vgg11_bn", "tv_mobilenet_v2", "tv_shufflenet_v2_x1_0")
TEACHERS = ZOO + TORCHVISION
WIDTH = 0.125
NUM_CLASSES = 10
SETTINGS = {
    "default": {},
    "no_skip": {"skip": False},
    "removal_only": {"shrinkage": False, "skip": False},
    "multiple8": {"channel_multiple": 8},
}
# Students built and run per (teacher, setting): 200 per zoo teacher, 75 for three torchvision
# models, so 1235 built students in all (and more edits applied and counted without building).
BUILT = {
    **{name: {"default": 125, "no_skip": 25, "removal_only": 25, "multiple8": 25} for name in ZOO},
    **{name: {"default": 45, "no_skip": 10, "removal_only": 10, "multiple8": 10}
       for name in ("tv_resnet18", "tv_mobilenet_v2", "tv_shufflenet_v2_x1_0")},
    "tv_vgg11_bn": {"default": 4, "no_skip": 2, "removal_only": 2, "multiple8": 2},  # 128M params
}
APPLIED = {**{name: 800 for name in ZOO}, **{name: 300 for name in TORCHVISION}}



# ---------------------------------------------------------------------------- helpers
def _randomize_batchnorm(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so that slicing them is observable."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.rand(c, generator=generator) - 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                m.weight.copy_(0.5 + torch.rand(c, generator=generator))
                m.bias.copy_(0.2 * torch.rand(c, generator=generator) - 0.1)
    return module


@functools.lru_cache(maxsize=None)
def _teacher(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A teacher (eval mode) and an example input of 2 x 3 x 32 x 32."""
    torch.manual_seed(0)
    if name.startswith("tv_"):
        module = getattr(import_torchvision().models, name[3:])(num_classes=NUM_CLASSES)
    else:
        module = get_teacher(name, num_classes=NUM_CLASSES, in_channels=3, width=WIDTH)
    _randomize_batchnorm(module, seed=1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return module.eval(), x


@functools.lru_cache(maxsize=None)
def _graph(name: str) -> ArchGraph:
    module, x = _teacher(name)
    return trace(module, x)


@functools.lru_cache(maxsize=None)
def _teacher64(name: str) -> tuple[nn.Module, torch.Tensor, StudentNet]:
    """A float64 copy of a teacher, its input, and its graph built as a StudentNet."""
    module, x = _teacher(name)
    module = copy.deepcopy(module).double().eval()
    return module, x.double(), build_student(_graph(name), module).eval()


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _masked_teacher(space: SearchSpace, edit: Edit, net: StudentNet, x: torch.Tensor) -> torch.Tensor:
    """The teacher run layer by layer with the edit applied by hand: every output multiplied by
    the mask of the channels the student keeps, removed layers replaced by identities, added
    skips summed into their destination's input. ``net`` is the teacher's own graph built."""
    graph = space.graph
    plan = space.plan(edit)
    extra: dict[int, list[int]] = {}
    for i, j in plan.skips:
        extra.setdefault(j, []).append(i)

    def masked(j: int, value: torch.Tensor) -> torch.Tensor:
        mask = torch.from_numpy(plan.mask(j)).to(value.dtype)
        return value * mask.view(1, -1, *([1] * (value.dim() - 2)))

    values = [masked(0, x)] + [None] * (graph.num_layers - 1)
    for j in range(1, graph.num_layers):
        node = graph.nodes[j]
        inputs = [values[i] for i in node.inputs] + [values[i] for i in extra.get(j, [])]
        if node.op == "concat":
            h = torch.cat(inputs, 1)
        else:
            h = inputs[0]
            for v in inputs[1:]:
                h = h + v
        values[j] = masked(j, h if j in plan.removed else net.layers[j](h))
    return values[-1]


# ---------------------------------------------------------------------------- property tests
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", TEACHERS)
def test_sampled_students_build_and_run(name, setting):
    teacher, x = _teacher(name)
    graph = _graph(name)
    space = SearchSpace(graph, **SETTINGS[setting])
    with torch.no_grad():
        y_teacher = teacher(x)
    teacher_params = _num_params(teacher)
    assert count_params(graph) == teacher_params
    n = BUILT[name][setting]
    seed = 100 + list(SETTINGS).index(setting)
    edits = space.sample(n, generator=torch.Generator().manual_seed(seed))
    assert len(edits) == n
    for c, edit in enumerate(edits):
        where = f"{name}/{setting} seed={seed} sample {c}"
        edited = space.student(edit)
        student_graph = edited.graph
        student = build_student(edited, teacher)
        assert isinstance(student, StudentNet) and student.training, where
        built = _num_params(student)
        assert built == count_params(student_graph), where
        assert built <= teacher_params, where
        student.eval()
        with torch.no_grad():
            y = student(x)
        assert y.shape == y_teacher.shape, where
        assert y.dtype == y_teacher.dtype, where
        assert torch.isfinite(y).all(), where


@pytest.mark.parametrize("name", TEACHERS)
def test_sampled_student_graphs_are_consistent(name):
    """Many more edits, applied and counted without building: every edge joins equal shapes."""
    graph = _graph(name)
    space = SearchSpace(graph)
    teacher_params = count_params(graph)
    for c, edit in enumerate(space.sample(APPLIED[name], generator=torch.Generator().manual_seed(7))):
        where = f"{name} seed=7 sample {c}"
        student = space.apply(edit)
        assert count_params(student) <= teacher_params, where
        assert student.input_shape == graph.input_shape and student.output_shape == graph.output_shape, where
        nodes = student.nodes
        # The lazily built layers agree with the table the encoding reads.
        assert ArchGraph(nodes).key() == student.key(), where
        for j, node in enumerate(nodes[1:], 1):
            shapes = [nodes[i].out_shape for i in node.inputs]
            if node.op == "concat":
                assert sum(s[0] for s in shapes) == node.out_shape[0], where
                assert all(s[1:] == node.out_shape[1:] for s in shapes), where
            else:
                assert all(s == node.in_shape for s in shapes), (where, j, node)
            if node.op in ("batchnorm", "relu", "relu6", "dropout", "add"):
                assert node.in_shape == node.out_shape, (where, j, node)


@pytest.mark.parametrize("name", [n for n in TEACHERS if n != "tv_vgg11_bn"])
def test_students_equal_the_masked_teacher(name):
    teacher, x, net = _teacher64(name)
    graph = _graph(name)
    for options, seed in (({}, 11), ({"channel_multiple": 8}, 12)):
        space = SearchSpace(graph, **options)
        for c, edit in enumerate(space.sample(12, generator=torch.Generator().manual_seed(seed))):
            student = build_student(space.student(edit), teacher).eval()
            with torch.no_grad():
                y = student(x)
                expected = _masked_teacher(space, edit, net, x)
            torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-10, msg=f"{name} {options} sample {c}")


# ---------------------------------------------------------------------------- the unedited teacher
@pytest.mark.parametrize("name", TEACHERS)
def test_unedited_students_equal_the_teacher(name):
    teacher, x = _teacher(name)
    graph = _graph(name)
    space = SearchSpace(graph)
    unedited = space.apply(space.identity_edit())
    assert unedited.nodes == graph.nodes
    with torch.no_grad():
        expected = teacher(x)
        for g in (space.student(space.identity_edit()), unedited, graph):
            student = build_student(g, teacher)
            assert _num_params(student) == _num_params(teacher)
            y = student.eval()(x)
            torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["resnet18", "shufflenet"])
def test_unedited_student_in_teacher_dtype(name, dtype):
    teacher, x = _teacher(name)
    teacher = copy.deepcopy(teacher).to(dtype)
    x = x.to(dtype)
    student = build_student(_graph(name), teacher)
    assert all(p.dtype == dtype for p in student.parameters())
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(x), teacher(x), rtol=1e-5, atol=1e-6)


def test_build_without_teacher_uses_fresh_weights():
    graph = _graph("resnet18")
    space = SearchSpace(graph)
    edit = space.sample(1, generator=torch.Generator().manual_seed(3))[0]
    edited = space.student(edit)
    student_graph = edited.graph
    student = build_student(edited)
    assert _num_params(student) == count_params(student_graph)
    with torch.no_grad():
        y = student.eval()(_teacher("resnet18")[1])
    assert y.shape == (2, NUM_CLASSES) and torch.isfinite(y).all()


def test_build_student_errors():
    teacher, _ = _teacher("resnet18")
    with pytest.raises(ArchSearchError, match="expects an ArchGraph or a Student.*got ResNet"):
        build_student(teacher, teacher)
    with pytest.raises(ArchSearchError, match="teacher.*nn.Module.*got str"):
        build_student(_graph("resnet18"), "resnet18")
    with pytest.raises(ArchSearchError, match="no module"):
        build_student(_graph("resnet18"), nn.Linear(2, 2))
    # A shrunk architecture alone does not say which channels it keeps: refused, not guessed.
    space = SearchSpace(_graph("resnet18"))
    shrunk = space.apply(space.uniform_edit(0.5))
    with pytest.raises(ArchSearchError, match=r"layer 1 .*does not have the teacher's channels.*SearchSpace\.student"):
        build_student(shrunk, teacher)
    build_student(shrunk)  # fresh weights need no teacher channels


# ---------------------------------------------------------------------------- small hand-made nets
class _SmallNet(nn.Module):
    """conv -> bn -> relu -> conv -> flatten -> linear on 3 x 6 x 6 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv2(self.relu1(self.bn1(self.conv1(x)))), 1))


def _small(dtype: torch.dtype = torch.float64) -> tuple[_SmallNet, torch.Tensor, ArchGraph, dict[str, int]]:
    torch.manual_seed(0)
    net = _randomize_batchnorm(_SmallNet(), seed=4).to(dtype).eval()
    with torch.no_grad():
        net.fc.bias.normal_()
        net.conv1.bias.normal_()
        net.conv2.bias.normal_()
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(5)).to(dtype)
    graph = trace(net, x)
    index = {node.name: j for j, node in enumerate(graph.nodes)}
    return net, x, graph, index


def _edit(space: SearchSpace, remove=(), ratios=None, skips=()) -> Edit:
    mask = tuple(j in remove for j in range(space.graph.num_layers))
    ratios = (0.0,) * space.num_groups if ratios is None else ratios
    return Edit(mask, ratios, skips)


def _student_layer(student: StudentNet, edited: Student, teacher_index: int) -> nn.Module:
    return student.layers[list(edited.teacher_layers).index(teacher_index)]


def test_small_net_graph():
    _, _, graph, index = _small()
    assert [n.op for n in graph.nodes] == ["input", "conv", "batchnorm", "relu", "conv", "flatten", "linear"]
    assert list(index) == ["x", "conv1", "bn1", "relu1", "conv2", "flatten", "fc"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inherited_weights_are_slices(dtype):
    net, x, graph, index = _small(dtype)
    space = SearchSpace(graph)
    assert space.num_groups == 2  # conv1 (+ bn1, relu1) and conv2; the input and logits stay
    edited = space.student(_edit(space, ratios=(0.5, 0.3)))
    student = build_student(edited, net)
    plan, kept = edited.plan, edited.teacher_layers
    assert edited.teacher is graph and student.edit is edited.edit
    assert [edited.teacher.nodes[t].name for t in kept] == list(index)  # nothing removed
    kept1, kept2 = plan.indices(index["conv1"]), plan.indices(index["conv2"])
    assert len(kept1) == 4 and len(kept2) == 6  # ceil(0.5 * 8), ceil(0.7 * 8)
    assert list(plan.indices(index["x"])) == [0, 1, 2]
    np.testing.assert_array_equal(plan.indices(index["bn1"]), kept1)
    np.testing.assert_array_equal(plan.indices(index["relu1"]), kept1)
    k1, k2 = torch.from_numpy(kept1), torch.from_numpy(kept2)

    conv1 = _student_layer(student, edited, index["conv1"])
    assert torch.equal(conv1.weight, net.conv1.weight[k1])
    assert torch.equal(conv1.bias, net.conv1.bias[k1])
    bn1 = _student_layer(student, edited, index["bn1"])
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(bn1, name), getattr(net.bn1, name)[k1]), name
    assert bn1.eps == net.bn1.eps and bn1.momentum == net.bn1.momentum
    conv2 = _student_layer(student, edited, index["conv2"])
    assert torch.equal(conv2.weight, net.conv2.weight[k2][:, k1])
    assert torch.equal(conv2.bias, net.conv2.bias[k2])
    # The linear layer reads the flattened C x 6 x 6 map: feature c * 36 + p.
    features = torch.tensor([c * 36 + p for c in kept2.tolist() for p in range(36)])
    np.testing.assert_array_equal(plan.indices(index["flatten"]), features.numpy())
    fc = _student_layer(student, edited, index["fc"])
    assert torch.equal(fc.weight, net.fc.weight[:, features])
    assert torch.equal(fc.bias, net.fc.bias)
    assert all(p.dtype == dtype for p in student.parameters())

    # Functionally: the teacher with the dropped channels' outgoing weights zeroed.
    reference = copy.deepcopy(net)
    with torch.no_grad():
        reference.conv2.weight[:, np.setdiff1d(np.arange(8), kept1)] = 0
        reference.fc.weight[:, np.setdiff1d(np.arange(288), features.numpy())] = 0
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(student.eval()(x), reference(x), **tol)


@pytest.mark.parametrize("removed", [("bn1",), ("relu1",), ("conv2",), ("bn1", "relu1"), ("bn1", "relu1", "conv2")])
def test_removal_equals_identity_layer(removed):
    net, x, graph, index = _small()
    space = SearchSpace(graph)
    assert set(space.removable) == {index["bn1"], index["relu1"], index["conv2"]}
    edited = space.student(_edit(space, remove=[index[n] for n in removed]))
    student_graph = edited.graph
    assert [n.name for n in student_graph.nodes] == [n for n in index if n not in removed]
    student = build_student(edited, net).eval()
    reference = copy.deepcopy(net)
    for n in removed:
        setattr(reference, n, nn.Identity())
    assert _num_params(student) == _num_params(reference) == count_params(student_graph)
    with torch.no_grad():
        torch.testing.assert_close(student(x), reference(x), rtol=1e-10, atol=1e-12)


def test_removal_with_shrinkage_ties_channels():
    net, x, graph, index = _small()
    space = SearchSpace(graph)
    # Removing conv2 ties its output to conv1's channels: conv1's ratio (the first group) wins.
    edited = space.student(_edit(space, remove=[index["conv2"]], ratios=(0.5, 0.0)))
    plan = edited.plan
    assert plan.counts[index["conv2"]] == plan.counts[index["conv1"]] == 4
    student = build_student(edited, net).eval()
    k1 = plan.indices(index["conv1"])
    features = np.array([c * 36 + p for c in k1.tolist() for p in range(36)])
    reference = copy.deepcopy(net)
    reference.conv2 = nn.Identity()
    with torch.no_grad():
        reference.fc.weight[:, np.setdiff1d(np.arange(288), features)] = 0
        torch.testing.assert_close(student(x), reference(x), rtol=1e-10, atol=1e-12)


def test_skip_is_summed_into_the_input():
    net, x, graph, index = _small()
    space = SearchSpace(graph)
    skip = (index["bn1"], index["conv2"])
    assert skip in space.skip_candidates
    edited = space.student(_edit(space, skips=[skip]))
    student_graph = edited.graph
    conv2 = student_graph.nodes[index["conv2"]]
    assert sorted(conv2.inputs) == [index["bn1"], index["relu1"]]
    student = build_student(edited, net).eval()
    assert _num_params(student) == _num_params(net)
    with torch.no_grad():
        b = net.bn1(net.conv1(x))
        expected = net.fc(torch.flatten(net.conv2(torch.relu(b) + b), 1))
        torch.testing.assert_close(student(x), expected, rtol=1e-10, atol=1e-12)


def test_removed_layer_with_skip_becomes_add():
    net, x, graph, index = _small()
    space = SearchSpace(graph)
    skip = (index["conv1"], index["relu1"])
    edited = space.student(_edit(space, remove=[index["relu1"]], skips=[skip]))
    student_graph = edited.graph
    relu1 = student_graph.nodes[index["relu1"]]
    assert relu1.op == "add" and sorted(relu1.inputs) == [index["conv1"], index["bn1"]]
    student = build_student(edited, net).eval()
    with torch.no_grad():
        h = net.conv1(x)
        expected = net.fc(torch.flatten(net.conv2(net.bn1(h) + h), 1))
        torch.testing.assert_close(student(x), expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- save / load
def _roundtrip(student: StudentNet, x: torch.Tensor, path) -> StudentNet:
    directory = save_student(student, path / "student")
    assert sorted(p.name for p in directory.iterdir()) == ["graph.json", "state_dict.pt"]
    state = torch.load(directory / "state_dict.pt", weights_only=True)
    assert set(state) == set(student.state_dict())
    loaded = load_student(directory)
    assert isinstance(loaded, StudentNet) and not loaded.training
    assert loaded.graph == student.graph
    assert loaded.graph.nodes == student.graph.nodes
    assert _num_params(loaded) == _num_params(student)
    loaded_state = loaded.state_dict()
    for key, value in student.state_dict().items():
        assert loaded_state[key].dtype == value.dtype, key
        assert torch.equal(loaded_state[key], value), key  # no rounding through another dtype
    student.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), student(x))
    record = json.loads((directory / "graph.json").read_text())
    assert ("edit" in record) == (student.edit is not None)
    if student.edit is not None:
        assert Edit.from_dict(record["edit"]) == student.edit
    return loaded


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_load_small_student(tmp_path, dtype):
    net, x, graph, index = _small(dtype)
    space = SearchSpace(graph)
    edit = _edit(space, remove=[index["relu1"]], ratios=(0.4, 0.6), skips=[(index["conv1"], index["relu1"])])
    student = build_student(space.student(edit), net)
    loaded = _roundtrip(student, x, tmp_path)
    assert all(p.dtype == dtype for p in loaded.parameters())


@pytest.mark.parametrize("name", ["shufflenet", "tv_shufflenet_v2_x1_0", "mobilenetv2", "resnet18"])
def test_save_load_sampled_students(tmp_path, name):
    teacher, x = _teacher(name)
    space = SearchSpace(_graph(name))
    for c, edit in enumerate(space.sample(2, generator=torch.Generator().manual_seed(21))):
        _roundtrip(build_student(space.student(edit), teacher), x, tmp_path / str(c))


def test_save_student_rejects_other_modules(tmp_path):
    with pytest.raises(ArchSearchError, match="StudentNet.*got Linear"):
        save_student(nn.Linear(2, 2), tmp_path)


def test_load_student_missing(tmp_path):
    with pytest.raises(ArchSearchError, match="graph.json"):
        load_student(tmp_path / "nowhere")
    net, _, graph, _ = _small()
    directory = save_student(build_student(graph, net), tmp_path / "s")
    (directory / "state_dict.pt").unlink()
    with pytest.raises(ArchSearchError, match="state_dict.pt"):
        load_student(directory)


def _corrupt_graph(directory, text):
    (directory / "graph.json").write_text(text)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: _corrupt_graph(d, "{not json"), id="invalid-json"),
        pytest.param(lambda d: _corrupt_graph(d, json.dumps({"format": "other/1", "graph": {}})), id="other-format"),
        pytest.param(lambda d: _corrupt_graph(d, "[]"), id="json-list"),
        pytest.param(
            lambda d: _corrupt_graph(d, json.dumps({"format": "botorch_archsearch.Student/1"})), id="no-graph-key"
        ),
        pytest.param(lambda d: (d / "state_dict.pt").write_bytes(b"not a checkpoint"), id="garbage-weights"),
        pytest.param(lambda d: torch.save({"x": torch.zeros(1)}, d / "state_dict.pt"), id="foreign-weights"),
    ],
)
def test_load_student_wrong_format(tmp_path, corrupt):
    net, _, graph, _ = _small()
    directory = save_student(build_student(graph, net), tmp_path / "s")
    corrupt(directory)
    with pytest.raises(ArchSearchError):
        load_student(directory)


# ---------------------------------------------------------------------------- ShuffleNet specifics
@pytest.mark.parametrize("name", ["shufflenet", "tv_shufflenet_v2_x1_0"])
def test_shufflenet_students_with_shrunk_shuffles(name):
    teacher, x = _teacher(name)
    graph = _graph(name)
    assert any(n.op == "shuffle" for n in graph.nodes)
    if name == "shufflenet":  # grouped 1x1 convolutions (g=2), shuffle, concat
        assert any(n.op == "conv" and 1 < n.groups < n.in_channels for n in graph.nodes)
        assert any(n.op == "concat" for n in graph.nodes)
    else:  # chunk -> slice, shuffle, concat
        assert any(n.op == "slice" for n in graph.nodes)
    space = SearchSpace(graph, removal=False, skip=False)
    teacher64, x64, net = _teacher64(name)
    seen = {"perm": 0, "group_sizes": 0, "slice": 0}
    for c, edit in enumerate(space.sample(8, generator=torch.Generator().manual_seed(31))):
        edited = space.student(edit)
        student_graph = edited.graph
        kept = edited.teacher_layers
        for q, node in enumerate(student_graph.nodes):
            t_node = graph.nodes[kept[q]]
            if node.op == "shuffle" and node.attr("perm") is not None:
                seen["perm"] += 1
                assert sorted(node.attr("perm")) == list(range(node.out_channels))
                assert node.out_channels < t_node.out_channels
            if node.op == "conv" and node.attr("group_sizes") is not None:
                seen["group_sizes"] += 1
                sizes = node.attr("group_sizes")
                assert len(sizes) == t_node.groups
                assert sum(a for a, _ in sizes) == node.in_channels
                assert sum(b for _, b in sizes) == node.out_channels
            if node.op == "slice" and node.out_channels < t_node.out_channels:
                seen["slice"] += 1
                assert node.attr("stop") - node.attr("start") == node.out_channels
                assert 0 <= node.attr("start") and node.attr("stop") <= node.in_channels
        student = build_student(edited, teacher)
        assert _num_params(student) == count_params(student_graph)
        with torch.no_grad():
            assert torch.isfinite(student.eval()(x)).all()
            torch.testing.assert_close(
                build_student(edited, teacher64).eval()(x64),
                _masked_teacher(space, edit, net, x64),
                rtol=1e-9, atol=1e-10, msg=f"{name} sample {c}",
            )
    assert seen["perm"] > 0
    if name == "shufflenet":
        assert seen["group_sizes"] > 0
    else:
        assert seen["slice"] > 0
