r"""Group Lasso (Wen et al., NeurIPS 2016, "Learning Structured Sparsity in Deep Neural Networks";
FIELD.md "Group Lasso"): train the teacher with the group lasso of its channels, then keep the
channels of the largest group norm per FLOP.

The regulariser is ``lambda * sum_{g,c} sqrt(|g|) * ||theta_{g,c}||_2``, where ``theta_{g,c}`` are
the *output* weights of channel ``c`` of channel group ``g`` over every coupled layer (the filter
and bias of every convolution and linear layer that produces it, the scale and shift of every
normalisation of it: :func:`~botorch_archsearch.field.groups.channel_slices`) and ``|g|`` is how
many such weights one channel has. These groups do not overlap, so its proximal operator is exact:
block soft-thresholding (:func:`group_lasso_prox`), applied after every SGD step. It sets whole
channels to exactly zero, and a channel whose output weights are zero is zero wherever it goes.

Example:
    >>> slices = channel_slices(graph, model)
    >>> group_lasso_penalty(slices, 5e-4)           # the regulariser's value
    >>> zeros = group_lasso_prox(slices, lr * 5e-4)  # one proximal step, in place
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from botorch_archsearch.evaluation import ImageDataset, train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.groups import (
    ChannelSlice,
    channel_slices,
    group_norms,
    group_sizes,
    zero_channels,
)
from botorch_archsearch.field.regularised import RegularisedPruning
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.search.policies import register_policy
from botorch_archsearch.utils.validation import check_float, check_int

MOMENTUM = 0.9
r"""SGD momentum of the regularised training (Group Lasso and MorphNet)."""


def group_lasso_penalty(slices: list[list[ChannelSlice]], strength: float = 1.0) -> Tensor:
    r"""The group lasso ``strength * sum_{g,c} sqrt(|g|) * ||theta_{g,c}||_2`` of the output
    weights of every channel of every channel group (differentiable; its gradient at a channel
    that is exactly zero is zero).

    Args:
        slices: From :func:`~botorch_archsearch.field.groups.channel_slices` (input slices, if
            any, are ignored).
        strength: ``lambda``, >= 0.

    Returns:
        A scalar tensor.

    Raises:
        ArchSearchError: If ``strength`` is negative or not finite.
    """
    strength = check_float("strength", strength, 0, finite=True, where="group_lasso_penalty")
    sizes = group_sizes(slices, "output")
    total = None
    for norms, size in zip(group_norms(slices, "output"), sizes):
        if size == 0:
            continue
        term = math.sqrt(size) * norms.sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return strength * total


def group_lasso_prox(slices: list[list[ChannelSlice]], step: float) -> int:
    r"""One proximal step of the group lasso, in place: block soft-thresholding of every channel's
    output weights,

    ``theta_{g,c} <- theta_{g,c} * max(0, 1 - step * sqrt(|g|) / ||theta_{g,c}||_2)``,

    the exact minimiser of ``||theta - theta_old||^2 / 2 + step * sum_{g,c} sqrt(|g|) ||theta_{g,c}||``
    (the channels' output weights do not overlap). A channel whose norm is at most
    ``step * sqrt(|g|)`` becomes exactly zero.

    Args:
        slices: From :func:`~botorch_archsearch.field.groups.channel_slices`; their live tensors
            are changed.
        step: The learning rate times the strength ``lambda``, >= 0.

    Returns:
        How many channels (of every group) have all their output weights zero after the step.

    Raises:
        ArchSearchError: If ``step`` is negative or not finite.
    """
    step = check_float("step", step, 0, finite=True, where="group_lasso_prox")
    zeros = 0
    with torch.no_grad():
        for group, norms, size in zip(slices, group_norms(slices, "output"), group_sizes(slices, "output")):
            outputs = [s for s in group if s.side == "output"]
            if not outputs:
                continue
            threshold = step * math.sqrt(size)
            shrink = norms > threshold  # the other channels become exactly zero
            factor = torch.where(shrink, 1.0 - threshold / norms.clamp_min(torch.finfo(norms.dtype).tiny),
                                 torch.zeros_like(norms))
            for s in outputs:
                shape = [1] * s.tensor.dim()
                shape[s.dim] = -1
                s.tensor.mul_(factor.to(s.tensor.dtype).view(shape))
            zeros += int((~shrink).sum())
    return zeros


def train_group_lasso(
    model: nn.Module,
    graph: ArchGraph,
    data: ImageDataset,
    *,
    strength: float,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    max_batches: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    label: str = "group_lasso",
) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    r"""Train ``model`` in place by proximal SGD on cross-entropy plus the group lasso.

    SGD (momentum 0.9, no weight decay: the group lasso is the only regulariser, as in SSL) at a
    constant learning rate ``lr``; after every step, :func:`group_lasso_prox` with step
    ``lr * strength``.

    Args:
        model: The network ``graph`` was traced from (or a copy of it); trained in place.
        graph: Its graph.
        data: The dataset (its ``train`` split).
        strength: ``lambda`` of the group lasso, >= 0 (0: plain training).
        epochs: Epochs.
        lr: The learning rate.
        batch_size: Images per batch.
        max_batches: Stop each epoch after this many batches.
        seed: Seed of the batch order and augmentation.
        progress: Show progress (``None``: only on a terminal).
        label: Prefix of the progress lines and error messages.

    Returns:
        ``(importance, info)``: per channel group, the L2 norm of each channel's output weights
        after training (float64 arrays; exactly 0 for a channel the group lasso removed), and
        ``loss`` (the last epoch's mean cross-entropy; the group lasso is not in it, it acts by
        the proximal step), ``penalty`` (the group lasso's value at the end, ``lambda`` included),
        ``strength``, ``zero_channels`` (channels whose output weights are all exactly zero),
        ``channels`` (channels in all groups) and ``val_accuracy``.

    Raises:
        ArchSearchError: For a bad setting, or if the training diverges.
    """
    where = "train_group_lasso"
    strength = check_float("strength", strength, 0, finite=True, where=where)
    check_float("lr", lr, 0, exclusive_minimum=True, finite=True, where=where)
    check_int("epochs", epochs, 1, where=where)
    slices = channel_slices(graph, model)
    if not any(s.side == "output" for group in slices for s in group):
        raise ArchSearchError(f"{label}: the teacher has no channel group with weights to regularise.")

    def prox(_: nn.Module, step_lr: float) -> None:
        group_lasso_prox(slices, step_lr * strength)

    result = train_classifier(
        model, data, epochs=epochs, lr=lr, momentum=MOMENTUM, weight_decay=0.0, schedule="step", step_size=epochs,
        batch_size=batch_size, seed=seed, max_batches=max_batches, progress=progress, label=label,
        after_step=prox if strength > 0 else None,
    )
    with torch.no_grad():
        importance = tuple(n.detach().cpu().to(torch.float64).numpy() for n in group_norms(slices, "output"))
        penalty = float(group_lasso_penalty(slices, strength))
        zeros = sum(int(z.sum()) for z in zero_channels(slices, "output"))
    info = {"loss": float(result.losses[-1]), "penalty": penalty, "strength": strength, "zero_channels": zeros,
            "channels": int(sum(len(v) for v in importance)), "val_accuracy": float(result.val_accuracy)}
    return importance, info


@register_policy
class GroupLasso(RegularisedPruning):
    r"""Group Lasso (SSL): proximal SGD on the task loss plus ``lambda * sum_{g,c} sqrt(|g|)
    ||theta_{g,c}||_2`` over the channels' output weights, then, per target, the channels of the
    largest group norm per unit of the size measure
    (:func:`~botorch_archsearch.space.importance_edit`); the students keep the regularised weights.

    Settings (``methods``): ``epochs``, ``lr`` (SGD, momentum 0.9, no weight decay, constant),
    ``batch_size``, ``max_batches``, ``group_lasso_strength`` (``lambda``).

    The importance of a channel is the L2 norm of its *output* weights after training: the
    weights the group lasso acts on, exactly zero for a channel it removed, and all that decides
    whether the channel contributes anything. Its input slices (the next layers' weights) belong
    to other channel groups' output weights and are shrunk by their own terms, so adding them
    would rank a channel by its consumers' regularisation too.

    Example:
        >>> config.search.method = "group_lasso"
        >>> result = compress(teacher, data, config)
    """

    name = "group_lasso"

    def regularise(self, model: nn.Module, seed: int) -> tuple[nn.Module, tuple[np.ndarray, ...], dict[str, Any]]:
        m = self.context.config.methods
        importance, info = train_group_lasso(
            model, self.context.space.graph, self.context.data, strength=m.group_lasso_strength, epochs=m.epochs,
            lr=m.lr, batch_size=m.batch_size, max_batches=m.max_batches, seed=seed,
            progress=self.context.config.progress, label=self.name,
        )
        return model, importance, info


__all__ = ["GroupLasso", "MOMENTUM", "group_lasso_penalty", "group_lasso_prox", "train_group_lasso"]
