r"""Sparse Variational Dropout (Molchanov, Ashukha and Vetrov, "Variational Dropout Sparsifies
Deep Neural Networks", ICML 2017; FIELD.md "Variational Dropout"), as a regularised method.

Every convolution and linear weight ``theta`` gets a multiplicative Gaussian noise of variance
``alpha * theta^2``, parameterised by ``log_sigma2`` (initialised to -10):
``log_alpha = clamp(log_sigma2 - log(theta^2 + eps), -8, 8)``. A copy of the teacher is trained
with the local reparameterisation trick (each output is sampled from
``N(conv(x, theta) + b, conv(x^2, alpha * theta^2))``) on

    ``loss = cross_entropy + beta(t) * KL / N``,
    ``-KL(alpha) ~= k1 * sigmoid(k2 + k3 * log_alpha) - 0.5 * log1p(1 / alpha) - k1``,

summed over every weight (``N`` the training images; ``beta`` ramped linearly from about 0 to 1
over the first half of the ``T`` optimizer steps, ``beta(t) = min(1, (t + 1) / ceil(T / 2))`` for
``t = 0, 1, ...`` (:func:`kl_weight`), so that even a single step is regularised). Weights with
``log_alpha >= threshold`` (3) are dropped. A channel's density is the fraction of its output
weights that are kept; channels sparser than one threshold for all groups are removed, the
threshold the lowest whose student meets the target (:func:`~botorch_archsearch.space.importance_edit`
with ``per_cost=False``).

Example:
    >>> layers = add_variational_dropout(model)          # in place: Conv2d/Linear -> VD layers
    >>> loss = cross_entropy(model(x), y) + beta * variational_dropout_kl(model) / n
    >>> keep = remove_variational_dropout(model)         # plain layers, dropped weights zeroed
    >>> importance = density_importance(graph, model, keep)
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from botorch_archsearch.evaluation import VD_TRAIN_FACTOR, train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.field.groups import channel_slices
from botorch_archsearch.field.regularised import RegularisedPruning
from botorch_archsearch.graph.arch_graph import ArchGraph
from botorch_archsearch.search.policies import register_policy
from botorch_archsearch.search.store import WeightSource
from botorch_archsearch.space import Edit, importance_edit

logger = logging.getLogger("botorch_archsearch")

KL_K1: float = 0.63576
r"""``k1`` of Molchanov et al.'s approximation of ``-KL`` (their eq. 14)."""
KL_K2: float = 1.87320
r"""``k2`` of the approximation."""
KL_K3: float = 1.48695
r"""``k3`` of the approximation."""
LOG_ALPHA_RANGE: tuple[float, float] = (-8.0, 8.0)
r"""``log_alpha`` is clamped to this range (as the authors' code does)."""
LOG_SIGMA2_INIT: float = -10.0
r"""The initial ``log_sigma2`` of every weight (the authors' value)."""
TIE_BREAK: float = 1e-6
r"""Weight of a channel's normalised norm in its importance (breaks ties of equal density)."""
_EPS = 1e-8  # inside log(theta^2 + eps) and sqrt(var + eps): zero weights and zero inputs stay finite


def log_alpha(weight: Tensor, log_sigma2: Tensor) -> Tensor:
    r"""The clamped log noise ratio of each weight: ``clamp(log_sigma2 - log(theta^2 + eps), -8, 8)``.

    Args:
        weight: A tensor of weights ``theta``.
        log_sigma2: A tensor of the same shape: the log variance of each weight's noise.

    Returns:
        A tensor of the same shape.
    """
    return torch.clamp(log_sigma2 - torch.log(weight * weight + _EPS), *LOG_ALPHA_RANGE)


def kl_approximation(log_alpha: Tensor) -> Tensor:
    r"""Molchanov et al.'s approximation of ``KL(q(w | theta, alpha) || p(w))`` under the
    log-uniform prior, per weight: ``k1 - k1 * sigmoid(k2 + k3 * log_alpha) + 0.5 * log1p(1 / alpha)``
    (the negative of their ``-KL``; decreasing in ``alpha``, about 0 for large ``alpha``).

    Args:
        log_alpha: A tensor of ``log_alpha`` values.

    Returns:
        A tensor of the same shape: the KL of each weight.
    """
    # log1p(1 / alpha) = log1p(exp(-log_alpha)) = softplus(-log_alpha), stable for either sign
    return KL_K1 - KL_K1 * torch.sigmoid(KL_K2 + KL_K3 * log_alpha) + 0.5 * nn.functional.softplus(-log_alpha)


def kl_weight(step: int, steps: int) -> float:
    r"""``beta`` of the KL term at optimizer step ``step`` (from 0) of ``steps``: a linear ramp over
    the first half of the training, ``min(1, (step + 1) / ceil(steps / 2))`` (so that even a single
    step is regularised).

    Args:
        step: The optimizer step, from 0.
        steps: The optimizer steps of the whole training.

    Returns:
        ``beta`` in ``(0, 1]``.
    """
    return min(1.0, (step + 1) / max(1, math.ceil(steps / 2)))


class _VariationalDropoutLayer:
    r"""What both variational dropout layers share (a mixin before ``nn.Conv2d`` / ``nn.Linear``)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    log_sigma2: nn.Parameter
    threshold: float
    generator: torch.Generator | None
    training: bool

    @property
    def log_alpha(self) -> Tensor:
        r"""The clamped ``log_alpha`` of each weight (shaped like :attr:`weight`)."""
        return log_alpha(self.weight, self.log_sigma2)

    @property
    def keep(self) -> Tensor:
        r"""A boolean tensor shaped like :attr:`weight`: the weights kept (``log_alpha < threshold``)."""
        return self.log_alpha.detach() < self.threshold

    def kl(self) -> Tensor:
        r"""The layer's KL: :func:`kl_approximation` summed over its weights."""
        return kl_approximation(self.log_alpha).sum()

    def _vd_forward(self, x: Tensor, apply) -> Tensor:
        """``apply(input, weight, bias)`` is the layer's plain operation."""
        if not self.training:
            return apply(x, self.weight * self.keep.to(self.weight.dtype), self.bias)
        mean = apply(x, self.weight, self.bias)
        var = apply(x * x, torch.exp(self.log_alpha) * self.weight * self.weight, None)
        noise = torch.randn(mean.shape, generator=self.generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.sqrt(var + _EPS) * noise


class VariationalDropoutConv2d(_VariationalDropoutLayer, nn.Conv2d):
    r"""An ``nn.Conv2d`` with sparse variational dropout: in training, each output is sampled by
    the local reparameterisation trick,
    ``conv(x, theta) + b + sqrt(conv(x^2, alpha theta^2) + eps) * N(0, 1)``; in evaluation,
    ``conv(x, theta * [log_alpha < threshold]) + b``. Stride, padding (and its
    mode), dilation and groups are the convolution's own.

    Made by :func:`add_variational_dropout` from a convolution in place (same ``weight`` and
    ``bias``, plus ``log_sigma2``); :func:`remove_variational_dropout` turns it back.
    """

    def forward(self, input: Tensor) -> Tensor:
        return self._vd_forward(input, self._conv_forward)


class VariationalDropoutLinear(_VariationalDropoutLayer, nn.Linear):
    r"""An ``nn.Linear`` with sparse variational dropout: in training
    ``x theta^T + b + sqrt(x^2 (alpha theta^2)^T + eps) * N(0, 1)``, in evaluation
    ``x (theta * [log_alpha < threshold])^T + b`` (see :class:`VariationalDropoutConv2d`)."""

    def forward(self, input: Tensor) -> Tensor:
        return self._vd_forward(input, nn.functional.linear)


_VD_CLASSES: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Conv2d, VariationalDropoutConv2d),
    (nn.Linear, VariationalDropoutLinear),
)
_ORIGINAL_CLASS = "_vd_original_class"


def add_variational_dropout(
    model: nn.Module,
    threshold: float = 3.0,
    log_sigma2: float = LOG_SIGMA2_INIT,
    generator: torch.Generator | None = None,
) -> list[nn.Module]:
    r"""Give every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` sparse variational dropout, in
    place: each becomes a :class:`VariationalDropoutConv2d` / :class:`VariationalDropoutLinear`
    (the same module object, the same ``weight`` and ``bias``) with a new parameter
    ``log_sigma2`` of the weight's shape. The model's own ``forward`` is unchanged.

    Args:
        model: The network (e.g. a copy of the teacher); a module used at several places is
            converted once.
        threshold: Weights with ``log_alpha`` at or above it are dropped in evaluation mode.
        log_sigma2: The initial ``log_sigma2`` of every weight.
        generator: The random stream of the training noise (on the weights' device; ``None``:
            the global one).

    Returns:
        The converted layers, in the order of ``model.modules()``.

    Raises:
        ArchSearchError: If a layer already has variational dropout, or is a subclass of
            ``nn.Conv2d`` / ``nn.Linear`` with its own ``forward`` (its computation is unknown).
    """
    layers = []
    for name, module in model.named_modules():
        for base, vd_class in _VD_CLASSES:
            if not isinstance(module, base):
                continue
            if isinstance(module, _VariationalDropoutLayer):
                raise ArchSearchError(f"add_variational_dropout: layer {name or '(root)'!r} already has "
                                      "variational dropout; call remove_variational_dropout first.")
            if type(module).forward is not base.forward or parametrize.is_parametrized(module):
                raise ArchSearchError(
                    f"add_variational_dropout: layer {name or '(root)'!r} is a {type(module).__name__} "
                    "with its own forward or a parametrised weight; only plain nn.Conv2d and nn.Linear "
                    "layers (or subclasses that keep their forward) are supported."
                )
            initial = torch.full_like(module.weight.detach(), float(log_sigma2))
            setattr(module, _ORIGINAL_CLASS, type(module))
            module.__class__ = vd_class
            module.register_parameter("log_sigma2", nn.Parameter(initial))
            module.threshold = float(threshold)
            module.generator = generator
            layers.append(module)
            break
    return layers


def variational_dropout_layers(model: nn.Module) -> list[nn.Module]:
    r"""The layers of ``model`` with variational dropout (from :func:`add_variational_dropout`)."""
    return [m for m in model.modules() if isinstance(m, _VariationalDropoutLayer)]


def variational_dropout_kl(model: nn.Module) -> Tensor:
    r"""The KL of every weight of ``model``'s variational dropout layers, summed (differentiable;
    a zero tensor if it has none)."""
    layers = variational_dropout_layers(model)
    if not layers:
        return torch.zeros(())
    return torch.stack([m.kl() for m in layers]).sum()


def remove_variational_dropout(model: nn.Module) -> dict[str, Tensor]:
    r"""Turn ``model``'s variational dropout layers back into the plain layers they were made
    from, in place, with their dropped weights (``log_alpha >= threshold``) set to zero: the
    model then computes what it computed in evaluation mode, and its ``state_dict`` has the keys it
    had before :func:`add_variational_dropout`.

    Args:
        model: A network given variational dropout by :func:`add_variational_dropout`.

    Returns:
        By module name (every name of a module used at several places), a boolean tensor shaped
        like its weight: the weights kept.
    """
    masks: dict[int, Tensor] = {}
    for module in variational_dropout_layers(model):
        with torch.no_grad():
            keep = module.keep
            module.weight.mul_(keep.to(module.weight.dtype))
        masks[id(module)] = keep.cpu()
        del module.log_sigma2
        for attr in ("threshold", "generator"):
            module.__dict__.pop(attr, None)
        module.__class__ = module.__dict__.pop(_ORIGINAL_CLASS)
    return {name: masks[id(m)] for name, m in model.named_modules(remove_duplicate=False) if id(m) in masks}


def channel_density(graph: ArchGraph, model: nn.Module, keep: dict[str, Tensor]) -> list[np.ndarray]:
    r"""Per channel group, the density of each channel: the fraction of its output weights, over
    every convolution and linear layer of the group (:func:`~botorch_archsearch.field.channel_slices`),
    that are kept. Biases and normalisations are not counted; a group without such weights has
    density 1.

    Args:
        graph: The teacher graph.
        model: The network ``graph`` was traced from (or a copy), without variational dropout.
        keep: From :func:`remove_variational_dropout`: per layer name, the kept weights.

    Returns:
        Per channel group, one density in ``[0, 1]`` per channel.

    Raises:
        ArchSearchError: If ``keep`` lacks a convolution or linear layer of a group.
    """
    return [kept / np.maximum(total, 1) if total.any() else np.ones_like(total)
            for kept, total, _ in _channel_counts(graph, model, keep)]


def density_importance(graph: ArchGraph, model: nn.Module, keep: dict[str, Tensor]) -> tuple[np.ndarray, ...]:
    r"""Per channel group, each channel's importance for pruning: its density
    (:func:`channel_density`) plus :data:`TIE_BREAK` times the L2 norm of its output weights (the
    kept ones: call it after :func:`remove_variational_dropout`) divided by the group's largest such
    norm. One threshold thus compares densities across groups, and channels of equal density rank
    by their norm relative to their group's largest.

    Args:
        graph: The teacher graph.
        model: The network ``graph`` was traced from (or a copy), its dropped weights zeroed.
        keep: From :func:`remove_variational_dropout`.

    Returns:
        Per channel group, one importance in ``[0, 1 + TIE_BREAK]`` per channel.

    Raises:
        ArchSearchError: If ``keep`` lacks a convolution or linear layer of a group.
    """
    out = []
    for kept, total, norm in _channel_counts(graph, model, keep):
        density = kept / np.maximum(total, 1) if total.any() else np.ones_like(total)
        top = norm.max(initial=0.0)
        out.append(density + TIE_BREAK * (norm / top if top > 0 else np.zeros_like(norm)))
    return tuple(out)


@register_policy
class VariationalDropout(RegularisedPruning):
    r"""Sparse Variational Dropout (Molchanov et al., ICML 2017): train a copy of the teacher with
    multiplicative Gaussian noise on every conv and linear weight and ``beta(t) * KL / N`` added to
    the loss, drop the weights whose ``log_alpha`` reaches ``methods.vd_threshold``, and remove the
    channels sparser than one density threshold for all groups, chosen to meet each target.

    The training (``methods.epochs`` of at most ``methods.max_batches`` batches of
    ``methods.batch_size``) uses Adam at constant learning rates: ``methods.vd_lr`` for the
    network's weights (with biases and normalisations) and ``methods.vd_log_sigma2_lr`` for the
    ``log_sigma2``; ``beta`` rises linearly from ``1 / ceil(T / 2)`` at the first of the ``T``
    steps to 1 at half of them (``beta(t) = min(1, (t + 1) / ceil(T / 2))``).
    The students inherit the trained weights with the dropped ones zeroed.
    """

    name = "variational_dropout"
    cost_factor: ClassVar[float] = VD_TRAIN_FACTOR

    def regularise(self, model: nn.Module,
                   seed: int) -> tuple[nn.Module, tuple[np.ndarray, ...], dict[str, Any]]:
        r"""Train ``model`` with sparse variational dropout (see the class).

        Args:
            model: A copy of the teacher, on the search's device, in training mode.
            seed: The seed of the batch order and of the training noise.

        Returns:
            ``(model, importance, info)``: ``model`` back to its plain layers with the dropped
            weights zeroed; per channel group the density importance
            (:func:`density_importance`); ``loss`` (mean training loss of the last epoch, KL term
            included) and ``cross_entropy`` (the same without it), ``kl`` (the final KL summed over
            all weights) and ``kl_per_image`` (divided by ``N``), ``dropped`` (the fraction of conv
            and linear weights dropped), ``val_accuracy`` (of the sparse network) and the
            settings.
        """
        context, m = self.context, self.context.config.methods
        data = context.data
        generator = torch.Generator(device=data.device).manual_seed(seed)  # train_classifier trains there
        layers = add_variational_dropout(model, threshold=m.vd_threshold, generator=generator)
        if not layers:
            raise ArchSearchError(f"{self.name}: the teacher has no nn.Conv2d or nn.Linear layer to "
                                  "sparsify.")
        log_sigma2 = [layer.log_sigma2 for layer in layers]
        ids = {id(p) for p in log_sigma2}
        weights = [p for p in model.parameters() if id(p) not in ids]
        optimizer = torch.optim.Adam([{"params": weights, "lr": m.vd_lr},
                                      {"params": log_sigma2, "lr": m.vd_log_sigma2_lr}])
        num_train = len(data.train_y)
        batches = data.num_batches("train", m.batch_size)
        steps = m.epochs * (batches if m.max_batches is None else min(batches, m.max_batches))
        penalties: list[float] = []

        def penalty(net: nn.Module, step: int) -> Tensor:
            kl = torch.stack([layer.kl() for layer in layers]).sum()
            value = kl_weight(step, steps) * kl / num_train
            penalties.append(float(value.detach()))
            return value

        try:
            result = train_classifier(
                model, data, epochs=m.epochs, lr=m.vd_lr, gamma=1.0, batch_size=m.batch_size, seed=seed,
                max_batches=m.max_batches, penalty=penalty, optimizer=optimizer,
                progress=context.config.progress, label=self.name,
            )
            with torch.no_grad():
                kl = float(sum(layer.kl() for layer in layers))
        finally:
            keep = remove_variational_dropout(model)
        masks = {id(k): k for k in keep.values()}.values()
        total = sum(k.numel() for k in masks)
        dropped = sum(int((~k).sum()) for k in masks) / max(total, 1)
        importance = density_importance(context.space.graph, model, keep)
        logger.info("%s: %.1f%% of the conv and linear weights dropped (log_alpha >= %g), KL %.4g",
                    self.name, 100 * dropped, m.vd_threshold, kl)
        loss = float(result.losses[-1])
        last = penalties[-max(1, len(penalties) // m.epochs):]  # the last epoch's KL terms
        info = {"loss": loss, "cross_entropy": loss - sum(last) / len(last), "kl": kl,
                "kl_per_image": kl / num_train, "dropped": dropped,
                "val_accuracy": float(result.val_accuracy), "lr": m.vd_lr,
                "log_sigma2_lr": m.vd_log_sigma2_lr, "threshold": m.vd_threshold}
        return model, importance, info

    def prune(self, source: WeightSource, target: float) -> Edit:
        r"""The edit that keeps the densest channels at ``target``: one density threshold for all
        groups, the lowest whose student is within the target (channels of equal density by
        norm)."""
        return importance_edit(self.context.space, source.importance, target,
                               measure=self.context.size_measure, per_cost=False)


def _channel_counts(graph: ArchGraph, model: nn.Module,
                    keep: dict[str, Tensor]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per channel group: kept output weights, all output weights and the L2 norm of the output
    weights of each channel, over the group's convolution and linear layers."""
    out = []
    for group in channel_slices(graph, model):
        size = next((s.tensor.shape[s.dim] for s in group), 0)
        kept, total, square = np.zeros(size), np.zeros(size), np.zeros(size)
        for s in group:
            if s.op not in ("conv", "linear") or s.role != "weight" or s.side != "output":
                continue
            name = graph.nodes[s.layer].name
            mask = keep.get(name)
            if mask is None or mask.shape != s.tensor.shape:
                raise ArchSearchError(
                    f"channel_density: keep has no mask of the shape of layer {s.layer} ({name!r}, weight "
                    f"{tuple(s.tensor.shape)}); pass what remove_variational_dropout returned for this model."
                )
            kept += s.per_channel(mask.to(torch.float64)).numpy()
            total += s.tensor.numel() // s.tensor.shape[s.dim]
            square += s.per_channel(s.tensor.detach().to("cpu", torch.float64).pow(2)).numpy()
        out.append((kept, total, np.sqrt(square)))
    return out


__all__ = [
    "KL_K1",
    "KL_K2",
    "KL_K3",
    "LOG_ALPHA_RANGE",
    "LOG_SIGMA2_INIT",
    "TIE_BREAK",
    "VariationalDropout",
    "VariationalDropoutConv2d",
    "VariationalDropoutLinear",
    "add_variational_dropout",
    "channel_density",
    "density_importance",
    "kl_approximation",
    "kl_weight",
    "log_alpha",
    "remove_variational_dropout",
    "variational_dropout_kl",
    "variational_dropout_layers",
]
