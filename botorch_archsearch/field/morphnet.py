r"""MorphNet (Gordon et al., CVPR 2018, "MorphNet: Fast & Simple Resource-Constrained Structure
Learning of Deep Networks"; FIELD.md "MorphNet"): train the teacher with a FLOP regulariser on its
normalisation scales, shrink every channel group to its alive channels, then expand all widths by
one factor to the target.

The regulariser (google-research/morph-net, ``network_regularizers/flop_regularizer.py``) is, over
the convolution and linear layers ``j``,

``G = sum_j c_j * (A_in * sum_out |gamma| + A_out * sum_in |gamma|)``,

``c_j`` the MACs of one (input channel, output channel) pair (``H_out * W_out * k_h * k_w / groups``
for a convolution, 1 for a linear layer), ``sum |gamma|`` over the channels of the layer's input or
output channel group and ``A`` the number of its alive channels (``|gamma|`` above a threshold,
held constant in the gradient). A depthwise convolution (``c_j = H_out * W_out * k_h * k_w``, its
MACs per channel; its input and output are one channel group) counts ``c_j * (sum_in |gamma| +
sum_out |gamma|)``. A side that is not a channel group (the image, the classifier's outputs, a
concatenation) has no ``gamma``: it adds nothing to the sums and counts all its channels as alive.

Example:
    >>> costs = layer_costs(graph)
    >>> gammas = morphnet_gammas(channel_slices(graph, model))
    >>> regulariser = flop_regularizer(costs, gammas, threshold=0.01)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from botorch_archsearch.evaluation import ImageDataset, train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.group_lasso import MOMENTUM
from botorch_archsearch.field.groups import NORM_TYPES, ChannelSlice, channel_slices, group_norms
from botorch_archsearch.field.regularised import RegularisedPruning
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.graph.counting import count_flops, count_params
from botorch_archsearch.search.policies import register_policy
from botorch_archsearch.search.store import WeightSource
from botorch_archsearch.space import Edit, SearchSpace
from botorch_archsearch.space.channels import DERIVED, ChannelModel
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

logger = logging.getLogger("botorch_archsearch")


@dataclass(frozen=True)
class LayerCost:
    r"""One convolution or linear layer's term of MorphNet's FLOP regulariser.

    Args:
        layer: The layer's index in the graph.
        pair_macs: ``c_j``: its MACs per (input channel, output channel) pair (per channel for a
            depthwise convolution), so that its MACs are ``pair_macs * in * out`` (``pair_macs *
            channels`` if depthwise).
        in_group: The channel group of its input (``None``: not a channel group, always alive).
        out_group: The channel group of its output (``None``: not a channel group).
        in_channels: Its input channels, counted per channel of ``in_group`` where the input is a
            flatten of it (``A_in`` where ``in_group`` is ``None``).
        out_channels: Its output channels (``A_out`` where ``out_group`` is ``None``).
        depthwise: Whether it is a depthwise convolution (its input and output are one group).
    """

    layer: int
    pair_macs: float
    in_group: int | None
    out_group: int | None
    in_channels: int
    out_channels: int
    depthwise: bool = False


def layer_costs(graph: ArchGraph) -> tuple[LayerCost, ...]:
    r"""The FLOP regulariser's term of every convolution and linear layer of a teacher graph.

    A linear layer reading a flatten of a ``C x H x W`` map of a channel group reads each of the
    group's channels ``H * W`` times: its ``pair_macs`` is ``H * W``, so that the MACs still are
    ``pair_macs * C * out`` (as :func:`~botorch_archsearch.graph.count_flops` counts them).

    Args:
        graph: The teacher graph (from :func:`~botorch_archsearch.graph.trace`).

    Returns:
        One :class:`LayerCost` per convolution and linear layer, in graph order.

    Raises:
        ArchSearchError: If ``graph`` is not an :class:`ArchGraph`.
    """
    if not isinstance(graph, ArchGraph):
        raise ArchSearchError(f"layer_costs expects an ArchGraph, got {type(graph).__name__}.")
    channels = ChannelModel(graph)
    costs = []
    for j, node in enumerate(graph.nodes):
        if node.op not in ("conv", "linear"):
            continue
        out_group = channels.group_of_root.get(channels.parent[j])
        in_group, repeat = _input_group(graph, channels, node.inputs[0]) if node.inputs else (None, 1)
        in_channels = node.in_channels // repeat
        if node.op == "linear":
            c, depthwise = float(repeat), False
        else:
            per_output = math.prod(node.attr("kernel")) * math.prod(node.out_shape[1:])  # k_h k_w H_out W_out
            depthwise = node.groups > 1 and node.groups == node.in_channels == node.out_channels
            c = float(per_output) if depthwise else per_output / node.groups
        costs.append(LayerCost(j, c, in_group, out_group, in_channels, node.out_channels, depthwise))
    return tuple(costs)


def morphnet_gammas(slices: list[list[ChannelSlice]]) -> list[Tensor]:
    r"""MorphNet's ``|gamma|`` of every channel of every channel group (differentiable).

    A channel's ``|gamma|`` is the largest ``|scale|`` of the group's normalisation layers (batch,
    layer and group norms, layer scales), so that channels tied by residual adds share one value,
    alive if alive anywhere. A group without any normalisation scale uses the L2 norm of its
    channels' output filters (weights and biases of its convolution and linear layers) instead.

    Args:
        slices: From :func:`~botorch_archsearch.field.groups.channel_slices`.

    Returns:
        Per channel group, one value >= 0 per channel.
    """
    out = []
    fallback = None
    for g, group in enumerate(slices):
        scales = [s for s in group if s.side == "output" and s.op in NORM_TYPES and s.role == "weight"]
        if scales:
            out.append(torch.stack([s.per_channel(s.tensor.abs()) for s in scales]).amax(0))
            continue
        if fallback is None:
            fallback = group_norms([[s for s in other if s.op in ("conv", "linear")] for other in slices])
        out.append(fallback[g])
    return out


def flop_regularizer(costs: tuple[LayerCost, ...] | list[LayerCost], gammas: list[Tensor],
                     threshold: float) -> Tensor:
    r"""MorphNet's FLOP regulariser ``G = sum_j c_j * (A_in * sum_out |gamma| + A_out * sum_in
    |gamma|)`` (``c_j * (sum_in |gamma| + sum_out |gamma|)`` for a depthwise convolution).

    Args:
        costs: From :func:`layer_costs`.
        gammas: Per channel group, the ``|gamma|`` of each channel (:func:`morphnet_gammas`).
        threshold: A channel is alive while its ``|gamma|`` is above this (the alive counts ``A``
            are constants of the gradient).

    Returns:
        A scalar tensor, differentiable in ``gammas``.

    Raises:
        ArchSearchError: If ``threshold`` is negative, or ``gammas`` has fewer groups than
            ``costs`` refer to.
    """
    check_float("threshold", threshold, 0, finite=True, where="flop_regularizer")
    _check_groups(costs, gammas, "flop_regularizer")
    alive = _alive(gammas, threshold)
    sums = [g.sum() for g in gammas]
    total = None
    for cost in costs:
        sum_in = 0.0 if cost.in_group is None else sums[cost.in_group]
        sum_out = 0.0 if cost.out_group is None else sums[cost.out_group]
        if cost.depthwise:
            term = cost.pair_macs * (sum_in + sum_out)
        else:
            a_in = cost.in_channels if cost.in_group is None else alive[cost.in_group]
            a_out = cost.out_channels if cost.out_group is None else alive[cost.out_group]
            term = cost.pair_macs * (a_in * sum_out + a_out * sum_in)
        if isinstance(term, Tensor):
            total = term if total is None else total + term
    return torch.zeros(()) if total is None else total


def alive_flops(costs: tuple[LayerCost, ...] | list[LayerCost], gammas: list[Tensor] | list[np.ndarray],
                threshold: float) -> float:
    r"""The MACs of the network of the alive channels only: ``sum_j c_j * A_in * A_out`` (``c_j *
    A`` for a depthwise convolution); with every channel alive, the teacher's
    :func:`~botorch_archsearch.graph.count_flops`.

    Args:
        costs: From :func:`layer_costs`.
        gammas: Per channel group, the ``|gamma|`` of each channel.
        threshold: A channel is alive while its ``|gamma|`` is above this.

    Returns:
        The MAC count (a float: ``c_j`` of a grouped convolution may be fractional).
    """
    check_float("threshold", threshold, 0, finite=True, where="alive_flops")
    _check_groups(costs, gammas, "alive_flops")
    alive = _alive(gammas, threshold)
    total = 0.0
    for cost in costs:
        a_in = cost.in_channels if cost.in_group is None else alive[cost.in_group]
        a_out = cost.out_channels if cost.out_group is None else alive[cost.out_group]
        total += cost.pair_macs * (a_out if cost.depthwise else a_in * a_out)
    return float(total)


def morphnet_edit(
    space: SearchSpace,
    gammas: tuple[np.ndarray, ...] | list[np.ndarray],
    target: float,
    threshold: float = 0.01,
    measure: str = "flops",
) -> Edit:
    r"""MorphNet's pruning rule: shrink every channel group to its alive channels (``|gamma|``
    above ``threshold``, at least one channel block), then expand all widths by one factor ``f``
    to the largest student within ``target``.

    Group ``g`` with ``a_g`` alive of ``C_g`` channels keeps ``min(C_g, ceil(f * a_g))`` (rounded
    up to its channel blocks); ``f`` may be below 1 where the alive channels alone exceed the
    target. The widths change only at ``f = k / a_g``: the factor chosen is the largest of these
    whose student fits, so one notch more would not. No layer is removed.

    Args:
        space: The teacher's search space; build the student from ``space.with_importance(gammas)``
            so that each group keeps its largest-``|gamma|`` channels.
        gammas: Per channel group, the ``|gamma|`` of each channel (the source's importance).
        target: The relative size in ``(0, 1]``: the student keeps at most this fraction of the
            teacher's ``measure``.
        threshold: A channel is alive while its ``|gamma|`` is above this.
        measure: ``"flops"`` or ``"params"``, counted on ``space.apply(edit)``.

    Returns:
        The edit (channel order ``"magnitude"``).

    Raises:
        ArchSearchError: For a bad argument, or if even one channel block per group exceeds the
            target.
    """
    where = "morphnet_edit"
    check_choice("measure", measure, ("params", "flops"), where=where)
    check_float("target", target, 0, 1, exclusive_minimum=True, what="a fraction of the teacher's size",
                where=where)
    check_float("threshold", threshold, 0, finite=True, where=where)
    channels = space.channels
    roots = channels.group_roots
    sizes = [channels.size[r] for r in roots]
    blocks = [channels.blocks[r] for r in roots]
    values = [np.asarray(v, dtype=np.float64) for v in gammas]
    if len(values) != len(roots) or any(v.shape != (c,) for v, c in zip(values, sizes)):
        raise ArchSearchError(
            f"{where}: gammas must hold one value per channel of each of the {len(roots)} channel groups "
            f"(sizes {sizes[:8]}{'...' if len(sizes) > 8 else ''}), got {len(values)} arrays of shapes "
            f"{[v.shape for v in values[:8]]}."
        )
    if any(not np.isfinite(v).all() or (v < 0).any() for v in values):
        raise ArchSearchError(f"{where}: gammas must be finite values >= 0 (|gamma|).")
    alive = [max(int((v > threshold).sum()), b) for v, b in zip(values, blocks)]
    count = count_params if measure == "params" else count_flops
    limit = target * count(space.graph)
    factors = np.unique([k / a for a, c in zip(alive, sizes) for k in range(1, c + 1)])

    def edit(f: float) -> Edit:
        keep = [min(c, max(1, math.ceil(f * a - 1e-9))) for a, c in zip(alive, sizes)]
        return Edit((False,) * space.graph.num_layers, tuple(1.0 - k / c for k, c in zip(keep, sizes)), (), "even")

    def size(i: int) -> int:
        return count(space.apply(edit(float(factors[i]))))

    if size(0) > limit:
        raise ArchSearchError(
            f"morphnet cannot reach a target of {target:.4g} of the teacher's {measure}: its smallest student "
            f"keeps {size(0) / count(space.graph):.4g}. Give a larger target."
        )
    lo, hi = 0, len(factors)  # size(lo) fits; hi: the first index known not to (len: none known)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= limit:
            lo = mid
        else:
            hi = mid
    logger.debug("%s: alive channels %s, width factor %.4g", where, alive, factors[lo])
    chosen = edit(float(factors[lo]))
    return Edit(chosen.remove_mask, chosen.shrink_ratios, (), "magnitude")


def train_morphnet(
    model: nn.Module,
    graph: ArchGraph,
    data: ImageDataset,
    *,
    strength: float | None,
    threshold: float,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    max_batches: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    label: str = "morphnet",
) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    r"""Train ``model`` in place on cross-entropy plus ``strength * G`` (:func:`flop_regularizer`).

    SGD (momentum 0.9, no weight decay) at a constant learning rate ``lr``; the alive counts of
    ``G`` are recounted at every step.

    Args:
        model: The network ``graph`` was traced from (or a copy of it); trained in place.
        graph: Its graph.
        data: The dataset (its ``train`` split).
        strength: The regulariser's strength; ``None``: 1 / ``G`` of the untrained ``model`` (so
            that the penalty starts at 1).
        threshold: A channel is alive while its ``|gamma|`` is above this.
        epochs: Epochs.
        lr: The learning rate.
        batch_size: Images per batch.
        max_batches: Stop each epoch after this many batches.
        seed: Seed of the batch order and augmentation.
        progress: Show progress (``None``: only on a terminal).
        label: Prefix of the progress lines and error messages.

    Returns:
        ``(importance, info)``: per channel group, the ``|gamma|`` of each channel after training
        (float64 arrays, :func:`morphnet_gammas`), and ``loss`` (the last epoch's mean training
        loss, the penalty included), ``regularizer`` (``G`` at the end) and ``initial_regularizer``
        (at the start), ``penalty`` (``strength * G`` at the end), ``strength``, ``alive_channels``
        and ``channels``, ``alive_flops`` (:func:`alive_flops` at the end, MACs) and
        ``val_accuracy``.

    Raises:
        ArchSearchError: For a bad setting, if the teacher has nothing to regularise (``G`` is 0
            and no strength is given), or if the training diverges.
    """
    where = "train_morphnet"
    check_float("strength", strength, 0, exclusive_minimum=True, finite=True, optional=True, where=where)
    check_float("threshold", threshold, 0, finite=True, where=where)
    check_float("lr", lr, 0, exclusive_minimum=True, finite=True, where=where)
    check_int("epochs", epochs, 1, where=where)
    slices = channel_slices(graph, model)
    costs = layer_costs(graph)
    with torch.no_grad():
        initial = float(flop_regularizer(costs, morphnet_gammas(slices), threshold))
    if strength is None:
        if not initial > 0 or not math.isfinite(initial):
            raise ArchSearchError(
                f"{label}: the FLOP regulariser of the teacher is {initial}, so its strength cannot be 1 / its "
                "initial value; the teacher has no regularisable channel group with a convolution or linear layer. "
                "Set methods.morphnet_strength."
            )
        strength = 1.0 / initial

    def penalty(_: nn.Module, step: int) -> Tensor:
        return strength * flop_regularizer(costs, morphnet_gammas(slices), threshold)

    result = train_classifier(
        model, data, epochs=epochs, lr=lr, momentum=MOMENTUM, weight_decay=0.0, schedule="step", step_size=epochs,
        batch_size=batch_size, seed=seed, max_batches=max_batches, progress=progress, label=label, penalty=penalty,
    )
    with torch.no_grad():
        gammas = [g.detach().cpu().to(torch.float64) for g in morphnet_gammas(slices)]
        final = float(flop_regularizer(costs, gammas, threshold))
    importance = tuple(g.numpy() for g in gammas)
    info = {
        "loss": float(result.losses[-1]), "regularizer": final, "initial_regularizer": initial,
        "penalty": strength * final, "strength": float(strength),
        "alive_channels": int(sum(int((g > threshold).sum()) for g in gammas)),
        "channels": int(sum(len(g) for g in gammas)), "alive_flops": alive_flops(costs, gammas, threshold),
        "val_accuracy": float(result.val_accuracy),
    }
    return importance, info


@register_policy
class MorphNet(RegularisedPruning):
    r"""MorphNet: SGD on the task loss plus ``strength * G``, the FLOP regulariser on the
    normalisation scales (:func:`flop_regularizer`), then, per target, every channel group shrunk
    to its alive channels and all widths expanded by one factor to the target
    (:func:`morphnet_edit`); each group keeps its largest-``|gamma|`` channels, with the
    regularised weights.

    Settings (``methods``): ``epochs``, ``lr`` (SGD, momentum 0.9, no weight decay, constant),
    ``batch_size``, ``max_batches``, ``morphnet_strength`` (``None``: 1 / ``G`` at the start),
    ``morphnet_threshold`` (alive while ``|gamma|`` is above it).

    Example:
        >>> config.search.method = "morphnet"
        >>> result = compress(teacher, data, config)
    """

    name = "morphnet"

    def regularise(self, model: nn.Module, seed: int) -> tuple[nn.Module, tuple[np.ndarray, ...], dict[str, Any]]:
        m = self.context.config.methods
        importance, info = train_morphnet(
            model, self.context.space.graph, self.context.data, strength=m.morphnet_strength,
            threshold=m.morphnet_threshold, epochs=m.epochs, lr=m.lr, batch_size=m.batch_size,
            max_batches=m.max_batches, seed=seed, progress=self.context.config.progress, label=self.name,
        )
        return model, importance, {**info, "threshold": float(m.morphnet_threshold)}

    def prune(self, source: WeightSource, target: float) -> Edit:
        r"""The edit of :func:`morphnet_edit` at ``target``: alive channels of the source's
        ``|gamma|``, widths expanded by one factor, in the search's size measure."""
        threshold = float(source.info.get("threshold", self.context.config.methods.morphnet_threshold))
        return morphnet_edit(self.context.space, source.importance, target, threshold=threshold,
                             measure=self.context.size_measure)


def _input_group(graph: ArchGraph, channels: ChannelModel, i: int) -> tuple[int | None, int]:
    """The channel group a layer reading layer ``i`` reads, through flattens of a C x H x W map
    (each channel read H * W times: the second value); ``None`` where it is no channel group."""
    repeat = 1
    while channels.kind[i] == DERIVED and graph.nodes[i].op == "flatten":
        node = graph.nodes[i]
        repeat *= node.out_channels // max(node.in_channels, 1)
        i = node.inputs[0]
    return channels.group_of_root.get(channels.parent[i]), repeat


def _alive(gammas: list[Tensor] | list[np.ndarray], threshold: float) -> list[int]:
    return [int((torch.as_tensor(g).detach() > threshold).sum()) for g in gammas]


def _check_groups(costs, gammas, where: str) -> None:
    groups = [g for c in costs for g in (c.in_group, c.out_group) if g is not None]
    if groups and max(groups) >= len(gammas):
        raise ArchSearchError(
            f"{where}: gammas has {len(gammas)} channel groups; the layer costs refer to group {max(groups)}. "
            "Pass morphnet_gammas(channel_slices(graph, model)) of the graph of layer_costs(graph)."
        )


__all__ = [
    "LayerCost",
    "MorphNet",
    "alive_flops",
    "flop_regularizer",
    "layer_costs",
    "morphnet_edit",
    "morphnet_gammas",
    "train_morphnet",
]
