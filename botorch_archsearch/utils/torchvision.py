r"""The one place where ``torchvision`` is imported.

The only torchvision release that matches ``torch==2.13.0`` is a CUDA build: with a CPU build of
torch its compiled extension does not load, and ``import torchvision`` then fails with
``operator torchvision::nms does not exist`` because its fake-tensor registrations need the op
schemas. Models, datasets and transforms are pure Python, so declaring the missing schemas (without
any kernel) is enough to use them; calling the detection ops themselves still fails clearly.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

# Schemas of the compiled ops that torchvision registers fake kernels for at import time.
_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_fallback_library: torch.library.Library | None = None


def import_torchvision() -> ModuleType:
    r"""Import and return ``torchvision``, declaring its op schemas first if its extension is missing.

    Returns:
        The ``torchvision`` module.

    Raises:
        ImportError: If torchvision is not installed.
    """
    global _fallback_library
    if _fallback_library is None and not _has_compiled_ops():
        _fallback_library = torch.library.Library("torchvision", "DEF")
        for schema in _OP_SCHEMAS.values():
            _fallback_library.define(schema)
    return importlib.import_module("torchvision")


def uses_torchvision(module: torch.nn.Module) -> bool:
    r"""Whether any submodule of ``module`` is a torchvision class (so that unpickling it in another
    process imports torchvision)."""
    return any(type(m).__module__.partition(".")[0] == "torchvision" for m in module.modules())


class TorchvisionFirst:
    r"""A marker to pickle before a torchvision model that another process unpickles: unpickling
    the marker calls :func:`import_torchvision` (and gives its module), so the model's classes
    import there too, where a plain ``import torchvision`` would fail.

    Example:
        >>> args = (TorchvisionFirst(), model)  # unpickled in order: the marker first
    """

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return import_torchvision, ()


def _has_compiled_ops() -> bool:
    """Whether ``torchvision::nms`` is already known to the dispatcher."""
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        return False
    return True


__all__ = ["TorchvisionFirst", "import_torchvision", "uses_torchvision"]
