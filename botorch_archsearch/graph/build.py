r"""Build a runnable network from an :class:`ArchGraph`, inheriting the teacher's weights.

Paper section 3.2: "a sampled student inherits the teacher's weights" before it is trained. A
kept layer copies the teacher layer's weights sliced to the kept input and output channels (and
the BatchNorm statistics); removed layers are gone (identities); added skips are summed into
their destination's input. Which teacher layer and channels each student layer keeps is the
search space's to say (:class:`~botorch_archsearch.space.Student` satisfies
:class:`InheritedGraph`); a traced graph keeps everything. A student is saved as its graph (JSON)
and its ``state_dict`` and loaded back without unpickling any code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.arch_graph import ArchGraph, LayerSpec

_STUDENT_FORMAT = "botorch_archsearch.Student/1"
_GRAPH_FILE = "graph.json"
_WEIGHTS_FILE = "state_dict.pt"


class Replayable(Protocol):
    """Plain data that describes how a graph was made (an :class:`~botorch_archsearch.space.Edit`)."""

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class InheritedGraph(Protocol):
    r"""A graph made from a teacher graph, with the teacher layer and channels each layer keeps.

    :class:`~botorch_archsearch.space.Student` is one; :func:`build_student` copies the teacher's
    weights through it.

    Attributes:
        graph: The architecture.
        teacher: The teacher graph it was made from.
        teacher_layers: A `graph.num_layers` integer array: the teacher layer of each layer.
        edit: How it was made (written by :func:`save_student` next to the architecture).
    """

    @property
    def graph(self) -> ArchGraph: ...

    @property
    def teacher(self) -> ArchGraph: ...

    @property
    def teacher_layers(self) -> np.ndarray: ...

    @property
    def edit(self) -> Replayable: ...

    def kept_channels(self, layer: int) -> np.ndarray:
        """The output channel indices of teacher layer ``layer`` that are kept, ascending."""
        ...


class StudentNet(nn.Module):
    r"""The network an :class:`ArchGraph` describes: ``layers[j]`` computes layer ``j`` from the
    sum (or, for ``concat``, the concatenation) of its inputs.

    Args:
        graph: The architecture.
        edit: How the architecture was made from the teacher, if it was (kept for
            :func:`save_student`).
    """

    def __init__(self, graph: ArchGraph, edit: Replayable | None = None) -> None:
        super().__init__()
        self.graph, self.edit = graph, edit
        nodes = graph.nodes
        self.layers = nn.ModuleList([_make_layer(j, node) for j, node in enumerate(nodes)])
        self._inputs = [node.inputs for node in nodes]
        self._merge = [node.merge for node in nodes]
        # Free each intermediate result after its last use (saves memory in long graphs).
        last_use = list(range(len(nodes)))
        for j, node in enumerate(nodes):
            for i in node.inputs:
                last_use[i] = j
        self._release = [[i for i in set(node.inputs) if last_use[i] == j] for j, node in enumerate(nodes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r"""Run the network.

        Args:
            x: A `b x C x H x W` tensor shaped like the graph's input.

        Returns:
            The output of the last layer.
        """
        values: list[torch.Tensor | None] = [None] * len(self._inputs)
        values[0] = x
        for j in range(1, len(values)):
            inputs = self._inputs[j]
            merge = self._merge[j]
            if len(inputs) == 1:
                h = values[inputs[0]]
            elif merge == "concat":
                h = torch.cat([values[i] for i in inputs], dim=1)
            elif merge in ("mul", "div"):
                h, g = values[inputs[0]], values[inputs[1]]
                if g.dim() < h.dim():  # an N x C gate (from Linear layers) of an N x C x H x W map
                    g = g.reshape(*g.shape, *([1] * (h.dim() - g.dim())))
                h = h * g if merge == "mul" else h / g
            else:
                h = values[inputs[0]]
                for i in inputs[1:]:
                    h = h + values[i]
            values[j] = self.layers[j](h)
            for i in self._release[j]:
                values[i] = None
        return values[-1]


def build_student(graph: ArchGraph | InheritedGraph, teacher: nn.Module | None = None) -> StudentNet:
    r"""Build the network of ``graph``, with weights inherited from ``teacher`` if given.

    Args:
        graph: A student from :meth:`SearchSpace.student` (an :class:`InheritedGraph`: each layer
            inherits the teacher layer and channels it keeps), or the teacher's traced graph
            (every layer inherits its own weights). A plain student architecture (from
            :meth:`SearchSpace.apply` or JSON) does not say which channels it keeps: pass its
            :class:`~botorch_archsearch.space.Student` instead.
        teacher: The module the teacher graph was traced from. Without it, layers keep PyTorch's
            default initialisation.

    Returns:
        The student module (in training mode, on the CPU, in the teacher's dtype if given).

    Example:
        >>> student = build_student(space.student(edit), teacher)
    """
    if isinstance(graph, ArchGraph):
        arch, origin = graph, None
    elif isinstance(graph, InheritedGraph) and isinstance(graph.graph, ArchGraph):
        arch, origin = graph.graph, graph
    else:
        raise ArchSearchError(
            f"build_student expects an ArchGraph or a Student (from SearchSpace.student), got {type(graph).__name__}."
        )
    student = StudentNet(arch, None if origin is None else origin.edit)
    if teacher is None:
        return student
    if not isinstance(teacher, nn.Module):
        raise ArchSearchError(f"build_student expects teacher to be an nn.Module, got {type(teacher).__name__}.")
    base = arch if origin is None else origin.teacher
    kept = np.arange(arch.num_layers) if origin is None else origin.teacher_layers
    param = next(iter(teacher.parameters()), None)
    if param is not None:
        student.to(param.dtype)
    with torch.no_grad():
        for q, node in enumerate(arch.nodes):
            if node.op not in WEIGHTED_TYPES:
                continue
            t_index = int(kept[q])
            t_node = base.nodes[t_index]
            try:
                source = teacher_tensors(teacher, t_node)
            except ArchSearchError as e:
                raise ArchSearchError(f"build_student: {e} (layer {t_index} of the graph); pass the module the "
                                      "graph was traced from.") from None
            if origin is None and not _same_shapes(source, t_node):
                shapes = {role: tuple(v.shape) for role, v in source.items() if v is not None}
                raise ArchSearchError(
                    f"build_student: layer {q} ({t_node.op} {t_node.name!r}, {t_node.in_channels} -> "
                    f"{t_node.out_channels} channels) does not have the teacher's channels ({shapes}); a student "
                    "architecture does not say which of them it keeps: build its Student (SearchSpace.student(edit), "
                    "or SearchSpace.student_from_dict for a saved one)."
                )
            out_idx = _kept(origin, t_index, t_node.out_channels)
            in_idx = _kept(origin, t_node.inputs[0], t_node.in_channels) if t_node.op in ("conv", "linear") else out_idx
            try:
                _inherit(student.layers[q], source, node, t_node, in_idx, out_idx)
            except (RuntimeError, IndexError) as e:
                raise ArchSearchError(
                    f"build_student: the teacher's weights of layer {t_index} ({t_node.op} {t_node.name!r}) do not fit "
                    f"the graph ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); pass the module the "
                    "graph was traced from."
                ) from None
    return student


# Layers with weights inherited from the teacher, and the tensors each has (by role).
WEIGHTED_TYPES: dict[str, tuple[str, ...]] = {
    "conv": ("weight", "bias"),
    "linear": ("weight", "bias"),
    "batchnorm": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "scale": ("weight",),
    "layernorm": ("weight", "bias"),
    "groupnorm": ("weight", "bias"),
    "channelconv": ("weight", "bias"),
}


def teacher_tensors(teacher: nn.Module, node: LayerSpec) -> dict[str, torch.Tensor | None]:
    r"""The teacher's tensors of a traced layer, by role (``"weight"``, ``"bias"``, ...).

    A layer traced from a module reads the module's attributes; a layer traced from a function
    (``F.batch_norm``, ``F.layer_norm``, a layer scale) reads the parameters and buffers it was
    called with (recorded in its ``tensors`` attribute).

    Args:
        teacher: The module the graph was traced from.
        node: A layer of its graph with weights (one of :data:`WEIGHTED_TYPES`).

    Returns:
        Every role of :data:`WEIGHTED_TYPES` for the layer, ``None`` where the layer has none.

    Raises:
        ArchSearchError: If ``teacher`` lacks the module or tensor the layer names.
    """
    roles = WEIGHTED_TYPES.get(node.op, ())
    paths = node.attr("tensors")
    if paths is not None:
        out: dict[str, torch.Tensor | None] = dict.fromkeys(roles)
        for role, path in paths:
            obj: Any = teacher
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                obj = None
            if not isinstance(obj, torch.Tensor):
                raise ArchSearchError(f"the teacher has no parameter or buffer {path!r}")
            out[role] = obj
        return out
    try:
        module = teacher.get_submodule(node.name)
    except AttributeError:
        raise ArchSearchError(f"the teacher has no module {node.name!r}") from None
    return {role: getattr(module, role, None) for role in roles}


def save_student(student: StudentNet, path: str | Path) -> Path:
    r"""Save a student as ``path/graph.json`` (architecture, and the edit of the teacher that made
    it if it was built from a :class:`~botorch_archsearch.space.Student`) and ``path/state_dict.pt``
    (weights).

    Args:
        student: A module from :func:`build_student` or :func:`load_student`.
        path: A directory (created if missing).

    Returns:
        The directory.
    """
    if not isinstance(student, StudentNet):
        raise ArchSearchError(f"save_student expects a StudentNet, got {type(student).__name__}.")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"format": _STUDENT_FORMAT, "graph": student.graph.to_dict()}
    if student.edit is not None:
        record["edit"] = student.edit.to_dict()
    (path / _GRAPH_FILE).write_text(json.dumps(record))
    torch.save(student.state_dict(), path / _WEIGHTS_FILE)
    return path


def load_student(path: str | Path, map_location: str | torch.device = "cpu") -> StudentNet:
    r"""Load a student saved by :func:`save_student` (weights loaded with ``weights_only=True``).

    Args:
        path: The directory.
        map_location: Where to put the weights.

    Returns:
        The student module, in eval mode.
    """
    path = Path(path)
    graph_file, weights_file = path / _GRAPH_FILE, path / _WEIGHTS_FILE
    if not graph_file.is_file() or not weights_file.is_file():
        raise ArchSearchError(
            f"load_student: {path} must be a directory with {_GRAPH_FILE} and {_WEIGHTS_FILE} "
            "(as written by save_student)."
        )
    try:
        record = json.loads(graph_file.read_text())
    except json.JSONDecodeError as e:
        raise ArchSearchError(f"load_student: {graph_file} is not valid JSON ({e}).") from e
    found = record.get("format") if isinstance(record, dict) else type(record).__name__
    if found != _STUDENT_FORMAT or "graph" not in record:
        raise ArchSearchError(
            f"load_student: {graph_file} has format {found!r}, expected {_STUDENT_FORMAT!r} with a 'graph' entry."
        )
    student = StudentNet(ArchGraph.from_dict(record["graph"]))
    try:
        state = torch.load(weights_file, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise ArchSearchError(
            f"load_student: {weights_file} is not a state_dict loadable with weights_only=True ({e})."
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArchSearchError(f"load_student: {weights_file} does not hold a state_dict of tensors.")
    floating = [v for v in state.values() if v.is_floating_point()]
    if floating:  # match dtype and device before loading, so no value is rounded on the way
        student.to(device=floating[0].device, dtype=floating[0].dtype)
    try:
        student.load_state_dict(state)
    except RuntimeError as e:
        raise ArchSearchError(f"load_student: {weights_file} does not match {graph_file} ({e}).") from e
    return student.eval()


class Slice(nn.Module):
    """Channels ``start:stop`` of the input (one piece of a ``chunk``/``split``)."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]


class ChannelShuffle(nn.Module):
    """Channel shuffle with ``groups``, or an explicit channel permutation for a shrunk one."""

    def __init__(self, groups: int, perm: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer("perm", None if perm is None else torch.tensor(perm, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.perm is not None:
            return x.index_select(1, self.perm)
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelScale(nn.Module):
    """A learned scale per channel (layer scale): ``x * weight`` along dimension 1 (a buffer, not
    trained, if ``buffer``)."""

    def __init__(self, channels: int, buffer: bool = False) -> None:
        super().__init__()
        if buffer:
            self.register_buffer("weight", torch.ones(channels))
        else:
            self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(-1, *([1] * (x.dim() - 2)))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels (dimension 1) of an `N x C x H x W` map or `N x C` features,
    computed channels-last as ``nn.LayerNorm`` after a permute computes it."""

    def __init__(self, channels: int, eps: float, affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.layer_norm(x, (self.channels,), self.weight, self.bias, self.eps)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.channels,), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ChannelConv(nn.Module):
    """A 1-d convolution across the channels of an `N x C x 1 x 1` (or `N x C`) gate (ECA): one
    kernel of ``kernel_size`` shared by every channel; the result is `N x C x 1 x 1`."""

    def __init__(self, kernel_size: int, padding: int, bias: bool) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.zeros(1, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return F.conv1d(x.reshape(n, 1, -1), self.weight, self.bias, padding=self.padding).view(n, -1, 1, 1)


class Upsample(nn.Module):
    """``F.interpolate`` to a fixed spatial ``size`` or by a ``scale_factor``."""

    def __init__(self, size: tuple[int, ...] | None, scale_factor: tuple[float, ...] | None, mode: str,
                 align_corners: bool | None) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, scale_factor=self.scale_factor, mode=self.mode,
                             align_corners=self.align_corners)


class SpatialMean(nn.Module):
    """Mean over the spatial dimensions (2, 3)."""

    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=self.keepdim)


class GroupedConv2d(nn.Module):
    r"""A grouped convolution whose groups have different sizes (a shrunk grouped convolution).

    Args:
        group_sizes: ``(in_channels, out_channels)`` of every group; groups with no inputs or no
            outputs hold no weights (their inputs are unused).
        kwargs: ``kernel_size``, ``stride``, ``padding``, ``dilation`` and ``bias`` of every group.
    """

    def __init__(self, group_sizes: tuple[tuple[int, int], ...], **kwargs: Any) -> None:
        super().__init__()
        self.in_sizes = [a for a, _ in group_sizes]
        self.active = [t for t, (a, b) in enumerate(group_sizes) if a and b]
        self.convs = nn.ModuleList([nn.Conv2d(group_sizes[t][0], group_sizes[t][1], **kwargs) for t in self.active])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(x, self.in_sizes, dim=1)
        return torch.cat([conv(pieces[t]) for t, conv in zip(self.active, self.convs)], dim=1)


_ACTIVATIONS = {
    "sigmoid": lambda n: nn.Sigmoid(),
    "tanh": lambda n: nn.Tanh(),
    "silu": lambda n: nn.SiLU(),
    "gelu": lambda n: nn.GELU(approximate=n.attr("approximate", "none")),
    "hardswish": lambda n: nn.Hardswish(),
    "hardsigmoid": lambda n: nn.Hardsigmoid(),
    "leaky_relu": lambda n: nn.LeakyReLU(n.attr("negative_slope", 0.01)),
    "elu": lambda n: nn.ELU(n.attr("alpha", 1.0)),
    "mish": lambda n: nn.Mish(),
}


def _make_layer(j: int, node: LayerSpec) -> nn.Module:
    try:
        return _module_of(node)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:  # a malformed layer spec
        raise ArchSearchError(
            f"StudentNet: layer {j} ({node.op} {node.name!r}, in {node.in_shape}, out {node.out_shape}) cannot be "
            f"built ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})."
        ) from None


def _module_of(node: LayerSpec) -> nn.Module:
    op = node.op
    if op == "conv":
        kwargs = dict(kernel_size=node.attr("kernel"), stride=node.attr("stride"), padding=node.attr("padding"),
                      dilation=node.attr("dilation"), bias=node.attr("bias"))
        sizes = node.attr("group_sizes")
        if sizes is not None:
            return GroupedConv2d(sizes, **kwargs)
        return nn.Conv2d(node.in_channels, node.out_channels, groups=node.groups, **kwargs)
    if op == "linear":
        return nn.Linear(node.in_channels, node.out_channels, bias=node.attr("bias"))
    if op == "scale":
        return ChannelScale(node.out_channels, bool(node.attr("buffer", False)))
    if op == "layernorm":
        return ChannelLayerNorm(node.out_channels, node.attr("eps"), node.attr("affine"), node.attr("bias"))
    if op == "groupnorm":
        return nn.GroupNorm(node.attr("num_groups"), node.out_channels, eps=node.attr("eps"), affine=node.attr("affine"))
    if op == "channelconv":
        return ChannelConv(node.kernel_size, node.padding, node.attr("bias"))
    if op == "upsample":
        return Upsample(node.attr("size"), node.attr("scale_factor"), node.attr("mode"), node.attr("align_corners"))
    if op == "batchnorm":
        return nn.BatchNorm2d(node.out_channels, eps=node.attr("eps"), momentum=node.attr("momentum"),
                              affine=node.attr("affine"), track_running_stats=node.attr("track_running_stats"))
    if op == "relu":
        return nn.ReLU()
    if op == "relu6":
        return nn.ReLU6()
    if op == "activation":
        return _ACTIVATIONS[node.attr("fn")](node)
    if op in ("maxpool", "avgpool"):
        kwargs = dict(kernel_size=node.attr("kernel"), stride=node.attr("stride"), padding=node.attr("padding"),
                      ceil_mode=node.attr("ceil_mode"))
        if op == "maxpool":
            return nn.MaxPool2d(**kwargs)
        return nn.AvgPool2d(count_include_pad=node.attr("count_include_pad"), **kwargs)
    if op == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(node.attr("output_size"))
    if op == "mean":
        return SpatialMean(node.attr("keepdim"))
    if op == "flatten":
        return nn.Flatten(1)
    if op == "dropout":
        return nn.Dropout2d(node.attr("p")) if node.attr("kind") == "channel" else nn.Dropout(node.attr("p"))
    if op == "slice":
        return Slice(node.attr("start"), node.attr("stop"))
    if op == "shuffle":
        return ChannelShuffle(node.attr("groups"), node.attr("perm"))
    return nn.Identity()  # input, add, concat, mul: the merge does the work


def _kept(origin: InheritedGraph | None, layer: int, channels: int) -> torch.Tensor:
    """Teacher channel indices that teacher layer ``layer`` keeps (all of them for a traced graph)."""
    if origin is None:
        return torch.arange(channels)
    return torch.as_tensor(np.asarray(origin.kept_channels(layer), dtype=np.int64))


def _same_shapes(source: dict[str, torch.Tensor | None], node: LayerSpec) -> bool:
    """Whether the teacher's tensors ``source`` have exactly the channels of ``node`` (so the
    layer is the teacher's own, not a shrunk copy whose kept channels are unknown)."""
    if node.op == "channelconv":  # its kernel does not depend on the channels
        return True
    if node.attr("group_sizes") is not None:
        return False
    for role, tensor in source.items():
        if tensor is None or role == "num_batches_tracked":
            continue
        if role != "weight" or node.op not in ("conv", "linear"):
            if tensor.numel() != node.out_channels:
                return False
        elif tensor.dim() == 2:  # a Linear layer (or one applied channels-last as a 1x1 convolution)
            if tuple(tensor.shape) != (node.out_channels, node.in_channels):
                return False
        elif tensor.shape[0] != node.out_channels or tensor.shape[1] * node.groups != node.in_channels:
            return False
    return True


def _inherit(layer: nn.Module, source: dict[str, torch.Tensor | None], node: LayerSpec, t_node: LayerSpec,
             in_idx: torch.Tensor, out_idx: torch.Tensor) -> None:
    """Copy the teacher's tensors ``source``, sliced to the kept channels, into ``layer``."""
    if node.op == "channelconv":  # its kernel does not depend on the channels
        for name, src in source.items():
            if src is not None:
                getattr(layer, name).copy_(src.reshape(getattr(layer, name).shape))
        return
    if node.op in ("batchnorm", "scale", "layernorm", "groupnorm"):
        for name, src in source.items():
            dst = getattr(layer, name, None)
            if src is None or dst is None:
                continue
            if name == "num_batches_tracked":
                dst.copy_(src)
            else:
                dst.copy_(src.reshape(-1)[out_idx])
        return
    weight, bias = source["weight"], source["bias"]
    if node.op == "linear":
        layer.weight.copy_(weight[out_idx][:, in_idx])
        if bias is not None:
            layer.bias.copy_(bias[out_idx])
        return
    if weight.dim() == 2:  # a Linear layer applied channels-last: a 1x1 convolution
        weight = weight[:, :, None, None]
    g = t_node.groups  # weight: `C_out x C_in / g x kh x kw`
    if g == 1:
        pieces = [(weight[out_idx][:, in_idx], out_idx)]
    elif g == t_node.in_channels == t_node.out_channels:  # depthwise: kept inputs == kept outputs
        pieces = [(weight[out_idx], out_idx)]
    else:
        c_in, c_out = t_node.in_channels // g, t_node.out_channels // g
        pieces = []
        for t in range(g):
            o = out_idx[(out_idx >= t * c_out) & (out_idx < (t + 1) * c_out)]
            i = in_idx[(in_idx >= t * c_in) & (in_idx < (t + 1) * c_in)] - t * c_in
            if len(o) and len(i):
                pieces.append((weight[o][:, i], o))
    if isinstance(layer, GroupedConv2d):
        for conv, (w, o) in zip(layer.convs, pieces):
            conv.weight.copy_(w)
            if bias is not None:
                conv.bias.copy_(bias[o])
        return
    layer.weight.copy_(torch.cat([w for w, _ in pieces], 0))
    if bias is not None:
        layer.bias.copy_(bias[torch.cat([o for _, o in pieces])])


__all__ = [
    "ChannelConv",
    "ChannelLayerNorm",
    "ChannelScale",
    "ChannelShuffle",
    "GroupedConv2d",
    "InheritedGraph",
    "Replayable",
    "Slice",
    "SpatialMean",
    "StudentNet",
    "Upsample",
    "WEIGHTED_TYPES",
    "build_student",
    "load_student",
    "save_student",
    "teacher_tensors",
]
