r"""Tests of botorch_archsearch/evaluation/data.py."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from botorch_archsearch.evaluation import data as data_module
from botorch_archsearch.evaluation.data import (
    DATASET_NAMES,
    ImageDataset,
    augment_batch,
    load_dataset,
    synthetic_dataset,
)
from botorch_archsearch.exceptions import ArchSearchError, DatasetNotFoundError
from botorch_archsearch.utils.torchvision import import_torchvision

REAL_DEBIAN_FASHION_MNIST = data_module.DEBIAN_FASHION_MNIST
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR = {
    # name: (folder, train files, test files, label key, num_classes, torchvision class)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        b"labels",
        10,
        "CIFAR10",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100, "CIFAR100"),
}


@pytest.fixture(autouse=True)
def no_real_data(tmp_path, monkeypatch):
    """Point the Debian folder and the default root at empty places, so no test finds real files."""
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian" / "fashion-mnist")
    monkeypatch.setenv("BOTORCH_ARCHSEARCH_DATA", str(tmp_path / "default-root"))


@pytest.fixture(scope="module")
def digits_native() -> ImageDataset:
    """Digits at their native 8 x 8 size (no resize), seed 0."""
    return load_dataset("digits", image_size=8)


def _rows(*pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """One int64 row per image: its label, then its pixels."""
    return torch.cat([torch.cat([y[:, None], x.flatten(1).long()], dim=1) for x, y in pairs])


def _same_multiset(a: torch.Tensor, b: torch.Tensor) -> bool:
    ua, ca = torch.unique(a, dim=0, return_counts=True)
    ub, cb = torch.unique(b, dim=0, return_counts=True)
    return ua.shape == ub.shape and torch.equal(ua, ub) and torch.equal(ca, cb)


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_dtypes_and_classes():
    data = load_dataset("digits")
    assert (data.name, data.num_classes, data.augment) == ("digits", 10, "none")
    assert (data.in_channels, data.image_size) == (1, 16)
    assert data.train_x.shape == (1294, 1, 16, 16)
    assert data.val_x.shape == (144, 1, 16, 16)
    assert data.test_x.shape == (359, 1, 16, 16)
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert torch.equal(torch.unique(y), torch.arange(10))
    # The test split is stratified: 20% of each class, rounded.
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    assert data.test_y.bincount().tolist() == [round(0.2 * n) for n in per_class]


def test_digits_splits_are_disjoint_and_cover_every_image(digits_native):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images * 255 / 16)).to(torch.uint8).unsqueeze(1)
    reference = _rows((images, torch.from_numpy(bunch.target).long()))
    data = digits_native
    assert data.train_x.shape[2:] == (8, 8) and int(data.train_x.max()) == 255
    pieces = [data.split(split) for split in ("train", "val", "test")]
    assert sum(y.shape[0] for _, y in pieces) == 1797
    # The 1,797 images are all different, so equal multisets mean each is in exactly one split.
    assert torch.unique(reference, dim=0).shape[0] == 1797
    assert _same_multiset(_rows(*pieces), reference)


def test_digits_validation_split_depends_on_seed_only(digits_native):
    again = load_dataset("digits", image_size=8, seed=0)
    other = load_dataset("digits", image_size=8, seed=1)
    assert torch.equal(again.val_x, digits_native.val_x) and torch.equal(again.val_y, digits_native.val_y)
    assert torch.equal(again.train_x, digits_native.train_x)
    assert not torch.equal(other.val_x, digits_native.val_x)
    # The test split is fixed whatever the seed.
    assert torch.equal(other.test_x, digits_native.test_x) and torch.equal(other.test_y, digits_native.test_y)
    assert _same_multiset(
        _rows(other.split("train"), other.split("val")),
        _rows(digits_native.split("train"), digits_native.split("val")),
    )


def test_digits_val_size_and_image_size(digits_native):
    data = load_dataset("digits", image_size=12, val_size=300)
    assert data.train_x.shape == (1438 - 300, 1, 12, 12) and data.val_x.shape == (300, 1, 12, 12)
    expected = F.interpolate(
        digits_native.test_x.float(), size=(12, 12), mode="bilinear", align_corners=False
    )
    assert torch.equal(data.test_x, expected.round().clamp(0, 255).to(torch.uint8))
    assert data.test_x.dtype == torch.uint8


# ---------------------------------------------------------------------------------------------
# fashion_mnist


def _write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as stream:
            stream.write(payload)
    else:
        path.with_suffix("").write_bytes(payload)


def _fake_fashion(folder: Path, num_train: int = 300, num_test: int = 50, seed: int = 0, compress=True):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, num_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, num_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        _write_idx(folder / name, array, 2051 if array.ndim == 3 else 2049, compress=compress)
    return [torch.from_numpy(a.copy()) for a in arrays.values()]


@pytest.mark.parametrize("layout", ["root", "torchvision", "uncompressed"])
def test_fashion_mnist_reads_idx_files_exactly(tmp_path, layout):
    root = tmp_path / "data"
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    train_x, train_y, test_x, test_y = _fake_fashion(folder, compress=layout != "uncompressed")
    data = load_dataset("fashion_mnist", root=root, val_size=0)
    assert (data.name, data.num_classes, data.augment) == ("fashion_mnist", 10, "none")
    assert (data.in_channels, data.image_size) == (1, 28)
    assert torch.equal(data.train_x, train_x.unsqueeze(1)) and torch.equal(data.train_y, train_y.long())
    assert torch.equal(data.test_x, test_x.unsqueeze(1)) and torch.equal(data.test_y, test_y.long())
    assert data.val_x.shape == (0, 1, 28, 28)

    held = load_dataset("fashion_mnist", root=str(root), val_size=50, seed=3)
    assert held.train_x.shape[0] == 250 and held.val_x.shape[0] == 50
    assert _same_multiset(
        _rows(held.split("train"), held.split("val")), _rows((train_x.unsqueeze(1), train_y.long()))
    )


def test_fashion_mnist_corrupt_files(tmp_path):
    _fake_fashion(tmp_path, num_train=20, num_test=5)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), 2051)
    with pytest.raises(ArchSearchError, match=r"t10k-labels.*magic number 2051, expected 2049"):
        load_dataset("fashion_mnist", root=tmp_path, val_size=5)

    _fake_fashion(tmp_path, num_train=20, num_test=5)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as stream:
        payload = stream.read()
    with gzip.open(path, "wb") as stream:
        stream.write(payload[:-7])
    with pytest.raises(ArchSearchError, match=r"corrupt: its header gives shape \(20, 28, 28\)"):
        load_dataset("fashion_mnist", root=tmp_path, val_size=5)

    path.write_bytes(b"not gzip at all")
    with pytest.raises(ArchSearchError, match="train-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist", root=tmp_path, val_size=5)

    _fake_fashion(tmp_path, num_train=20, num_test=5)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8), 2049)
    with pytest.raises(ArchSearchError, match="20 images but .* 19 labels"):
        load_dataset("fashion_mnist", root=tmp_path, val_size=5)


def test_fashion_mnist_missing_everywhere(tmp_path):
    debian = data_module.DEBIAN_FASHION_MNIST
    _fake_fashion(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", root=tmp_path / "partial")
    message = str(info.value)
    assert isinstance(info.value, ArchSearchError) and isinstance(info.value, ValueError)
    for needle in (
        str(tmp_path / "partial"),
        str(tmp_path / "partial" / "FashionMNIST" / "raw"),
        str(debian),
        "apt-get install -y dataset-fashion-mnist",
        "download=True",
        "t10k-labels-idx1-ubyte.gz",
    ):
        assert needle in message
    # Without root, the default root is searched too.
    with pytest.raises(DatasetNotFoundError, match="default-root"):
        load_dataset("fashion_mnist")


def test_fashion_mnist_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeFashionMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            _fake_fashion(Path(root) / "FashionMNIST" / "raw", num_train=40, num_test=10, seed=5)

    monkeypatch.setattr(import_torchvision().datasets, "FashionMNIST", FakeFashionMNIST)
    data = load_dataset("fashion_mnist", download=True, val_size=10)
    default_root = str(tmp_path / "default-root")
    assert calls == [(default_root, True, True), (default_root, False, True)]
    _, _, test_x, _ = _fake_fashion(tmp_path / "expected", num_train=40, num_test=10, seed=5)
    assert torch.equal(data.test_x, test_x.unsqueeze(1)) and data.train_x.shape[0] == 30
    # Once downloaded, the files are found without downloading again.
    calls.clear()
    load_dataset("fashion_mnist", val_size=10)
    assert calls == []


@pytest.mark.skipif(
    not REAL_DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"{REAL_DEBIAN_FASHION_MNIST} is absent (apt-get install -y dataset-fashion-mnist)",
)
def test_fashion_mnist_debian_package(monkeypatch):
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", REAL_DEBIAN_FASHION_MNIST)
    data = load_dataset("fashion_mnist")
    assert data.train_x.shape == (55_000, 1, 28, 28) and data.val_x.shape == (5_000, 1, 28, 28)
    assert data.test_x.shape == (10_000, 1, 28, 28)
    assert data.train_y.shape[0] + data.val_y.shape[0] == 60_000
    assert torch.equal(torch.unique(data.test_y), torch.arange(10))
    assert data.mean[0] == pytest.approx(0.2860, abs=1e-3) and data.std[0] == pytest.approx(0.3530, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# cifar10 / cifar100


def _cifar_images(count: int, offset: int) -> np.ndarray:
    """`count x 3 x 32 x 32` images with known pixels: red (r * 32 + c + i) % 256, green i, blue 7."""
    index = np.arange(offset, offset + count)[:, None, None]
    grid = np.arange(32 * 32).reshape(1, 32, 32)
    red = (grid + index) % 256
    green = np.broadcast_to(index % 256, red.shape)
    blue = np.full_like(red, 7)
    return np.stack([red, green, blue], axis=1).astype(np.uint8)


def _write_cifar(root: Path, name: str, num_train: int = 200, num_test: int = 60):
    folder, train_files, test_files, label_key, num_classes, _ = CIFAR[name]
    (root / folder).mkdir(parents=True, exist_ok=True)
    images = _cifar_images(num_train + num_test, 0)
    labels = (np.arange(num_train + num_test) * 7) % num_classes
    per_file = num_train // len(train_files)
    chunks = [
        (file, slice(i * per_file, (i + 1) * per_file)) for i, file in enumerate(train_files)
    ] + [(test_files[0], slice(num_train, num_train + num_test))]
    for file, part in chunks:
        # CIFAR's row layout, written out plane by plane: 1,024 red, 1,024 green, 1,024 blue.
        rows = np.concatenate([images[part, c].reshape(-1, 1024) for c in range(3)], axis=1)
        entry = {b"batch_label": file.encode(), b"data": rows, label_key: labels[part].tolist()}
        if name == "cifar100":
            entry[b"coarse_labels"] = [0] * len(entry[label_key])
        with open(root / folder / file, "wb") as stream:
            pickle.dump(entry, stream, protocol=2)
    return torch.from_numpy(images), torch.from_numpy(labels).long()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_pickles_exactly(tmp_path, name):
    images, labels = _write_cifar(tmp_path, name)
    data = load_dataset(name, root=tmp_path, val_size=20)
    num_classes = CIFAR[name][4]
    assert (data.name, data.num_classes, data.augment) == (name, num_classes, "crop_flip")
    assert (data.in_channels, data.image_size) == (3, 32)
    assert data.train_x.shape == (180, 3, 32, 32) and data.val_x.shape == (20, 3, 32, 32)
    assert torch.equal(data.test_x, images[200:]) and torch.equal(data.test_y, labels[200:])
    # Channel order and layout: red varies along rows and columns, green is the image index.
    first = data.test_x[0]
    assert int(first[0, 1, 2]) == (1 * 32 + 2 + 200) % 256
    assert int(first[1].min()) == int(first[1].max()) == 200 and int(first[2, 5, 5]) == 7
    assert _same_multiset(_rows(data.split("train"), data.split("val")), _rows((images[:200], labels[:200])))
    whole = load_dataset(name, root=tmp_path, val_size=0)
    assert torch.equal(whole.train_x, images[:200]) and torch.equal(whole.train_y, labels[:200])
    assert data.mean == pytest.approx(tuple(data.train_x.double().div(255).mean(dim=(0, 2, 3)).tolist()))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_missing(tmp_path, name):
    folder, train_files, test_files, *_ = CIFAR[name]
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    for needle in (str(tmp_path / folder), folder, train_files[-1], test_files[0], "download=True"):
        assert needle in message


def test_cifar_corrupt_pickle(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    with open(path, "wb") as stream:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, stream)
    with pytest.raises(ArchSearchError, match=r"data_batch_3 is corrupt: .*N x 3072"):
        load_dataset("cifar10", root=tmp_path, val_size=10)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ArchSearchError, match="data_batch_3 is not a valid pickle"):
        load_dataset("cifar10", root=tmp_path, val_size=10)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_download_goes_through_torchvision(tmp_path, monkeypatch, name):
    calls = []

    class FakeCIFAR:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            _write_cifar(Path(root), name, num_train=100, num_test=20)

    monkeypatch.setattr(import_torchvision().datasets, CIFAR[name][5], FakeCIFAR)
    data = load_dataset(name, root=tmp_path / "here", download=True, val_size=10)
    assert calls == [(str(tmp_path / "here"), True, True), (str(tmp_path / "here"), False, True)]
    assert data.train_x.shape[0] == 90
    assert torch.equal(data.test_x, torch.from_numpy(_cifar_images(20, 100)))
    # Found without downloading again; and without root, the default root is where it goes.
    calls.clear()
    load_dataset(name, root=tmp_path / "here", download=True, val_size=10)
    assert calls == []
    load_dataset(name, download=True, val_size=10)
    default_root = str(tmp_path / "default-root")
    assert calls == [(default_root, True, True), (default_root, False, True)]


def test_cifar_download_failure_is_dataset_not_found(tmp_path, monkeypatch):
    class OfflineCIFAR10:
        def __init__(self, root, train=True, download=False):
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(import_torchvision().datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(DatasetNotFoundError, match="torchvision did not provide it: .*no network"):
        load_dataset("cifar10", root=tmp_path, download=True)


# ---------------------------------------------------------------------------------------------
# augment_batch


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_augment_batch_shape_dtype_and_padding_zero(dtype):
    x = torch.randint(0, 256, (64, 3, 5, 5), generator=torch.Generator().manual_seed(0)).to(dtype)
    out = augment_batch(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == dtype
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and bool(same.any()) and bool(flipped.any())
    assert augment_batch(x[:0], generator=torch.Generator()).shape == (0, 3, 5, 5)


def _crops(image: torch.Tensor, padding: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every crop of the zero-padded image, keyed by (row offset, column offset, flipped)."""
    _, height, width = image.shape
    padded = torch.zeros(image.shape[0], height + 2 * padding, width + 2 * padding, dtype=image.dtype)
    padded[:, padding : padding + height, padding : padding + width] = image
    out = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + height, dx : dx + width]
            out[(dy, dx, False)] = crop
            out[(dy, dx, True)] = crop.flip(-1)
    return out


def test_augment_batch_is_a_crop_and_flip_of_the_padded_image():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (12, 3, 6, 7), generator=generator, dtype=torch.uint8)
    out = augment_batch(x, padding=2, generator=generator)
    for image, augmented in zip(x, out):
        matches = [key for key, crop in _crops(image, 2).items() if torch.equal(crop, augmented)]
        assert len(matches) == 1
    # Over many images every offset and flip occurs (3 x 3 x 2 = 18 cases with padding 1).
    x = (torch.arange(16, dtype=torch.float32) + 1).view(1, 1, 4, 4).expand(2000, 1, 4, 4)
    out = augment_batch(x, padding=1, generator=generator)
    crops = _crops(x[0], 1)
    seen = {next(key for key, crop in crops.items() if torch.equal(crop, a)) for a in out}
    assert seen == set(crops)


def test_augment_batch_is_reproducible():
    x = torch.randint(0, 256, (32, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    first = augment_batch(x, generator=torch.Generator().manual_seed(7))
    again = augment_batch(x, generator=torch.Generator().manual_seed(7))
    other = augment_batch(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_augment_batch_errors():
    with pytest.raises(ArchSearchError, match="batch x C x H x W"):
        augment_batch(torch.zeros(3, 8, 8))
    with pytest.raises(ArchSearchError, match="padding must be an integer >= 0, got -1"):
        augment_batch(torch.zeros(1, 3, 8, 8), padding=-1)


# ---------------------------------------------------------------------------------------------
# ImageDataset and batches


def _indexed_dataset(count: int = 37, augment: str = "none") -> ImageDataset:
    """Image i is constant i (2 channels, 4 x 4) with label i, so a batch tells which it holds."""
    x = torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(count, 2, 4, 4).clone()
    x[:, 1] = 255 - x[:, 1]
    y = torch.arange(count)
    return ImageDataset(
        name="indexed",
        train_x=x,
        train_y=y,
        val_x=x[:5],
        val_y=y[:5],
        test_x=x[:3],
        test_y=y[:3],
        num_classes=count,
        mean=(0.1, 0.8),
        std=(0.2, 0.3),
        augment=augment,
    )


def _denormalize(data: ImageDataset, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return ((x * std + mean) * 255).round().long()


def test_shuffled_batches_visit_every_image_once_per_epoch():
    data = _indexed_dataset()
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        labels = []
        for x, y in data.batches("train", 8, shuffle=True, generator=generator):
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert torch.equal(_denormalize(data, x)[:, 0, 0, 0], y)
            labels.append(y)
        epoch = torch.cat(labels)
        assert torch.equal(epoch.sort().values, torch.arange(37))
        epochs.append(epoch)
    assert not torch.equal(epochs[0], torch.arange(37)) and not torch.equal(epochs[0], epochs[1])
    replay = data.batches("train", 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    replay = torch.cat([y for _, y in replay])
    assert torch.equal(replay, epochs[0])
    ordered = torch.cat([y for _, y in data.batches("train", 8)])
    assert torch.equal(ordered, torch.arange(37))


def test_batch_normalization_matches_hand_computation():
    data = synthetic_dataset(num_train=300, num_val=10, num_test=10, seed=2)
    pixels = data.train_x.double() / 255
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.permute(1, 0, 2, 3).flatten(1).std(dim=1, correction=0)
    assert data.mean == pytest.approx(tuple(mean.tolist()), abs=1e-12)
    assert data.std == pytest.approx(tuple(std.tolist()), abs=1e-12)
    x, y = next(data.batches("val", 10))
    expected = (data.val_x.double() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    torch.testing.assert_close(x, expected.float(), atol=1e-6, rtol=1e-6)
    assert torch.equal(y, data.val_y)
    torch.testing.assert_close(data.normalize(data.val_x.float()), x)


def test_augmentation_defaults_to_training_batches_of_augmented_datasets():
    plain = _indexed_dataset(augment="none")
    cropped = _indexed_dataset(augment="crop_flip")

    def first(data, split, **kwargs):
        return next(data.batches(split, 8, generator=torch.Generator().manual_seed(3), **kwargs))[0]

    raw_train = plain.normalize(plain.train_x[:8])
    expected = plain.normalize(augment_batch(plain.train_x[:8], generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(expected, raw_train)
    assert torch.equal(first(cropped, "train"), expected)
    assert torch.equal(first(plain, "train"), raw_train)
    assert torch.equal(first(cropped, "train", augment=False), raw_train)
    assert torch.equal(first(cropped, "val"), plain.normalize(plain.val_x))
    augmented_val = augment_batch(plain.val_x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first(plain, "val", augment=True), plain.normalize(augmented_val))


@pytest.mark.parametrize(
    "batch_size, drop_last, sizes",
    [(8, False, [8, 8, 8, 8, 5]), (8, True, [8] * 4), (37, True, [37]), (50, False, [37]), (50, True, [])],
)
def test_batch_count(batch_size, drop_last, sizes):
    data = _indexed_dataset()
    batches = list(data.batches("train", batch_size, shuffle=True, drop_last=drop_last))
    assert [y.shape[0] for _, y in batches] == sizes
    assert data.num_batches("train", batch_size, drop_last=drop_last) == len(sizes)
    assert data.num_batches("val", 2) == 3


def test_dataset_accessors_and_errors():
    data = _indexed_dataset()
    assert (data.in_channels, data.image_size, data.device) == (2, 4, torch.device("cpu"))
    moved = data.to("cpu")
    assert moved is not data and torch.equal(moved.train_x, data.train_x) and moved.mean == data.mean
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        data.split("validation")
    with pytest.raises(ArchSearchError, match="batch_size must be an integer >= 1, got 0"):
        data.batches("train", 0)
    with pytest.raises(ArchSearchError, match="train_x must be a `N x C x H x W` uint8 tensor"):
        dataclasses.replace(data, train_x=data.train_x.float())
    with pytest.raises(ArchSearchError, match=r"train_y has labels in \[0, 36\]"):
        dataclasses.replace(data, num_classes=10)
    with pytest.raises(ArchSearchError, match="augment must be one of"):
        dataclasses.replace(data, augment="flip")
    with pytest.raises(ArchSearchError, match="one value per channel"):
        dataclasses.replace(data, mean=(0.5,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_cuda():
    data = synthetic_dataset(num_train=100, seed=0, num_val=10, num_test=10).to("cuda")
    assert data.device.type == "cuda"
    generator = torch.Generator().manual_seed(0)
    x, y = next(data.batches("train", 32, shuffle=True, augment=True, generator=generator))
    assert x.device.type == "cuda" and y.device.type == "cuda" and x.shape == (32, 3, 16, 16)


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ArchSearchError) as info:
        load_dataset("mnist")
    for name in DATASET_NAMES:
        assert repr(name) in str(info.value)
    with pytest.raises(ArchSearchError, match="val_size=1438 leaves no training image"):
        load_dataset("digits", val_size=1438)
    with pytest.raises(ArchSearchError, match="val_size must be an integer >= 0, got -1"):
        load_dataset("digits", val_size=-1)
    with pytest.raises(ArchSearchError, match="image_size must be an integer >= 1, got 0"):
        load_dataset("digits", image_size=0)


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_is_deterministic_per_seed():
    first = synthetic_dataset(seed=3)
    again = load_dataset("synthetic", seed=3)
    other = synthetic_dataset(seed=4)
    assert first.train_x.shape == (1000, 3, 16, 16)
    assert (first.val_x.shape[0], first.test_x.shape[0], first.num_classes) == (200, 200, 10)
    for split in ("train", "val", "test"):
        for a, b in zip(first.split(split), again.split(split)):
            assert torch.equal(a, b)
        labels = first.split(split)[1]
        assert torch.equal(labels.bincount(), torch.full((10,), labels.shape[0] // 10))
    assert not torch.equal(first.train_x, other.train_x)
    assert first.mean == again.mean and first.augment == "none"
    small = load_dataset("synthetic", val_size=50, image_size=8)
    assert small.val_x.shape == (50, 3, 8, 8) and small.train_x.shape == (1000, 3, 8, 8)
    custom = synthetic_dataset(
        num_classes=4, in_channels=1, image_size=8, num_train=40, num_val=8, num_test=0
    )
    assert custom.train_x.shape == (40, 1, 8, 8) and custom.test_x.shape == (0, 1, 8, 8)
    assert custom.num_classes == 4 and int(custom.train_y.max()) == 3


def test_synthetic_classes_are_distinguishable():
    data = synthetic_dataset(seed=0)
    x = data.train_x.double().flatten(1)
    centroids = torch.stack([x[data.train_y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(data.test_x.double().flatten(1), centroids).argmin(1)
    assert (predicted == data.test_y).double().mean() > 0.9
