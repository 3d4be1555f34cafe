r"""Trace any ``torch.fx``-traceable network into an :class:`ArchGraph`.

Paper section 3.2 / appendix 6.2: the search space is defined on the teacher's layers, so the
teacher is read as a graph of layers with their attributes, shapes (by shape propagation on an
example input) and edges. Module layers and their functional forms map to the same layer types;
``x.chunk``/``split`` become ``slice`` layers and the view-transpose-view channel shuffle becomes
one ``shuffle`` layer.
"""

from __future__ import annotations

import math
import operator
import threading
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from botorch_archsearch.exceptions import ArchSearchError, UnsupportedLayerError
from botorch_archsearch.graph.arch_graph import ArchGraph, LayerSpec

_TRACE_LOCK = threading.RLock()
"""Held while torch.fx traces and the traced module runs: fx patches process-wide functions while
it traces, so two traces in threads at once break each other."""

SUPPORTED_MODULES: tuple[str, ...] = (
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv1d (ECA: one kernel across the channels of a gate)",
    "Conv2d",
    "Dropout",
    "Dropout2d",
    "ELU",
    "Flatten",
    "GELU",
    "GroupNorm",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Mish",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "DropPath / StochasticDepth (any module of that class name; the identity at inference)",
)
SUPPORTED_FUNCTIONS: tuple[str, ...] = (
    "add / + / += (two tensors of one shape; adding 0, as sum() of pieces does)",
    "channel gates: mul / * / div / / of a feature map by an N x C x 1 x 1 (or N x 1 x H x W) tensor "
    "computed from the network (squeeze-and-excitation with 1x1 convolutions or with Linear layers and "
    "view(N, C, 1, 1); ECA's Conv1d across the channels after squeeze/transpose/view; expand_as)",
    "per-channel scales: mul / * by a parameter or buffer of C entries (layer scale)",
    "torch.cat(dim=1)",
    "chunk / split (dim=1), with indexing of the pieces; x[:, a:b] channel slices",
    "flatten(start_dim=1) / view or reshape to (N, -1)",
    "relu / relu6 / sigmoid / hardsigmoid / tanh / silu / gelu / hardswish / mish / leaky_relu",
    "mean over (2, 3)",
    "adaptive_avg_pool2d / avg_pool2d / max_pool2d",
    "batch_norm / layer_norm / group_norm with the module's parameters and buffers",
    "LayerNorm over channels: permute(0, 2, 3, 1) -> LayerNorm / layer_norm, Linear (as 1x1 "
    "convolutions), activations, layer scale -> permute(0, 3, 1, 2)",
    "interpolate / upsample (nearest, bilinear; by size or scale factor)",
    "dropout / dropout2d / stochastic_depth (torchvision)",
    "contiguous, expand_as",
    "channel shuffle: view(N, g, C // g, H, W) -> transpose(1, 2) -> view/reshape(N, C, H, W)",
    "size() / shape and integer arithmetic on them (resolved at the example input's size)",
)

# Modules, by class name, that are the identity at inference (drop-path / stochastic depth).
DROP_PATH_MODULES = ("DropPath", "StochasticDepth")
# What attention models call; they get their own error (not yet supported).
_ATTENTION_MODULES = ("MultiheadAttention", "ShiftedWindowAttention", "ShiftedWindowAttentionV2",
                      "RelativePositionalMultiHeadAttention")
_ATTENTION_FUNCTIONS = ("scaled_dot_product_attention", "shifted_window_attention", "shifted_window_attention_v2",
                        "matmul", "bmm", "einsum", "baddbmm", "__matmul__", "multi_head_attention_forward")

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
_MODULE_CLASSES = tuple(getattr(nn, name.split()[0]) for name in SUPPORTED_MODULES if hasattr(nn, name.split()[0]))
_MODULE_NAMES = frozenset(name.split()[0] for name in SUPPORTED_MODULES)
_RESHAPES = ("view", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute")
# Views of a parameter that keep its entries (a layer scale reshaped to broadcast over a map).
_PARAM_VIEWS = ("view", "reshape", "unsqueeze", "squeeze", "getitem", "flatten", "contiguous")
_ACTIVATION_FUNCTIONS: dict[Any, str] = {
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.silu: "silu",
    F.gelu: "gelu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    F.mish: "mish",
    F.leaky_relu: "leaky_relu",
    F.elu: "elu",
}
_ACTIVATION_METHODS = {"sigmoid": "sigmoid", "tanh": "tanh", "sigmoid_": "sigmoid", "tanh_": "tanh"}
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_MUL_FUNCTIONS = (operator.mul, operator.imul, torch.mul)
_DIV_FUNCTIONS = (operator.truediv, operator.itruediv, torch.div, torch.true_divide)
_UPSAMPLE_MODES = ("nearest", "bilinear")

# Handlers of supported modules on a channels-first tensor, by exact class; a subclass (one that
# keeps its base's class name) falls back to the first base in _MODULE_SUBCLASS_HANDLERS.
_MODULE_HANDLERS: dict[type, str] = {
    nn.Conv2d: "_conv_module",
    nn.Linear: "_linear_module",
    nn.BatchNorm2d: "_batchnorm_module",
    nn.LayerNorm: "_layernorm_module",
    nn.GroupNorm: "_groupnorm_module",
    nn.Upsample: "_upsample_module",
    nn.UpsamplingNearest2d: "_upsample_module",
    nn.UpsamplingBilinear2d: "_upsample_module",
    nn.ReLU: "_relu_module",
    nn.ReLU6: "_relu_module",
    **dict.fromkeys(_ACTIVATION_MODULES, "_activation_module"),
    nn.MaxPool2d: "_pool",
    nn.AvgPool2d: "_pool",
    nn.AdaptiveAvgPool2d: "_adaptive_avgpool_module",
    nn.Flatten: "_flatten_module",
    nn.Dropout: "_dropout_module",
    nn.Dropout2d: "_dropout_module",
}
# In order; activations are matched by exact class only.
_MODULE_SUBCLASS_HANDLERS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (nn.Conv2d, "_conv_module"),
    (nn.Linear, "_linear_module"),
    (nn.BatchNorm2d, "_batchnorm_module"),
    (nn.LayerNorm, "_layernorm_module"),
    (nn.GroupNorm, "_groupnorm_module"),
    (nn.Upsample, "_upsample_module"),
    ((nn.MaxPool2d, nn.AvgPool2d), "_pool"),
    (nn.AdaptiveAvgPool2d, "_adaptive_avgpool_module"),
    (nn.Flatten, "_flatten_module"),
    ((nn.Dropout, nn.Dropout2d), "_dropout_module"),
)
# Handlers of modules on a channels-last view (made channels-first layers), likewise.
_LAST_MODULE_HANDLERS: dict[type, str] = {
    nn.Linear: "_last_linear",
    nn.LayerNorm: "_last_layernorm",
    nn.ReLU: "_last_relu",
    nn.ReLU6: "_last_relu",
    **dict.fromkeys(_ACTIVATION_MODULES, "_last_activation"),
    nn.Dropout: "_last_dropout",
}
_LAST_MODULE_SUBCLASS_HANDLERS: tuple[tuple[type, str], ...] = (
    (nn.Linear, "_last_linear"),
    (nn.LayerNorm, "_last_layernorm"),
)
# Arithmetic, by target or name: dispatched before the channels-last and channel-vector states.
_ARITHMETIC_TARGETS: dict[Any, str] = {
    **dict.fromkeys(_MUL_FUNCTIONS, "_mul_function"),
    **dict.fromkeys(_DIV_FUNCTIONS, "_div_function"),
    **dict.fromkeys(_ADD_FUNCTIONS, "_add"),
}
_ARITHMETIC_NAMES: dict[str, str] = {
    **dict.fromkeys(("mul", "mul_", "__mul__", "__rmul__", "__imul__"), "_mul_function"),
    **dict.fromkeys(("div", "div_", "__truediv__", "__itruediv__"), "_div_function"),
    **dict.fromkeys(("add", "add_", "__iadd__", "__add__", "__radd__"), "_add"),
}
# Other functions and methods on channels-first tensors, by target, else by name (a target's own
# name never names another handler, so the two lookups cannot disagree).
_FUNCTION_TARGETS: dict[Any, str] = {
    torch.cat: "_cat",
    F.relu: "_relu_function",
    torch.relu: "_relu_function",
    F.relu6: "_relu6_function",
    **dict.fromkeys(_ACTIVATION_FUNCTIONS, "_activation_function"),
    torch.flatten: "_flatten_function",
    operator.getitem: "_getitem",
    torch.chunk: "_chunk",
    torch.split: "_chunk",
    F.adaptive_avg_pool2d: "_adaptive_avgpool_function",
    **dict.fromkeys((F.avg_pool2d, F.max_pool2d, F.max_pool2d_with_indices), "_functional_pool"),
    F.dropout: "_dropout_function",
    F.dropout2d: "_dropout_function",
    F.batch_norm: "_batch_norm",
    F.layer_norm: "_layer_norm_function",
    F.group_norm: "_group_norm_function",
    F.interpolate: "_interpolate_function",
}
_FUNCTION_NAMES: dict[str, str] = {
    **dict.fromkeys(("relu", "relu_"), "_relu_function"),
    "flatten": "_flatten_function",
    **dict.fromkeys(("view", "reshape"), "_view"),
    "contiguous": "_contiguous_function",
    **dict.fromkeys(("expand_as", "expand"), "_expand_function"),
    **dict.fromkeys(("chunk", "split"), "_chunk"),
    "mean": "_mean",
    **dict.fromkeys(("avg_pool2d", "max_pool2d"), "_functional_pool"),
    **dict.fromkeys(("dropout", "dropout2d"), "_dropout_function"),
    "stochastic_depth": "_stochastic_depth_function",
    "batch_norm": "_batch_norm",
    "layer_norm": "_layer_norm_function",
    "group_norm": "_group_norm_function",
    **dict.fromkeys(("interpolate", "upsample", "upsample_nearest", "upsample_bilinear"),
                    "_interpolate_function"),
}
# Names that dispatch only as Tensor methods (``x.sigmoid()``), not as any function of that name.
_METHOD_NAMES: dict[str, str] = dict.fromkeys(_ACTIVATION_METHODS, "_activation_function")


def trace(module: nn.Module, example_input: torch.Tensor) -> ArchGraph:
    r"""Trace a network into an :class:`ArchGraph`.

    The module is traced with ``torch.fx`` in eval mode (so branches taken only in training, such
    as auxiliary heads, are left out; drop-path modules are kept whole, as the identity) and run
    once on ``example_input`` (in eval mode, without gradients; the module is left as it was) to
    record every layer's shapes. Arguments computed from shapes (``x.shape[-1]`` as a pool size)
    take their values at ``example_input``'s size.

    Args:
        module: Any ``torch.fx``-traceable ``nn.Module`` with one tensor input and one tensor
            output, built from the supported layers (:data:`SUPPORTED_MODULES`,
            :data:`SUPPORTED_FUNCTIONS`). Each module and parameter may be used once (no weight
            sharing).
        example_input: A `b x C x H x W` tensor (any batch size ``b >= 1``) shaped like the
            network's input.

    Returns:
        The graph: layer 0 is the input, the last layer produces the output.

    Raises:
        UnsupportedLayerError: Naming the first node that uses an unsupported layer or op (and,
            for attention models, saying that they are not supported yet).
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
    # torch.fx patches process-wide functions while it traces: one trace at a time (threads)
    with _TRACE_LOCK:
        # The traced module shares its submodules with `module`: remember every training flag, the
        # buffers (a functional batch norm in training mode would update them) and the attributes (fx
        # stores tensors made in forward on the module).
        flags = [(m, m.training) for m in module.modules()]
        tensors = dict(module.named_parameters()) | dict(module.named_buffers())
        buffers = [(b, b.detach().clone()) for _, b in module.named_buffers()]
        attributes = set(vars(module))
        try:
            module.eval()
            try:
                gm = torch.fx.GraphModule(module, _LeafTracer().trace(module))
            except Exception as e:  # fx raises many types; report them all as one clear error
                _check_attention_module(module)
                raise ArchSearchError(
                    f"trace: torch.fx could not trace {type(module).__name__} ({type(e).__name__}: "
                    f"{_first_line(e)}). {_fx_hint(e)}"
                ) from None
            _check_attention(gm, type(module).__name__)
            placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
            if len(placeholders) != 1:
                raise UnsupportedLayerError(
                    f"trace: the network takes {len(placeholders)} inputs ({', '.join(placeholders)}); only "
                    "networks with a single tensor input are supported."
                )
            recorder = _ShapeRecorder(gm)
            try:
                with torch.no_grad():
                    recorder.run(example_input)
            except Exception as e:
                raise ArchSearchError(
                    f"trace: running {type(module).__name__} on an input of shape {tuple(example_input.shape)} failed"
                    f"{'' if recorder.node is None else f' at node {recorder.node.name!r}'} ({type(e).__name__}: "
                    f"{_first_line(e)})."
                ) from None
        finally:
            for m, training in flags:
                m.training = training
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for name in set(vars(module)) - attributes:
                delattr(module, name)
    tracer = _Tracer(gm, tensors)
    try:
        return tracer.run()
    except ArchSearchError:
        raise
    except Exception as e:  # a pattern the handlers did not foresee: still one clear error
        node = tracer.node
        raise UnsupportedLayerError(
            f"trace: node {getattr(node, 'name', '?')!r} (target {_target_name(node) if node is not None else '?'}) "
            f"could not be read as a supported layer ({type(e).__name__}: {_first_line(e)}). Supported modules: "
            f"{', '.join(SUPPORTED_MODULES)}. Supported functional ops: {'; '.join(SUPPORTED_FUNCTIONS)}."
        ) from None


class _LeafTracer(torch.fx.Tracer):
    """fx's tracer, keeping drop-path modules whole (they are the identity at inference)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m).__name__ in DROP_PATH_MODULES or super().is_leaf_module(m, module_qualified_name)


_ATTENTION_ERROR = (
    "trace: {what} is an attention model ({why}); attention models (ViT, Swin, MaxViT and other "
    "transformers) are not supported yet: the search space covers convolutional networks."
)


def _check_attention_module(module: nn.Module) -> None:
    """After fx failed: name attention modules as the reason, if there are any."""
    for name, m in module.named_modules():
        if type(m).__name__ in _ATTENTION_MODULES:
            raise UnsupportedLayerError(_ATTENTION_ERROR.format(
                what=type(module).__name__, why=f"module {name!r} is a {type(m).__name__}"))


def _check_attention(gm: torch.fx.GraphModule, what: str) -> None:
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module" and type(modules[node.target]).__name__ in _ATTENTION_MODULES:
            why = f"node {node.name!r} calls a {type(modules[node.target]).__name__}"
        elif node.op in ("call_function", "call_method") and _plain_name(node) in _ATTENTION_FUNCTIONS:
            why = f"node {node.name!r} calls {_plain_name(node)}"
        else:
            continue
        raise UnsupportedLayerError(_ATTENTION_ERROR.format(what=what, why=why))


class _ShapeRecorder(torch.fx.Interpreter):
    """torch.fx's ShapeProp (each node's ``tensor_meta``) without the traceback it prints to stderr and
    repeats in its error before raising: the node that fails is kept for our own one-line error.
    Values that are not tensors (sizes, integers computed from them) are kept as ``value``."""

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
        elif isinstance(result, (int, float, bool, tuple, list, torch.Size)) or result is None:
            n.meta["value"] = tuple(result) if isinstance(result, torch.Size) else result
        n.meta["type"] = type(result)
        return result


class _Tracer:
    """Walks the fx graph once and emits layer specs."""

    def __init__(self, gm: torch.fx.GraphModule, tensors: dict[str, torch.Tensor]) -> None:
        self.gm = gm
        self.tensors = tensors  # the module's own parameters and buffers, by qualified name
        self.modules = dict(gm.named_modules())
        self.specs: list[LayerSpec] = []
        # fx node -> ("layer", index)       a channels-first tensor (or N x F features)
        #          | ("last", index)        the same tensor permuted to channels-last (N x H x W x C)
        #          | ("bcast", index)       a tensor expanded for broadcasting (only a gate may use it)
        #          | ("pieces", index, [(start, stop), ...])
        #          | ("shuffle5d", index, groups, transposed)
        #          | ("param", qualified name, shape)   a parameter or buffer of the module
        #          | ("meta",)              sizes and numbers
        self.values: dict[torch.fx.Node, tuple] = {}
        self.used_modules: set[str] = set()
        self.used_params: dict[str, str] = {}
        self.node: torch.fx.Node | None = None

    def run(self) -> ArchGraph:
        output_index = None
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "output":
                output_index = self._output(node)
            elif node.op == "get_attr":
                self._get_attr(node)
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
                f"trace: the network output ({_describe(arg)}) is not a single channels-first tensor; only "
                "networks returning one tensor are supported."
            )
        return value[1]

    def _get_attr(self, node: torch.fx.Node) -> None:
        target = str(node.target)
        meta = node.meta.get("tensor_meta")
        if not _is_tensor_meta(meta):
            self.values[node] = ("meta",)
            return
        tensor = self.tensors.get(target)
        if tensor is None:  # a constant fx made from a tensor created in forward
            self.values[node] = ("const", target)
            return
        self.values[node] = ("param", target, tuple(int(s) for s in meta.shape), isinstance(tensor, nn.Parameter))

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
        for name, _ in list(mod.named_parameters()) + list(mod.named_buffers()):
            self._claim(node, f"{target}.{name}")
        if type(mod).__name__ in DROP_PATH_MODULES or type(mod) is nn.Identity:
            self._alias(node, self._tensor_value(node, 0))
            return
        if type(mod).__name__ not in _MODULE_NAMES or not isinstance(mod, _MODULE_CLASSES):
            self._unsupported(node, type(mod).__name__)
        value = self._tensor_value(node, 0)
        if value[0] == "last":
            self._last_module(node, mod, value[1])
            return
        if value[0] == "vec":
            self._vec_module(node, mod, value[1])
            return
        x = self._layer_index(node.args[0], node)
        in_shape = self.specs[x].out_shape
        out_shape = self._shape(node)
        handler = _module_handler(mod, _MODULE_HANDLERS, _MODULE_SUBCLASS_HANDLERS)
        if handler is None:
            self._unsupported(node, type(mod).__name__)
        getattr(self, handler)(node, mod, x, in_shape, out_shape)

    def _last_module(self, node: torch.fx.Node, mod: nn.Module, x: int) -> None:
        """A module applied to a channels-last view: the layer is made channels-first."""
        handler = _module_handler(mod, _LAST_MODULE_HANDLERS, _LAST_MODULE_SUBCLASS_HANDLERS)
        if handler is None:
            self._unsupported(node, f"{type(mod).__name__} on a channels-last tensor (only LayerNorm, Linear, "
                              "activations and dropout between permute(0, 2, 3, 1) and permute(0, 3, 1, 2))")
        getattr(self, handler)(node, mod, x, self.specs[x].out_shape)

    def _call_function(self, node: torch.fx.Node) -> None:
        name = _plain_name(node)
        meta = node.meta.get("tensor_meta")
        if meta is None:
            # size(), .shape, getitem on sizes, integer arithmetic: shape bookkeeping only.
            self.values[node] = ("meta",)
            return
        tensors = [a for a in _flat_args(node) if self._is_tensor(a)]
        if not tensors:
            first_value = self.values.get(node.args[0]) if node.args and isinstance(node.args[0], torch.fx.Node) else None
            shape = tuple(int(s) for s in meta.shape) if _is_tensor_meta(meta) else None
            if (first_value is not None and first_value[0] == "param" and name in _PARAM_VIEWS and shape is not None
                    and math.prod(shape) == math.prod(first_value[2]) and _keeps_order(node, name)):
                self.values[node] = ("param", first_value[1], shape, first_value[3])  # gamma.view(1, -1, 1, 1)
                return
            if any(isinstance(a, torch.fx.Node) and self.values.get(a, ("",))[0] in ("param", "const")
                   for a in _flat_args(node)):
                self.values[node] = ("const", node.name)  # arithmetic on parameters alone
                return
            self._unsupported(node, f"{name} creating a tensor from no input tensor")
        first = node.args[0] if node.args else None
        value = self.values.get(first) if isinstance(first, torch.fx.Node) else None
        if value is not None and value[0] == "shuffle5d":
            self._continue_shuffle(node, name, value)
            return
        if value is not None and value[0] == "pieces":
            self._piece(node, name, value)
            return
        self._dispatch_function(node, name, value)

    def _dispatch_function(self, node: torch.fx.Node, name: str, value: tuple | None) -> None:
        """Arithmetic first, then reshapes of channel vectors, permutes and the channels-last and
        channel-vector states, then the handler of the target or name."""
        arithmetic = _ARITHMETIC_TARGETS.get(node.target) or _ARITHMETIC_NAMES.get(name)
        if arithmetic is not None:
            getattr(self, arithmetic)(node, name)
        elif value is not None and value[0] in ("layer", "vec", "bcast") and name in _RESHAPES and self._is_vector(
                node, value):
            self._reshape_vector(node, value)
        elif name == "permute":
            self._permute(node)
        elif value is not None and value[0] == "last":
            self._last_function(node, name, value[1])
        elif value is not None and value[0] == "vec":
            self._vec_function(node, name, value[1])
        else:
            handler = (_FUNCTION_TARGETS.get(node.target) or _FUNCTION_NAMES.get(name)
                       or (_METHOD_NAMES.get(name) if node.op == "call_method" else None))
            if handler is None:
                self._unsupported(node, name)
            getattr(self, handler)(node, name)

    def _last_function(self, node: torch.fx.Node, name: str, x: int) -> None:
        """A function applied to a channels-last view (permute back, norms, activations)."""
        in_shape = self.specs[x].out_shape
        target = node.target
        if name == "contiguous":
            self.values[node] = ("last", x)
        elif target in (F.relu, torch.relu) or name in ("relu", "relu_"):
            self._layer(node, "relu", (x,), in_shape, in_shape, last=True)
        elif target in _ACTIVATION_FUNCTIONS or (node.op == "call_method" and name in _ACTIVATION_METHODS):
            self._layer(node, "activation", (x,), in_shape, in_shape,
                        attrs=self._activation_function_attrs(node, name), last=True)
        elif target in (F.dropout,) or name == "dropout":
            p = self._arg(node, 1, "p", 0.5)
            self._layer(node, "dropout", (x,), in_shape, in_shape, attrs=(("kind", "element"), ("p", float(p))),
                        last=True)
        elif name == "stochastic_depth":
            self.values[node] = ("last", x)
        elif target is F.layer_norm or name == "layer_norm":
            weight, bias = self._param_arg(node, 2, "weight"), self._param_arg(node, 3, "bias")
            self._layernorm(node, x, tuple(self._arg(node, 1, "normalized_shape", ())),
                            float(self._arg(node, 4, "eps", 1e-5)), weight is not None, bias is not None,
                            (weight, bias), last=True)
        else:
            self._unsupported(node, f"{name} on a channels-last tensor (only LayerNorm, Linear, activations, "
                              "dropout, layer scale and adds between permute(0, 2, 3, 1) and permute(0, 3, 1, 2))")

    def _is_vector(self, node: torch.fx.Node, value: tuple) -> bool:
        """Whether ``node`` reshapes a channel vector (`C`, `C x 1 x 1`) into another shape of it
        (``(1, C)`` for a Conv1d across channels, back to ``C x 1 x 1`` for a gate)."""
        spec = self.specs[value[1]].out_shape
        c = spec[0]
        out = self._shape(node)
        if spec not in ((c,), (c, 1, 1)) or c < 2 or math.prod(out) != c or c not in out:
            return False
        if value[0] == "layer" and (out == spec or len(out) == 1):
            return False  # an alias or a flatten: the layers of their own
        if _plain_name(node) == "permute" and len(out) == 3:
            return False  # to channels-last and back (LayerNorm over the channels of a C x 1 x 1 map)
        return True

    def _reshape_vector(self, node: torch.fx.Node, value: tuple) -> None:
        x = value[1]
        spec = self.specs[x].out_shape
        out = self._shape(node)
        if out == spec:
            self.values[node] = ("layer", x)
        elif out == (spec[0], 1, 1):  # N x C features viewed as a gate: only a gate may use them
            self.values[node] = ("bcast", x)
        else:
            self.values[node] = ("vec", x)

    def _vec_module(self, node: torch.fx.Node, mod: nn.Module, x: int) -> None:
        """A module applied to a reshaped channel vector: ECA's Conv1d, or the gate's activation."""
        in_shape = self.specs[x].out_shape
        c = in_shape[0]
        if isinstance(mod, nn.Conv1d):
            meta_shape = self._shape(node.args[0])
            if (meta_shape != (1, c) or mod.in_channels != 1 or mod.out_channels != 1 or mod.groups != 1
                    or mod.stride != (1,) or mod.dilation != (1,) or isinstance(mod.padding, str)
                    or mod.padding_mode != "zeros" or self._shape(node) != (1, c)):
                self._unsupported(node, f"Conv1d({mod.in_channels}, {mod.out_channels}, {mod.kernel_size}) on a "
                                  f"{meta_shape} view of {c} channels (only ECA's Conv1d(1, 1, k) across them, "
                                  "stride 1, size-preserving padding)")
            k, pad = mod.kernel_size[0], mod.padding[0]
            self._layer(node, "channelconv", (x,), in_shape, (c, 1, 1), kernel_size=k, stride=1, padding=pad,
                        attrs=(("bias", mod.bias is not None),))
            self.values[node] = ("vec", self.values[node][1])
        elif type(mod) in _ACTIVATION_MODULES or type(mod) in (nn.ReLU, nn.ReLU6):
            op = "activation" if type(mod) in _ACTIVATION_MODULES else type(mod).__name__.lower()
            attrs = _activation_attrs(mod) if op == "activation" else ()
            self._layer(node, op, (x,), in_shape, in_shape, attrs=attrs)
            self.values[node] = ("vec", self.values[node][1])
        else:
            self._unsupported(node, f"{type(mod).__name__} on a reshaped channel vector (only ECA's Conv1d and "
                              "activations)")

    def _vec_function(self, node: torch.fx.Node, name: str, x: int) -> None:
        in_shape = self.specs[x].out_shape
        target = node.target
        if target in (F.relu, torch.relu) or name in ("relu", "relu_"):
            self._layer(node, "relu", (x,), in_shape, in_shape)
        elif target in _ACTIVATION_FUNCTIONS or (node.op == "call_method" and name in _ACTIVATION_METHODS):
            self._layer(node, "activation", (x,), in_shape, in_shape, attrs=self._activation_function_attrs(node, name))
        elif name == "contiguous":
            self.values[node] = ("vec", x)
            return
        else:
            self._unsupported(node, f"{name} on a reshaped channel vector (only reshapes, ECA's Conv1d and "
                              "activations until it is a C x 1 x 1 gate again)")
        self.values[node] = ("vec", self.values[node][1])

    # ----------------------------------------------------------------- module handlers
    # Each takes (node, module, input layer, input shape, output shape), from _MODULE_HANDLERS.
    def _conv_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                     out_shape: tuple) -> None:
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

    def _linear_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                       out_shape: tuple) -> None:
        if len(in_shape) != 1:
            self._unsupported(node, f"Linear on a {len(in_shape) + 1}-d tensor of shape (N, {in_shape}) "
                              "(only on N x F features, or on channels-last maps)")
        self._layer(node, "linear", (x,), in_shape, out_shape, attrs=(("bias", mod.bias is not None),))

    def _batchnorm_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                          out_shape: tuple) -> None:
        attrs = (
            ("affine", mod.affine),
            ("eps", float(mod.eps)),
            ("momentum", mod.momentum),
            ("track_running_stats", mod.track_running_stats),
        )
        self._layer(node, "batchnorm", (x,), in_shape, out_shape, attrs=attrs)

    def _layernorm_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                          out_shape: tuple) -> None:
        self._layernorm(node, x, tuple(mod.normalized_shape), float(mod.eps), mod.weight is not None,
                        mod.bias is not None, None)

    def _groupnorm_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                          out_shape: tuple) -> None:
        self._groupnorm(node, x, int(mod.num_groups), float(mod.eps), mod.affine, None)

    def _upsample_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                         out_shape: tuple) -> None:
        self._upsample(node, x, mod.size, mod.scale_factor, mod.mode, mod.align_corners,
                       getattr(mod, "recompute_scale_factor", None))

    def _relu_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                     out_shape: tuple) -> None:
        """ReLU or ReLU6 (exact classes only), as the layer type of that name."""
        self._layer(node, type(mod).__name__.lower(), (x,), in_shape, out_shape)

    def _activation_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                           out_shape: tuple) -> None:
        self._layer(node, "activation", (x,), in_shape, out_shape, attrs=_activation_attrs(mod))

    def _adaptive_avgpool_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                                 out_shape: tuple) -> None:
        self._layer(node, "adaptive_avgpool", (x,), in_shape, out_shape,
                    attrs=(("output_size", tuple(out_shape[1:])),))

    def _flatten_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                        out_shape: tuple) -> None:
        if mod.start_dim not in (1, -len(in_shape)) or mod.end_dim != -1:
            self._unsupported(node, f"Flatten(start_dim={mod.start_dim}, end_dim={mod.end_dim})")
        self._flatten(node, x, in_shape, out_shape)

    def _dropout_module(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple,
                        out_shape: tuple) -> None:
        kind = "channel" if isinstance(mod, nn.Dropout2d) else "element"
        self._layer(node, "dropout", (x,), in_shape, out_shape, attrs=(("kind", kind), ("p", float(mod.p))))

    # Each takes (node, module, input layer, input shape), from _LAST_MODULE_HANDLERS; the layer keeps
    # the channels-last view.
    def _last_linear(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple) -> None:
        """Linear over the channels of a channels-last map: a 1x1 convolution."""
        out_shape = (mod.out_features,) + in_shape[1:]
        attrs = (("bias", mod.bias is not None), ("dilation", (1, 1)), ("kernel", (1, 1)),
                 ("padding", (0, 0)), ("stride", (1, 1)))
        self._layer(node, "conv", (x,), in_shape, out_shape, kernel_size=1, stride=1, padding=0,
                    groups=1, attrs=attrs, last=True)

    def _last_layernorm(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple) -> None:
        self._layernorm(node, x, tuple(mod.normalized_shape), float(mod.eps), mod.weight is not None,
                        mod.bias is not None, None, last=True)

    def _last_relu(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple) -> None:
        self._layer(node, type(mod).__name__.lower(), (x,), in_shape, in_shape, last=True)

    def _last_activation(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple) -> None:
        self._layer(node, "activation", (x,), in_shape, in_shape, attrs=_activation_attrs(mod), last=True)

    def _last_dropout(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple) -> None:
        self._layer(node, "dropout", (x,), in_shape, in_shape,
                    attrs=(("kind", "element"), ("p", float(mod.p))), last=True)

    # ----------------------------------------------------------------- function handlers
    # Each takes (node, name), from _ARITHMETIC_* and _FUNCTION_* / _METHOD_NAMES.
    def _mul_function(self, node: torch.fx.Node, name: str) -> None:
        self._mul(node, name, divide=False)

    def _div_function(self, node: torch.fx.Node, name: str) -> None:
        self._mul(node, name, divide=True)

    def _relu_function(self, node: torch.fx.Node, name: str) -> None:
        self._simple(node, "relu")

    def _relu6_function(self, node: torch.fx.Node, name: str) -> None:
        self._simple(node, "relu6")

    def _activation_function(self, node: torch.fx.Node, name: str) -> None:
        self._simple(node, "activation", attrs=self._activation_function_attrs(node, name))

    def _flatten_function(self, node: torch.fx.Node, name: str) -> None:
        start = self._arg(node, 1, "start_dim", 0)
        end = self._arg(node, 2, "end_dim", -1)
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        if start not in (1, -len(in_shape)) or end != -1:
            self._unsupported(node, f"flatten(start_dim={start}, end_dim={end})")
        self._flatten(node, x, in_shape, self._shape(node))

    def _contiguous_function(self, node: torch.fx.Node, name: str) -> None:
        self._alias(node, self.values[node.args[0]])

    def _expand_function(self, node: torch.fx.Node, name: str) -> None:
        """``expand_as`` / ``expand``: the tensor itself, or a gate broadcast to a map."""
        v = self._tensor_value(node, 0)
        if v[0] not in ("layer", "bcast"):
            self._unsupported(node, f"{name} of {self._kind(v)}")
        x = v[1]
        self.values[node] = ("layer", x) if self._shape(node) == self.specs[x].out_shape else ("bcast", x)

    def _adaptive_avgpool_function(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        out_shape = self._shape(node)
        self._layer(node, "adaptive_avgpool", (x,), self.specs[x].out_shape, out_shape,
                    attrs=(("output_size", tuple(out_shape[1:])),))

    def _dropout_function(self, node: torch.fx.Node, name: str) -> None:
        p = self._arg(node, 1, "p", 0.5)
        kind = "channel" if "2d" in name else "element"
        self._simple(node, "dropout", attrs=(("kind", kind), ("p", float(p))))

    def _stochastic_depth_function(self, node: torch.fx.Node, name: str) -> None:
        """torchvision's ``stochastic_depth``: the identity at inference."""
        self._alias(node, self._tensor_value(node, 0))

    def _layer_norm_function(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        weight, bias = self._param_arg(node, 2, "weight"), self._param_arg(node, 3, "bias")
        normalized = tuple(self._arg(node, 1, "normalized_shape", ()))
        eps = float(self._arg(node, 4, "eps", 1e-5))
        self._layernorm(node, x, normalized, eps, weight is not None, bias is not None, (weight, bias))

    def _group_norm_function(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        weight, bias = self._param_arg(node, 2, "weight"), self._param_arg(node, 3, "bias")
        if (weight is None) != (bias is None):
            self._unsupported(node, "group_norm with a weight but no bias (or a bias but no weight)")
        groups, eps = int(self._arg(node, 1, "num_groups", 1)), float(self._arg(node, 4, "eps", 1e-5))
        self._groupnorm(node, x, groups, eps, weight is not None, (weight, bias))

    def _interpolate_function(self, node: torch.fx.Node, name: str) -> None:
        """``interpolate`` / ``upsample`` (``upsample_nearest`` / ``upsample_bilinear`` fix the mode)."""
        x = self._tensor_arg(node, 0)
        if name in ("upsample_nearest", "upsample_bilinear"):
            mode, corners = name.split("_")[1], (True if name == "upsample_bilinear" else None)
        else:
            mode, corners = self._arg(node, 3, "mode", "nearest"), self._arg(node, 4, "align_corners", None)
        size, scale = self._arg(node, 1, "size", None), self._arg(node, 2, "scale_factor", None)
        recompute = self._arg(node, 5, "recompute_scale_factor", None)
        self._upsample(node, x, size, scale, mode, corners, recompute)

    # ----------------------------------------------------------------- handlers
    def _simple(self, node: torch.fx.Node, op: str, attrs: tuple = ()) -> None:
        x = self._tensor_arg(node, 0)
        self._layer(node, op, (x,), self.specs[x].out_shape, self._shape(node), attrs=attrs)

    def _alias(self, node: torch.fx.Node, value: tuple) -> None:
        if value[0] not in ("layer", "last", "bcast", "vec"):
            self._unsupported(node, f"{_plain_name(node)} applied to {self._kind(value)}")
        self.values[node] = value

    def _activation_function_attrs(self, node: torch.fx.Node, name: str) -> tuple:
        fn = _ACTIVATION_FUNCTIONS.get(node.target) or _ACTIVATION_METHODS[name]
        if fn == "leaky_relu":
            return (("fn", fn), ("negative_slope", float(self._arg(node, 1, "negative_slope", 0.01))))
        if fn == "elu":
            return (("alpha", float(self._arg(node, 1, "alpha", 1.0))), ("fn", fn))
        if fn == "gelu":
            return (("approximate", self._arg(node, 99, "approximate", "none")), ("fn", fn))
        return (("fn", fn),)

    def _add(self, node: torch.fx.Node, name: str) -> None:
        args = [node.args[0] if node.args else node.kwargs.get("input"),
                node.args[1] if len(node.args) > 1 else node.kwargs.get("other")]
        if self._resolve(node.kwargs.get("alpha", 1)) != 1:
            self._unsupported(node, "add with alpha")
        numbers = [a for a in args if not isinstance(a, torch.fx.Node) or self.values.get(a, ("meta",))[0] == "meta"]
        if len(numbers) == 1 and self._resolve(numbers[0]) == 0:  # 0 + x, as Python's sum() starts
            self._alias(node, self.values[next(a for a in args if a is not numbers[0])])
            return
        kinds = [self.values.get(a, ("meta",))[0] if isinstance(a, torch.fx.Node) else "number" for a in args]
        if kinds == ["last", "last"]:
            a, b = (self.values[arg][1] for arg in args)
            if self.specs[a].out_shape != self.specs[b].out_shape:
                self._unsupported(node, "add with broadcasting")
            self._layer(node, "add", (a, b), self.specs[a].out_shape, self.specs[a].out_shape, last=True)
            return
        if kinds != ["layer", "layer"]:
            self._unsupported(node, f"add of {' and '.join(self._kind(self.values.get(a, ('number',))) for a in args)} "
                              "(only two tensors of the network of one shape)")
        a, b = (self._layer_index(arg, node) for arg in args)
        shape_a, shape_b = self.specs[a].out_shape, self.specs[b].out_shape
        if shape_a != shape_b:
            self._unsupported(node, f"add with broadcasting ({shape_a} + {shape_b})")
        self._layer(node, "add", (a, b), shape_a, self._shape(node))

    def _mul(self, node: torch.fx.Node, name: str, divide: bool) -> None:
        """A channel gate (two network tensors) or a per-channel scale (a tensor and a parameter)."""
        args = [node.args[0] if node.args else node.kwargs.get("input"),
                node.args[1] if len(node.args) > 1 else node.kwargs.get("other")]
        if node.kwargs.get("rounding_mode") is not None:
            self._unsupported(node, f"div with rounding_mode={node.kwargs['rounding_mode']!r}")
        values = [self.values.get(a, ("number",)) if isinstance(a, torch.fx.Node) else ("number",) for a in args]
        kinds = [v[0] for v in values]
        what = "div" if divide else "mul"
        if "param" in kinds and kinds.count("param") == 1 and not divide:
            p = kinds.index("param")
            x_value = values[1 - p]
            if x_value[0] not in ("layer", "last"):
                self._unsupported(node, f"{what} of a parameter by {self._kind(x_value)}")
            self._scale(node, x_value, values[p])
            return
        if sorted(kinds) not in (["layer", "layer"], ["bcast", "layer"]):
            self._unsupported(node, f"{what} of {' and '.join(self._kind(v) for v in values)} (channel gates: a feature "
                              "map times an N x C x 1 x 1 or N x 1 x H x W tensor of the network; layer scale: a "
                              "feature map times a parameter of C entries)")
        idx = [v[1] for v in values]
        out_shape = self._shape(node)
        shapes = [self.specs[i].out_shape for i in idx]
        full = [s == out_shape for s in shapes]
        if divide and not full[0]:
            self._unsupported(node, f"div of a {shapes[0]} tensor by a {shapes[1]} one (only a feature map "
                              "divided by a gate)")
        x_pos = 0 if full[0] else 1
        if not full[x_pos]:
            self._unsupported(node, f"{what} with broadcasting of both sides ({shapes[0]} and {shapes[1]})")
        x, gate = idx[x_pos], idx[1 - x_pos]
        g_shape = shapes[1 - x_pos]
        if len(out_shape) != 3:
            if g_shape != out_shape:
                self._unsupported(node, f"{what} of {shapes[0]} and {shapes[1]} tensors")
            kind = "channel"
        elif g_shape in (out_shape, (out_shape[0], 1, 1), (out_shape[0],)):
            kind = "channel"
        elif g_shape == (1,) + out_shape[1:]:
            kind = "spatial"
        else:
            self._unsupported(node, f"{what} of a {out_shape} feature map by a {g_shape} tensor (gates must be "
                              "C x 1 x 1, 1 x H x W or of the map's shape)")
        attrs = (("divide", True), ("gate", kind)) if divide else (("gate", kind),)
        self._layer(node, "mul", (x, gate), out_shape, out_shape, attrs=attrs)

    def _scale(self, node: torch.fx.Node, x_value: tuple, param: tuple) -> None:
        last = x_value[0] == "last"
        x = x_value[1]
        shape = self.specs[x].out_shape
        c = shape[0]
        _, path, p_shape, trainable = param
        dims = len(shape) + 1  # with the batch dimension
        channel_axis = dims - 1 if last else 1
        aligned = (1,) * (dims - len(p_shape)) + tuple(p_shape) if len(p_shape) <= dims else None
        if aligned is None or aligned[channel_axis] != c or any(
                s != 1 for k, s in enumerate(aligned) if k != channel_axis):
            self._unsupported(node, f"mul by a parameter of shape {tuple(p_shape)} (a per-channel scale needs "
                              f"{c} entries along the channel dimension)")
        self._claim(node, path)
        attrs = (("tensors", (("weight", path),)),) + (() if trainable else (("buffer", True),))
        self._layer(node, "scale", (x,), shape, shape, attrs=attrs, last=last)

    def _permute(self, node: torch.fx.Node) -> None:
        value = self._tensor_value(node, 0)
        dims = node.args[1:] if len(node.args) > 2 else self._arg(node, 1, "dims", ())
        dims = tuple(int(d) for d in self._resolve(dims))
        n = len(dims)
        dims = tuple(d % n for d in dims) if n else dims
        if dims == tuple(range(n)):
            self._alias(node, value)
        elif value[0] == "layer" and dims == (0, 2, 3, 1):
            self.values[node] = ("last", value[1])
        elif value[0] == "last" and dims == (0, 3, 1, 2):
            self.values[node] = ("layer", value[1])
        else:
            self._unsupported(node, f"permute{dims} of {self._kind(value)} (only to channels-last, (0, 2, 3, 1), "
                              "and back, (0, 3, 1, 2))")

    def _batch_norm(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        shape = self.specs[x].out_shape
        if len(shape) != 3:
            self._unsupported(node, f"batch_norm of a {len(shape) + 1}-d tensor (only N x C x H x W)")
        mean, var = self._param_arg(node, 1, "running_mean"), self._param_arg(node, 2, "running_var")
        weight, bias = self._param_arg(node, 3, "weight"), self._param_arg(node, 4, "bias")
        if (mean is None) != (var is None) or (weight is None) != (bias is None):
            self._unsupported(node, "batch_norm with only one of running_mean and running_var (or of weight "
                              "and bias)")
        roles = (("bias", bias), ("running_mean", mean), ("running_var", var), ("weight", weight))
        tensors = tuple((r, p) for r, p in roles if p is not None)
        if self._arg(node, 5, "training", False) and mean is not None:
            self._unsupported(node, "batch_norm with training=True and running statistics (the batch's statistics "
                              "at inference; pass the module's training flag, or use BatchNorm2d)")
        momentum = self._arg(node, 6, "momentum", 0.1)
        attrs = (
            ("affine", weight is not None),
            ("eps", float(self._arg(node, 7, "eps", 1e-5))),
            ("momentum", None if momentum is None else float(momentum)),
            ("tensors", tensors),
            ("track_running_stats", mean is not None),
        )
        self._layer(node, "batchnorm", (x,), shape, self._shape(node), attrs=attrs)

    def _layernorm(self, node: torch.fx.Node, x: int, normalized: tuple, eps: float, affine: bool, bias: bool,
                   params: tuple | None, last: bool = False) -> None:
        shape = self.specs[x].out_shape
        if bias and not affine:
            self._unsupported(node, "layer_norm with a bias but no weight")
        if normalized != (shape[0],) or (len(shape) != 1 and not last):
            where = "the channels of a channels-last map, or of N x F features"
            self._unsupported(node, f"layer_norm over {normalized} of a tensor of shape (N, {shape}) (only over "
                              f"{where})")
        attrs: tuple = (("affine", affine), ("bias", bias), ("eps", eps))
        if params is not None:
            attrs += (("tensors", tuple((r, p) for r, p in zip(("weight", "bias"), params) if p is not None)),)
        self._layer(node, "layernorm", (x,), shape, shape, attrs=tuple(sorted(attrs)), last=last)

    def _groupnorm(self, node: torch.fx.Node, x: int, groups: int, eps: float, affine: bool,
                   params: tuple | None) -> None:
        shape = self.specs[x].out_shape
        if len(shape) != 3 or groups < 1 or shape[0] % groups:
            self._unsupported(node, f"group_norm of a tensor of shape (N, {shape}) in {groups} groups")
        attrs: tuple = (("affine", affine), ("eps", eps), ("num_groups", groups))
        if params is not None and affine:
            attrs += (("tensors", (("bias", params[1]), ("weight", params[0]))),)
        self._layer(node, "groupnorm", (x,), shape, shape, attrs=attrs)

    def _upsample(self, node: torch.fx.Node, x: int, size: Any, scale: Any, mode: Any, corners: Any,
                  recompute: Any) -> None:
        in_shape = self.specs[x].out_shape
        if len(in_shape) != 3 or mode not in _UPSAMPLE_MODES:
            self._unsupported(node, f"upsampling with mode={mode!r} of a tensor of shape (N, {in_shape}) (only "
                              f"{' and '.join(_UPSAMPLE_MODES)} of N x C x H x W maps)")
        out_shape = self._shape(node)
        if size is None and scale is not None and not recompute:
            scale = tuple(float(s) for s in _pair(scale))
            attrs = (("scale_factor", scale), ("size", None))
        else:
            attrs = (("scale_factor", None), ("size", tuple(out_shape[1:])))
        attrs += (("align_corners", None if corners is None else bool(corners)), ("mode", mode))
        self._layer(node, "upsample", (x,), in_shape, out_shape, attrs=tuple(sorted(attrs)))

    def _cat(self, node: torch.fx.Node, name: str) -> None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = self._arg(node, 1, "dim", 0)
        if not isinstance(tensors, (list, tuple)) or not all(self._is_tensor(t) for t in tensors):
            self._unsupported(node, "torch.cat of non-tensors")
        out_shape = self._shape(node)
        if dim not in (1, -len(out_shape)) or len(out_shape) == 0:
            self._unsupported(node, f"torch.cat(dim={dim}) (only the channel dimension 1)")
        inputs = tuple(self._layer_index(t, node) for t in tensors)
        if any(self.specs[i].out_shape[1:] != out_shape[1:] for i in inputs):
            self._unsupported(node, "torch.cat of tensors with other shapes than the result's")
        if len(inputs) == 1:
            self.values[node] = ("layer", inputs[0])
            return
        self._layer(node, "concat", inputs, out_shape, out_shape)

    def _flatten(self, node: torch.fx.Node, x: int, in_shape: tuple, out_shape: tuple) -> None:
        if len(in_shape) == 1:
            self.values[node] = ("layer", x)
            return
        if len(out_shape) != 1:
            self._unsupported(node, f"flattening {in_shape} to {out_shape}")
        self._layer(node, "flatten", (x,), in_shape, out_shape)

    def _view(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        out_shape = self._shape(node)
        if out_shape == in_shape:
            self.values[node] = ("layer", x)
        elif len(out_shape) == 1 and out_shape[0] == math.prod(in_shape):
            self._flatten(node, x, in_shape, out_shape)
        elif (len(in_shape) == 3 and len(out_shape) == 4 and out_shape[0] * out_shape[1] == in_shape[0]
              and out_shape[2:] == in_shape[1:]):
            self.values[node] = ("shuffle5d", x, out_shape[0], False)
        elif len(in_shape) == 1 and out_shape == (in_shape[0], 1, 1):
            self._unsupported(node, f"{name} from {in_shape} to {out_shape} (a gate from N x C features; compute "
                              "it with 1x1 convolutions on an N x C x 1 x 1 map instead)")
        else:
            self._unsupported(node, f"{name} from {in_shape} to {out_shape} (only flattening and channel shuffle)")

    def _continue_shuffle(self, node: torch.fx.Node, name: str, value: tuple) -> None:
        _, x, groups, transposed = value
        if name == "contiguous":
            self.values[node] = value
            return
        if name == "transpose" or node.target is torch.transpose:
            dims = sorted(int(self._resolve(d)) % 5 for d in node.args[1:3])
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
        dim = self._arg(node, 2, "dim", 0)
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
        index = self._resolve(node.args[1]) if len(node.args) > 1 else None
        if node.target is not operator.getitem or not isinstance(index, int) or not -len(pieces) <= index < len(pieces):
            self._unsupported(node, f"{name} on the pieces of chunk/split (only indexing them)")
        start, stop = pieces[index]
        self._slice(node, x, start, stop)

    def _slice(self, node: torch.fx.Node, x: int, start: int, stop: int) -> None:
        in_shape = self.specs[x].out_shape
        if start == 0 and stop == in_shape[0]:
            self.values[node] = ("layer", x)
            return
        self._layer(node, "slice", (x,), in_shape, self._shape(node),
                    attrs=(("start", start), ("stop", stop)))

    def _getitem(self, node: torch.fx.Node, name: str) -> None:
        """``x[:, a:b]`` (and ``x[:, a:b, :, :]``): a channel slice."""
        x = self._tensor_arg(node, 0)
        index = self._resolve(node.args[1])
        shape = self.specs[x].out_shape
        index = index if isinstance(index, tuple) else (index,)
        full = slice(None, None, None)
        if (len(index) >= 2 and index[0] == full and isinstance(index[1], slice) and index[1].step in (None, 1)
                and all(i == full for i in index[2:]) and len(index) <= len(shape) + 1):
            start, stop, _ = index[1].indices(shape[0])
            if stop > start:
                self._slice(node, x, start, stop)
                return
        if len(index) == 1 and index[0] == full or all(i == full for i in index):
            self.values[node] = ("layer", x)
            return
        self._unsupported(node, f"indexing with {index!r} (only channel slices x[:, a:b])")

    def _mean(self, node: torch.fx.Node, name: str) -> None:
        x = self._tensor_arg(node, 0)
        in_shape = self.specs[x].out_shape
        dims = self._arg(node, 1, "dim", None)
        keepdim = bool(self._arg(node, 2, "keepdim", False))
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if len(in_shape) != 3 or sorted(d % 4 for d in dims) != [2, 3]:
            self._unsupported(node, f"mean(dim={dims}) (only the spatial mean over (2, 3))")
        self._layer(node, "mean", (x,), in_shape, self._shape(node), attrs=(("keepdim", keepdim),))

    def _pool(self, node: torch.fx.Node, mod: nn.Module, x: int, in_shape: tuple, out_shape: tuple) -> None:
        op = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
        if len(in_shape) != 3:
            self._unsupported(node, f"{type(mod).__name__} of a tensor of shape (N, {in_shape})")
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
        values = {k: self._arg(node, i + 1, k, None) for i, k in enumerate(params)}
        defaults = {"dilation": (1, 1), "return_indices": False, "divisor_override": None}
        for k, v in node.kwargs.items():
            v = self._resolve(v)
            if k in defaults and (_pair(v) if k == "dilation" else v) == defaults[k]:
                continue
            if k not in params + ("ceil_mode", "count_include_pad"):
                self._unsupported(node, f"{name} with {k}={v!r}")
        if len(node.args) > 1 + len(params):
            self._unsupported(node, f"{name} with more than {len(params)} positional arguments")
        for k, v in values.items():
            if v is not None and not (isinstance(v, int) or isinstance(v, (tuple, list))
                                      and all(isinstance(a, int) for a in v)):
                self._unsupported(node, f"{name} with {k}={v!r}")
        cls = nn.MaxPool2d if "max" in name else nn.AvgPool2d
        kwargs = {k: v for k, v in values.items() if v is not None}
        if "ceil_mode" in node.kwargs:
            kwargs["ceil_mode"] = self._resolve(node.kwargs["ceil_mode"])
        if "count_include_pad" in node.kwargs and cls is nn.AvgPool2d:
            kwargs["count_include_pad"] = self._resolve(node.kwargs["count_include_pad"])
        self._pool(node, cls(**kwargs), x, self.specs[x].out_shape, self._shape(node))

    # ----------------------------------------------------------------- helpers
    def _layer(self, node: torch.fx.Node, op: str, inputs: tuple[int, ...], in_shape: tuple,
               out_shape: tuple, last: bool = False, **kwargs: Any) -> None:
        self.values[node] = ("last" if last else "layer", self._emit(node, op, inputs, in_shape, out_shape, **kwargs))

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

    def _resolve(self, value: Any) -> Any:
        """``value`` with every size node replaced by the number it had on the example input."""
        def one(a: Any) -> Any:
            if isinstance(a, torch.fx.Node) and "value" in a.meta:
                return a.meta["value"]
            return a
        return torch.fx.node.map_aggregate(value, one)

    def _arg(self, node: torch.fx.Node, position: int, key: str, default: Any) -> Any:
        """Argument ``key`` (keyword) or at ``position`` (positional), resolved to numbers."""
        if key in node.kwargs:
            value = node.kwargs[key]
        elif len(node.args) > position:
            value = node.args[position]
        else:
            return default
        value = self._resolve(value)
        found: list[Any] = []
        torch.fx.node.map_aggregate(value, found.append)
        if any(isinstance(a, torch.fx.Node) for a in found):
            self._unsupported(node, f"{_plain_name(node)} with a {key} computed from a tensor")
        return value

    def _param_arg(self, node: torch.fx.Node, position: int, key: str) -> str | None:
        """The qualified name of the parameter or buffer passed as ``key`` (``None`` if none)."""
        arg = node.kwargs.get(key, node.args[position] if len(node.args) > position else None)
        if arg is None:
            return None
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if value is None or value[0] != "param":
            self._unsupported(node, f"{_plain_name(node)} with a {key} that is not a parameter or buffer of the module")
        if key in ("weight", "bias") and not value[3]:
            self._unsupported(node, f"{_plain_name(node)} with a {key} that is a buffer (only trainable parameters)")
        self._claim(node, value[1])
        return value[1]

    def _claim(self, node: torch.fx.Node, path: str) -> None:
        if path in self.used_params:
            raise UnsupportedLayerError(
                f"trace: parameter {path!r} is used by node {self.used_params[path]!r} and again by node "
                f"{node.name!r}; shared weights cannot be edited per layer."
            )
        self.used_params[path] = node.name

    def _is_tensor(self, arg: Any) -> bool:
        if not isinstance(arg, torch.fx.Node):
            return False
        value = self.values.get(arg)
        return value is not None and value[0] in ("layer", "last", "bcast", "vec", "pieces", "shuffle5d")

    def _tensor_value(self, node: torch.fx.Node, position: int) -> tuple:
        arg = node.args[position] if len(node.args) > position else None
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if value is None or value[0] not in ("layer", "last", "bcast", "vec"):
            self._unsupported(node, f"{_target_name(node)} applied to {self._kind(value) if value else _describe(arg)}")
        return value

    def _tensor_arg(self, node: torch.fx.Node, position: int) -> int:
        arg = node.args[position] if len(node.args) > position else None
        return self._layer_index(arg, node)

    def _layer_index(self, arg: Any, node: torch.fx.Node) -> int:
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if value is None or value[0] != "layer":
            kind = self._kind(value) if value else _describe(arg)
            self._unsupported(node, f"{_target_name(node)} applied to {kind}")
        return value[1]

    @staticmethod
    def _kind(value: tuple | None) -> str:
        return {
            "pieces": "the tuple of chunk/split",
            "shuffle5d": "a grouped 5-d view",
            "last": "a channels-last tensor",
            "bcast": "an expanded tensor",
            "vec": "a reshaped channel vector",
            "param": f"parameter {value[1]!r}" if value and len(value) > 1 else "a parameter",
            "const": "a tensor computed from parameters or made in forward (not a network tensor)",
            "meta": "a number",
            "number": "a number",
            "layer": "a tensor",
        }.get(value[0] if value else "", "an unknown value")

    def _unsupported(self, node: torch.fx.Node, what: str) -> None:
        raise UnsupportedLayerError(
            f"trace: node {node.name!r} (target {_target_name(node)}{_owner(node)}) uses {what}, which is not "
            f"supported. Supported modules: {', '.join(SUPPORTED_MODULES)}. Supported functional "
            f"ops: {'; '.join(SUPPORTED_FUNCTIONS)}."
        )


def _keeps_order(node: torch.fx.Node, name: str) -> bool:
    """Whether a view of a parameter keeps its entries in order (indexing only with ``None``, ``...``
    and full slices)."""
    if name != "getitem":
        return True
    index = node.args[1] if len(node.args) > 1 else None
    index = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or i == slice(None, None, None) for i in index)


def _owner(node: torch.fx.Node) -> str:
    """``", in module 'a.b' (Class)"`` for a node inside a submodule's forward, else ``""``."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, cls = list(stack.values())[-1]
    name = getattr(cls, "__name__", None) or str(cls).rsplit(".", 1)[-1].strip("'>")
    return f", in module {path!r} ({name})" if path else ""


def _module_handler(mod: nn.Module, exact: dict[type, str],
                    subclasses: tuple[tuple[type | tuple[type, ...], str], ...]) -> str | None:
    """The handler's name for ``mod``: by its exact class, else by the first base class it is an
    instance of (as an isinstance chain in that order would), else ``None``."""
    handler = exact.get(type(mod))
    if handler is None:
        handler = next((h for base, h in subclasses if isinstance(mod, base)), None)
    return handler


def _activation_attrs(mod: nn.Module) -> tuple:
    fn, keys = _ACTIVATION_MODULES[type(mod)]
    attrs = (("fn", fn),) + tuple((k, getattr(mod, k)) for k in keys)
    return tuple(sorted(attrs))


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


def _pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _plain_name(node: torch.fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _target_name(node: torch.fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return repr(target)
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', str(target))}".lstrip(".")


def _fx_hint(error: BaseException) -> str:
    if "cannot be iterated" in str(error):
        return ("torch.fx cannot iterate over a traced tensor or the pieces of torch.split/chunk: unpack them "
                "(a, b = torch.split(x, c, dim=1)) or index them (pieces[0]).")
    return "Data-dependent control flow must be removed or wrapped for torch.fx."


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"


__all__ = ["DROP_PATH_MODULES", "SUPPORTED_FUNCTIONS", "SUPPORTED_MODULES", "trace"]
