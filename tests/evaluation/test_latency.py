r"""Tests of botorch_archsearch/evaluation/latency.py and ``latency_batch`` in the evaluator."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from botorch_archsearch.evaluation import evaluate_students, synthetic_dataset
from botorch_archsearch.evaluation.latency import Latency, device_name, measure_latency
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import build_student, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace


class _LayoutSensitive(nn.Module):
    """Returns whether its input is contiguous: the same network computes different outputs in the
    two layouts, so channels-last must never be chosen for it, however fast."""

    def forward(self, x):
        return torch.full((x.shape[0], 1), float(x.is_contiguous()))


def test_a_measurement_times_each_batch_and_names_the_device():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    result = measure_latency(model, (3, 16, 16), batch_sizes=(1, 8), min_run_time=0.01)
    assert isinstance(result, Latency) and result.batch_sizes == (1, 8)
    assert len(result.milliseconds) == 2 and all(ms > 0 for ms in result.milliseconds)
    assert result.device == device_name("cpu") and result.device.startswith("cpu: ") and result.host == socket.gethostname()
    assert result.to_dict() == {"device": result.device, "host": result.host, "channels_last": result.channels_last,
                                "ms": {"1": result.milliseconds[0], "8": result.milliseconds[1]}}
    assert model[0].weight.is_contiguous()  # the model itself is left as it was
    forced = measure_latency(model, (3, 16, 16), batch_sizes=(2,), min_run_time=0.01, channels_last=True)
    assert forced.channels_last and forced.batch_sizes == (2,)
    flat = measure_latency(nn.Linear(8, 2), (8,), batch_sizes=(1,), min_run_time=0.01)
    assert not flat.channels_last  # no layout to choose for a vector input


def test_channels_last_is_chosen_only_where_it_computes_the_same_outputs():
    result = measure_latency(_LayoutSensitive(), (3, 8, 8), batch_sizes=(4,), min_run_time=0.01)
    assert not result.channels_last


@pytest.mark.parametrize("kwargs, match", [(dict(batch_sizes=()), "at least one batch size"),
                                           (dict(batch_sizes=(0,)), "batch size must be an integer >= 1"),
                                           (dict(min_run_time=0), "min_run_time")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ArchSearchError, match=match):
        measure_latency(nn.Identity(), (3, 4, 4), **kwargs)


def test_the_evaluator_measures_each_trained_student():
    data = synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=64, num_val=32, num_test=32)
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=4, width=0.125).eval()
    space = SearchSpace(trace(teacher, torch.zeros(1, 3, 16, 16)))
    students = [build_student(space.student(e), teacher) for e in space.sample(2, generator=torch.Generator().manual_seed(0))]
    results = evaluate_students(teacher, students, data, epochs=1, max_batches=1, batch_size=16, latency_batch=3,
                                progress=False)
    for r in results:
        assert r.ok and set(r.latency["ms"]) == {"1", "3"} and r.latency["device"] == device_name("cpu")
    plain = evaluate_students(teacher, students[:1], data, epochs=1, max_batches=1, batch_size=16, progress=False)
    assert plain[0].latency is None
    with pytest.raises(ArchSearchError, match="latency_batch must be None or an integer >= 1, got 0"):
        evaluate_students(teacher, students, data, epochs=1, latency_batch=0)
