r"""Shared fixtures of the search tests (test_loop.py, test_backends.py): a search of a few
seconds and the synthetic data and teachers it runs on.

``search_data`` and the teachers are shared by the whole session (one per pytest worker): a test
may search with them but must not change them.
"""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.evaluation import synthetic_dataset
from botorch_archsearch.evaluation.teachers import load_teacher
from botorch_archsearch.models import get_teacher
from botorch_archsearch.search import (
    AcquisitionConfig,
    CompressConfig,
    EvaluationConfig,
    FinalConfig,
    KernelConfig,
    SearchSettings,
    TeacherConfig,
)


def _small_config(isolation: str = "none", **search) -> CompressConfig:
    """A search of a few seconds: 2 steps x 2 kernels, tiny kernel, one batch of training; the
    students train in the test's process (the worker process of the CPU default is tested in
    tests/search/test_backends.py and, through the app, in tests/test_main.py)."""
    return CompressConfig(
        teacher=TeacherConfig(name="resnet18", width=0.125),
        search=SearchSettings(**{"method": "esnac", "steps": 2, "num_kernels": 2, **search}),
        kernel=KernelConfig(hidden_size=8, num_layers=1, max_steps=3),
        acquisition=AcquisitionConfig(num_candidates=30),
        evaluation=EvaluationConfig(epochs=2, max_batches=2, batch_size=32, isolation=isolation),
        final=FinalConfig(top_k=1, epochs=1, max_batches=1, step_size=1),
        progress=False,
    )


def _teacher(data, width: float):
    torch.manual_seed(0)
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=width)
    return load_teacher(model, data)


@pytest.fixture
def small_config():
    """``small_config(isolation="none", **search)``: a fresh :class:`CompressConfig` of a search of
    a few seconds (2 steps x 2 kernels, tiny kernel, one batch of training); ``search`` overrides
    keys of its ``search`` section (``steps=3``, ``method="random"``, ...)."""
    return _small_config


@pytest.fixture(scope="session")
def search_data():
    """Synthetic data: 4 classes, 3 x 16 x 16 images, 128 training, 64 validation, 64 test."""
    return synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=128, num_val=64,
                             num_test=64)


@pytest.fixture(scope="session")
def search_teacher(search_data):
    """The loaded teacher of ``small_config``: a ResNet-18 of width 0.125 on ``search_data``."""
    return _teacher(search_data, 0.125)


@pytest.fixture(scope="session")
def wide_search_teacher(search_data):
    """Another teacher with as many layers: the ResNet-18 of width 0.25 on ``search_data``."""
    return _teacher(search_data, 0.25)
