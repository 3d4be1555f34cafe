r"""ShuffleNet v1 "1x (g=2)" for CIFAR, a teacher of the zoo.

The CIFAR variant of "pytorch-cifar" (a 1x1 stem, three stages of 4, 8 and 4 units with 200,
400 and 800 channels, a global average pool and one linear classifier), with the change of
appendix 6.4 of Cao et al., "Learnable Embedding Space for Efficient Neural Architecture
Compression" (ICLR 2019): "We insert a 1x1 convolutional layer before each average pooling
layer", so that the shortcut of every downsampling unit has a layer that can be edited.

Which pooling layers, and which 1x1 convolution, is settled by the parameter counts of the
paper's Table 1 (0.99M for 10 classes, 1.06M for 100): the inserted convolution maps the
``in_planes`` channels of the unit to themselves with ``groups=2`` and no bias, and only the
three shortcut average pools get one (887,582 + 100,288 = 987,870 parameters for 10 classes,
1,059,960 for 100). A dense 1x1 convolution would give 1.09M, and one more before the global
pool (800 -> 800 channels) 1.73M. This is also what the authors' released code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models.common import check_args, init_weights, scale_width
from botorch_archsearch.utils.validation import check_int, is_int


class ShuffleUnit(nn.Module):
    r"""A ShuffleNet v1 unit: 1x1 group conv, channel shuffle, 3x3 depthwise, 1x1 group conv.

    With stride 1 the branch is added to the input, `relu(branch(x) + x)`; with stride 2 it is
    concatenated to the downsampled input, `relu(cat(branch(x), avgpool(conv1x1(x))))`.
    """

    def __init__(
        self,
        in_planes: int,
        branch_planes: int,
        mid_planes: int,
        stride: int,
        groups: int,
        first_groups: int,
    ) -> None:
        r"""Build a ShuffleNet unit.

        Args:
            in_planes: Number of input channels.
            branch_planes: Number of output channels of the residual branch; ``in_planes``
                where ``stride == 1``, the unit's output channels minus ``in_planes`` where
                ``stride == 2``.
            mid_planes: Number of channels of the bottleneck (the depthwise convolution).
            stride: 1 for an additive unit, 2 for a downsampling, concatenating one.
            groups: Number of groups of the pointwise group convolutions and the shortcut
                convolution.
            first_groups: Number of groups of the first pointwise convolution (1 in the
                network's first unit, whose input has few channels); the channel shuffle uses
                it and is left out when it is 1.
        """
        super().__init__()
        self.stride = stride
        self.shuffle_groups = first_groups
        self.conv1 = nn.Conv2d(
            in_planes, mid_planes, kernel_size=1, groups=first_groups, bias=False
        )
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(
            mid_planes,
            mid_planes,
            kernel_size=3,
            stride=stride,
            padding=1,
            groups=mid_planes,
            bias=False,
        )
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(mid_planes, branch_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_planes)
        # ESNAC appendix 6.4: a 1x1 convolution before the shortcut's average pool.
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_planes, in_planes, kernel_size=1, groups=groups, bias=False),
                nn.AvgPool2d(kernel_size=3, stride=2, padding=1),
            )
            if stride == 2
            else None
        )
        self.relu3 = nn.ReLU()

    def forward(self, X: Tensor) -> Tensor:
        r"""Apply the unit.

        Args:
            X: A `batch_size x in_planes x H x W` tensor of feature maps.

        Returns:
            A `batch_size x out_planes x H / stride x W / stride` tensor of feature maps.
        """
        out = self.relu1(self.bn1(self.conv1(X)))
        if self.shuffle_groups > 1:
            # Written out (not a module) in the one form the graph tracer recognises.
            g = self.shuffle_groups
            n, c, h, w = out.size()
            out = out.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is None:
            return self.relu3(out + X)
        return self.relu3(torch.cat([out, self.shortcut(X)], dim=1))


class ShuffleNet(nn.Module):
    r"""A CIFAR ShuffleNet v1: `1x1 stem -> stages of shuffle units -> global avg pool -> linear`.

    The first unit of every stage has stride 2 and concatenates; the others add.

    Example:
        >>> model = ShuffleNet(num_classes=10, width=0.125)
    """

    def __init__(
        self,
        out_planes: Sequence[int] = (200, 400, 800),
        num_blocks: Sequence[int] = (4, 8, 4),
        groups: int = 2,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        stem_planes: int = 24,
    ) -> None:
        r"""Build a CIFAR ShuffleNet v1.

        Args:
            out_planes: Number of output channels of each stage, increasing.
            num_blocks: Number of units of each stage.
            groups: Number of groups of the pointwise group convolutions.
            num_classes: Number of classes the linear classifier scores.
            in_channels: Number of channels of the input images.
            width: Multiplier of every channel count, rounded to a multiple of ``groups`` (at
                least ``groups`` channels) so that every group convolution stays valid.
            stem_planes: Number of output channels of the stem.
        """
        super().__init__()
        check_args(num_classes=num_classes, in_channels=in_channels, width=width)
        out_planes, num_blocks = tuple(out_planes), tuple(num_blocks)
        check_int("groups", groups, 1)
        sizes = (stem_planes, *out_planes)
        if (
            len(out_planes) != len(num_blocks)
            or not all(is_int(n, 1) for n in num_blocks)
            or not all(is_int(p, 1) for p in sizes)
            or any(a >= b for a, b in zip(sizes, sizes[1:]))
        ):
            raise ArchSearchError(
                "Expected num_blocks to be integers >= 1 and stem_planes < out_planes[0] < "
                "out_planes[1] < ... integers, one per stage (e.g. stem_planes=24, out_planes="
                f"(200, 400, 800), num_blocks=(4, 8, 4)), got stem_planes={stem_planes!r}, "
                f"out_planes={out_planes!r}, num_blocks={num_blocks!r}."
            )
        in_planes = scale_width(stem_planes, width, groups)
        self.conv1 = nn.Conv2d(in_channels, in_planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        nominal_in = stem_planes
        stages = []
        for stage, (nominal_out, blocks) in enumerate(zip(out_planes, num_blocks)):
            # Downsampling units concatenate, so they must add at least one group of channels.
            planes = max(scale_width(nominal_out, width, groups), in_planes + groups)
            units = []
            for i in range(blocks):
                stride = 2 if i == 0 else 1
                branch_planes = planes - in_planes if stride == 2 else planes
                nominal_branch = nominal_out - nominal_in if stride == 2 else nominal_out
                units.append(
                    ShuffleUnit(
                        in_planes,
                        branch_planes,
                        mid_planes=scale_width(nominal_branch // 4, width, groups),
                        stride=stride,
                        groups=groups,
                        first_groups=1 if stage == 0 and i == 0 else groups,
                    )
                )
                in_planes, nominal_in = planes, nominal_out
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
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
        out = self.stages(self.relu(self.bn1(self.conv1(X))))
        return self.fc(self.flatten(self.avgpool(out)))


def shufflenet(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ShuffleNet:
    r"""ShuffleNet v1 1x (g=2) for CIFAR, as modified by ESNAC (0.99M parameters, 10 classes).

    Args:
        num_classes: Number of classes the linear classifier scores.
        in_channels: Number of channels of the input images.
        width: Multiplier of every channel count, rounded to a multiple of 2 (at least 2).

    Returns:
        The freshly initialised network.

    Raises:
        ArchSearchError: If ``num_classes`` or ``in_channels`` is not an integer >= 1, or ``width``
            is not a finite number > 0.
    """
    return ShuffleNet(num_classes=num_classes, in_channels=in_channels, width=width)


__all__ = ["ShuffleNet", "ShuffleUnit", "shufflenet"]
