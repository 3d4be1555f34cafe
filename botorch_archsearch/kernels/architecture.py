r"""The learned architecture kernel of ESNAC (paper section 3.1):
``k(x, x') = exp(-||h(x) - h(x')||^2 / (2 sigma^2))`` on the Bi-LSTM embedding ``h``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from gpytorch.constraints import Interval
from gpytorch.kernels import Kernel, RBFKernel
from torch import Tensor

from botorch_archsearch.exceptions import ArchSearchError

SIGMA_RANGE = (0.01, 10.0)  # the RBF width's constraint


class ArchitectureKernel(Kernel):
    r"""``k(x, x') = base_kernel(h(x), h(x'))`` with ``h`` a feature extractor over encoded
    architectures; by default an RBF on the :class:`BiLSTMEmbedding`.

    Usable as the ``covar_module`` of ``botorch.models.SingleTaskGP`` or any ExactGP over
    encoded architectures (`n x d` tensors from :func:`~botorch_archsearch.graph.encode`); any
    batch shape. Wrap it in ``gpytorch.kernels.ScaleKernel`` for a learned output scale.

    Example:
        >>> kernel = ArchitectureKernel(BiLSTMEmbedding(max_layers=L))
        >>> model = SingleTaskGP(train_X, train_Y, covar_module=kernel)
    """

    has_lengthscale = False

    def __init__(
        self,
        embedding: torch.nn.Module,
        base_kernel: Kernel | None = None,
        sigma: float | None = None,
        embedding_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        r"""Create the kernel.

        Args:
            embedding: Maps `batch_shape x d` encodings to `batch_shape x e` embeddings (a
                :class:`BiLSTMEmbedding`).
            base_kernel: Kernel on the embeddings (default: ``RBFKernel``, whose lengthscale is
                the paper's ``sigma``). The embeddings are unit vectors, so squared distances lie
                in [0, 4].
            sigma: If given, the RBF lengthscale is fixed to this value (not learned); only with
                the default base kernel.
            embedding_scale: The embeddings are divided by this before the base kernel (a
                buffer, saved with the kernel); :meth:`scale_to` sets it to the median distance
                between the fresh embeddings, so that an RBF width of 1 starts where the data is.
            **kwargs: Passed to ``gpytorch.kernels.Kernel`` (e.g. ``batch_shape``).
        """
        super().__init__(**kwargs)
        self.embedding = embedding
        if sigma is not None and base_kernel is not None:
            raise ArchSearchError("ArchitectureKernel: sigma can only be fixed with the default RBF base kernel.")
        if sigma is not None and not (SIGMA_RANGE[0] < sigma < SIGMA_RANGE[1]):
            raise ArchSearchError(
                f"ArchitectureKernel: sigma must lie strictly between {SIGMA_RANGE[0]} and {SIGMA_RANGE[1]} "
                f"(embeddings are unit vectors, distances at most 2), got {sigma!r}."
            )
        if base_kernel is None:
            base_kernel = RBFKernel(batch_shape=self.batch_shape, lengthscale_constraint=Interval(*SIGMA_RANGE))
            base_kernel.lengthscale = 1.0 if sigma is None else sigma
            if sigma is not None:
                base_kernel.raw_lengthscale.requires_grad_(False)
        self.base_kernel = base_kernel
        if not (embedding_scale > 0 and math.isfinite(embedding_scale)):
            raise ArchSearchError(
                f"ArchitectureKernel: embedding_scale must be a positive number, got {embedding_scale!r}."
            )
        self.register_buffer("embedding_scale", torch.tensor(float(embedding_scale)))

    def embed(self, X: Tensor) -> Tensor:
        r"""The embeddings the base kernel compares: ``embedding(X) / embedding_scale``."""
        return self.embedding(X) / self.embedding_scale

    @torch.no_grad()
    def scale_to(self, X: Tensor) -> float:
        r"""Set :attr:`embedding_scale` to the median distance between the embeddings of the
        distinct architectures in ``X`` (`n x d`), so that the base kernel's distances start
        around 1 whatever the embedding's initial spread (1 if they are all alike).

        Returns:
            The scale set.
        """
        H = self.embedding(torch.unique(X, dim=0))
        d = torch.cdist(H, H)
        distances = d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)]
        scale = torch.quantile(distances, 0.5).item() if distances.numel() else 0.0
        if not (scale > 0 and math.isfinite(scale)):
            scale = 1.0
        self.embedding_scale.fill_(scale)
        return scale

    def __call__(
        self, x1: Tensor, x2: Tensor | None = None, diag: bool = False, last_dim_is_batch: bool = False, **params: Any
    ) -> Any:
        r"""Embed the architectures once, then call the base kernel on the embeddings.

        GPyTorch evaluates kernels lazily: a posterior builds one kernel over the training and
        test points together and then slices it (test-test, test-train), and every slice would
        run :meth:`forward` again. Embedding here, before the lazy tensor is formed, runs the
        Bi-LSTM once per architecture per call; the slices only recompute the base kernel on
        embeddings. Same values as :meth:`forward`.
        """
        if last_dim_is_batch:
            raise ArchSearchError("ArchitectureKernel: last_dim_is_batch is not supported (encodings are not additive).")
        h1 = self.embed(x1)
        h2 = None if x2 is None or _same(x1, x2) else self.embed(x2)
        return self.base_kernel(h1, h2, diag=diag, **params)

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params: Any) -> Tensor:
        r"""Kernel between encoded architectures.

        Args:
            x1: A `batch_shape x n x d` tensor of encoded architectures.
            x2: A `batch_shape x m x d` tensor of encoded architectures.
            diag: Return only the diagonal (``n == m``).

        Returns:
            A `batch_shape x n x m` kernel matrix (`batch_shape x n` if ``diag``).
        """
        h1 = self.embed(x1)
        h2 = h1 if _same(x1, x2) else self.embed(x2)
        return self.base_kernel.forward(h1, h2, diag=diag, **params)


def _same(x1: Tensor, x2: Tensor) -> bool:
    """Whether two inputs are the same architectures (then they are embedded once)."""
    return x2 is x1 or (x2.shape == x1.shape and torch.equal(x1, x2))


__all__ = ["ArchitectureKernel", "SIGMA_RANGE"]
