r"""Shared fixtures: tiny zoo teachers, a few torchvision models and their traced graphs; the
arguments and environment that make the command-line app's runs take seconds (``tiny_cli_args``,
``cli_env``).

Every module handed out here is in eval mode and shared by the whole session: a test may run it
(under ``torch.no_grad()``) but must not train it, move it or change its mode; a test that needs a
module in train mode builds its own.

Keys: the zoo teachers are named as in :data:`~botorch_archsearch.models.TEACHER_NAMES`
(``"resnet18"``, ...), the torchvision models as ``"torchvision/<name>"``
(``"torchvision/resnet18"``, ...), so one dictionary (``traced``) holds them all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from botorch_archsearch.evaluation import synthetic_dataset
from botorch_archsearch.evaluation.teachers import load_teacher
from botorch_archsearch.graph import trace
from botorch_archsearch.models import TEACHER_NAMES, get_teacher
from botorch_archsearch.search import (
    AcquisitionConfig,
    CompressConfig,
    EvaluationConfig,
    FinalConfig,
    KernelConfig,
    SearchSettings,
    TeacherConfig,
)
from botorch_archsearch.utils.torchvision import import_torchvision

# Tests run two workers on two cores; more intra-op threads only oversubscribe them.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Spread the slow tests (subprocesses, whole searches: up to minutes each) over the workers, each
    worker's first. ``--dist worksteal`` (scripts/test.sh) hands worker ``j`` of ``n`` the ``j``-th
    contiguous ``n``-th of this order and lets an idle worker take tests from the end of another's
    queue, so each ``n``-th starts with every ``n``-th slow test and is filled up with the quick ones (in
    collection order): the slow tests all start early, on every worker, and the quick ones even out the
    end. (Sorting them all to the front put them all in the first worker's share; the suite took 18:08
    so and 17:15 so spread, on the 2-core AVX2 CPU: one run each, within that machine's noise.)"""
    n = getattr(config, "workerinput", {}).get("workercount", 1)
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    quick = [item for item in items if item.get_closest_marker("slow") is None]
    order = []
    for j in range(n):
        share = len(items) * (j + 1) // n - len(items) * j // n  # worker j's initial share
        mine = slow[j::n]
        take = max(0, share - len(mine))
        order += mine + quick[:take]
        quick = quick[take:]
    items[:] = order + quick


TINY_WIDTH = 0.125
NUM_CLASSES = 10
IN_CHANNELS = 3
ZOO_IMAGE_SIZE = 32
# torchvision model name -> input side; VGG's adaptive pooling and the others' global pooling
# accept both, and two sizes exercise the shape propagation a little more.
TORCHVISION_IMAGE_SIZES = {
    "mobilenet_v2": 32,
    "resnet18": 64,
    "shufflenet_v2_x1_0": 64,
    "vgg11_bn": 32,
}
ZOO_NAMES = tuple(TEACHER_NAMES)
TORCHVISION_NAMES = tuple(f"torchvision/{name}" for name in sorted(TORCHVISION_IMAGE_SIZES))
ALL_TEACHER_NAMES = ZOO_NAMES + TORCHVISION_NAMES


def _example_input(size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, IN_CHANNELS, size, size, generator=generator)


@pytest.fixture(scope="session")
def zoo_teachers() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """Zoo teacher name -> (tiny teacher in eval mode, a `2 x 3 x 32 x 32` example input)."""
    torch.manual_seed(0)
    out = {}
    for seed, name in enumerate(ZOO_NAMES):
        module = get_teacher(
            name, num_classes=NUM_CLASSES, in_channels=IN_CHANNELS, width=TINY_WIDTH
        ).eval()
        out[name] = (module, _example_input(ZOO_IMAGE_SIZE, seed))
    return out


@pytest.fixture(scope="session")
def torchvision_teachers() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """``"torchvision/<name>"`` -> (model with 10 classes in eval mode, a `2 x 3 x s x s` input)."""
    models = import_torchvision().models
    torch.manual_seed(0)
    out = {}
    for seed, key in enumerate(TORCHVISION_NAMES):
        name = key.split("/", 1)[1]
        module = getattr(models, name)(num_classes=NUM_CLASSES).eval()
        out[key] = (module, _example_input(TORCHVISION_IMAGE_SIZES[name], 100 + seed))
    return out


@pytest.fixture(scope="session")
def all_teachers(zoo_teachers, torchvision_teachers) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """The union of ``zoo_teachers`` and ``torchvision_teachers``."""
    return {**zoo_teachers, **torchvision_teachers}


@pytest.fixture(scope="session")
def traced(all_teachers) -> dict:
    """Every name of ``all_teachers`` -> the :class:`ArchGraph` that ``trace`` makes of it."""
    return {name: trace(module, x) for name, (module, x) in all_teachers.items()}


@pytest.fixture(params=ALL_TEACHER_NAMES)
def teacher_name(request) -> str:
    """Each key of ``traced`` in turn (zoo teachers, then torchvision models)."""
    return request.param


@pytest.fixture(params=ZOO_NAMES)
def zoo_name(request) -> str:
    """Each zoo teacher name in turn."""
    return request.param


# ---------------------------------------------------------------------------- the command-line app
# Overrides that make the app's default job (ESNAC, then the one-shot baselines) take seconds. Students
# train in the search's process (no worker process to start: ~10 s a run); the tests of the worker
# process ask for it (``evaluation.isolation=process``). They train in the contiguous layout: no numerics
# guard probe (seconds of a core a run: its torch import and canary, twice where the canary crashes it);
# the guard's tests are tests/evaluation/test_numerics.py, and the installed command's test runs with it.
TINY_DEFAULT_JOB = (
    "dataset=synthetic",
    "teacher.epochs=1",
    "teacher.max_batches=2",
    "kernel.hidden_size=8",
    "kernel.num_layers=1",
    "kernel.max_steps=3",
    "acquisition.num_candidates=30",
    "evaluation.epochs=1",
    "evaluation.max_batches=3",
    "evaluation.isolation=none",
    "evaluation.channels_last=false",
    "final.top_k=1",
    "final.epochs=1",
    "final.max_batches=1",
    "final.step_size=1",
)


@pytest.fixture
def tiny_default_cli_args() -> list[str]:
    """Overrides of the app's default job (the search, then two one-shot evaluations) that make it
    take seconds: synthetic data, a teacher trained on 2 batches, a tiny kernel, 3 batches of
    distillation, one best student trained on 1 batch."""
    return list(TINY_DEFAULT_JOB)


@pytest.fixture
def tiny_cli_args() -> list[str]:
    """``tiny_default_cli_args`` and ``search.baselines=[]``: the search alone."""
    return [*TINY_DEFAULT_JOB, "search.baselines=[]"]


@pytest.fixture
def cli_env():
    """``cli_env(directory)``: the environment of an app run in ``directory``: one thread, unbuffered
    output, and the teacher cache in ``directory/cache`` (the trained teacher, shared by the runs)."""
    def env(directory: Path) -> dict[str, str]:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env["BOTORCH_ARCHSEARCH_CACHE"] = str(directory / "cache")
        return env

    return env


# A search of a few seconds and the synthetic data and teachers it runs on (tests/search, tests/field).
# search_data and the teachers are shared by the whole session (one per pytest worker): a test may
# search with them but must not change them.


def _small_config(isolation: str = "none", **search) -> CompressConfig:
    """A search of a few seconds: 2 steps x 2 kernels, tiny kernel, one batch of training; the
    students train in the test's process (the worker process of the CPU default is tested in
    tests/search/test_backends.py and, through the app, in tests/test_main.py), in the contiguous
    layout: no numerics guard, whose probe costs seconds of a core in every process that trains (a
    worker process, each Dask worker); the guard is tested in tests/evaluation/test_numerics.py and
    with a search in tests/search/test_backends.py."""
    return CompressConfig(
        teacher=TeacherConfig(name="resnet18", width=0.125),
        search=SearchSettings(**{"method": "esnac", "steps": 2, "num_kernels": 2, **search}),
        kernel=KernelConfig(hidden_size=8, num_layers=1, max_steps=3),
        acquisition=AcquisitionConfig(num_candidates=30),
        evaluation=EvaluationConfig(epochs=2, max_batches=2, batch_size=32, isolation=isolation, channels_last=False),
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
