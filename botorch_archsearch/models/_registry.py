r"""Teacher names and the conventions every teacher constructor shares.

Every constructor takes ``num_classes``, ``in_channels`` and ``width``; the helpers here check
those arguments, scale channel counts by ``width`` and initialise weights the same way for every
family, so that tiny teachers (``width=0.125``) differ from the paper's ones only in size.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from torch import nn

from botorch_archsearch.exceptions import ArchSearchError

TEACHER_NAMES: tuple[str, ...] = ("mobilenetv2", "resnet18", "resnet34", "shufflenet", "vgg19")
"""The names :func:`get_teacher` accepts, sorted."""


def get_teacher(name: str, **kwargs) -> nn.Module:
    r"""Build a teacher network of the CIFAR zoo by name.

    Args:
        name: One of :data:`TEACHER_NAMES`.
        **kwargs: Passed on to the constructor: ``num_classes``, ``in_channels``, ``width``.

    Returns:
        The freshly initialised teacher network.

    Raises:
        ArchSearchError: If ``name`` is not one of :data:`TEACHER_NAMES`, or if the constructor
            rejects one of ``kwargs``.

    Example:
        >>> teacher = get_teacher("resnet18", num_classes=100, width=0.125)
    """
    # Imported here because the family modules import this module's helpers.
    from botorch_archsearch.models.mobilenetv2 import mobilenetv2
    from botorch_archsearch.models.resnet import resnet18, resnet34
    from botorch_archsearch.models.shufflenet import shufflenet
    from botorch_archsearch.models.vgg import vgg19

    constructors = {
        "mobilenetv2": mobilenetv2,
        "resnet18": resnet18,
        "resnet34": resnet34,
        "shufflenet": shufflenet,
        "vgg19": vgg19,
    }
    if not isinstance(name, str) or name not in constructors:
        raise ArchSearchError(
            f"Unknown teacher: name={name!r}. Accepted names are {', '.join(TEACHER_NAMES)}."
        )
    return constructors[name](**kwargs)


def _check_args(num_classes: int, in_channels: int, width: float) -> None:
    r"""Raise an ``ArchSearchError`` naming the first argument a teacher constructor cannot use."""
    for arg_name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ArchSearchError(
                f"Expected {arg_name} to be an integer >= 1, got {arg_name}={value!r}."
            )
    if (
        isinstance(width, bool)
        or not isinstance(width, Real)
        or not math.isfinite(width)
        or width <= 0
    ):
        raise ArchSearchError(
            f"Expected width to be a finite number > 0 (1.0 is the paper's size, e.g. 0.125 "
            f"for a tiny teacher), got width={width!r}."
        )


def _scale(channels: int, width: float, divisor: int = 1) -> int:
    r"""Scale a channel count by ``width``, rounded to a multiple of ``divisor`` (at least one)."""
    return max(divisor, int(channels * width / divisor + 0.5) * divisor)


def _init_weights(module: nn.Module) -> None:
    r"""Kaiming-normal convolutions, unit BatchNorm, small-normal linear layers, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.zeros_(m.bias)


__all__ = ["TEACHER_NAMES", "get_teacher"]
