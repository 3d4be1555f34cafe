r"""The GP over architectures and the fitting of its learned kernel (ESNAC sections 3.1 and 3.3).

The Bi-LSTM weights and the GP hyperparameters are learned by maximising the leave-one-out
predictive log-likelihood of the observed rewards (paper Eq. 5,
``gpytorch.mlls.LeaveOneOutPseudoLikelihood``) or, as an option, the exact marginal likelihood.
Following the reference, Adam (lr 1e-3, weight decay 5e-4 on the embedding) runs for at most 100
steps and stops once the moving average of the objective changes by less than 1e-3; the kernel
is trained from scratch every time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import torch
from botorch import settings as botorch_settings
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood, LeaveOneOutPseudoLikelihood
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, num_features
from botorch_archsearch.gp.model import ArchitectureGP
from botorch_archsearch.kernels import ArchitectureKernel, BiLSTMEmbedding, load_kernel

OBJECTIVES = ("loo", "exact")


class FitResult(NamedTuple):
    """What :func:`fit_architecture_gp` did.

    Args:
        model: The fitted model (in eval mode).
        losses: The negative objective after every step.
        num_steps: Steps taken.
        converged: Whether the moving-average rule stopped it before ``max_steps``.
        seconds: Wall-clock time of the fit.
    """

    model: SingleTaskGP
    losses: list[float]
    num_steps: int
    converged: bool
    seconds: float = 0.0


def architecture_gp(
    train_X: Tensor,
    train_Y: Tensor,
    covar_module: Kernel | None = None,
    max_layers: int | None = None,
    max_edges: int = DEFAULT_MAX_EDGES,
    hidden_size: int = 64,
    num_layers: int = 4,
    sigma: float | None = None,
    noise_lower_bound: float = 1e-4,
    init_scale: float = 1.0,
) -> ArchitectureGP:
    r"""A GP over encoded architectures with the learned architecture kernel: an
    :class:`~botorch_archsearch.gp.ArchitectureGP` (a ``SingleTaskGP``).

    Args:
        train_X: A `n x d` tensor of encoded architectures.
        train_Y: A `n x 1` tensor of rewards.
        covar_module: The kernel; default ``ArchitectureKernel(BiLSTMEmbedding(max_layers, ...))``
            freshly initialised.
        max_layers: Layers per encoding (needed without ``covar_module``).
        max_edges: Edges per layer in the encoding.
        hidden_size: LSTM hidden size of the default kernel.
        num_layers: LSTM layers of the default kernel.
        sigma: Fixed RBF width of the default kernel (learned if ``None``).
        noise_lower_bound: Lower bound of the Gaussian noise variance (on standardised rewards).
        init_scale: Scale of the default kernel's initial projection weights (see
            :class:`~botorch_archsearch.kernels.BiLSTMEmbedding`).

    Returns:
        The model, with a ``Standardize`` outcome transform and a Gaussian likelihood.
    """
    _check_data(train_X, train_Y)
    if covar_module is None:
        if max_layers is None:
            raise ArchSearchError("architecture_gp: pass max_layers (or a covar_module).")
        embedding = BiLSTMEmbedding(max_layers, max_edges, hidden_size=hidden_size, num_layers=num_layers,
                                    init_scale=init_scale)
        covar_module = ArchitectureKernel(embedding, sigma=sigma)
    likelihood = GaussianLikelihood(noise_constraint=GreaterThan(noise_lower_bound))
    # Encodings are integers, not unit-cube points: BoTorch's scaling check does not apply.
    with botorch_settings.validate_input_scaling(False):
        model = ArchitectureGP(
            train_X, train_Y, likelihood=likelihood, covar_module=covar_module,
            outcome_transform=Standardize(m=train_Y.shape[-1]),
        )
    return model


def fit_architecture_gp(
    model: SingleTaskGP,
    objective: str = "loo",
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    max_steps: int = 100,
    tol: float = 1e-3,
    window: int = 10,
) -> FitResult:
    r"""Fit the kernel (embedding weights) and GP hyperparameters of ``model`` with Adam.

    Args:
        model: A model from :func:`architecture_gp` (or any ExactGP with a Gaussian likelihood).
        objective: ``"loo"`` (leave-one-out pseudo-likelihood, paper Eq. 5) or ``"exact"``
            (exact marginal log-likelihood).
        lr: Adam learning rate.
        weight_decay: Weight decay of the kernel's neural network weights (not of the GP
            hyperparameters).
        max_steps: At most this many Adam steps.
        tol: Stop when the moving average of the loss changes by less than this.
        window: Length of the moving average.

    Returns:
        A :class:`FitResult`; the model is left in eval mode.
    """
    if objective not in OBJECTIVES:
        raise ArchSearchError(f"fit_architecture_gp: objective must be one of {OBJECTIVES}, got {objective!r}.")
    for name, value in (("max_steps", max_steps), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArchSearchError(f"fit_architecture_gp: {name} must be an integer >= 1, got {value!r}.")
    if not lr > 0 or weight_decay < 0 or tol < 0:
        raise ArchSearchError(
            f"fit_architecture_gp: need lr > 0, weight_decay >= 0, tol >= 0; got lr={lr}, "
            f"weight_decay={weight_decay}, tol={tol}."
        )
    mll_class = LeaveOneOutPseudoLikelihood if objective == "loo" else ExactMarginalLogLikelihood
    mll = mll_class(model.likelihood, model)
    network = [p for name, p in model.named_parameters() if ".embedding." in f".{name}" and p.requires_grad]
    network_ids = {id(p) for p in network}
    others = [p for p in model.parameters() if id(p) not in network_ids and p.requires_grad]
    optimizer = torch.optim.Adam(
        [{"params": network, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}], lr=lr
    )
    start = time.perf_counter()
    model.train()
    train_X, train_Y = model.train_inputs[0], model.train_targets
    losses: list[float] = []
    previous = None
    converged = False
    for _ in range(max_steps):
        optimizer.zero_grad()
        loss = -mll(model(train_X), train_Y).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if len(losses) >= window:
            average = sum(losses[-window:]) / window
            if previous is not None and abs(average - previous) < tol:
                converged = True
                break
            previous = average
    model.eval()
    return FitResult(model, losses, len(losses), converged, time.perf_counter() - start)


def transferred_gp(path: str | Path, train_X: Tensor, train_Y: Tensor) -> ArchitectureGP:
    r"""A GP with a saved kernel, conditioned on new data without any training (kernel transfer,
    paper section 4.3).

    Args:
        path: A kernel file written by :func:`~botorch_archsearch.kernels.save_kernel`.
        train_X: A `n x d` tensor of the new teacher's evaluated architectures, encoded with the
            saved kernel's ``max_layers`` and ``max_edges``.
        train_Y: A `n x 1` tensor of their rewards.

    Returns:
        The model in eval mode, kernel and noise as saved (frozen).
    """
    saved = load_kernel(path)
    embedding = saved.kernel.embedding
    expected = embedding.max_layers * num_features(embedding.max_edges)
    if isinstance(train_X, Tensor) and train_X.dim() == 2 and train_X.shape[-1] != expected:
        raise EncodingError(
            f"transferred_gp: train_X has {train_X.shape[-1]} columns; the saved kernel reads encodings with "
            f"max_layers={embedding.max_layers}, max_edges={embedding.max_edges} ({expected} columns)."
        )
    model = architecture_gp(train_X, train_Y, covar_module=saved.kernel)
    if saved.noise is not None:
        model.likelihood.noise = saved.noise
    for p in model.covar_module.parameters():
        p.requires_grad_(False)
    return model.eval()


def loo_objective(model: SingleTaskGP) -> Tensor:
    r"""The leave-one-out pseudo-likelihood (paper Eq. 5) of ``model`` on its training data:
    the mean over points of ``log p(y_i | y_{-i})``, in the model's (standardised) outcome space.

    Args:
        model: An ExactGP with a Gaussian likelihood.

    Returns:
        A scalar tensor.
    """
    was_training = model.training
    model.train()
    try:
        mll = LeaveOneOutPseudoLikelihood(model.likelihood, model)
        return mll(model(model.train_inputs[0]), model.train_targets)
    finally:
        model.train(was_training)


def _check_data(train_X: Tensor, train_Y: Tensor) -> None:
    if not isinstance(train_X, Tensor) or train_X.dim() != 2:
        raise ArchSearchError(f"architecture_gp: train_X must be a `n x d` tensor, got {_shape(train_X)}.")
    if not isinstance(train_Y, Tensor) or train_Y.dim() != 2 or train_Y.shape[0] != train_X.shape[0]:
        raise ArchSearchError(
            f"architecture_gp: train_Y must be a `n x 1` tensor with n = {train_X.shape[0]}, got {_shape(train_Y)}."
        )
    if train_X.shape[0] < 2:
        raise ArchSearchError(f"architecture_gp: need at least 2 training points, got {train_X.shape[0]}.")
    if not torch.isfinite(train_Y).all():
        raise ArchSearchError("architecture_gp: train_Y has NaN or infinite values; record failures as a finite reward.")


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


__all__ = [
    "FitResult",
    "OBJECTIVES",
    "architecture_gp",
    "fit_architecture_gp",
    "loo_objective",
    "transferred_gp",
]
