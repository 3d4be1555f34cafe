r"""The CIFAR teacher zoo of ESNAC: VGG-19, ResNet-18/34, ShuffleNet and MobileNetV2.

Every constructor takes ``num_classes``, ``in_channels`` and ``width`` (a multiplier of every
channel count, for tiny test-sized teachers); :func:`get_teacher` builds one by name.
"""

from botorch_archsearch.models._registry import TEACHER_NAMES, get_teacher
from botorch_archsearch.models.mobilenetv2 import MobileNetV2, mobilenetv2
from botorch_archsearch.models.resnet import ResNet, resnet18, resnet34
from botorch_archsearch.models.shufflenet import ShuffleNet, shufflenet
from botorch_archsearch.models.vgg import VGG, vgg19

__all__ = [
    "MobileNetV2",
    "ResNet",
    "ShuffleNet",
    "TEACHER_NAMES",
    "VGG",
    "get_teacher",
    "mobilenetv2",
    "resnet18",
    "resnet34",
    "shufflenet",
    "vgg19",
]
