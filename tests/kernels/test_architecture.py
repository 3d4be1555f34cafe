r"""Tests of botorch_archsearch/kernels/architecture.py."""

from __future__ import annotations

import botorch
import pytest
import torch
from botorch.models import SingleTaskGP
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import encode, trace
from botorch_archsearch.kernels import ArchitectureKernel, BiLSTMEmbedding
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

DTYPES = (torch.float32, torch.float64)
LENGTHSCALE = 0.7


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=10, width=0.125).eval()
    return SearchSpace(trace(teacher, torch.randn(1, 3, 32, 32)))


@pytest.fixture(scope="module")
def encoded(space) -> torch.Tensor:
    """12 students and the teacher, encoded in float64."""
    edits = space.sample(12, generator=torch.Generator().manual_seed(0))
    graphs = [space.apply(edit) for edit in edits] + [space.graph]
    return encode(graphs, max_layers=space.graph.num_layers, dtype=torch.float64)


def _kernel(
    space: SearchSpace, dtype: torch.dtype, lengthscale: float = LENGTHSCALE, **kwargs
) -> ArchitectureKernel:
    torch.manual_seed(0)
    embedding = BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1)
    kernel = ArchitectureKernel(embedding, **kwargs).to(dtype)
    if "sigma" not in kwargs and "base_kernel" not in kwargs:
        kernel.base_kernel.lengthscale = lengthscale
    return kernel


def _brute_force_rbf(H1: torch.Tensor, H2: torch.Tensor, lengthscale: float) -> torch.Tensor:
    """``exp(-||h_i - h_j||^2 / (2 l^2))`` entry by entry."""
    out = torch.empty(*H1.shape[:-2], H1.shape[-2], H2.shape[-2], dtype=H1.dtype)
    for i in range(H1.shape[-2]):
        for j in range(H2.shape[-2]):
            d2 = ((H1[..., i, :] - H2[..., j, :]) ** 2).sum(-1)
            out[..., i, j] = torch.exp(-d2 / (2 * lengthscale**2))
    return out


def _tol(dtype: torch.dtype) -> dict:
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-10}


def _across_calls(dtype: torch.dtype) -> dict:
    """Tolerance between kernel values from two embedding calls of other batch shapes or orders: the
    Bi-LSTM computes in float32 whatever the kernel's dtype, and other shapes may take other float32
    kernels (whose results differ by 1e-9 relative in a float64 kernel on oneDNN's AVX2 path)."""
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-7, "rtol": 1e-7}


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_brute_force_rbf_on_embeddings(space, encoded, dtype):
    X = encoded.to(dtype)
    kernel = _kernel(space, dtype)
    with torch.no_grad():
        K = kernel(X).to_dense()
        H = kernel.embedding(X)
        diag = kernel(X, diag=True)
    lengthscale = kernel.base_kernel.lengthscale.item()
    assert lengthscale == pytest.approx(LENGTHSCALE, rel=1e-6)
    assert K.shape == (len(X), len(X)) and K.dtype == dtype
    torch.testing.assert_close(K, _brute_force_rbf(H, H, lengthscale), **_tol(dtype))
    torch.testing.assert_close(K, K.T)
    torch.testing.assert_close(diag, torch.ones(len(X), dtype=dtype), **_tol(dtype))
    torch.testing.assert_close(diag, K.diagonal(), **_tol(dtype))
    # Distinct architectures are not all identical or all unrelated under the kernel.
    off = K[~torch.eye(len(X), dtype=torch.bool)]
    assert (off < 1 - 1e-6).all() and (off > 0).all()


def test_positive_semidefinite(space, encoded):
    with torch.no_grad():
        K = _kernel(space, torch.float64)(encoded).to_dense()
    assert torch.linalg.eigvalsh(K).min() >= -1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_covariance(space, encoded, dtype):
    X = encoded.to(dtype)
    x1, x2 = X[:5], X[5:]
    kernel = _kernel(space, dtype)
    with torch.no_grad():
        K12 = kernel(x1, x2).to_dense()
        K21 = kernel(x2, x1).to_dense()
        expected = _brute_force_rbf(kernel.embedding(x1), kernel.embedding(x2), LENGTHSCALE)
        full = kernel(X).to_dense()
    assert K12.shape == (5, len(X) - 5)
    torch.testing.assert_close(K12, expected, **_tol(dtype))
    torch.testing.assert_close(K21, K12.T, **_tol(dtype))
    torch.testing.assert_close(K12, full[:5, 5:], **_across_calls(dtype))
    # An equal copy of x1 (a different tensor object) gives the same matrix as x1 itself.
    with torch.no_grad():
        torch.testing.assert_close(kernel(x1, x1.clone()).to_dense(), kernel(x1).to_dense())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_inputs(space, encoded, dtype):
    X = encoded[:12].to(dtype).view(3, 4, -1)
    kernel = _kernel(space, dtype)
    with torch.no_grad():
        K = kernel(X).to_dense()
        diag = kernel(X, diag=True)
        K_cross = kernel(X[:, :2], X[:, 2:]).to_dense()
        H = kernel.embedding(X)
    assert K.shape == (3, 4, 4) and diag.shape == (3, 4) and K_cross.shape == (3, 2, 2)
    torch.testing.assert_close(K, _brute_force_rbf(H, H, LENGTHSCALE), **_tol(dtype))
    for b in range(3):
        with torch.no_grad():
            torch.testing.assert_close(K[b], kernel(X[b]).to_dense(), **_across_calls(dtype))
    torch.testing.assert_close(diag, K.diagonal(dim1=-2, dim2=-1), **_tol(dtype))
    torch.testing.assert_close(K_cross, K[:, :2, 2:], **_across_calls(dtype))


def test_batched_kernel_has_one_lengthscale_per_batch(space, encoded):
    torch.manual_seed(0)
    embedding = BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1)
    kernel = ArchitectureKernel(embedding, batch_shape=torch.Size([3])).double()
    lengthscales = torch.tensor([0.4, 0.8, 1.6], dtype=torch.float64)
    kernel.base_kernel.lengthscale = lengthscales.view(3, 1, 1)
    assert kernel.base_kernel.lengthscale.shape == (3, 1, 1)
    X = encoded[:12].view(3, 4, -1)
    with torch.no_grad():
        K = kernel(X).to_dense()
        H = embedding(X)
    for b in range(3):
        expected = _brute_force_rbf(H[b], H[b], lengthscales[b].item())
        torch.testing.assert_close(K[b], expected, atol=1e-10, rtol=1e-10)


def test_invariant_to_batch_order(space, encoded):
    kernel = _kernel(space, torch.float64)
    perm = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        K = kernel(encoded).to_dense()
        K_perm = kernel(encoded[perm]).to_dense()
    torch.testing.assert_close(K_perm, K[perm][:, perm], **_across_calls(torch.float64))


def test_fixed_sigma(space, encoded):
    kernel = _kernel(space, torch.float64, sigma=0.5)
    assert not kernel.base_kernel.raw_lengthscale.requires_grad
    sigma = kernel.base_kernel.lengthscale.item()
    assert sigma == pytest.approx(0.5, rel=1e-6)  # set in float32, then moved to float64
    with torch.no_grad():
        K = kernel(encoded).to_dense()
        H = kernel.embedding(encoded)
    torch.testing.assert_close(K, _brute_force_rbf(H, H, sigma), atol=1e-10, rtol=1e-10)
    learned = _kernel(space, torch.float64)
    assert learned.base_kernel.raw_lengthscale.requires_grad
    # The default lengthscale (sigma) starts at 1.
    torch.manual_seed(0)
    fresh = ArchitectureKernel(BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1))
    assert fresh.base_kernel.lengthscale.item() == pytest.approx(1.0, rel=1e-6)
    assert isinstance(fresh.base_kernel, RBFKernel)


def test_custom_base_kernel_and_scale_kernel(space, encoded):
    torch.manual_seed(0)
    embedding = BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1).double()
    matern = MaternKernel(nu=2.5).double()
    kernel = ArchitectureKernel(embedding, base_kernel=matern)
    assert kernel.base_kernel is matern
    scaled = ScaleKernel(kernel).double()
    scaled.outputscale = 2.5
    with torch.no_grad():
        H = embedding(encoded)
        torch.testing.assert_close(kernel(encoded).to_dense(), matern(H).to_dense())
        torch.testing.assert_close(scaled(encoded).to_dense(), 2.5 * matern(H).to_dense())
    with pytest.raises(ValueError, match="sigma"):
        ArchitectureKernel(embedding, base_kernel=RBFKernel(), sigma=1.0)


def test_sigma_with_base_kernel_raises_arch_search_error(space):
    embedding = BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1)
    with pytest.raises(ArchSearchError, match="sigma"):
        ArchitectureKernel(embedding, base_kernel=RBFKernel(), sigma=1.0)


@pytest.mark.parametrize("sigma", [0.0, 20.0])
def test_out_of_range_sigma_raises_arch_search_error(space, sigma):
    embedding = BiLSTMEmbedding(space.graph.num_layers, hidden_size=8, num_layers=1)
    with pytest.raises(ArchSearchError, match="sigma"):
        ArchitectureKernel(embedding, sigma=sigma)


def test_gradients_reach_the_embedding(space, encoded):
    kernel = _kernel(space, torch.float64)
    kernel(encoded[:6], encoded[6:]).to_dense().sum().backward()
    for name, p in kernel.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert kernel.embedding.lstm.weight_hh_l0.grad.abs().sum() > 0
    assert kernel.base_kernel.raw_lengthscale.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")
def test_covar_module_of_single_task_gp(space, encoded, dtype):
    X = encoded.to(dtype)
    train_X, test_X = X[:10], X[10:]
    train_Y = torch.linspace(0.0, 1.0, 10, dtype=dtype).unsqueeze(-1)
    kernel = _kernel(space, dtype)
    with botorch.settings.validate_input_scaling(False):
        model = SingleTaskGP(train_X, train_Y, covar_module=kernel)
    assert model.covar_module is kernel
    model.eval()
    with torch.no_grad():
        posterior = model.posterior(test_X)
        train_posterior = model.posterior(train_X)
    assert posterior.mean.shape == (len(test_X), 1) and posterior.mean.dtype == dtype
    assert torch.isfinite(posterior.mean).all() and (posterior.variance > 0).all()
    assert torch.isfinite(posterior.variance).all()
    # Near-noiseless data at the training points: the posterior mean follows train_Y's order.
    assert torch.corrcoef(torch.stack([train_posterior.mean.squeeze(-1), train_Y.squeeze(-1)]))[0, 1] > 0.5


def test_posterior_embeds_each_architecture_once_per_call(space, encoded):
    """A posterior over test points slices one lazy kernel (test-test, test-train); the Bi-LSTM
    must run once per call over the training and test rows, and give the same posterior as
    evaluating the kernel's ``forward`` on each block."""
    kernel = _kernel(space, torch.float64)
    model = SingleTaskGP(encoded[:8], torch.linspace(0, 1, 8, dtype=torch.float64).unsqueeze(-1),
                         covar_module=kernel)
    model.eval()
    model.posterior(encoded[:2]).variance  # builds the training-data caches (one embedding of 8 rows)
    embedded = []
    handle = kernel.embedding.register_forward_hook(lambda module, args, out: embedded.append(args[0].shape))
    try:
        posterior = model.posterior(encoded[8:])
        mean, variance = posterior.mean, posterior.variance
    finally:
        handle.remove()
    assert embedded == [torch.Size([13, encoded.shape[-1]])]  # 8 training + 5 test rows, one call
    # Same posterior as the textbook formulas with the kernel's own forward on each block.
    with torch.no_grad():
        noise = model.likelihood.noise.item()
        X, Xs = encoded[:8], encoded[8:]
        y = model.outcome_transform(torch.linspace(0, 1, 8, dtype=torch.float64).unsqueeze(-1))[0].squeeze(-1)
        K = kernel.forward(X, X) + noise * torch.eye(8, dtype=torch.float64)
        Ks = kernel.forward(Xs, X)
        mu = model.mean_module.constant + Ks @ torch.linalg.solve(K, y - model.mean_module.constant)
        var = kernel.forward(Xs, Xs).diagonal() - (Ks @ torch.linalg.solve(K, Ks.T)).diagonal()
        std = model.outcome_transform.stdvs.squeeze()
        mu = mu * std + model.outcome_transform.means.squeeze()
        torch.testing.assert_close(mean.squeeze(-1), mu)
        torch.testing.assert_close(variance.squeeze(-1), var * std**2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_scale_divides_the_embeddings_before_the_base_kernel(space, encoded, dtype):
    X = encoded.to(dtype)
    kernel = _kernel(space, dtype, embedding_scale=0.05)
    with torch.no_grad():
        K = kernel(X).to_dense()
        H = kernel.embedding(X)
        cross = kernel(X[:4], X[4:]).to_dense()
    # scaled up 20x, the embeddings' norms make the kernel's distance expansion lose digits: the
    # tolerance of values computed two ways
    torch.testing.assert_close(K, _brute_force_rbf(H / 0.05, H / 0.05, LENGTHSCALE), **_across_calls(dtype))
    torch.testing.assert_close(cross, K[:4, 4:], **_across_calls(dtype))
    assert torch.linalg.eigvalsh(K.double()).min() >= -1e-6


def test_scale_to_sets_the_median_distance_of_distinct_architectures(space, encoded):
    kernel = _kernel(space, torch.float64)
    with torch.no_grad():
        H = kernel.embedding(encoded)
    distances = [torch.dist(H[i], H[j]).item() for i in range(len(H)) for j in range(i + 1, len(H))]
    expected = sorted(distances)[len(distances) // 2 - 1: len(distances) // 2 + 1]
    median = sum(expected) / 2 if len(distances) % 2 == 0 else sorted(distances)[len(distances) // 2]
    # torch.cdist may take the matrix-product expansion: about 1e-7 relative on these distances
    assert kernel.scale_to(torch.cat([encoded, encoded[:5]])) == pytest.approx(median, rel=1e-6)
    assert kernel.embedding_scale.item() == pytest.approx(median, rel=1e-6)
    assert kernel.scale_to(encoded[:1]) == 1.0  # one architecture: no distance to scale by


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf")])
def test_bad_embedding_scale_raises_arch_search_error(space, scale):
    with pytest.raises(ArchSearchError, match="embedding_scale must be a positive number"):
        _kernel(space, torch.float64, embedding_scale=scale)


def test_saved_kernels_keep_their_scale_and_older_files_load_with_scale_one(space, encoded, tmp_path):
    from botorch_archsearch.kernels import load_kernel, save_kernel

    kernel = _kernel(space, torch.float64, embedding_scale=0.03)
    path = save_kernel(kernel, tmp_path / "k.pt", noise=0.1)
    loaded = load_kernel(path).kernel.to(torch.float64)
    assert loaded.embedding_scale.item() == pytest.approx(0.03)
    with torch.no_grad():
        torch.testing.assert_close(loaded(encoded).to_dense(), kernel(encoded).to_dense())
    record = torch.load(path, weights_only=True)
    del record["state_dict"]["embedding_scale"]  # as written before the scale existed
    torch.save(record, tmp_path / "old.pt")
    assert load_kernel(tmp_path / "old.pt").kernel.embedding_scale.item() == 1.0
