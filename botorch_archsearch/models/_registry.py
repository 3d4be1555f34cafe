r"""The zoo's teacher names and :func:`get_teacher` (the conventions every constructor shares are
in :mod:`~botorch_archsearch.models.common`)."""

from __future__ import annotations


from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models.mobilenetv2 import mobilenetv2
from botorch_archsearch.models.resnet import resnet18, resnet34
from botorch_archsearch.models.shufflenet import shufflenet
from botorch_archsearch.models.vgg import vgg19

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


__all__ = ["TEACHER_NAMES", "get_teacher"]
