r"""Tests of botorch_archsearch/gp/model.py."""

from __future__ import annotations

import pytest
import torch
from botorch.acquisition import ExpectedImprovement, LogExpectedImprovement
from botorch.acquisition.objective import ScalarizedPosteriorTransform
from botorch.models import SingleTaskGP

from botorch_archsearch.gp import ArchitectureGP, architecture_gp, fit_architecture_gp
from botorch_archsearch.graph import count_params, encode, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


@pytest.fixture(scope="module")
def fitted():
    """A fitted GP on 10 students, and 7 more students to predict."""
    torch.manual_seed(0)
    graph = trace(get_teacher("resnet18", width=0.125).eval(), torch.randn(1, 3, 32, 32))
    space = SearchSpace(graph)
    students = [space.apply(e) for e in space.sample(17, generator=torch.Generator().manual_seed(0))]
    X = encode(students, graph.num_layers, dtype=torch.float64)
    C = torch.tensor([1 - count_params(s) / count_params(graph) for s in students], dtype=torch.float64)
    Y = (C * (2 - C)).unsqueeze(-1)
    model = architecture_gp(X[:10], Y[:10], max_layers=graph.num_layers, hidden_size=8, num_layers=1)
    fit_architecture_gp(model, max_steps=5)
    return model, X[10:]


def _reference(model, X, **kwargs):
    """``SingleTaskGP``'s own posterior (each t-batch conditioned separately)."""
    return SingleTaskGP.posterior(model, X, **kwargs)


@pytest.mark.parametrize("observation_noise", [False, True])
@pytest.mark.parametrize("batch_shape", [(7,), (7, 1)])
def test_t_batch_posterior_equals_single_task_gp(fitted, observation_noise, batch_shape):
    model, Xs = fitted
    assert isinstance(model, ArchitectureGP)
    X = Xs.reshape(*batch_shape, 1, Xs.shape[-1])
    ours = model.posterior(X, observation_noise=observation_noise)
    ref = _reference(model, X, observation_noise=observation_noise)
    assert ours.mean.shape == ref.mean.shape == (*batch_shape, 1, 1)
    torch.testing.assert_close(ours.mean, ref.mean)
    torch.testing.assert_close(ours.variance, ref.variance)


def test_acquisition_values_unchanged(fitted):
    model, Xs = fitted
    X = Xs.unsqueeze(-2)
    for acq_class in (LogExpectedImprovement, ExpectedImprovement):
        ours = acq_class(model, best_f=0.5)(X)
        assert ours.shape == (len(Xs),)
        torch.testing.assert_close(ours, acq_class(_Plain(model), best_f=0.5)(X))


def test_posterior_transform_and_joint_q_batches_fall_back(fitted):
    model, Xs = fitted
    transform = ScalarizedPosteriorTransform(weights=torch.tensor([2.0], dtype=Xs.dtype))
    X = Xs.unsqueeze(-2)
    torch.testing.assert_close(
        model.posterior(X, posterior_transform=transform).mean,
        _reference(model, X, posterior_transform=transform).mean,
    )
    joint = Xs[:6].reshape(3, 2, -1)  # q = 2: the joint posterior, off-diagonal covariances kept
    ours, ref = model.posterior(joint), _reference(model, joint)
    torch.testing.assert_close(ours.distribution.covariance_matrix, ref.distribution.covariance_matrix)
    assert ours.distribution.covariance_matrix[0, 0, 1].abs() > 0


class _Plain(torch.nn.Module):
    """The model behind ``SingleTaskGP.posterior`` (what acquisitions see without the fast path)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.num_outputs = 1
        self._num_outputs = 1

    def posterior(self, X, **kwargs):
        return _reference(self.model, X, **kwargs)
