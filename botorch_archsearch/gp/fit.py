r"""The GP over architectures and the fitting of its learned kernel (ESNAC sections 3.1 and 3.3).

The Bi-LSTM weights and the GP hyperparameters are learned by maximising the leave-one-out
predictive log-likelihood of the observed rewards (paper Eq. 5,
``gpytorch.mlls.LeaveOneOutPseudoLikelihood``) or, as an option, the exact marginal likelihood.
Following the reference, Adam (lr 1e-3, weight decay 5e-4 on the embedding) runs for at most 100
steps and stops once the moving average of the objective changes by less than 1e-3; the kernel
is trained from scratch every time. The loop is BoTorch's ``fit_gpytorch_mll_torch``; the rule is
:class:`MovingAverageStoppingCriterion`, a ``botorch.optim.stopping.StoppingCriterion``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
from botorch import settings as botorch_settings
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim.core import OptimizationStatus
from botorch.optim.fit import fit_gpytorch_mll_scipy, fit_gpytorch_mll_torch
from botorch.optim.stopping import StoppingCriterion
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood, LeaveOneOutPseudoLikelihood
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError, EncodingError
from botorch_archsearch.gp.model import ArchitectureGP
from botorch_archsearch.graph.encoding import DEFAULT_MAX_EDGES, num_features
from botorch_archsearch.kernels import (
    ArchitectureKernel,
    BiLSTMEmbedding,
    EditFeatures,
    WLFeatures,
    load_kernel,
)
from botorch_archsearch.utils.validation import check_choice, check_float, check_int

OBJECTIVES = ("loo", "exact")
KERNEL_NAMES = ("bilstm", "edit", "wl")
r"""The surrogates of ``kernel.name``: ``"bilstm"``, the paper's learned kernel (an RBF on the
Bi-LSTM embedding); ``"edit"``, an ARD Matern-5/2 on the edit vector
(:class:`~botorch_archsearch.kernels.EditFeatures`); ``"wl"``, an RBF on Weisfeiler-Lehman subtree
features (:class:`~botorch_archsearch.kernels.WLFeatures`, NAS-BOWL)."""
WIDTH_INITS = ("median", "paper")
r"""Where a fresh kernel's RBF width starts: ``"paper"``, 1 on the unit-vector embeddings (the
reference); ``"median"``, the median distance between the fresh embeddings of the training
architectures (:meth:`~botorch_archsearch.kernels.ArchitectureKernel.scale_to`)."""


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
    width_init: str = "paper",
    kernel: str = "bilstm",
    features: torch.nn.Module | None = None,
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
        width_init: Where the default kernel's RBF width starts relative to the fresh embeddings
            (:data:`WIDTH_INITS`): ``"paper"`` (width 1) or ``"median"`` (the embeddings are
            scaled by their median pairwise distance on ``train_X``, so the kernel's values spread
            over (0, 1) from the first fitting step). The ``wl`` kernel always starts at the
            median; the ``edit`` kernel's lengthscales start at the mode of BoTorch's
            dimension-scaled prior (``get_covar_module_with_dim_scaled_prior``), which they keep.
        kernel: The default kernel (:data:`KERNEL_NAMES`): ``"bilstm"`` (the paper), ``"edit"``
            or ``"wl"``.
        features: ``kernel="edit"``: the :class:`~botorch_archsearch.kernels.EditFeatures` holding
            the students' edit vectors (``train_X`` registered); ``"wl"``: optionally a
            :class:`~botorch_archsearch.kernels.WLFeatures` (shared, its cache with it).

    Returns:
        The model, with a ``Standardize`` outcome transform and a Gaussian likelihood.
    """
    _check_data(train_X, train_Y)
    check_choice("width_init", width_init, WIDTH_INITS, where="architecture_gp")
    check_choice("kernel", kernel, KERNEL_NAMES, where="architecture_gp")
    if covar_module is None and kernel != "bilstm":
        if kernel == "edit" and not isinstance(features, EditFeatures):
            raise ArchSearchError("architecture_gp: kernel='edit' needs features=EditFeatures(space) with the students' edits.")
        if kernel == "edit":
            # BoTorch's default for ARD in many dimensions (Hvarfner et al., 2024): a log-normal
            # prior on the lengthscales whose mode grows with sqrt(d); the edit vector's entries
            # lie in [0, 1] as that prior assumes, so the features are not rescaled
            base = get_covar_module_with_dim_scaled_prior(ard_num_dims=features.dim, use_rbf_kernel=False)
            covar_module = ArchitectureKernel(features, base_kernel=base)
        else:
            covar_module = ArchitectureKernel(features if isinstance(features, WLFeatures) else WLFeatures(max_edges))
            covar_module.scale_to(train_X)
    if covar_module is None:
        if max_layers is None:
            raise ArchSearchError("architecture_gp: pass max_layers (or a covar_module).")
        embedding = BiLSTMEmbedding(max_layers, max_edges, hidden_size=hidden_size, num_layers=num_layers,
                                    init_scale=init_scale)
        covar_module = ArchitectureKernel(embedding, sigma=sigma)
        if width_init == "median":
            covar_module.scale_to(train_X)
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

    A kernel without network weights (the ``edit`` and ``wl`` kernels: only GP
    hyperparameters) is fitted by BoTorch's L-BFGS-B loop (``fit_gpytorch_mll_scipy``, at most
    ``max_steps`` iterations) on the same objective; its ``losses`` are the objective before and
    after, and ``lr``, ``weight_decay``, ``tol`` and ``window`` do not apply.

    Returns:
        A :class:`FitResult`; the model is left in eval mode.
    """
    where = "fit_architecture_gp"
    check_choice("objective", objective, OBJECTIVES, where=where)
    check_int("max_steps", max_steps, 1, where=where)
    check_int("window", window, 1, where=where)
    check_float("lr", lr, 0, exclusive_minimum=True, where=where)
    check_float("weight_decay", weight_decay, 0, where=where)
    check_float("tol", tol, 0, where=where)
    mll_class = LeaveOneOutPseudoLikelihood if objective == "loo" else ExactMarginalLogLikelihood
    mll = mll_class(model.likelihood, model)
    network = {id(p) for name, p in model.named_parameters() if ".embedding." in f".{name}"}
    start = time.perf_counter()
    if not network:
        return _fit_hyperparameters(model, mll, max_steps, start)
    stopping = MovingAverageStoppingCriterion(tol=tol, window=window)
    model.train()
    fit_gpytorch_mll_torch(
        mll,
        step_limit=max_steps,
        stopping_criterion=stopping,
        optimizer=partial(_adam, network=network, lr=lr, weight_decay=weight_decay),
    )
    model.eval()
    losses = stopping.losses
    return FitResult(model, losses, len(losses), stopping.converged, time.perf_counter() - start)


def _fit_hyperparameters(model: SingleTaskGP, mll, max_steps: int, start: float) -> FitResult:
    """L-BFGS-B on the GP hyperparameters of a kernel without network weights."""
    model.train()
    with torch.no_grad():
        before = -float(mll(model(*model.train_inputs), model.train_targets))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        result = fit_gpytorch_mll_scipy(mll, options={"maxiter": max_steps})
    except NotPSDError:  # hyperparameters the kernel matrix cannot be factored at: keep the start
        model.load_state_dict(initial)
        model.eval()
        return FitResult(model, [before, before], 0, False, time.perf_counter() - start)
    model.eval()
    return FitResult(model, [before, float(result.fval)], result.step, result.status == OptimizationStatus.SUCCESS,
                     time.perf_counter() - start)


class MovingAverageStoppingCriterion(StoppingCriterion):
    r"""Stop once the mean of the last ``window`` losses changes by less than ``tol``:
    ``|mean(losses[k-window:k]) - mean(losses[k-window-1:k-1])| < tol`` after step ``k``.

    The rule of the ESNAC reference; unlike BoTorch's ``ExpMAStoppingCriterion`` the average is
    plain and the change absolute. ``torch_minimize`` asks before each optimizer step, with the
    loss that step would descend; the reference decided after the step. So a rule met by the
    losses of steps ``1..k`` stops the loop at the next call, once step ``k`` is taken, and
    that call's loss is not recorded: the steps, losses and weights are the reference's.

    Example:
        >>> stopping = MovingAverageStoppingCriterion(tol=1e-3, window=10)
        >>> fit_gpytorch_mll_torch(mll, step_limit=100, stopping_criterion=stopping)
        >>> stopping.losses, stopping.converged
    """

    def __init__(self, tol: float = 1e-3, window: int = 10) -> None:
        r"""Moving-average stopping criterion.

        Args:
            tol: Stop when the moving average of the loss changes by less than this.
            window: Length of the moving average.
        """
        self.tol = tol
        self.window = window
        self.reset()

    def __call__(self, fvals: Tensor) -> bool:
        r"""Record the loss of the coming step, or stop if the rule was met before it.

        Args:
            fvals: The loss (a one-element tensor) before the coming optimizer step.

        Returns:
            ``True`` if the loop should stop before this step.
        """
        if self.converged:
            return True
        self.losses.append(fvals.item())
        if len(self.losses) >= self.window:
            average = sum(self.losses[-self.window :]) / self.window
            if self._previous is not None and abs(average - self._previous) < self.tol:
                self.converged = True
            self._previous = average
        return False

    def reset(self) -> None:
        r"""Forget the losses of a previous run."""
        self.losses: list[float] = []
        self.converged = False
        self._previous: float | None = None


def transferred_gp(path: str | Path, train_X: Tensor, train_Y: Tensor) -> ArchitectureGP:
    r"""A GP with a saved kernel, conditioned on new data without any training (kernel transfer,
    paper section 4.3).

    Args:
        path: A kernel file written by :func:`~botorch_archsearch.kernels.save_kernel`.
        train_X: A `n x d` tensor of the new teacher's evaluated architectures, encoded with the
            saved kernel's ``max_edges`` and any ``max_layers`` (a deeper teacher's too).
        train_Y: A `n x 1` tensor of their rewards.

    Returns:
        The model in eval mode, kernel and noise as saved (frozen).
    """
    saved = load_kernel(path)
    embedding = saved.kernel.embedding
    width = num_features(embedding.max_edges)
    if isinstance(train_X, Tensor) and train_X.dim() == 2 and train_X.shape[-1] % width:
        raise EncodingError(
            f"transferred_gp: train_X has {train_X.shape[-1]} columns; the saved kernel reads encodings with "
            f"max_edges={embedding.max_edges} (a multiple of {width} columns)."
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


def _adam(parameters: Iterable[Tensor], network: set[int], lr: float, weight_decay: float) -> torch.optim.Adam:
    # Weight decay on the embedding's weights (ids in ``network``) only, not the GP hyperparameters.
    parameters = list(parameters)
    return torch.optim.Adam(
        [
            {"params": [p for p in parameters if id(p) in network], "weight_decay": weight_decay},
            {"params": [p for p in parameters if id(p) not in network], "weight_decay": 0.0},
        ],
        lr=lr,
    )


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


__all__ = [
    "FitResult",
    "KERNEL_NAMES",
    "MovingAverageStoppingCriterion",
    "OBJECTIVES",
    "WIDTH_INITS",
    "architecture_gp",
    "fit_architecture_gp",
    "loo_objective",
    "transferred_gp",
]
