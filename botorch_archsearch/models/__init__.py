r"""The CIFAR teacher zoo of ESNAC: VGG-19, ResNet-18/34, ShuffleNet and MobileNetV2; and
teachers from outside it: torchvision classification models and a user's own network.

Every zoo constructor takes ``num_classes``, ``in_channels`` and ``width`` (a multiplier of every
channel count, for tiny test-sized teachers); :func:`get_teacher` builds one by name,
:func:`build_teacher` a teacher of any kind (:data:`TEACHER_KINDS`).
"""

from botorch_archsearch.models._registry import TEACHER_NAMES, get_teacher
from botorch_archsearch.models.external import (
    TEACHER_KINDS,
    build_teacher,
    get_module_model,
    get_torchvision_model,
    load_function,
    teacher_label,
    torchvision_model_names,
)
from botorch_archsearch.models.mobilenetv2 import MobileNetV2, mobilenetv2
from botorch_archsearch.models.resnet import ResNet, resnet18, resnet34
from botorch_archsearch.models.shufflenet import ShuffleNet, shufflenet
from botorch_archsearch.models.vgg import VGG, vgg19

__all__ = [
    "MobileNetV2",
    "ResNet",
    "ShuffleNet",
    "TEACHER_KINDS",
    "TEACHER_NAMES",
    "VGG",
    "build_teacher",
    "get_module_model",
    "get_teacher",
    "get_torchvision_model",
    "load_function",
    "mobilenetv2",
    "resnet18",
    "resnet34",
    "shufflenet",
    "teacher_label",
    "torchvision_model_names",
    "vgg19",
]
