r"""Teachers from outside the zoo: torchvision classification models by name, and a user's own
network from a ``package.module:function`` string.

A teacher is built by kind (:data:`TEACHER_KINDS`): ``"zoo"`` (:func:`get_teacher`),
``"torchvision"`` (:func:`get_torchvision_model`) or ``"module"`` (:func:`get_module_model`);
:func:`build_teacher` dispatches on it. torchvision is imported only through
:func:`~botorch_archsearch.utils.import_torchvision`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable

from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models._registry import get_teacher
from botorch_archsearch.utils.torchvision import import_torchvision
from botorch_archsearch.utils.validation import check_int

TEACHER_KINDS: tuple[str, ...] = ("module", "torchvision", "zoo")
"""How a teacher is built: a user's function, a torchvision model by name, or the zoo."""

_IDENTIFIERS = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_MODULE_SPEC = re.compile(rf"({_IDENTIFIERS}):({_IDENTIFIERS})")
_RGB = 3  # torchvision's classification models all take RGB images
_AUX_LOGITS = ("googlenet", "inception_v3")


def torchvision_model_names() -> tuple[str, ...]:
    r"""The torchvision classification models :func:`get_torchvision_model` accepts, sorted:
    ``torchvision.models.list_models(module=torchvision.models)`` (no detection, segmentation,
    video or quantized models)."""
    torchvision = import_torchvision()
    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def get_torchvision_model(name: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    r"""A freshly initialised torchvision classification model, sized for a dataset.

    Built by ``torchvision.models.get_model(name, weights=None, num_classes=num_classes)``. For
    ``in_channels != 3`` (grayscale digits, Fashion-MNIST) the model's first convolution (the first
    ``nn.Conv2d`` with 3 input channels, in ``named_modules()`` order) is replaced by one with the
    same configuration and ``in_channels`` inputs, initialised as torchvision initialises its
    convolutions (Kaiming normal, fan-out), so the state dict keeps its keys. GoogLeNet and
    Inception v3 are built without their auxiliary classifiers (``aux_logits=False``).

    Args:
        name: One of :func:`torchvision_model_names`, e.g. ``"resnet18"``, ``"mobilenet_v2"``.
        num_classes: Classes of the dataset.
        in_channels: Channels of the dataset's images.

    Returns:
        The model (train mode, as torchvision builds it).

    Raises:
        ArchSearchError: If ``name`` is not a torchvision classification model (listing them), or
            the model has no 3-channel ``nn.Conv2d`` to adapt to ``in_channels``.

    Example:
        >>> model = get_torchvision_model("resnet18", num_classes=10, in_channels=1)
    """
    names = torchvision_model_names()
    if not isinstance(name, str) or name not in names:
        raise ArchSearchError(f"Unknown torchvision model: name={name!r}{_did_you_mean(name, names)}. Accepted names "
                              f"(torchvision's classification models) are {', '.join(names)}.")
    check_int("num_classes", num_classes, 1)
    check_int("in_channels", in_channels, 1)
    # GoogLeNet and Inception v3 return their auxiliary classifiers' outputs too when training:
    # a teacher is trained (and traced) as one classifier, so they are built without them.
    extra = {"aux_logits": False} if name in _AUX_LOGITS else {}
    model = import_torchvision().models.get_model(name, weights=None, num_classes=num_classes, **extra)
    if in_channels != _RGB:
        _replace_input_convolution(model, in_channels, f"torchvision model {name!r}")
    return model


def load_function(spec: str) -> Callable[..., nn.Module]:
    r"""The function (or class) named by ``"package.module:function"``, imported from the Python path.

    Args:
        spec: ``"package.module:function"``; the part after ``:`` may be dotted
            (``"nets:Factory.build"``).

    Returns:
        The callable.

    Raises:
        ArchSearchError: One line naming ``spec`` and what went wrong: not of that form, the module
            cannot be found or raises when imported, the attribute is missing or not callable.
    """
    where = f"teacher.module={spec!r}"
    match = _MODULE_SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ArchSearchError(
            f"{where}: expected 'package.module:function' (a module on the Python path, a colon, a function or "
            "class in it that returns the nn.Module), e.g. teacher.module=mynets:make_net."
        )
    module_name, attribute = match.groups()
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            cwd = os.getcwd()
            searched = f"the current directory {cwd!r} and sys.path" if {cwd, ""} & set(sys.path) else "sys.path"
            raise ArchSearchError(
                f"{where}: no module named {missing!r} on the Python path (searched {searched}); run from the "
                f"directory holding {missing.split('.')[0]}.py or its package folder, or install it."
            ) from None
        raise ArchSearchError(f"{where}: importing {module_name!r} failed ({_one_line(error)}).") from None
    except Exception as error:  # noqa: BLE001 - whatever the user's module raises at import
        raise ArchSearchError(f"{where}: importing {module_name!r} failed ({_one_line(error)}).") from None
    path = module_name
    for part in attribute.split("."):
        if not hasattr(obj, part):
            defined = _callables(obj)
            raise ArchSearchError(
                f"{where}: {path!r} has no attribute {part!r}; "
                + (f"its functions and classes: {', '.join(defined)}." if defined else "it defines no function or class.")
            )
        obj, path = getattr(obj, part), f"{path}.{part}"
    if not callable(obj):
        raise ArchSearchError(
            f"{where}: {attribute!r} is not a function or class (it is of type {type(obj).__name__}); name the "
            "function or class that returns the nn.Module."
        )
    return obj


def get_module_model(spec: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    r"""A user's network: the function of ``"package.module:function"`` called with the dataset's size.

    The function (or ``nn.Module`` class) is called as ``function(num_classes=num_classes,
    in_channels=in_channels)``, or as ``function(num_classes=num_classes)`` if its signature has no
    ``in_channels`` parameter (and no ``**kwargs``), and must return an ``nn.Module``.

    Args:
        spec: ``"package.module:function"`` (see :func:`load_function`).
        num_classes: Classes of the dataset.
        in_channels: Channels of the dataset's images.

    Returns:
        The module the function returned.

    Raises:
        ArchSearchError: One line naming ``spec``: see :func:`load_function`; or the function does not
            take ``num_classes``, raises, or returns something other than an ``nn.Module``.
    """
    function = load_function(spec)
    where = f"teacher.module={spec!r}"
    kwargs = {"num_classes": num_classes}
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): pass both
        kwargs["in_channels"] = in_channels
    else:
        var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        if "in_channels" in parameters or var_keyword:
            kwargs["in_channels"] = in_channels
        if "num_classes" not in parameters and not var_keyword:
            raise ArchSearchError(
                f"{where}: it must accept num_classes= (it is called as function(num_classes=..., "
                f"in_channels=...), in_channels optional); its signature is {function.__name__}{inspect.signature(function)}."
            )
    call = f"{spec.rpartition(':')[2]}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        model = function(**kwargs)
    except Exception as error:  # noqa: BLE001 - whatever the user's function raises
        raise ArchSearchError(f"{where}: {call} raised {_one_line(error)}.") from None
    if not isinstance(model, nn.Module):
        raise ArchSearchError(f"{where}: {call} returned a {type(model).__name__}, not an nn.Module.")
    return model


def build_teacher(name: str, *, kind: str = "zoo", num_classes: int, in_channels: int = 3,
                  width: float = 1.0) -> nn.Module:
    r"""A freshly initialised teacher of any kind.

    Args:
        name: A zoo network (``kind="zoo"``, :data:`~botorch_archsearch.models.TEACHER_NAMES`), a
            torchvision classification model (``kind="torchvision"``, :func:`torchvision_model_names`)
            or ``"package.module:function"`` (``kind="module"``, :func:`get_module_model`).
        kind: One of :data:`TEACHER_KINDS`.
        num_classes: Classes of the dataset.
        in_channels: Channels of the dataset's images.
        width: Channel-width multiplier of a zoo network (torchvision and user networks come at
            their own size; ignored for them).

    Returns:
        The network.

    Raises:
        ArchSearchError: If ``kind`` or ``name`` is not accepted, or the network cannot be built.
    """
    if kind == "zoo":
        return get_teacher(name, num_classes=num_classes, in_channels=in_channels, width=width)
    if kind == "torchvision":
        return get_torchvision_model(name, num_classes=num_classes, in_channels=in_channels)
    if kind == "module":
        return get_module_model(name, num_classes=num_classes, in_channels=in_channels)
    raise ArchSearchError(f"Unknown teacher kind: kind={kind!r}. Accepted kinds are {', '.join(TEACHER_KINDS)}.")


def teacher_label(name: str, kind: str = "zoo") -> str:
    r"""How a teacher is named in logs, reports and ``teacher.json``: the zoo name,
    ``"torchvision/<name>"``, or the ``"package.module:function"`` string."""
    return f"torchvision/{name}" if kind == "torchvision" else name


def _replace_input_convolution(model: nn.Module, in_channels: int, what: str) -> None:
    """Swap the first 3-channel ``nn.Conv2d`` for one taking ``in_channels``, same name and configuration."""
    for path, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels == _RGB:
            break
    else:
        raise ArchSearchError(
            f"{what} has no nn.Conv2d with 3 input channels to adapt to the dataset's {in_channels} channels; "
            "use a dataset with RGB images or another model."
        )
    if conv.groups != 1:
        raise ArchSearchError(
            f"{what}: its first convolution {path!r} is grouped (groups={conv.groups}) and cannot take "
            f"{in_channels} input channels; use a dataset with RGB images or another model."
        )
    replacement = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    nn.init.kaiming_normal_(replacement.weight, mode="fan_out", nonlinearity="relu")
    if replacement.bias is not None:
        nn.init.zeros_(replacement.bias)
    model.set_submodule(path, replacement)


def _did_you_mean(name: object, names: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, names, n=3) if isinstance(name, str) else []
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _callables(obj: object) -> list[str]:
    """The public functions and classes a module defines, or a class's public methods (for a
    missing-attribute message)."""
    if inspect.ismodule(obj):
        values = {n: v for n, v in vars(obj).items()
                  if (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == obj.__name__}
    else:
        values = {n: getattr(obj, n, None) for n in dir(obj)}
        values = {n: v for n, v in values.items() if callable(v)}
    return sorted(n for n in values if not n.startswith("_"))[:20]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


__all__ = [
    "TEACHER_KINDS",
    "build_teacher",
    "get_module_model",
    "get_torchvision_model",
    "load_function",
    "teacher_label",
    "torchvision_model_names",
]
