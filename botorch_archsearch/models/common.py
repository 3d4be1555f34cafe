r"""The conventions every zoo teacher constructor shares.

Every constructor takes ``num_classes``, ``in_channels`` and ``width``; these helpers check those
arguments, scale channel counts by ``width`` and initialise weights the same way for every family,
so that tiny teachers (``width=0.125``) differ from the paper's ones only in size.
"""

from __future__ import annotations

from torch import nn

from botorch_archsearch.utils.validation import check_float, check_int


def check_args(num_classes: int, in_channels: int, width: float) -> None:
    r"""Raise an ``ArchSearchError`` naming the first argument a teacher constructor cannot use."""
    check_int("num_classes", num_classes, 1)
    check_int("in_channels", in_channels, 1)
    check_float("width", width, 0, exclusive_minimum=True, finite=True)


def scale_width(channels: int, width: float, divisor: int = 1) -> int:
    r"""Scale a channel count by ``width``, rounded to a multiple of ``divisor`` (at least one)."""
    return max(divisor, int(channels * width / divisor + 0.5) * divisor)


def init_weights(module: nn.Module) -> None:
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


__all__ = ["check_args", "init_weights", "scale_width"]
