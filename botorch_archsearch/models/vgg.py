r"""VGG-19 with BatchNorm for CIFAR, a teacher of the zoo.

The CIFAR variant of "pytorch-cifar": sixteen 3x3 convolutions with BatchNorm and ReLU, five 2x2
max-pools, a global average pool and one linear classifier. At ``width=1`` it has the 20.04M
(10 classes) / 20.09M (100 classes) parameters of Table 1 of Cao et al., "Learnable Embedding
Space for Efficient Neural Architecture Compression" (ICLR 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models.common import check_args, init_weights, scale_width
from botorch_archsearch.utils.validation import is_int

VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, 256, "M",
    512, 512, 512, 512, "M",
    512, 512, 512, 512, "M",
)  # fmt: skip
"""Output channels of each 3x3 convolution of VGG-19; ``"M"`` is a 2x2 max-pool."""


class VGG(nn.Module):
    r"""A plain VGG: `[conv3x3 -> BN -> ReLU | maxpool]* -> global avg pool -> linear`.

    Five max-pools halve the input five times, so inputs must be at least 32x32.

    Example:
        >>> model = VGG(VGG19_CFG, num_classes=10, width=0.125)
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        r"""Build a VGG from its layer list.

        Args:
            cfg: Output channels of each 3x3 convolution, with ``"M"`` for a 2x2 max-pool.
            num_classes: Number of classes the linear classifier scores.
            in_channels: Number of channels of the input images.
            width: Multiplier of every channel count (rounded, at least one channel).
        """
        super().__init__()
        check_args(num_classes=num_classes, in_channels=in_channels, width=width)
        for item in cfg:
            if item != "M" and not is_int(item, 1):
                raise ArchSearchError(
                    f"Expected cfg to hold integers >= 1 and 'M', got the item {item!r} in "
                    f"cfg={cfg!r}."
                )
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out_channels = scale_width(item, width)
                layers += [
                    nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(),
                ]
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, X: Tensor) -> Tensor:
        r"""Score a batch of images.

        Args:
            X: A `batch_size x in_channels x H x W` tensor of images, `H, W >= 32`.

        Returns:
            A `batch_size x num_classes` tensor of logits.
        """
        return self.classifier(self.flatten(self.avgpool(self.features(X))))


def vgg19(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    r"""VGG-19 with BatchNorm for CIFAR (20.04M parameters for 10 classes at ``width=1``).

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
    return VGG(VGG19_CFG, num_classes=num_classes, in_channels=in_channels, width=width)


__all__ = ["VGG", "VGG19_CFG", "vgg19"]
