r"""Trace any ``torch.fx``-traceable network into an :class:`ArchGraph`.

Paper section 3.2 / appendix 6.2: the search space is defined on the teacher's layers, so the
teacher is read as a graph of layers with their attributes, shapes (by shape propagation on an
example input) and edges. Module layers and their functional forms map to the same layer types;
``x.chunk``/``split`` become ``slice`` layers and the view-transpose-view channel shuffle becomes
one ``shuffle`` layer.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from botorch_archsearch.exceptions import ArchSearchError, UnsupportedLayerError
from botorch_archsearch.graph.arch_graph import ArchGraph, LayerSpec

SUPPORTED_MODULES: tuple[str, ...] = (
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Dropout2d",
    "ELU",
    "Flatten",
    "GELU",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Mish",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sigmoid",
    "Tanh",
)
SUPPORTED_FUNCTIONS: tuple[str, ...] = (
    "add / + / += (two tensors of one shape)",
    "torch.cat(dim=1)",
    "chunk / split (dim=1), with indexing of the pieces",
    "flatten(start_dim=1) / view or reshape to (N, -1)",
    "relu / relu6 / sigmoid / tanh / silu / gelu / hardswish / leaky_relu",
    "mean over (2, 3)",
    "adaptive_avg_pool2d / avg_pool2d / max_pool2d",
    "dropout",
    "contiguous",
    "channel shuffle: view(N, g, C // g, H, W) -> transpose(1, 2) -> view/reshape(N, C, H, W)",
    "size() / shape and integer arithmetic on them",
)

# Elementwise activation modules other than ReLU/ReLU6, by name, with the attributes to keep.
_ACTIVATION_MODULES: dict[type, tuple[str, tuple[str, ...]]] = {
    nn.Sigmoid: ("sigmoid", ()),
    nn.Tanh: ("tanh", ()),
    nn.SiLU: ("silu", ()),
    nn.GELU: ("gelu", ("approximate",)),
    nn.Hardswish: ("hardswish", ()),
    nn.Hardsigmoid: ("hardsigmoid", ()),
    nn.LeakyReLU: ("leaky_relu", ("negative_slope",)),
    nn.ELU: ("elu", ("alpha",)),
    nn.Mish: ("mish", ()),
}
_MODULE_CLASSES = tuple(getattr(nn, name) for name in SUPPORTED_MODULES)
_ACTIVATION_FUNCTIONS: dict[Any, str] = {
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.silu: "silu",
    F.gelu: "gelu",
    F.hardswish: "hardswish",
    F.leaky_relu: "leaky_relu",
}
_ACTIVATION_METHODS = {"sigmoid": "sigmoid", "tanh": "tanh"}
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)


def trace(module: nn.Module, example_input: torch.Tensor) -> ArchGraph:
    r"""Trace a network into an :class:`ArchGraph`.

    The module is traced with ``torch.fx.symbolic_trace`` and run once on ``example_input`` (in
    eval mode, without gradients; the module is left as it was) to record every layer's shapes.

    Args:
        module: Any ``torch.fx``-traceable ``nn.Module`` with one tensor input and one tensor
            output, built from the supported layers (:data:`SUPPORTED_MODULES`,
            :data:`SUPPORTED_FUNCTIONS`). Each module may be called once (no weight sharing).
        example_input: A `b x C x H x W` tensor (any batch size ``b >= 1``) shaped like the
            network's input.

    Returns:
        The graph: layer 0 is the input, the last layer produces the output.

    Raises:
        UnsupportedLayerError: Naming the first node that uses an unsupported layer or op.
        ArchSearchError: If the module cannot be traced or ``example_input`` is not a tensor.

    Example:
        >>> graph = trace(resnet18(num_classes=10), torch.randn(1, 3, 32, 32))
    """
    if not isinstance(module, nn.Module):
        raise ArchSearchError(f"trace expects an nn.Module, got {type(module).__name__}.")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise ArchSearchError(
            "trace expects example_input to be a tensor with a batch dimension "
            f"(b x C x H x W), got {_describe(example_input)}."
        )
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as e:  # fx raises many types; report them all as one clear error
        raise ArchSearchError(
            f"trace: torch.fx could not trace {type(module).__name__} ({type(e).__name__}: {e}). "
            "Data-dependent control flow must be removed or wrapped for torch.fx."
        ) from e
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedLayerError(
            f"trace: the network takes {len(placeholders)} inputs ({', '.join(placeholders)}); only "
            "networks with a single tensor input are supported."
        )
    # The traced module shares its submodules with `module`: remember every training flag.
    flags = [(m, m.training) for m in module.modules()]
    recorder = _ShapeRecorder(gm)
    try:
        gm.eval()
        with torch.no_grad():
            recorder.run(example_input)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise ArchSearchError(
            f"trace: running {type(module).__name__} on an input of shape {tuple(example_input.shape)} failed"
            f"{'' if recorder.node is None else f' at node {recorder.node.name!r}'} ({type(e).__name__}: "
            f"{first_line})."
        ) from None
    finally:
        for m, training in flags:
            m.training = training
    return _Tracer(gm).run()


class _ShapeRecorder(torch.fx.Interpreter):
    """torch.fx's ShapeProp (each node's ``tensor_meta``) without the traceback it prints to stderr and
    repeats in its error before raising: the node that fails is kept for our own one-line error."""

    extra_traceback = False
    node: torch.fx.Node | None = None  # the node being run

    def run_node(self, n: torch.fx.Node) -> Any:
        self.node = n
        result = super().run_node(n)
        found = False

        def extract(value: Any) -> Any:
            nonlocal found
            if isinstance(value, torch.Tensor):
                found = True
                return _extract_tensor_metadata(value)
            return value

        meta = torch.fx.node.map_aggregate(result, extract)
        if found:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result


class _Tracer:
    """Walks the fx graph once and emits layer specs."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.specs: list[LayerSpec] = []
        # fx node -> ("layer", index) | ("pieces", index, [(start, stop), ...])
        #            | ("shuffle5d", index, groups, transposed) | ("meta",)
        self.values: dict[torch.fx.Node, tuple] = {}
        self.used_modules: set[str] = set()

    def run(self) -> ArchGraph:
        output_index = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "output":
                output_index = self._output(node)
            elif node.op == "get_attr":
                self.values[node] = ("meta",)
            elif node.op == "call_module":
                self._call_module(node)
            else:
                self._call_function(node)
        if output_index is None:  # pragma: no cover - fx graphs always end in an output node
            raise ArchSearchError("trace: the traced graph has no output.")
        return ArchGraph(_prune(self.specs, output_index))

    # ----------------------------------------------------------------- node kinds
    def _placeholder(self, node: torch.fx.Node) -> None:
        if self.specs:
            raise UnsupportedLayerError(
                f"trace: the network takes more than one input (second input {node.name!r}); "
                "only networks with a single tensor input are supported."
            )
        shape = self._shape(node)
        self.values[node] = ("layer", self._emit(node, "input", (), shape, shape))

    def _output(self, node: torch.fx.Node) -> int:
        arg = node.args[0]
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if value is None or value[0] != "layer":
            raise UnsupportedLayerError(
                f"trace: the network output ({_describe(arg)}) is not a single tensor; only "
                "networks returning one tensor are supported."
            )
        return value[1]

    def _call_module(self, node: torch.fx.Node) -> None:
        target = str(node.target)
        mod = self.modules[target]
        stateful = any(True for _ in mod.parameters()) or any(True for _ in mod.buffers())
        if stateful and target in self.used_modules:
            raise UnsupportedLayerError(
                f"trace: module {target!r} ({type(mod).__name__}) is called more than once; "
                "shared weights cannot be edited per layer."
            )
        self.used_modules.add(target)
        if type(mod).__name__ not in SUPPORTED_MODULES or not isinstance(mod, _MODULE_CLASSES):
            self._unsupported(node, type(mod).__name__)
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        out_shape = self._shape(node)
        if isinstance(mod, nn.Conv2d):
            if mod.padding_mode != "zeros":
                self._unsupported(node, f"Conv2d with padding_mode={mod.padding_mode!r}")
            if isinstance(mod.padding, str):  # "same" / "valid"
                same = mod.padding == "same"
                padding = tuple(d * (k - 1) // 2 if same else 0 for d, k in zip(mod.dilation, mod.kernel_size))
            else:
                padding = tuple(mod.padding)
            attrs = (
                ("bias", mod.bias is not None),
                ("dilation", tuple(mod.dilation)),
                ("kernel", tuple(mod.kernel_size)),
                ("padding", mod.padding if isinstance(mod.padding, str) else padding),
                ("stride", tuple(mod.stride)),
            )
            self._layer(node, "conv", (x,), in_shape, out_shape, kernel_size=max(mod.kernel_size),
                        stride=max(mod.stride), padding=max(padding), groups=mod.groups, attrs=attrs)
        elif isinstance(mod, nn.Linear):
            self._layer(node, "linear", (x,), in_shape, out_shape,
                        attrs=(("bias", mod.bias is not None),))
        elif isinstance(mod, nn.BatchNorm2d):
            attrs = (
                ("affine", mod.affine),
                ("eps", float(mod.eps)),
                ("momentum", mod.momentum),
                ("track_running_stats", mod.track_running_stats),
            )
            self._layer(node, "batchnorm", (x,), in_shape, out_shape, attrs=attrs)
        elif type(mod) is nn.ReLU:
            self._layer(node, "relu", (x,), in_shape, out_shape)
        elif type(mod) is nn.ReLU6:
            self._layer(node, "relu6", (x,), in_shape, out_shape)
        elif type(mod) in _ACTIVATION_MODULES:
            fn, keys = _ACTIVATION_MODULES[type(mod)]
            attrs = (("fn", fn),) + tuple((k, getattr(mod, k)) for k in keys)
            self._layer(node, "activation", (x,), in_shape, out_shape, attrs=tuple(sorted(attrs)))
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            self._pool(node, mod, x, in_shape, out_shape)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            self._layer(node, "adaptive_avgpool", (x,), in_shape, out_shape,
                        attrs=(("output_size", tuple(out_shape[1:])),))
        elif isinstance(mod, nn.Flatten):
            if mod.start_dim not in (1, -len(in_shape)) or mod.end_dim != -1:
                self._unsupported(node, f"Flatten(start_dim={mod.start_dim}, end_dim={mod.end_dim})")
            self._flatten(node, x, in_shape, out_shape)
        elif isinstance(mod, (nn.Dropout, nn.Dropout2d)):
            kind = "channel" if isinstance(mod, nn.Dropout2d) else "element"
            self._layer(node, "dropout", (x,), in_shape, out_shape,
                        attrs=(("kind", kind), ("p", float(mod.p))))
        elif type(mod) is nn.Identity:
            self.values[node] = ("layer", x)
        else:
            self._unsupported(node, type(mod).__name__)

    def _call_function(self, node: torch.fx.Node) -> None:
        target = node.target
        name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        meta = node.meta.get("tensor_meta")
        if meta is None:
            # size(), .shape, getitem on sizes, integer arithmetic: shape bookkeeping only.
            self.values[node] = ("meta",)
            return
        if not any(self._is_tensor(a) for a in _flat_args(node)):
            self._unsupported(node, f"{name} creating a tensor from no input tensor")
        first = node.args[0] if node.args else None
        value = self.values.get(first) if isinstance(first, torch.fx.Node) else None
        if value is not None and value[0] == "shuffle5d":
            self._continue_shuffle(node, name, value)
            return
        if value is not None and value[0] == "pieces":
            self._piece(node, name, value)
            return
        if target in _ADD_FUNCTIONS or name in ("add", "add_", "__iadd__", "__add__"):
            self._add(node)
        elif target is torch.cat:
            self._cat(node)
        elif target in (F.relu, torch.relu) or name in ("relu", "relu_"):
            self._simple(node, "relu")
        elif target is F.relu6:
            self._simple(node, "relu6")
        elif target in _ACTIVATION_FUNCTIONS or (node.op == "call_method" and name in _ACTIVATION_METHODS):
            fn = _ACTIVATION_FUNCTIONS.get(target) or _ACTIVATION_METHODS[name]
            attrs: tuple = (("fn", fn),)
            if fn == "leaky_relu":
                slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
                attrs = (("fn", fn), ("negative_slope", float(slope)))
            elif fn == "gelu":
                attrs = (("approximate", node.kwargs.get("approximate", "none")), ("fn", fn))
            self._simple(node, "activation", attrs=attrs)
        elif target in (torch.flatten,) or name == "flatten":
            start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
            end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
            x = self._tensor_arg(node, 0)
            in_shape = self.specs[x].out_shape
            if start not in (1, -len(in_shape)) or end != -1:
                self._unsupported(node, f"flatten(start_dim={start}, end_dim={end})")
            self._flatten(node, x, in_shape, self._shape(node))
        elif name in ("view", "reshape"):
            self._view(node, name)
        elif name == "contiguous":
            self.values[node] = self.values[first]
        elif name in ("chunk", "split") or target in (torch.chunk, torch.split):
            self._chunk(node, name)
        elif name == "mean":
            self._mean(node)
        elif target in (F.adaptive_avg_pool2d,):
            x = self._tensor_arg(node, 0)
            out_shape = self._shape(node)
            self._layer(node, "adaptive_avgpool", (x,), self.specs[x].out_shape, out_shape,
                        attrs=(("output_size", tuple(out_shape[1:])),))
        elif target in (F.avg_pool2d, F.max_pool2d, F.max_pool2d_with_indices) or name in ("avg_pool2d", "max_pool2d"):
            self._functional_pool(node, name)
        elif target in (F.dropout,) or name == "dropout":
            p = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
            self._simple(node, "dropout", attrs=(("kind", "element"), ("p", float(p))))
        else:
            self._unsupported(node, name)

    # ----------------------------------------------------------------- handlers
    def _simple(self, node: torch.fx.Node, op: str, attrs: tuple = ()) -> None:
        x = self._tensor_arg(node, 0)
        self._layer(node, op, (x,), self.specs[x].out_shape, self._shape(node), attrs=attrs)

    def _add(self, node: torch.fx.Node) -> None:
        args = list(node.args)
        if len(args) != 2 or not all(self._is_tensor(a) for a in args) or node.kwargs.get("alpha", 1) != 1:
            self._unsupported(node, "add of anything but two tensors (scalars, alpha)")
        a, b = (self._layer_index(arg, node) for arg in args)
        shape_a, shape_b = self.specs[a].out_shape, self.specs[b].out_shape
        if shape_a != shape_b:
            self._unsupported(node, f"add with broadcasting ({shape_a} + {shape_b})")
        self._layer(node, "add", (a, b), shape_a, self._shape(node))

    def _cat(self, node: torch.fx.Node) -> None:
        tensors = node.args[0]
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if not isinstance(tensors, (list, tuple)) or not all(self._is_tensor(t) for t in tensors):
            self._unsupported(node, "torch.cat of non-tensors")
        out_shape = self._shape(node)
        if dim not in (1, -len(out_shape)):
            self._unsupported(node, f"torch.cat(dim={dim}) (only the channel dimension 1)")
        inputs = tuple(self._layer_index(t, node) for t in tensors)
        if len(inputs) == 1:
            self.values[node] = ("layer", inputs[0])
            return
        self._layer(node, "concat", inputs, out_shape, out_shape)

    def _flatten(self, node: torch.fx.Node, x: int, in_shape: tuple, out_shape: tuple) -> None:
        if len(in_shape) == 1:
            self.values[node] = ("layer", x)
            return
        self._layer(node, "flatten", (x,), in_shape, out_shape)

    def _view(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        out_shape = self._shape(node)
        if out_shape == in_shape:
            self.values[node] = ("layer", x)
        elif len(out_shape) == 1:
            self._flatten(node, x, in_shape, out_shape)
        elif (len(in_shape) == 3 and len(out_shape) == 4 and out_shape[0] * out_shape[1] == in_shape[0]
              and out_shape[2:] == in_shape[1:]):
            self.values[node] = ("shuffle5d", x, out_shape[0], False)
        else:
            self._unsupported(node, f"{name} from {in_shape} to {out_shape} (only flattening and channel shuffle)")

    def _continue_shuffle(self, node: torch.fx.Node, name: str, value: tuple) -> None:
        _, x, groups, transposed = value
        if name == "contiguous":
            self.values[node] = value
            return
        if name == "transpose" or node.target is torch.transpose:
            dims = sorted(d % 5 for d in node.args[1:3])
            if dims == [1, 2] and not transposed:
                self.values[node] = ("shuffle5d", x, groups, True)
                return
        if name in ("view", "reshape", "flatten") and transposed:
            in_shape = self.specs[x].out_shape
            if self._shape(node) == in_shape:
                self._layer(node, "shuffle", (x,), in_shape, in_shape, attrs=(("groups", groups),))
                return
        self._unsupported(node, f"{name} on a grouped 5-d view (only the channel shuffle pattern)")

    def _chunk(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
        shapes = node.meta.get("tensor_meta")
        if dim not in (1, -len(self.specs[x].out_shape)) or not isinstance(shapes, (list, tuple)):
            self._unsupported(node, f"{name}(dim={dim}) (only along the channel dimension 1)")
        pieces, start = [], 0
        for meta in shapes:
            size = int(meta.shape[1])
            pieces.append((start, start + size))
            start += size
        self.values[node] = ("pieces", x, pieces)

    def _piece(self, node: torch.fx.Node, name: str, value: tuple) -> None:
        _, x, pieces = value
        if node.target is not operator.getitem or not isinstance(node.args[1], int):
            self._unsupported(node, f"{name} on the pieces of chunk/split (only indexing them)")
        start, stop = pieces[node.args[1]]
        in_shape = self.specs[x].out_shape
        if start == 0 and stop == in_shape[0]:
            self.values[node] = ("layer", x)
            return
        self._layer(node, "slice", (x,), in_shape, self._shape(node),
                    attrs=(("start", start), ("stop", stop)))

    def _mean(self, node: torch.fx.Node) -> None:
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        keepdim = bool(node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False))
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if len(in_shape) != 3 or sorted(d % 4 for d in dims) != [2, 3]:
            self._unsupported(node, f"mean(dim={dims}) (only the spatial mean over (2, 3))")
        self._layer(node, "mean", (x,), in_shape, self._shape(node), attrs=(("keepdim", keepdim),))

    def _pool(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple, out_shape: tuple) -> None:
        op = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
        kernel, stride, padding = (_pair(v) for v in (mod.kernel_size, mod.stride or mod.kernel_size, mod.padding))
        attrs = [("ceil_mode", bool(mod.ceil_mode)), ("kernel", kernel), ("padding", padding), ("stride", stride)]
        if op == "maxpool":
            if _pair(mod.dilation) != (1, 1) or mod.return_indices:
                self._unsupported(node, "MaxPool2d with dilation or return_indices")
        else:
            if mod.divisor_override is not None:
                self._unsupported(node, "AvgPool2d with divisor_override")
            attrs.append(("count_include_pad", bool(mod.count_include_pad)))
        self._layer(node, op, (x,), in_shape, out_shape, kernel_size=max(kernel), stride=max(stride),
                    padding=max(padding), attrs=tuple(sorted(attrs)))

    def _functional_pool(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        params = ("kernel_size", "stride", "padding")
        values = {k: node.kwargs.get(k, node.args[i + 1] if len(node.args) > i + 1 else None)
                  for i, k in enumerate(params)}
        for k, v in {**values, **node.kwargs}.items():
            found: list[Any] = []
            torch.fx.node.map_aggregate(v, found.append)
            if any(isinstance(a, torch.fx.Node) for a in found):  # e.g. avg_pool2d(x, x.shape[-1])
                self._unsupported(node, f"{name} with a {k} computed from a tensor's size (give it as a "
                                  "number, or use adaptive_avg_pool2d)")
        defaults = {"dilation": (1, 1), "return_indices": False, "divisor_override": None}
        for k, v in node.kwargs.items():
            if k in defaults and (_pair(v) if k == "dilation" else v) == defaults[k]:
                continue
            if k not in params + ("ceil_mode", "count_include_pad"):
                self._unsupported(node, f"{name} with {k}={v!r}")
        if len(node.args) > 1 + len(params):
            self._unsupported(node, f"{name} with more than {len(params)} positional arguments")
        cls = nn.MaxPool2d if "max" in name else nn.AvgPool2d
        kwargs = {k: v for k, v in values.items() if v is not None}
        if "ceil_mode" in node.kwargs:
            kwargs["ceil_mode"] = node.kwargs["ceil_mode"]
        if "count_include_pad" in node.kwargs and cls is nn.AvgPool2d:
            kwargs["count_include_pad"] = node.kwargs["count_include_pad"]
        self._pool(node, cls(**kwargs), x, self.specs[x].out_shape, self._shape(node))

    # ----------------------------------------------------------------- helpers
    def _layer(self, node: torch.fx.Node, op: str, inputs: tuple[int, ...], in_shape: tuple,
               out_shape: tuple, **kwargs: Any) -> None:
        self.values[node] = ("layer", self._emit(node, op, inputs, in_shape, out_shape, **kwargs))

    def _emit(self, node: torch.fx.Node, op: str, inputs: tuple[int, ...], in_shape: tuple,
              out_shape: tuple, **kwargs: Any) -> int:
        name = str(node.target) if node.op == "call_module" else node.name
        self.specs.append(LayerSpec(op, inputs, tuple(in_shape), tuple(out_shape), name=name, **kwargs))
        return len(self.specs) - 1

    def _shape(self, node: torch.fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if not _is_tensor_meta(meta):
            self._unsupported(node, "an operation that does not return one tensor")
        return tuple(int(s) for s in meta.shape[1:])

    def _is_tensor(self, arg: Any) -> bool:
        if not isinstance(arg, torch.fx.Node):
            return False
        value = self.values.get(arg)
        return value is not None and value[0] != "meta"

    def _tensor_arg(self, node: torch.fx.Node, position: int) -> int:
        arg = node.args[position] if len(node.args) > position else None
        return self._layer_index(arg, node)

    def _layer_index(self, arg: Any, node: torch.fx.Node) -> int:
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if value is None or value[0] != "layer":
            kind = {"pieces": "the tuple of chunk/split", "shuffle5d": "a grouped 5-d view"}.get(
                value[0] if value else "", _describe(arg))
            self._unsupported(node, f"{_target_name(node)} applied to {kind}")
        return value[1]

    def _unsupported(self, node: torch.fx.Node, what: str) -> None:
        raise UnsupportedLayerError(
            f"trace: node {node.name!r} (target {_target_name(node)}) uses {what}, which is not "
            f"supported. Supported modules: {', '.join(SUPPORTED_MODULES)}. Supported functional "
            f"ops: {'; '.join(SUPPORTED_FUNCTIONS)}."
        )


def _prune(specs: list[LayerSpec], output: int) -> list[LayerSpec]:
    """Drop layers that do not reach the output and renumber so the output is last."""
    live = {output}
    for j in range(output, -1, -1):
        if j in live:
            live.update(specs[j].inputs)
    live.add(0)
    order = [j for j in range(output + 1) if j in live]
    index = {old: new for new, old in enumerate(order)}
    return [specs[j]._replace(inputs=tuple(index[i] for i in specs[j].inputs)) for j in order]


def _flat_args(node: torch.fx.Node) -> list[Any]:
    out: list[Any] = []
    torch.fx.node.map_aggregate((node.args, node.kwargs), out.append)
    return out


def _is_tensor_meta(meta: Any) -> bool:
    return meta is not None and hasattr(meta, "shape") and hasattr(meta, "dtype")


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _target_name(node: torch.fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return repr(target)
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', str(target))}".lstrip(".")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"


__all__ = ["SUPPORTED_FUNCTIONS", "SUPPORTED_MODULES", "trace"]
