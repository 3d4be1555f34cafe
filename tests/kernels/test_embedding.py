r"""Tests of botorch_archsearch/kernels/embedding.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import EncodingError
from botorch_archsearch.graph import DEFAULT_MAX_EDGES, LAYER_TYPES, encode, expand, num_features, trace
from botorch_archsearch.kernels import ATTRIBUTE_SCALE, BiLSTMEmbedding, scale_attributes
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

DTYPES = (torch.float32, torch.float64)
M = len(LAYER_TYPES)
# Small LSTMs keep the tests fast; the default sizes are checked only where they matter.
SMALL = {"hidden_size": 8, "num_layers": 2}


def _space(name: str) -> SearchSpace:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, width=0.125).eval()
    return SearchSpace(trace(teacher, torch.randn(1, 3, 32, 32)))


@pytest.fixture(scope="module")
def resnet_space() -> SearchSpace:
    return _space("resnet18")


@pytest.fixture(scope="module")
def shufflenet_space() -> SearchSpace:
    return _space("shufflenet")


def _students(space: SearchSpace, n: int, seed: int) -> list:
    edits = space.sample(n, generator=torch.Generator().manual_seed(seed))
    return [space.apply(edit) for edit in edits]


def _embedding(
    max_layers: int, dtype: torch.dtype = torch.float32, seed: int = 0, **kwargs
) -> BiLSTMEmbedding:
    torch.manual_seed(seed)
    # compute in the weights' dtype, so float64 checks are exact
    return BiLSTMEmbedding(max_layers, **{"compute_dtype": None, **SMALL, **kwargs}).to(dtype)


def _projection(emb: BiLSTMEmbedding) -> torch.Tensor:
    """The matrix ``P`` of the paper's vector, `input_size x (m + 6 + 2 L)`."""
    return torch.cat(
        [
            emb.type_columns.weight[1:].T,
            emb.attribute_columns.weight,
            emb.incoming_columns.weight.T,
            emb.outgoing_columns.weight.T,
        ],
        dim=1,
    )


def _dense_reference(emb: BiLSTMEmbedding, X: torch.Tensor) -> torch.Tensor:
    """``expand(X) @ P.T + b`` with scaled attributes, zero on padding layers (brute force)."""
    V = expand(X, emb.max_layers).clone()
    V[..., M : M + 6] = scale_attributes(V[..., M : M + 6])
    U = V @ _projection(emb).T + emb.attribute_columns.bias
    valid = X.view(*X.shape[:-1], emb.max_layers, -1)[..., 0] > 0
    return U * valid.unsqueeze(-1)


def _hand_embedding(emb: BiLSTMEmbedding, x: torch.Tensor) -> torch.Tensor:
    """Run the LSTM by hand over the valid layers of one architecture only (no packing)."""
    rows = x.view(1, emb.max_layers, -1)
    n = int((rows[0, :, 0] > 0).sum())
    hidden, _ = emb.lstm(emb.project(rows)[:, :n])
    pooled = hidden[0].mean(0)
    return pooled / pooled.norm()


def test_scale_attributes_hand_values():
    values = torch.tensor([0.0, 1.0, 3.0, 7.0, 1023.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.1, 0.2, 0.3, 1.0], dtype=torch.float64)
    assert ATTRIBUTE_SCALE == 10.0
    torch.testing.assert_close(scale_attributes(values), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("space_name", ["resnet_space", "shufflenet_space"])
def test_project_equals_dense_expand(request, space_name, dtype):
    space = request.getfixturevalue(space_name)
    L = space.graph.num_layers
    students = _students(space, 40, seed=1) + [space.graph]
    # The sampler produces layers that take the same input twice (x + x); the projection must
    # count such an edge twice, as ``expand`` does.
    assert any(len(node.inputs) != len(set(node.inputs)) for s in students for node in s.nodes)
    X = encode(students, max_layers=L, dtype=dtype)
    emb = _embedding(L, dtype, input_size=6)
    with torch.no_grad():
        U = emb.project(X.view(len(students), L, num_features()))
        expected = _dense_reference(emb, X)
    assert U.dtype == dtype and U.shape == (len(students), L, 6)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(U, expected, **tol)
    for b, student in enumerate(students):
        assert (U[b, student.num_layers :] == 0).all()
        assert (U[b, : student.num_layers].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_shape_unit_norm_and_dtype(resnet_space, dtype):
    L = resnet_space.graph.num_layers
    X = encode(_students(resnet_space, 6, seed=2), max_layers=L, dtype=dtype)
    for emb_dtype in DTYPES:
        emb = _embedding(L, emb_dtype)
        with torch.no_grad():
            H = emb(X)
        assert H.shape == (6, 2 * SMALL["hidden_size"]) and emb.output_dim == 16
        assert H.dtype == dtype  # follows X, whatever the embedding's own dtype
        torch.testing.assert_close(H.norm(dim=-1), torch.ones(6, dtype=dtype))
    uni = _embedding(L, dtype, bidirectional=False)
    with torch.no_grad():
        H = uni(X)
    assert uni.output_dim == SMALL["hidden_size"] and H.shape == (6, SMALL["hidden_size"])


def test_default_sizes(resnet_space):
    L = resnet_space.graph.num_layers
    emb = BiLSTMEmbedding(L)
    assert (emb.hidden_size, emb.num_layers, emb.bidirectional, emb.input_size) == (64, 4, True, 64)
    assert emb.max_edges == DEFAULT_MAX_EDGES and emb.output_dim == 128
    assert emb.lstm.hidden_size == 64 and emb.lstm.num_layers == 4 and emb.lstm.bidirectional
    with torch.no_grad():
        H = emb(encode(resnet_space.graph, max_layers=L))
    assert H.shape == (1, 128)


def test_batch_shape(resnet_space):
    L = resnet_space.graph.num_layers
    X = encode(_students(resnet_space, 6, seed=3), max_layers=L)
    emb = _embedding(L)
    with torch.no_grad():
        flat = emb(X)
        H = emb(X.view(2, 3, -1))
        H4 = emb(X.view(3, 1, 2, -1))
        empty = emb(X[:0])
    assert H.shape == (2, 3, emb.output_dim)
    torch.testing.assert_close(H, flat.view(2, 3, -1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(H4, flat.view(3, 1, 2, -1), atol=1e-6, rtol=1e-6)
    assert empty.shape == (0, emb.output_dim)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_hand_run_lstm_over_valid_layers(resnet_space, dtype):
    L = resnet_space.graph.num_layers
    students = _students(resnet_space, 5, seed=4) + [resnet_space.graph]
    assert len({s.num_layers for s in students}) > 1  # padding differs across the batch
    X = encode(students, max_layers=L, dtype=dtype)
    emb = _embedding(L, dtype)
    with torch.no_grad():
        H = emb(X)
        expected = torch.stack([_hand_embedding(emb, x) for x in X])
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-10}
    torch.testing.assert_close(H, expected, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_invariance(resnet_space, dtype):
    L = resnet_space.graph.num_layers
    students = _students(resnet_space, 8, seed=5)
    short = min(students, key=lambda s: s.num_layers)
    batch = [resnet_space.graph, *students]  # the teacher is the longest architecture
    assert short.num_layers < resnet_space.graph.num_layers
    emb = _embedding(L, dtype)
    tol = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-10}
    with torch.no_grad():
        alone = emb(encode(short, max_layers=L, dtype=dtype))[0]
        in_batch = emb(encode(batch, max_layers=L, dtype=dtype))[1 + students.index(short)]
        torch.testing.assert_close(in_batch, alone, **tol)
        # More padding: a model for longer encodings whose edge tables start with the same rows.
        bigger = _embedding(L + 17, dtype, seed=1)
        bigger.lstm.load_state_dict(emb.lstm.state_dict())
        bigger.type_columns.load_state_dict(emb.type_columns.state_dict())
        bigger.attribute_columns.load_state_dict(emb.attribute_columns.state_dict())
        bigger.incoming_columns.weight[:L] = emb.incoming_columns.weight
        bigger.outgoing_columns.weight[:L] = emb.outgoing_columns.weight
        padded = bigger(encode(batch, max_layers=L + 17, dtype=dtype))
        torch.testing.assert_close(padded, emb(encode(batch, max_layers=L, dtype=dtype)), **tol)


def test_batch_order_invariance(shufflenet_space):
    L = shufflenet_space.graph.num_layers
    X = encode(_students(shufflenet_space, 7, seed=6), max_layers=L, dtype=torch.float64)
    emb = _embedding(L, torch.float64, hidden_size=8, num_layers=1)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(emb(X[perm]), emb(X)[perm], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_chunked_by_length_equals_one_call_with_gradients(shufflenet_space, batch_size):
    """Inputs longer than ``batch_size`` are embedded in length-sorted chunks: same values and
    same gradients as one call over the whole padded batch."""
    L = shufflenet_space.graph.num_layers
    X = encode(_students(shufflenet_space, 19, seed=7), max_layers=L, dtype=torch.float64)
    lengths = (X.reshape(len(X), L, -1)[..., 0] > 0).sum(-1)
    assert len(set(lengths.tolist())) > 5  # chunks of different lengths
    whole = _embedding(L, torch.float64, hidden_size=8, num_layers=2, batch_size=64)
    chunked = _embedding(L, torch.float64, hidden_size=8, num_layers=2, batch_size=batch_size)
    weights = torch.randn(len(X), whole.output_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (whole(X) * weights).sum().backward()
    (chunked(X) * weights).sum().backward()
    with torch.no_grad():
        torch.testing.assert_close(chunked(X), whole(X), atol=1e-12, rtol=1e-10)
    for (name, a), b in zip(whole.named_parameters(), chunked.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-12, rtol=1e-10, msg=name)


def test_distinct_architectures_get_distinct_embeddings(resnet_space):
    L = resnet_space.graph.num_layers
    X = encode(_students(resnet_space, 6, seed=7), max_layers=L)
    with torch.no_grad():
        H = _embedding(L)(X)
    distances = torch.cdist(H, H) + torch.eye(len(H))
    assert distances.min() > 1e-4


def test_reset_parameters_changes_weights_keeps_padding_rows_zero(resnet_space):
    L = resnet_space.graph.num_layers
    emb = _embedding(L)
    for table in (emb.type_columns, emb.incoming_columns, emb.outgoing_columns):
        assert (table.weight[0] == 0).all()
    before = {name: p.detach().clone() for name, p in emb.named_parameters()}
    emb.reset_parameters()
    for name, p in emb.named_parameters():
        assert not torch.equal(p, before[name]), name
    for table in (emb.type_columns, emb.incoming_columns, emb.outgoing_columns):
        assert (table.weight[0] == 0).all()
        assert table.weight[1:].abs().sum() > 0


def test_gradients_reach_every_block_and_skip_padding_rows(resnet_space):
    L = resnet_space.graph.num_layers
    emb = _embedding(L)
    X = encode(_students(resnet_space, 4, seed=8), max_layers=L)
    target = torch.randn(4, emb.output_dim, generator=torch.Generator().manual_seed(0))
    (emb(X) * target).sum().backward()
    for name, p in emb.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    for table in (emb.type_columns, emb.incoming_columns, emb.outgoing_columns):
        assert (table.weight.grad[0] == 0).all()


def test_config_round_trips(resnet_space):
    L = resnet_space.graph.num_layers
    emb = BiLSTMEmbedding(L, max_edges=5, hidden_size=6, num_layers=1, bidirectional=False, input_size=3)
    assert emb.config == {
        "max_layers": L, "max_edges": 5, "hidden_size": 6, "num_layers": 1,
        "bidirectional": False, "input_size": 3, "init_scale": 1.0,
    }
    copy = BiLSTMEmbedding(**emb.config)
    assert copy.config == emb.config
    shapes = {name: p.shape for name, p in emb.named_parameters()}
    assert {name: p.shape for name, p in copy.named_parameters()} == shapes
    copy.load_state_dict(emb.state_dict())
    X = encode(_students(resnet_space, 3, seed=9), max_layers=L, max_edges=5)
    with torch.no_grad():
        torch.testing.assert_close(copy(X), emb(X))


def test_init_scale_scales_the_projection_and_spreads_fresh_embeddings(resnet_space):
    L = resnet_space.graph.num_layers
    X = encode(_students(resnet_space, 12, seed=12), max_layers=L)
    spreads, weights = {}, {}
    for scale in (1.0, 10.0):
        torch.manual_seed(0)
        emb = BiLSTMEmbedding(L, init_scale=scale)
        assert emb.config["init_scale"] == scale
        weights[scale] = [t.weight.detach().clone() for t in (emb.type_columns, emb.attribute_columns,
                                                             emb.incoming_columns, emb.outgoing_columns)]
        with torch.no_grad():
            H = emb(X)
        spreads[scale] = torch.pdist(H).median().item()
    bound = 1.0 / (len(LAYER_TYPES) + 6 + 2 * L) ** 0.5
    for small, large in zip(weights[1.0], weights[10.0]):
        assert small.abs().max() <= bound and large.abs().max() <= 10 * bound
        torch.testing.assert_close(large, 10 * small)  # same draws, scaled
    assert spreads[1.0] < 0.02 and spreads[10.0] > 2 * spreads[1.0]
    # the LSTM's own initialisation does not depend on it
    torch.manual_seed(0)
    a = BiLSTMEmbedding(L, init_scale=3.0)
    torch.manual_seed(0)
    b = BiLSTMEmbedding(L)
    for (name, p), q in zip(a.lstm.named_parameters(), b.lstm.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("init_scale", [0, -1.0, float("inf"), float("nan"), True, "2"])
def test_bad_init_scale_raises_encoding_error(init_scale):
    with pytest.raises(EncodingError, match="init_scale must be a finite number > 0"):
        BiLSTMEmbedding(4, init_scale=init_scale)


def test_custom_input_size(resnet_space):
    L = resnet_space.graph.num_layers
    emb = _embedding(L, input_size=5)
    assert emb.lstm.input_size == 5
    X = encode(_students(resnet_space, 3, seed=10), max_layers=L)
    with torch.no_grad():
        assert emb.project(X.view(3, L, -1)).shape == (3, L, 5)
        assert emb(X).shape == (3, 16)


def test_bad_inputs_raise_encoding_error(resnet_space):
    L = resnet_space.graph.num_layers
    emb = _embedding(L)
    X = encode(_students(resnet_space, 3, seed=11), max_layers=L)
    with pytest.raises(EncodingError, match=rf"last dimension {X.shape[-1] - 1}, expected a multiple of 7 \+ "
                                            rf"max_edges = 15 .*built for {L} \* 15 = {L * 15}"):
        emb(X[:, :-1])
    with pytest.raises(EncodingError, match="last dimension"):
        emb(encode(resnet_space.graph, max_layers=L + 1, max_edges=4))  # 11 (L + 1) columns, not a multiple of 15
    bad = X.clone()
    bad[1] = 0
    with pytest.raises(EncodingError, match="no layers"):
        emb(bad)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_layers": 0}, "max_layers"),
        ({"max_layers": 3.0}, "max_layers"),
        ({"max_layers": True}, "max_layers"),
        ({"max_layers": 4, "max_edges": 0}, "max_edges"),
        ({"max_layers": 4, "hidden_size": -1}, "hidden_size"),
        ({"max_layers": 4, "num_layers": 0}, "num_layers"),
        ({"max_layers": 4, "num_layers": "2"}, "num_layers"),
        ({"max_layers": 4, "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(EncodingError, match=rf"{name} must be an integer >= 1, got"):
        BiLSTMEmbedding(**kwargs)


@pytest.mark.parametrize("input_size", [0, -1, 2.5])
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_bad_input_size_raises_encoding_error(input_size):
    with pytest.raises(EncodingError, match="input_size"):
        BiLSTMEmbedding(4, input_size=input_size)


def test_is_a_plain_module():
    emb = BiLSTMEmbedding(3, **SMALL)
    assert isinstance(emb, nn.Module) and isinstance(emb.lstm, nn.LSTM)
    assert emb.lstm.batch_first and emb.lstm.bidirectional


def test_default_compute_dtype_is_float32_whatever_the_weights(resnet_space):
    L = resnet_space.graph.num_layers
    X = encode([resnet_space.apply(e) for e in resnet_space.sample(6, generator=torch.Generator().manual_seed(1))],
               L, dtype=torch.float64)
    torch.manual_seed(0)
    fast = BiLSTMEmbedding(L, **SMALL).double()  # as BoTorch leaves it: float64 weights
    exact = BiLSTMEmbedding(L, compute_dtype=None, **SMALL).double()
    exact.load_state_dict(fast.state_dict())
    h_fast, h_exact = fast(X), exact(X)
    assert h_fast.dtype == torch.float64 and all(p.dtype == torch.float64 for p in fast.parameters())
    assert not torch.equal(h_fast, h_exact)  # float32 arithmetic really happened
    torch.testing.assert_close(h_fast, h_exact, atol=1e-5, rtol=0)
    h_fast.sum().backward()
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in fast.parameters())


@pytest.mark.parametrize("dtype", DTYPES)
def test_encodings_of_other_depths_read_as_their_layers(resnet_space, dtype):
    """Padding never changes an embedding, whatever the encoding's number of layers."""
    L = resnet_space.graph.num_layers
    emb = _embedding(L, dtype)
    students = _students(resnet_space, 4, seed=3)
    with torch.no_grad():
        H = emb(encode(students, max_layers=L, dtype=dtype))
        padded = emb(encode(students, max_layers=L + 9, dtype=dtype))
    torch.testing.assert_close(padded, H, atol=1e-12 if dtype == torch.float64 else 1e-6, rtol=0)


def test_a_deeper_teacher_reads_its_longer_edges_as_the_longest_column(resnet_space):
    """A kernel built for a shallower teacher (kernel transfer, here one of 8 layers) embeds
    ResNet-18 students: the same as an embedding built for ResNet-18 whose edge columns past the
    small kernel's copy its last one."""
    short, L = 8, resnet_space.graph.num_layers
    students = _students(resnet_space, 5, seed=4)
    X = encode(students, max_layers=L, dtype=torch.float64)
    assert X.view(5, L, -1)[..., 1 + 6:].max() > short - 1  # edges longer than the small kernel has columns for
    small = _embedding(short, torch.float64)
    big = _embedding(L, torch.float64)
    with torch.no_grad():
        for name, value in small.state_dict().items():
            if not name.startswith(("incoming_columns", "outgoing_columns")):
                big.state_dict()[name].copy_(value)
        for name in ("incoming_columns", "outgoing_columns"):
            table = getattr(big, name).weight
            table[:short] = getattr(small, name).weight
            table[short:] = getattr(small, name).weight[short - 1]
        torch.testing.assert_close(small(X), big(X), atol=1e-12, rtol=0)
        assert not torch.allclose(small(X), _embedding(L, torch.float64, seed=1)(X))  # not a vacuous equality
