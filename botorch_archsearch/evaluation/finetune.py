r"""Full training of the final students (paper section 4.1): fine-tune from the search weights
with cross-entropy and SGD, report test accuracy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from botorch_archsearch.evaluation.data import ImageDataset
from botorch_archsearch.evaluation.distill import accuracy
from botorch_archsearch.evaluation.progress import Progress
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils.validation import check_choice, check_float, check_int


@dataclass
class TrainResult:
    r"""The outcome of :func:`train_classifier`.

    Args:
        val_accuracy: Validation accuracy at the end.
        test_accuracy: Test accuracy at the end.
        history: Validation accuracy after each epoch (if ``validate_every`` asked for it).
        losses: Mean training loss of each epoch.
        seconds: Wall-clock time.
    """

    val_accuracy: float
    test_accuracy: float
    history: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_classifier(
    model: nn.Module,
    data: ImageDataset,
    *,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "step",
    step_size: int | None = None,
    gamma: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    validate_every: int = 1,
    progress: bool | None = None,
    label: str = "train",
    penalty: Callable[[nn.Module, int], Tensor] | None = None,
    after_step: Callable[[nn.Module, float], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainResult:
    r"""Train ``model`` in place with cross-entropy and SGD (momentum, weight decay) on the
    dataset's ``train`` split (augmented as the dataset says).

    Args:
        model: The network.
        data: The dataset.
        epochs: Epochs.
        lr: Initial learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        schedule: ``"step"`` (multiply by ``gamma`` every ``step_size`` epochs) or ``"cosine"``.
        step_size: Epochs between learning-rate steps (default: a third of ``epochs``).
        gamma: Learning-rate factor of each step.
        batch_size: Images per batch.
        seed: Seed of the batch order and augmentation.
        device: Where to train (default: the dataset's).
        max_batches: Stop each epoch after this many batches (for quick runs and tests).
        validate_every: Validate every this many epochs (and after the last).
        progress: Show progress (``None``: only on a terminal).
        label: Prefix of the progress lines.
        penalty: A regulariser added to the loss: ``penalty(model, step)`` (``step`` counts
            the optimizer steps from 0), e.g. a group lasso or a KL term.
        after_step: Called after every optimizer step as ``after_step(model, lr)`` with the
            step's learning rate (e.g. a proximal step).
        optimizer: The optimizer (default: SGD with ``lr``, ``momentum``, ``weight_decay``); the
            schedule scales its groups' learning rates.

    Returns:
        A :class:`TrainResult`; the model keeps its final weights.
    """
    where = "train_classifier"
    check_int("epochs", epochs, 1, where=where)
    check_int("batch_size", batch_size, 1, where=where)
    check_int("validate_every", validate_every, 1, where=where)
    check_choice("schedule", schedule, ("step", "cosine"), where=where)
    check_float("lr", lr, 0, exclusive_minimum=True, where=where)
    start = time.perf_counter()
    device = data.device if device is None else torch.device(device)
    data = data.to(device)
    model.to(device).train()
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size or max(1, epochs // 3), gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    generator = torch.Generator().manual_seed(seed)
    num_batches = data.num_batches("train", batch_size)
    num_batches = num_batches if max_batches is None else min(num_batches, max_batches)
    display = Progress(label, epochs, enabled=progress)
    result = TrainResult(0.0, 0.0)
    steps = 0
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for b, (x, y) in enumerate(data.batches("train", batch_size, shuffle=True, generator=generator), 1):
            if b > num_batches:
                break
            loss = nn.functional.cross_entropy(model(x), y)
            if penalty is not None:
                loss = loss + penalty(model, steps)
            if not torch.isfinite(loss):
                raise ArchSearchError(f"{label}: the training loss became {loss.item()} at epoch {epoch}, batch {b}.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(model, optimizer.param_groups[0]["lr"])
            steps += 1
            total, count = total + loss.item(), count + 1
            display.batch(epoch, b, num_batches, f"loss {total / count:.4f}")
        scheduler.step()
        result.losses.append(total / max(count, 1))
        status = f"loss {result.losses[-1]:.4f}"
        if epoch % validate_every == 0 or epoch == epochs:
            result.history.append(accuracy(model, data, "val", device=device))
            status += f" | val {result.history[-1]:.4f}"
        display.epoch(epoch, status)
    display.close()
    result.val_accuracy = result.history[-1]
    result.test_accuracy = accuracy(model, data, "test", device=device)
    result.seconds = time.perf_counter() - start
    return result


def finetune(
    student: nn.Module,
    data: ImageDataset,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    step_size: int = 100,
    gamma: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    progress: bool | None = None,
) -> TrainResult:
    r"""Fully train a chosen student from its search weights (paper: cross-entropy, no KD, SGD
    lr 0.01, momentum 0.9, weight decay 5e-4, 300 epochs, learning rate x0.1 every 100).

    Args:
        student: The student, holding the weights its distillation ended with.
        data: The dataset.
        epochs: Epochs (paper: 300).
        lr: Initial learning rate (paper: 0.01).
        momentum: SGD momentum (paper: 0.9).
        weight_decay: Weight decay (paper: 5e-4).
        step_size: Epochs between learning-rate steps (paper: 100).
        gamma: Learning-rate factor per step (paper: 0.1).
        batch_size: Images per batch.
        seed: Seed of the batch order and augmentation.
        device: Where to train (default: the dataset's).
        max_batches: Stop each epoch after this many batches (for quick runs and tests).
        progress: Show progress (``None``: only on a terminal).

    Returns:
        A :class:`TrainResult` with the test accuracy.
    """
    return train_classifier(
        student, data, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule="step",
        step_size=step_size, gamma=gamma, batch_size=batch_size, seed=seed, device=device,
        max_batches=max_batches, validate_every=max(1, epochs // 10), progress=progress, label="fine-tune",
    )


__all__ = ["TrainResult", "finetune", "train_classifier"]
