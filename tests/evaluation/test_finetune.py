r"""Tests of botorch_archsearch/evaluation/finetune.py."""

from __future__ import annotations

import pytest
import torch

from botorch_archsearch.evaluation.data import synthetic_dataset
from botorch_archsearch.evaluation.distill import accuracy
from botorch_archsearch.evaluation.finetune import finetune, train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.models import get_teacher


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=512, num_val=128, num_test=128)


def test_train_classifier_learns_and_reports_test_accuracy(data):
    torch.manual_seed(0)
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    result = train_classifier(model, data, epochs=4, lr=0.05, schedule="cosine", batch_size=64, progress=False)
    assert len(result.losses) == 4 and len(result.history) == 4
    assert result.losses[-1] < result.losses[0]
    assert result.test_accuracy == pytest.approx(accuracy(model, data, "test"))
    assert result.val_accuracy == result.history[-1] > 0.5  # 4 classes: chance 0.25


def test_finetune_uses_the_paper_schedule(data, monkeypatch):
    """SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr x0.1 every step_size epochs."""
    seen = []
    real_step = torch.optim.SGD.step

    def record(self, *args, **kwargs):
        group = self.param_groups[0]
        seen.append((group["lr"], group["momentum"], group["weight_decay"]))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    result = finetune(model, data, epochs=3, step_size=2, max_batches=2, progress=False)
    assert [round(lr, 12) for lr, _, _ in seen] == [0.01] * 4 + [0.001] * 2
    assert {(m, wd) for _, m, wd in seen} == {(0.9, 5e-4)}
    assert 0.0 <= result.test_accuracy <= 1.0 and result.seconds > 0


def test_bad_arguments(data):
    model = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    with pytest.raises(ArchSearchError, match="epochs"):
        train_classifier(model, data, epochs=0, lr=0.1)
    with pytest.raises(ArchSearchError, match="schedule"):
        train_classifier(model, data, epochs=1, lr=0.1, schedule="linear")
