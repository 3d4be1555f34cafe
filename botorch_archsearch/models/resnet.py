r"""ResNet-18 and ResNet-34 for CIFAR, teachers of the zoo.

The CIFAR variant of "pytorch-cifar": a 3x3 stem without max-pool, four stages of basic blocks
with 64, 128, 256 and 512 planes, a global average pool and one linear classifier. At
``width=1`` ResNet-18 has 11.17M / 11.22M and ResNet-34 21.28M / 21.33M parameters (10 / 100
classes), as in Table 1 of Cao et al., "Learnable Embedding Space for Efficient Neural
Architecture Compression" (ICLR 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models.common import check_args, init_weights, scale_width
from botorch_archsearch.utils.validation import is_int

_PLANES = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    r"""Two 3x3 convolutions and a shortcut: `relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`.

    The shortcut is the identity, or a strided 1x1 convolution with BatchNorm (``downsample``)
    where the block changes the resolution or the number of channels.
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, downsample: bool = False
    ) -> None:
        r"""Build a basic block.

        Args:
            in_planes: Number of input channels.
            planes: Number of output channels of both convolutions.
            stride: Stride of the first convolution and of the downsampling shortcut.
            downsample: Whether the shortcut is a 1x1 convolution with BatchNorm rather than
                the identity; needed where ``stride != 1`` or ``in_planes != planes``.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
            if downsample
            else None
        )
        self.relu2 = nn.ReLU()

    def forward(self, X: Tensor) -> Tensor:
        r"""Apply the block.

        Args:
            X: A `batch_size x in_planes x H x W` tensor of feature maps.

        Returns:
            A `batch_size x planes x H / stride x W / stride` tensor of feature maps.
        """
        out = self.relu1(self.bn1(self.conv1(X)))
        out = self.bn2(self.conv2(out))
        shortcut = X if self.downsample is None else self.downsample(X)
        return self.relu2(out + shortcut)


class ResNet(nn.Module):
    r"""A CIFAR ResNet: `stem -> 4 stages of basic blocks -> global avg pool -> linear`.

    Example:
        >>> model = ResNet((2, 2, 2, 2), num_classes=10, width=0.125)  # a tiny ResNet-18
    """

    def __init__(
        self,
        num_blocks: Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        r"""Build a CIFAR ResNet.

        Args:
            num_blocks: Number of basic blocks of each of the four stages.
            num_classes: Number of classes the linear classifier scores.
            in_channels: Number of channels of the input images.
            width: Multiplier of every channel count (rounded, at least one channel).
        """
        super().__init__()
        check_args(num_classes=num_classes, in_channels=in_channels, width=width)
        num_blocks = tuple(num_blocks)
        if len(num_blocks) != len(_PLANES) or any(
            not is_int(n, 1) for n in num_blocks
        ):
            raise ArchSearchError(
                f"Expected num_blocks to be {len(_PLANES)} integers >= 1 (e.g. (2, 2, 2, 2) for "
                f"ResNet-18), got num_blocks={num_blocks!r}."
            )
        stem_planes = scale_width(_PLANES[0], width)
        self.conv1 = nn.Conv2d(
            in_channels, stem_planes, kernel_size=3, stride=1, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(stem_planes)
        self.relu = nn.ReLU()
        in_planes, nominal_in = stem_planes, _PLANES[0]
        stages = []
        for stage, (nominal, blocks) in enumerate(zip(_PLANES, num_blocks)):
            planes = scale_width(nominal, width)
            layers = []
            for i in range(blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                # Decided on the nominal sizes, so the topology does not depend on width.
                downsample = stride != 1 or nominal_in != nominal
                layers.append(BasicBlock(in_planes, planes, stride, downsample))
                in_planes, nominal_in = planes, nominal
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward(self, X: Tensor) -> Tensor:
        r"""Score a batch of images.

        Args:
            X: A `batch_size x in_channels x H x W` tensor of images.

        Returns:
            A `batch_size x num_classes` tensor of logits.
        """
        out = self.relu(self.bn1(self.conv1(X)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.flatten(self.avgpool(out)))


def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    r"""ResNet-18 for CIFAR (11.17M parameters for 10 classes at ``width=1``).

    Args:
        num_classes: Number of classes the linear classifier scores.
        in_channels: Number of channels of the input images.
        width: Multiplier of every channel count (rounded, at least one channel).

    Returns:
        The freshly initialised network.

    Raises:
        ArchSearchError: If ``num_classes`` or ``in_channels`` is not an integer >= 1, or ``width``
            is not a finite number > 0.
    """
    return ResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width)


def resnet34(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    r"""ResNet-34 for CIFAR (21.28M parameters for 10 classes at ``width=1``).

    Args:
        num_classes: Number of classes the linear classifier scores.
        in_channels: Number of channels of the input images.
        width: Multiplier of every channel count (rounded, at least one channel).

    Returns:
        The freshly initialised network.

    Raises:
        ArchSearchError: If ``num_classes`` or ``in_channels`` is not an integer >= 1, or ``width``
            is not a finite number > 0.
    """
    return ResNet((3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels, width=width)


__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet34"]
