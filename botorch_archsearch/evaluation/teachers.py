r"""Teachers: train a network on a dataset (cached on disk), or load a user's checkpoint.

A teacher is a zoo network, a torchvision classification model or a user's own network from a
``package.module:function`` string (``kind``, see :func:`~botorch_archsearch.models.build_teacher`).
Trained teachers are cached under ``cache_dir/<key>/`` (``state_dict.pt`` and ``meta.json``),
the key being a hash of the teacher's configuration (kind, name or module string, and for
torchvision and user networks a fingerprint of the built network's layers and weight shapes), the
dataset (name, shapes, a fingerprint of its labels) and the training settings and seed, so a second
search with the same settings reuses the teacher instead of training it again. The teacher's
validation accuracy is measured once, when it is trained or loaded, and stored with it.

The trained weights depend on the machine and on torch's intra-op threads (the order in which
floating-point sums are taken), not only on the settings: ``meta.json`` records the device and the
threads it was trained on. To compare runs on one teacher, train it once and share the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from botorch_archsearch.evaluation.data import ImageDataset
from botorch_archsearch.evaluation.distill import accuracy
from botorch_archsearch.evaluation.finetune import train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models import TEACHER_KINDS, TEACHER_NAMES, build_teacher, teacher_label
from botorch_archsearch.utils.files import make_dir
from botorch_archsearch.utils.validation import check_choice

CACHE_ENV = "BOTORCH_ARCHSEARCH_CACHE"
CACHE_FORMAT = 1  # bump when the cached files or the training code change meaning


def default_cache_dir() -> Path:
    r"""Where trained teachers are cached: ``$BOTORCH_ARCHSEARCH_CACHE/teachers`` if set, else
    ``~/.cache/botorch_archsearch/teachers``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "botorch_archsearch") / "teachers"


@dataclass
class Teacher:
    r"""A trained teacher and what is known about it.

    Args:
        model: The network (eval mode).
        val_accuracy: Its validation accuracy, measured once.
        test_accuracy: Its test accuracy (``None`` if not measured).
        name: The teacher's name: the zoo name, ``"torchvision/<name>"`` or the
            ``"package.module:function"`` string (``None`` for a module passed in Python).
        path: Its cache folder or checkpoint file (``None`` for a module passed in Python).
        cached: Whether it was loaded from the cache rather than trained now.
        config: The configuration that identifies it (the cache key's contents).
    """

    model: nn.Module
    val_accuracy: float
    test_accuracy: float | None = None
    name: str | None = None
    path: Path | None = None
    cached: bool = False
    config: dict[str, Any] = field(default_factory=dict)


def dataset_fingerprint(data: ImageDataset) -> dict[str, Any]:
    r"""What identifies a dataset for caching: its name, split shapes and a hash of its labels
    (which differ with the validation seed)."""
    digest = hashlib.sha1()
    for labels in (data.train_y, data.val_y, data.test_y):
        digest.update(labels.detach().to("cpu", torch.int64).numpy().tobytes())
    return {
        "name": data.name,
        "shapes": [list(t.shape) for t in (data.train_x, data.val_x, data.test_x)],
        "labels_sha1": digest.hexdigest(),
    }


def trained_teacher(
    name: str,
    data: ImageDataset,
    *,
    kind: str = "zoo",
    width: float = 1.0,
    epochs: int = 30,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    batch_size: int = 128,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    progress: bool | None = None,
) -> Teacher:
    r"""A teacher trained on ``data``: from the cache if it was trained before with the same
    settings, else trained now (SGD with momentum and weight decay, cross-entropy, cosine or step
    schedule) and cached.

    Args:
        name: A zoo network (:data:`~botorch_archsearch.models.TEACHER_NAMES`), a torchvision
            classification model (``kind="torchvision"``) or ``"package.module:function"``
            (``kind="module"``: the function is called as ``function(num_classes=...,
            in_channels=...)``, see :func:`~botorch_archsearch.models.get_module_model`).
        data: The dataset (its classes and channels size the network).
        kind: One of :data:`~botorch_archsearch.models.TEACHER_KINDS`: ``"zoo"``,
            ``"torchvision"`` or ``"module"``.
        width: Channel-width multiplier of a zoo network (ignored for the other kinds).
        epochs: Training epochs.
        lr: Initial SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        schedule: ``"cosine"`` or ``"step"`` (x0.1 at each third).
        batch_size: Images per batch.
        seed: Seed of the initial weights, batch order and augmentation.
        cache_dir: The cache folder (default: :func:`default_cache_dir`).
        use_cache: Read and write the cache.
        device: Where to train (default: the dataset's).
        max_batches: Stop each epoch after this many batches (quick runs, tests).
        progress: Show progress (``None``: only on a terminal).

    Returns:
        A :class:`Teacher` in eval mode, with its validation and test accuracy.

    Example:
        >>> teacher = trained_teacher("resnet18", data, width=0.25)               # the zoo
        >>> teacher = trained_teacher("mobilenet_v2", data, kind="torchvision")   # torchvision
        >>> teacher = trained_teacher("mynets:make_net", data, kind="module")     # your own
    """
    _check_kind("trained_teacher", kind)
    if kind == "zoo" and name not in TEACHER_NAMES:
        raise ArchSearchError(f"trained_teacher: unknown teacher {name!r}; accepted: {list(TEACHER_NAMES)}.")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_teacher(name, kind=kind, num_classes=data.num_classes, in_channels=data.in_channels,
                              width=width)
    if kind == "zoo":  # the key zoo teachers were always cached under
        identity = {"name": name, "width": width, "num_classes": data.num_classes, "in_channels": data.in_channels}
    else:  # the layers and shapes too: an edited user network is another teacher
        identity = {"kind": kind, "name": name, "num_classes": data.num_classes, "in_channels": data.in_channels,
                    "architecture": _architecture_digest(model)}
    config = {
        "format": CACHE_FORMAT,
        "teacher": identity,
        "dataset": dataset_fingerprint(data),
        "training": {"epochs": epochs, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                     "schedule": schedule, "batch_size": batch_size, "max_batches": max_batches},
        "seed": seed,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    label = teacher_label(name, kind)
    entry = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}-{data.name}-{key}"
    if use_cache:  # before any training: a cache that cannot be written would lose it
        make_dir(folder, f"teacher cache directory (teacher.cache_dir, or ${CACHE_ENV})")
    if use_cache and (entry / "meta.json").is_file():
        meta = json.loads((entry / "meta.json").read_text())
        model.load_state_dict(torch.load(entry / "state_dict.pt", map_location="cpu", weights_only=True))
        device = data.device if device is None else torch.device(device)
        return Teacher(model.to(device).eval(), meta["val_accuracy"], meta.get("test_accuracy"), label, entry,
                       True, config)
    result = train_classifier(
        model, data, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
        batch_size=batch_size, seed=seed, device=device, max_batches=max_batches,
        validate_every=max(1, epochs // 5), progress=progress, label=f"teacher {label}",
    )
    model.eval()
    if use_cache:
        meta = {"config": config, "val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy,
                "seconds": result.seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "torch": torch.__version__, "threads": torch.get_num_threads(),
                "device": str(next(model.parameters()).device)}
        _write_entry(entry, model, meta)
    return Teacher(model, result.val_accuracy, result.test_accuracy, label, entry if use_cache else None, False,
                   config)


def load_teacher(
    source: str | Path | nn.Module,
    data: ImageDataset,
    *,
    name: str | None = None,
    kind: str = "zoo",
    width: float = 1.0,
    device: str | torch.device | None = None,
) -> Teacher:
    r"""A user's trained teacher: an ``nn.Module``, or a checkpoint file holding a state_dict.

    Checkpoints are read with ``torch.load(..., weights_only=True)`` (no code runs from the
    file): a state_dict, or a dict with the state_dict under ``"state_dict"`` or ``"model"``. A
    checkpoint needs ``name`` (and ``kind``), the network it was trained as: a zoo network, a
    torchvision classification model (``kind="torchvision"``, its first convolution adapted to the
    dataset's channels as :func:`~botorch_archsearch.models.get_torchvision_model` does) or
    ``"package.module:function"`` (``kind="module"``). The validation (and test) accuracy is
    measured once here.

    Args:
        source: The module, or the checkpoint's path.
        data: The dataset the teacher was trained on.
        name: The network of a checkpoint (see :func:`trained_teacher`).
        kind: One of :data:`~botorch_archsearch.models.TEACHER_KINDS`.
        width: The width multiplier of a zoo network.
        device: Where to put it (default: the dataset's).

    Returns:
        A :class:`Teacher` in eval mode.
    """
    device = data.device if device is None else torch.device(device)
    path = None
    if isinstance(source, nn.Module):
        model = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ArchSearchError(f"load_teacher: no checkpoint file at {str(path)!r}.")
        _check_kind("load_teacher", kind)
        if kind == "zoo" and name not in TEACHER_NAMES or name is None:
            raise ArchSearchError(
                f"load_teacher: a checkpoint needs name=, the zoo network it holds; accepted: {list(TEACHER_NAMES)}, "
                f"got {name!r}. For another network: kind='torchvision' with a torchvision model's name, or "
                "kind='module' with 'package.module:function', or build it in Python and pass the nn.Module."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unpickling failure gets the same advice
            raise ArchSearchError(
                f"load_teacher: {str(path)!r} is not a weights-only checkpoint ({type(error).__name__}). Save "
                "the weights with torch.save(model.state_dict(), path), or pass the nn.Module in Python."
            ) from error
        if isinstance(state, dict) and not _is_state_dict(state):
            state = state.get("state_dict", state.get("model", state))
        if not _is_state_dict(state):
            raise ArchSearchError(f"load_teacher: {str(path)!r} holds no state_dict of tensors.")
        model = build_teacher(name, kind=kind, num_classes=data.num_classes, in_channels=data.in_channels,
                              width=width)
        fits = (f"{teacher_label(name, kind)} ({f'width {width}, ' if kind == 'zoo' else ''}{data.num_classes} "
                f"classes, {data.in_channels} channels)")
        missing, unexpected = _key_mismatch(model, state)
        if missing or unexpected:
            raise ArchSearchError(
                f"load_teacher: the checkpoint does not fit {fits}: missing keys {missing[:5]}, unexpected keys "
                f"{unexpected[:5]}."
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ArchSearchError(
                f"load_teacher: the checkpoint does not fit {fits}: {str(error).splitlines()[-1].strip()}"
            ) from error
    else:
        raise ArchSearchError(
            f"load_teacher: source must be an nn.Module or a checkpoint path, got {type(source).__name__}."
        )
    model = model.to(device).eval()
    val = accuracy(model, data, "val", device=device)
    test = accuracy(model, data, "test", device=device)
    config = {"source": str(path) if path else type(model).__name__, "name": name, "width": width,
              "dataset": dataset_fingerprint(data)}
    if path is not None and kind != "zoo":
        config["kind"] = kind
    return Teacher(model, val, test, teacher_label(name, kind) if name is not None else None, path, False, config)


def _check_kind(caller: str, kind: Any) -> None:
    check_choice("kind", kind, TEACHER_KINDS, where=caller)


def _architecture_digest(model: nn.Module) -> str:
    """A hash of a network's layers (their types and settings) and of its weights' names and shapes."""
    digest = hashlib.sha1()
    for path, module in model.named_modules():
        digest.update(f"{path}:{type(module).__module__}.{type(module).__qualname__}({module.extra_repr()})\n".encode())
    for key, value in model.state_dict().items():
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}\n".encode())
    return digest.hexdigest()


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _key_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def _write_entry(entry: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write a cache entry atomically (a half-written entry is never read)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "state_dict.pt")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        if entry.exists():  # written meanwhile by another process: keep theirs
            shutil.rmtree(tmp)
            return
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["CACHE_ENV", "Teacher", "dataset_fingerprint", "default_cache_dir", "load_teacher", "trained_teacher"]
