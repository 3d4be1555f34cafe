r"""MobileNetV2 for CIFAR, a teacher of the zoo.

The CIFAR variant of "pytorch-cifar" (3x3 stem with stride 1, second stage with stride 1) built
from the inverted residual blocks of Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks" (CVPR 2018): ReLU6 activations, a linear projection, and an identity shortcut only
where a block keeps the resolution and the channels (no convolutional shortcut). It has no
counterpart in Table 1 of the ESNAC paper; at ``width=1`` it has about 2.24M parameters.
"""

from __future__ import annotations

from torch import Tensor, nn

from botorch_archsearch.models.common import check_args, init_weights, scale_width

MOBILENETV2_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 in the ImageNet network
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""``(expansion, out_planes, num_blocks, stride)`` of each stage; the first block has the stride."""

_STEM_PLANES = 32
_LAST_PLANES = 1280


class InvertedResidual(nn.Module):
    r"""An inverted residual block: 1x1 expand, 3x3 depthwise, linear 1x1 projection.

    `out = project(depthwise(expand(x)))`, plus `x` where the block keeps resolution and channels.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        hidden_planes: int,
        stride: int,
        expand: bool,
        residual: bool,
    ) -> None:
        r"""Build an inverted residual block.

        Args:
            in_planes: Number of input channels.
            out_planes: Number of output channels.
            hidden_planes: Number of channels of the depthwise convolution.
            stride: Stride of the depthwise convolution.
            expand: Whether there is a 1x1 expansion convolution (none for expansion factor 1,
                where ``hidden_planes == in_planes``).
            residual: Whether the input is added to the output; needs ``stride == 1`` and
                ``in_planes == out_planes``.
        """
        super().__init__()
        self.residual = residual
        self.expand = (
            nn.Sequential(
                nn.Conv2d(in_planes, hidden_planes, kernel_size=1, bias=False),
                nn.BatchNorm2d(hidden_planes),
                nn.ReLU6(),
            )
            if expand
            else None
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(
                hidden_planes,
                hidden_planes,
                kernel_size=3,
                stride=stride,
                padding=1,
                groups=hidden_planes,
                bias=False,
            ),
            nn.BatchNorm2d(hidden_planes),
            nn.ReLU6(),
        )
        self.project = nn.Sequential(
            nn.Conv2d(hidden_planes, out_planes, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_planes),
        )

    def forward(self, X: Tensor) -> Tensor:
        r"""Apply the block.

        Args:
            X: A `batch_size x in_planes x H x W` tensor of feature maps.

        Returns:
            A `batch_size x out_planes x H / stride x W / stride` tensor of feature maps.
        """
        out = X if self.expand is None else self.expand(X)
        out = self.project(self.depthwise(out))
        return out + X if self.residual else out


class MobileNetV2(nn.Module):
    r"""A CIFAR MobileNetV2: `stem -> inverted residuals -> 1x1 conv -> global avg pool -> linear`.

    Example:
        >>> model = MobileNetV2(num_classes=10, width=0.125)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        r"""Build a CIFAR MobileNetV2 with the stages of ``MOBILENETV2_CFG``.

        Args:
            num_classes: Number of classes the linear classifier scores.
            in_channels: Number of channels of the input images.
            width: Multiplier of every channel count (rounded, at least one channel), the last
                convolution's 1280 included.
        """
        super().__init__()
        check_args(num_classes=num_classes, in_channels=in_channels, width=width)
        in_planes = scale_width(_STEM_PLANES, width)
        self.conv1 = nn.Conv2d(in_channels, in_planes, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU6()
        nominal_in = _STEM_PLANES
        blocks = []
        for expansion, nominal_out, num_blocks, first_stride in MOBILENETV2_CFG:
            out_planes = scale_width(nominal_out, width)
            for i in range(num_blocks):
                stride = first_stride if i == 0 else 1
                blocks.append(
                    InvertedResidual(
                        in_planes,
                        out_planes,
                        hidden_planes=scale_width(nominal_in * expansion, width),
                        stride=stride,
                        expand=expansion != 1,
                        # Decided on the nominal sizes, so the topology does not depend on width.
                        residual=stride == 1 and nominal_in == nominal_out,
                    )
                )
                in_planes, nominal_in = out_planes, nominal_out
        self.layers = nn.Sequential(*blocks)
        last_planes = scale_width(_LAST_PLANES, width)
        self.conv2 = nn.Conv2d(in_planes, last_planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(last_planes)
        self.relu2 = nn.ReLU6()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(last_planes, num_classes)
        init_weights(self)

    def forward(self, X: Tensor) -> Tensor:
        r"""Score a batch of images.

        Args:
            X: A `batch_size x in_channels x H x W` tensor of images.

        Returns:
            A `batch_size x num_classes` tensor of logits.
        """
        out = self.layers(self.relu1(self.bn1(self.conv1(X))))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.fc(self.flatten(self.avgpool(out)))


def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> MobileNetV2:
    r"""MobileNetV2 for CIFAR (about 2.24M parameters for 10 classes at ``width=1``).

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
    return MobileNetV2(num_classes=num_classes, in_channels=in_channels, width=width)


__all__ = [
    "InvertedResidual",
    "MOBILENETV2_CFG",
    "MobileNetV2",
    "mobilenetv2",
]
