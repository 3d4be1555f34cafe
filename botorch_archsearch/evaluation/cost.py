r"""Compute accounting in MAC-images: the multiply-accumulates a method spends, counted per image
as FIELD.md sets it, so that methods are compared at equal cost.

- training a network costs about 3x its MACs per image (forward, and backward for the inputs and
  the weights);
- a forward pass (the teacher's logits in distillation, a validation pass) costs 1x;
- Variational Dropout's training costs about 6x (its local reparameterisation runs two
  convolutions per layer, each trained).

The teacher's forward pass is counted for every student distilled, as if each were distilled
alone (in lock-step the ``K`` students of a step share one teacher pass, so the searches' costs
are an upper bound by at most ``(K - 1) / K`` of the teacher's part).

Example:
    >>> images = images_per_epoch(50_000, 128, max_batches=30)  # 3,840
    >>> cost = evaluation_cost(student_flops, teacher_flops, images, val_images=10_000, epochs=2)
"""

from __future__ import annotations

from botorch_archsearch.utils.validation import check_float, check_int

TRAIN_FACTOR = 3.0
r"""MAC-images of one training image, per MAC of the network."""

VD_TRAIN_FACTOR = 6.0
r"""MAC-images of one training image of Variational Dropout, per MAC of the network."""


def images_per_epoch(n: int, batch_size: int, max_batches: int | None = None) -> int:
    r"""Training images one epoch sees: ``n``, or ``max_batches`` batches of ``batch_size``.

    Args:
        n: Training images in the dataset.
        batch_size: Images per batch.
        max_batches: Batches per epoch at most (``None``: all).

    Returns:
        The number of images.
    """
    check_int("n", n, 0, where="images_per_epoch")
    check_int("batch_size", batch_size, 1, where="images_per_epoch")
    check_int("max_batches", max_batches, 1, optional=True, where="images_per_epoch")
    if max_batches is None:
        return n
    return min(n, max_batches * batch_size)


def training_cost(flops: float, images: float, factor: float = TRAIN_FACTOR) -> float:
    r"""MAC-images of training a network of ``flops`` MACs per image on ``images`` images.

    Args:
        flops: The network's multiply-accumulates per image.
        images: Training images seen (epochs times images per epoch).
        factor: MAC-images per MAC and image (:data:`TRAIN_FACTOR`, :data:`VD_TRAIN_FACTOR`).

    Returns:
        The cost.
    """
    check_float("flops", flops, 0, where="training_cost")
    check_float("images", images, 0, where="training_cost")
    return float(factor) * float(flops) * float(images)


def evaluation_cost(student_flops: float, teacher_flops: float, train_images: int, val_images: int,
                    epochs: int) -> float:
    r"""MAC-images of distilling a student (:func:`~botorch_archsearch.evaluation.evaluate_students`):
    per epoch, training on ``train_images`` (3x the student's MACs and 1x the teacher's per image)
    and validating on ``val_images`` (1x the student's).

    Args:
        student_flops: The student's MACs per image.
        teacher_flops: The teacher's MACs per image.
        train_images: Training images per epoch (:func:`images_per_epoch`).
        val_images: Validation images per epoch.
        epochs: Distillation epochs.

    Returns:
        The cost.
    """
    check_int("epochs", epochs, 0, where="evaluation_cost")
    per_epoch = training_cost(student_flops, train_images) + float(teacher_flops) * train_images \
        + float(student_flops) * val_images
    return epochs * per_epoch


__all__ = ["TRAIN_FACTOR", "VD_TRAIN_FACTOR", "evaluation_cost", "images_per_epoch", "training_cost"]
