r"""Image-classification data sets held as tensors: loading, splits, normalisation, augmentation.

Students and teachers are trained and scored on whole-tensor data sets: every split lives on one
device as a `N x C x H x W` uint8 tensor, a batch is a slice (or an ``index_select`` with a
permutation) of it, and augmentation is a handful of tensor ops on the whole batch, so no
per-sample Python runs in a training loop. As in the paper, 5,000 training images of CIFAR and
Fashion-MNIST are held out for validation (the reward is measured on them); the test split is
only for the final report.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError, DatasetNotFoundError
from botorch_archsearch.utils.torchvision import import_torchvision
from botorch_archsearch.utils.validation import check_choice, check_int

DATASET_NAMES = ("cifar10", "cifar100", "digits", "fashion_mnist", "synthetic")
# Where downloads go when no root is given; the environment variable BOTORCH_ARCHSEARCH_DATA,
# read at each call, overrides it.
DEFAULT_ROOT = Path("~/.cache/botorch_archsearch/data").expanduser()
# Where `apt-get install -y dataset-fashion-mnist` puts the four gzipped IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_DATA_ENV_VAR = "BOTORCH_ARCHSEARCH_DATA"
_SPLIT_NAMES = ("train", "val", "test")
_AUGMENTATIONS = ("none", "crop_flip")
_PAPER_VAL_SIZE = 5_000
_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_DIGITS_IMAGE_SIZE = 16
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_VAL_FRACTION = 0.1
# The digits test split is fixed once and for all, whatever `seed` the validation split uses.
_DIGITS_TEST_SEED = 0
# Chunk of images processed at once when resizing or counting pixel values (bounds memory).
_CHUNK = 1024


@dataclass(eq=False)
class ImageDataset:
    r"""Train / validation / test splits of an image-classification dataset, held as tensors.

    Images are stored as pixel values and normalised per batch: ``(x / 255 - mean) / std`` per
    channel, with ``mean`` and ``std`` computed on the training split.

    Args:
        name: The data set's name (one of :data:`DATASET_NAMES` for loaded ones).
        train_x: A `N_train x C x H x W` uint8 tensor of training images (pixel values 0..255).
        train_y: A `N_train` int64 tensor of their labels in ``0..num_classes - 1``.
        val_x: A `N_val x C x H x W` uint8 tensor of validation images.
        val_y: A `N_val` int64 tensor of their labels.
        test_x: A `N_test x C x H x W` uint8 tensor of test images.
        test_y: A `N_test` int64 tensor of their labels.
        num_classes: The number of classes.
        mean: Per-channel mean of ``train_x / 255``.
        std: Per-channel standard deviation of ``train_x / 255`` (positive).
        augment: ``"none"`` or ``"crop_flip"`` (random crop with 4-pixel zero padding and a
            random horizontal flip, applied to training batches by default).

    Example:
        >>> data = load_dataset("synthetic", seed=0)
        >>> x, y = next(data.batches("train", 128, shuffle=True))
        >>> x.shape, x.dtype, y.dtype
        (torch.Size([128, 3, 16, 16]), torch.float32, torch.int64)
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, 1)
        check_choice("augment", self.augment, _AUGMENTATIONS)
        first = self.train_x
        for split in _SPLIT_NAMES:
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
                raise ArchSearchError(
                    f"{split}_x must be a `N x C x H x W` uint8 tensor, got {_describe(x)}."
                )
            if x.shape[1:] != first.shape[1:] or x.device != first.device:
                raise ArchSearchError(
                    f"{split}_x has images of shape {tuple(x.shape[1:])} on {x.device}, but train_x has "
                    f"{tuple(first.shape[1:])} on {first.device}; every split must match."
                )
            if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
                raise ArchSearchError(
                    f"{split}_y must be an int64 tensor of shape ({x.shape[0]},), got {_describe(y)}."
                )
            if y.device != x.device:
                raise ArchSearchError(f"{split}_y is on {y.device} but {split}_x is on {x.device}.")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ArchSearchError(
                    f"{split}_y has labels in [{int(y.min())}, {int(y.max())}], outside "
                    f"[0, {self.num_classes - 1}] for num_classes={self.num_classes}."
                )
        if first.shape[2] != first.shape[3]:
            raise ArchSearchError(f"Images must be square, got height x width {tuple(first.shape[2:])}.")
        self.mean = tuple(float(value) for value in self.mean)
        self.std = tuple(float(value) for value in self.std)
        channels = first.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ArchSearchError(
                f"mean and std need one value per channel ({channels}), got mean={self.mean} and "
                f"std={self.std}."
            )
        if not all(value > 0 for value in self.std):
            raise ArchSearchError(f"std must be positive in every channel, got std={self.std}.")

    @property
    def in_channels(self) -> int:
        """Number of image channels ``C``."""
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        """Side ``H`` (= ``W``) of the square images."""
        return self.train_x.shape[2]

    @property
    def device(self) -> torch.device:
        """The device every tensor of the data set is on."""
        return self.train_x.device

    def to(self, device: str | torch.device) -> ImageDataset:
        r"""A copy of the data set with every tensor on ``device``.

        Args:
            device: The target device.

        Returns:
            A new :class:`ImageDataset`; ``self`` is left as it is.
        """
        moved = {
            f"{split}_{part}": getattr(self, f"{split}_{part}").to(device)
            for split in _SPLIT_NAMES
            for part in ("x", "y")
        }
        return replace(self, **moved)

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        r"""The images and labels of one split.

        Args:
            name: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            A two-tuple of a `N x C x H x W` uint8 tensor of images and a `N` int64 tensor of labels.
        """
        if name not in _SPLIT_NAMES:
            raise ArchSearchError(
                f"Unknown split name={name!r}; accepted names: {', '.join(map(repr, _SPLIT_NAMES))}."
            )
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def normalize(self, x: Tensor) -> Tensor:
        r"""Normalise a batch of images: ``(x / 255 - mean) / std`` per channel.

        Args:
            x: A `batch x C x H x W` tensor of pixel values in 0..255 (uint8, or float after
                :func:`augment_batch` of a float batch).

        Returns:
            A `batch x C x H x W` float32 tensor on the device of ``x``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ArchSearchError(
                f"x must be a `batch x {self.in_channels} x H x W` tensor, got shape {tuple(x.shape)}."
            )
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return x.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool | None = None,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        r"""Iterate once over a split in normalised batches.

        Each batch is a slice of the split's tensors (an ``index_select`` with a permutation when
        shuffling), augmented as a whole by :func:`augment_batch` and normalised by
        :meth:`normalize`; all of it runs on the data set's device.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: Images per batch (the last one may be smaller unless ``drop_last``).
            shuffle: Visit the images in a random order (each exactly once).
            augment: Apply random crop (4-pixel zero padding) and horizontal flip. ``None`` means
                ``split == "train" and self.augment != "none"``; ``True`` augments any split.
            generator: Source of the permutation and augmentation randomness (a CPU generator is
                fine: indices are drawn on its device, then moved). ``None`` uses torch's global
                generator.
            drop_last: Skip a last batch smaller than ``batch_size``.

        Returns:
            An iterator of two-tuples: a `batch x C x H x W` float32 tensor of normalised images
            and a `batch` int64 tensor of labels, both on the data set's device.
        """
        x, y = self.split(split)
        check_int("batch_size", batch_size, 1)
        if augment is None:
            augment = split == "train" and self.augment != "none"
        return self._iterate(x, y, batch_size, shuffle, augment, generator, drop_last)

    def num_batches(self, split: str, batch_size: int, drop_last: bool = False) -> int:
        r"""The number of batches :meth:`batches` yields.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: Images per batch.
            drop_last: Whether a last, smaller batch is skipped.

        Returns:
            ``N // batch_size`` with ``drop_last``, else ``ceil(N / batch_size)``.
        """
        _, y = self.split(split)
        check_int("batch_size", batch_size, 1)
        count = y.shape[0]
        return count // batch_size if drop_last else math.ceil(count / batch_size)

    def _iterate(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        drop_last: bool,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        count = x.shape[0]
        order = None
        if shuffle:
            order = torch.randperm(count, generator=generator, device=_draw_device(generator))
            order = order.to(x.device)
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            if drop_last and stop - start < batch_size:
                break
            if order is None:
                batch_x, batch_y = x[start:stop], y[start:stop]
            else:
                index = order[start:stop]
                batch_x, batch_y = x.index_select(0, index), y.index_select(0, index)
            if augment:
                batch_x = augment_batch(batch_x, generator=generator)
            yield self.normalize(batch_x), batch_y


def augment_batch(x: Tensor, padding: int = 4, generator: torch.Generator | None = None) -> Tensor:
    r"""Random crop (after zero padding) and random horizontal flip of every image of a batch.

    Pads the batch once, draws per-image offsets in ``[0, 2 * padding]`` and a flip bit, and
    gathers every crop with one advanced-indexing read; no per-image Python runs.

    Args:
        x: A `batch x C x H x W` tensor (uint8 or float) on any device.
        padding: Zero padding on each side; the crop moves by up to this much.
        generator: Source of the offsets and flips (drawn on its device, then moved to that of
            ``x``). ``None`` uses torch's global generator.

    Returns:
        A `batch x C x H x W` tensor of the dtype and device of ``x``.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ArchSearchError(f"x must be a `batch x C x H x W` tensor, got {_describe(x)}.")
    check_int("padding", padding, 0)
    count, channels, height, width = x.shape
    draw = _draw_device(generator)
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator, device=draw).to(x.device)
    flip = torch.randint(0, 2, (count,), generator=generator, device=draw).to(x.device, torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)
    cols = offsets[1, :, None] + torch.arange(width, device=x.device)
    # A flipped crop reads the same columns right to left.
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(count, device=x.device).view(-1, 1, 1, 1)
    channel_index = torch.arange(channels, device=x.device).view(1, -1, 1, 1)
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    val_size: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
) -> ImageDataset:
    r"""Load a data set as an :class:`ImageDataset` with a validation split held out of training.

    ====================  =======================================================================
    ``name``              what it is
    ====================  =======================================================================
    ``"cifar10"``         CIFAR-10 from CIFAR's python pickles in ``root/cifar-10-batches-py/``
                          (``data_batch_1`` .. ``data_batch_5``, ``test_batch``): 3 x 32 x 32,
                          10 classes, 50,000 train (45,000 + 5,000 validation) and 10,000 test;
                          ``augment="crop_flip"``.
    ``"cifar100"``        CIFAR-100 from ``root/cifar-100-python/`` (``train``, ``test``; the fine
                          labels): as CIFAR-10 with 100 classes; ``augment="crop_flip"``.
    ``"digits"``          scikit-learn's 1,797 8 x 8 handwritten digits (shipped with it, nothing to
                          download), pixel values 0..16 scaled to 0..255, 1 channel, 10 classes,
                          upsampled to 16 x 16 by default. A fixed stratified 20% (359 images,
                          independent of ``seed``) is the test split; by default 10% of the rest
                          (144) is held out for validation, leaving 1,294 for training;
                          ``augment="none"``.
    ``"fashion_mnist"``   Fashion-MNIST from its four IDX files (gzipped or not): 1 x 28 x 28,
                          10 classes, 60,000 train (55,000 + 5,000 validation) and 10,000 test;
                          ``augment="none"`` (centred items on a black background; pass
                          ``augment=True`` to :meth:`ImageDataset.batches` to crop and flip).
    ``"synthetic"``       :func:`synthetic_dataset` with ``seed``, ``image_size`` (default 16) and
                          ``num_val=val_size`` (default 200): for tests; ``root`` is ignored.
    ====================  =======================================================================

    Fashion-MNIST is looked for in ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout)
    when ``root`` is given, then in :data:`DEBIAN_FASHION_MNIST` (``apt-get install -y
    dataset-fashion-mnist``), then, without ``root``, in the default root and its
    ``FashionMNIST/raw``. CIFAR is looked for under ``root``, or the default root without it. The
    default root is ``$BOTORCH_ARCHSEARCH_DATA`` if set, else :data:`DEFAULT_ROOT`. CIFAR's files
    are pickles, which can run code when loaded: only load them from a trusted source.

    Args:
        name: One of :data:`DATASET_NAMES`.
        root: The folder holding the data set's files (see above), and where downloads go.
        download: Fetch missing files with torchvision (needs network access) into ``root``, or
            the default root without it, then read them.
        val_size: Training images held out for validation; ``None`` means 5,000 for CIFAR and
            Fashion-MNIST, 10% of the non-test images for digits, 200 for synthetic.
        seed: Seed of the permutation that picks the validation images: the same seed always
            holds out the same images.
        image_size: Resize every image to ``image_size x image_size`` once, at load time
            (bilinear, antialiased when shrinking, rounded back to uint8). ``None`` keeps the
            native size (16 for digits).
        device: Device of the returned tensors.

    Returns:
        The data set, with ``mean`` and ``std`` computed on its training split.

    Raises:
        DatasetNotFoundError: If the files are in none of the places searched (and ``download``
            is off or failed); the message lists those places and how to get the data.
        ArchSearchError: If ``name`` is unknown, an argument is out of range, or a file is corrupt.
    """
    if name not in DATASET_NAMES:
        raise ArchSearchError(
            f"Unknown dataset name={name!r}; accepted names: {', '.join(map(repr, DATASET_NAMES))}."
        )
    check_int("seed", seed)
    if image_size is not None:
        check_int("image_size", image_size, 1)
    if name == "synthetic":
        return synthetic_dataset(
            image_size=16 if image_size is None else image_size,
            num_val=200 if val_size is None else val_size,
            seed=seed,
        ).to(device)

    root = None if root is None else Path(root).expanduser()
    if name == "digits":
        x, y, test_x, test_y = _load_digits()
        num_classes, augment = 10, "none"
        image_size = _DIGITS_IMAGE_SIZE if image_size is None else image_size
        default_val_size = round(_DIGITS_VAL_FRACTION * y.shape[0])
    elif name == "fashion_mnist":
        x, y, test_x, test_y = _load_fashion_mnist(root, download)
        num_classes, augment, default_val_size = 10, "none", _PAPER_VAL_SIZE
    else:
        layout = _CIFAR_LAYOUTS[name]
        x, y, test_x, test_y = _load_cifar(layout, root, download)
        num_classes, augment, default_val_size = layout.num_classes, "crop_flip", _PAPER_VAL_SIZE

    if image_size is not None:
        x, test_x = _resize(x, image_size), _resize(test_x, image_size)
    val_size = default_val_size if val_size is None else val_size
    check_int("val_size", val_size, 0)
    if val_size >= y.shape[0]:
        raise ArchSearchError(
            f"val_size={val_size} leaves no training image: {name} has {y.shape[0]} training images."
        )
    train_index, val_index = _hold_out(y.shape[0], val_size, seed)
    train_x = x[train_index]
    mean, std = _channel_stats(train_x)
    return ImageDataset(
        name=name,
        train_x=train_x,
        train_y=y[train_index],
        val_x=x[val_index],
        val_y=y[val_index],
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        mean=mean,
        std=std,
        augment=augment,
    ).to(device)


def synthetic_dataset(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 16,
    num_train: int = 1000,
    num_val: int = 200,
    num_test: int = 200,
    seed: int = 0,
) -> ImageDataset:
    r"""A small learnable data set for tests: each class is a fixed random template plus noise.

    A template is a random `in_channels x 4 x 4` image upsampled (bilinear) to ``image_size``,
    with pixel values in [48, 208]; an image is its class's template plus Gaussian noise
    (standard deviation 40), rounded and clipped to 0..255. Labels are balanced in every split.
    Everything is drawn from one CPU generator seeded with ``seed``.

    Args:
        num_classes: Number of classes (at least 2).
        in_channels: Channels of every image.
        image_size: Side of the square images.
        num_train: Training images (at least 1).
        num_val: Validation images.
        num_test: Test images.
        seed: Seed of the templates, noise and label order.

    Returns:
        The data set on the CPU, named ``"synthetic"``, with ``augment="none"``.
    """
    check_int("num_classes", num_classes, 2)
    check_int("in_channels", in_channels, 1)
    check_int("image_size", image_size, 1)
    check_int("num_train", num_train, 1)
    check_int("num_val", num_val, 0)
    check_int("num_test", num_test, 0)
    check_int("seed", seed)
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, in_channels, 4, 4, generator=generator, dtype=torch.float64)
    templates = 48.0 + 160.0 * F.interpolate(
        coarse, size=(image_size, image_size), mode="bilinear", align_corners=False
    )

    def draw(count: int) -> tuple[Tensor, Tensor]:
        labels = torch.arange(count) % num_classes
        labels = labels[torch.randperm(count, generator=generator)]
        noise = torch.randn(
            count, in_channels, image_size, image_size, generator=generator, dtype=torch.float64
        )
        images = (templates[labels] + 40.0 * noise).round_().clamp_(0, 255).to(torch.uint8)
        return images, labels

    train_x, train_y = draw(num_train)
    val_x, val_y = draw(num_val)
    test_x, test_y = draw(num_test)
    mean, std = _channel_stats(train_x)
    return ImageDataset(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        mean=mean,
        std=std,
    )


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    torchvision_class: str
    archive: str


_CIFAR_LAYOUTS = {
    "cifar10": _CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key=b"labels",
        num_classes=10,
        torchvision_class="CIFAR10",
        archive="cifar-10-python.tar.gz",
    ),
    "cifar100": _CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key=b"fine_labels",
        num_classes=100,
        torchvision_class="CIFAR100",
        archive="cifar-100-python.tar.gz",
    ),
}


def _default_root() -> Path:
    return Path(os.environ.get(_DATA_ENV_VAR) or DEFAULT_ROOT).expanduser()


def _load_digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's digits as (non-test images, labels, test images, labels), fixed test split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "The 'digits' data set ships with scikit-learn, which is not installed; install it "
            "(requirements/pinned.txt pins it)."
        ) from error
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul_(255.0 / 16.0).round_().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    order = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(_DIGITS_TEST_SEED))
    is_test = torch.zeros(labels.shape[0], dtype=torch.bool)
    for label in range(10):
        members = order[labels[order] == label]
        is_test[members[: round(_DIGITS_TEST_FRACTION * members.shape[0])]] = True
    return images[~is_test], labels[~is_test], images[is_test], labels[is_test]


def _load_fashion_mnist(root: Path | None, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    places = [] if root is None else [root, root / "FashionMNIST" / "raw"]
    places.append(Path(DEBIAN_FASHION_MNIST))
    target = _default_root() if root is None else root
    if root is None:
        places += [target, target / "FashionMNIST" / "raw"]
    files = _find_fashion_mnist(places)
    failure = None
    if files is None and download:
        try:
            dataset_class = import_torchvision().datasets.FashionMNIST
            for train in (True, False):
                dataset_class(str(target), train=train, download=True)
        except (ImportError, OSError, RuntimeError) as error:
            failure = error
        files = _find_fashion_mnist([target / "FashionMNIST" / "raw"])
    if files is None:
        message = (
            f"Fashion-MNIST not found: looked for {', '.join(_FASHION_MNIST_FILES)} (gzipped or not) "
            f"in {', '.join(map(str, places))}. Install it with `apt-get install -y "
            f"dataset-fashion-mnist` (it puts the files in {DEBIAN_FASHION_MNIST}), put the four "
            f"files in root or root/FashionMNIST/raw, or call load_dataset('fashion_mnist', root=..., "
            f"download=True) to fetch them with torchvision into root/FashionMNIST/raw (root={target})."
        )
        if download:
            message += f" The download with torchvision did not provide them: {failure or 'files missing'}."
        raise DatasetNotFoundError(message) from failure
    train_images, train_labels, test_images, test_labels = files
    x, y = _read_idx_pair(train_images, train_labels)
    test_x, test_y = _read_idx_pair(test_images, test_labels)
    return x, y, test_x, test_y


def _find_fashion_mnist(places: list[Path]) -> list[Path] | None:
    """The four files from the first folder that has them all, each gzipped or not."""
    for folder in places:
        found = []
        for name in _FASHION_MNIST_FILES:
            candidates = [folder / name, folder / name.removesuffix(".gz")]
            path = next((path for path in candidates if path.is_file()), None)
            if path is None:
                break
            found.append(path)
        else:
            return found
    return None


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC).to(torch.int64)
    if images.shape[0] != labels.shape[0]:
        raise ArchSearchError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels."
        )
    if labels.numel() and int(labels.max()) >= 10:
        raise ArchSearchError(f"{labels_path} has label {int(labels.max())}; Fashion-MNIST has 10 classes.")
    return images.unsqueeze(1), labels


def _read_idx(path: Path, magic: int) -> Tensor:
    """Read an IDX file of uint8 data (images: magic 2051, `N x H x W`; labels: 2049, `N`)."""
    kind = "images" if magic == _IDX_IMAGES_MAGIC else "labels"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                data = stream.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as error:
        raise ArchSearchError(f"Cannot read the IDX {kind} file {path}: {error}.") from error
    num_dims = 3 if magic == _IDX_IMAGES_MAGIC else 1
    header_size = 4 * (1 + num_dims)
    if len(data) < header_size:
        raise ArchSearchError(
            f"The IDX {kind} file {path} is corrupt: {len(data)} bytes, shorter than its "
            f"{header_size}-byte header."
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ArchSearchError(
            f"The IDX {kind} file {path} is corrupt or not an IDX {kind} file: magic number {found}, "
            f"expected {magic}."
        )
    dims = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, 1 + num_dims)]
    if len(data) - header_size != math.prod(dims):
        raise ArchSearchError(
            f"The IDX {kind} file {path} is corrupt: its header gives shape {tuple(dims)} "
            f"({math.prod(dims)} bytes) but it holds {len(data) - header_size} bytes of data."
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)
    return torch.from_numpy(array.copy())


def _load_cifar(
    layout: _CifarLayout, root: Path | None, download: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    base = _default_root() if root is None else root
    folder = base / layout.folder
    names = layout.train_files + layout.test_files
    failure = None
    if download and not all((folder / name).is_file() for name in names):
        try:
            dataset_class = getattr(import_torchvision().datasets, layout.torchvision_class)
            for train in (True, False):
                dataset_class(str(base), train=train, download=True)
        except (ImportError, OSError, RuntimeError) as error:
            failure = error
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        message = (
            f"{layout.title} not found: {folder} lacks {', '.join(missing)}. Expected the python "
            f"version of {layout.title}, extracted from {layout.archive}: "
            f"{base}/{layout.folder}/{{{','.join(names)}}}. Put the extracted folder {layout.folder} in "
            f"root, or pass download=True to fetch it with torchvision into root (root={base})."
        )
        if download:
            message += f" The download with torchvision did not provide it: {failure or 'files missing'}."
        raise DatasetNotFoundError(message) from failure
    x, y = _read_cifar_files([folder / name for name in layout.train_files], layout)
    test_x, test_y = _read_cifar_files([folder / name for name in layout.test_files], layout)
    return x, y, test_x, test_y


def _read_cifar_files(paths: list[Path], layout: _CifarLayout) -> tuple[Tensor, Tensor]:
    images, labels = [], []
    for path in paths:
        x, y = _read_cifar_batch(path, layout)
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def _read_cifar_batch(path: Path, layout: _CifarLayout) -> tuple[Tensor, Tensor]:
    """One CIFAR pickle: b"data" is `N x 3072` uint8, each row the R, G, B planes, row-major."""
    try:
        with open(path, "rb") as stream:
            entry = pickle.load(stream, encoding="bytes")
    except OSError as error:
        raise ArchSearchError(f"Cannot read the {layout.title} file {path}: {error}.") from error
    except Exception as error:  # unpickling a damaged file can fail with almost any exception
        raise ArchSearchError(f"The {layout.title} file {path} is not a valid pickle: {error!r}.") from error
    if not isinstance(entry, dict) or b"data" not in entry or layout.label_key not in entry:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ArchSearchError(
            f"The {layout.title} file {path} is not a CIFAR python batch: expected a dict with keys "
            f"b'data' and {layout.label_key!r}, got {keys}."
        )
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[layout.label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ArchSearchError(
            f"The {layout.title} file {path} is corrupt: b'data' must be a `N x 3072` uint8 array, "
            f"got {data.dtype} of shape {data.shape}."
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ArchSearchError(
            f"The {layout.title} file {path} is corrupt: {data.shape[0]} images but labels of "
            f"{labels.dtype} and shape {labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise ArchSearchError(
            f"The {layout.title} file {path} has labels in [{labels.min()}, {labels.max()}]; "
            f"{layout.title} has {layout.num_classes} classes."
        )
    images = torch.from_numpy(data.copy()).view(-1, 3, 32, 32)
    return images, torch.from_numpy(labels.astype(np.int64))


def _resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of a uint8 batch to `size x size`, in chunks, rounded back to uint8."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = size < max(x.shape[-2:])
    out = torch.empty(*x.shape[:2], size, size, dtype=torch.uint8, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.float32)
        resized = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        out[start : start + _CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _hold_out(count: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted (train, validation) indices: the first `val_size` of a permutation seeded by `seed`."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def _channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of `x / 255` from a histogram of pixel values.

    A constant channel gets std 1, so that normalising it only centres it.
    """
    channels = x.shape[1]
    offsets = (256 * torch.arange(channels, device=x.device)).view(1, -1, 1, 1)
    counts = torch.zeros(channels * 256, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.int64) + offsets
        counts += torch.bincount(chunk.reshape(-1), minlength=channels * 256).to(torch.float64)
    counts = counts.view(channels, 256).cpu()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum(dim=1)
    mean = (counts * values).sum(dim=1) / total
    var = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / total
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(type(value).__name__)


__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST",
    "DEFAULT_ROOT",
    "ImageDataset",
    "augment_batch",
    "load_dataset",
    "synthetic_dataset",
]
