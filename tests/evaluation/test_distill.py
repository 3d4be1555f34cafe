r"""Tests of botorch_archsearch/evaluation/distill.py (lock-step knowledge distillation)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from botorch_archsearch.evaluation.data import synthetic_dataset
from botorch_archsearch.evaluation.distill import KD_LOSSES, accuracy, evaluate_students, kd_loss
from botorch_archsearch.evaluation.finetune import train_classifier
from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import build_student, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import SearchSpace

OPTIONS = dict(epochs=2, batch_size=64, max_batches=6, progress=False)


@functools.lru_cache(maxsize=None)
def _setup():
    """A small dataset, a briefly trained tiny teacher, and its search space."""
    data = synthetic_dataset(num_classes=4, in_channels=3, image_size=16, num_train=512, num_val=128, num_test=128)
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=4, in_channels=3, width=0.125)
    train_classifier(teacher, data, epochs=5, lr=0.05, schedule="cosine", batch_size=64, progress=False)
    teacher.eval()
    space = SearchSpace(trace(teacher, torch.randn(1, 3, 16, 16)))
    return data, teacher, space


def _students(n: int, seed: int = 0) -> list[nn.Module]:
    data, teacher, space = _setup()
    edits = space.sample(n, generator=torch.Generator().manual_seed(seed))
    return [build_student(space.student(e), teacher) for e in edits]



def test_kd_losses_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert KD_LOSSES == ("mse", "kl")
    torch.testing.assert_close(kd_loss(s, t, "mse"), ((s - t) ** 2).mean())
    T = 3.0
    p = torch.softmax(t / T, -1)
    manual = (p * (torch.log(p) - torch.log_softmax(s / T, -1))).sum(-1).mean() * T**2
    torch.testing.assert_close(kd_loss(s, t, "kl", temperature=T), manual)


def test_lock_step_equals_students_trained_one_by_one():
    """K students in lock-step (one teacher forward per batch) end exactly as each trained alone."""
    data, teacher, _ = _setup()
    together = _students(3)
    alone = _students(3)  # same edits, same inherited weights
    calls = []
    handle = teacher.register_forward_hook(lambda *_: calls.append(1))
    try:
        results = evaluate_students(teacher, together, data, **OPTIONS)
        teacher_calls = len(calls)
        singles = [evaluate_students(teacher, [s], data, **OPTIONS)[0] for s in alone]
    finally:
        handle.remove()
    assert teacher_calls == OPTIONS["epochs"] * OPTIONS["max_batches"]  # shared, not once per student
    for r, single, a, b in zip(results, singles, together, alone):
        assert r.ok and single.ok
        assert r.history == single.history and r.losses == single.losses
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(x, y, msg=name)


def test_best_epoch_is_kept_and_loaded():
    data, teacher, _ = _setup()
    students = _students(2, seed=1)
    results = evaluate_students(teacher, students, data, epochs=3, batch_size=64, max_batches=4, progress=False)
    for student, r in zip(students, results):
        assert len(r.history) == 3 == len(r.losses)
        assert r.accuracy == max(r.history) and r.history[r.best_epoch - 1] == r.accuracy
        assert all(math.isfinite(x) for x in r.losses) and r.seconds > 0
        # the module holds the best epoch's weights
        assert accuracy(student, data, "val") == pytest.approx(r.accuracy)
        for k, v in student.state_dict().items():
            torch.testing.assert_close(v, r.state_dict[k])


def test_distillation_learns_from_the_teacher():
    data, teacher, _ = _setup()
    teacher_acc = accuracy(teacher, data, "val")
    assert teacher_acc > 0.5  # 4 classes: chance is 0.25
    students = _students(2, seed=2)
    results = evaluate_students(teacher, students, data, epochs=3, batch_size=64, progress=False)
    assert all(r.ok for r in results)
    assert max(r.accuracy for r in results) > 0.4
    assert all(r.losses[-1] < r.losses[0] for r in results)


class _Diverging(nn.Module):
    """Wraps a student; its output becomes NaN from the ``after``-th training forward on."""

    def __init__(self, inner: nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                return out * float("nan")
        return out


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(5, 4, 3)  # wrong number of input channels

    def forward(self, x):
        return self.conv(x).mean((-1, -2))


def test_failed_students_are_recorded_and_the_others_go_on():
    data, teacher, _ = _setup()
    good = _students(2, seed=3)
    reference = evaluate_students(teacher, _students(2, seed=3), data, **OPTIONS)
    mixed = [good[0], _Diverging(_students(1, seed=9)[0], after=8), _Broken(), good[1]]
    results = evaluate_students(teacher, mixed, data, **OPTIONS)
    ok0, diverged, broken, ok1 = results
    assert diverged.status == "failed" and "nan" in diverged.reason and "epoch 2, batch 2" in diverged.reason
    assert len(diverged.history) == 1  # its first epoch finished and was kept
    assert broken.status == "failed" and broken.reason.startswith("RuntimeError") and broken.history == []
    assert broken.accuracy == 0.0 and broken.state_dict is None
    # the good students are untouched by their failing neighbours
    assert ok0.history == reference[0].history and ok1.history == reference[1].history


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(max_batches=0), "max_batches"),
        (dict(lr=0.0), "lr"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(loss="ce"), "loss"),
        (dict(workers=0), "workers"),
    ],
)
def test_bad_arguments(kwargs, match):
    data, teacher, _ = _setup()
    with pytest.raises(ArchSearchError, match=match):
        evaluate_students(teacher, _students(1), data, **{**OPTIONS, **kwargs})


def test_results_do_not_depend_on_workers():
    data, teacher, _ = _setup()
    one = evaluate_students(teacher, _students(3, seed=4), data, workers=1, **OPTIONS)
    three = evaluate_students(teacher, _students(3, seed=4), data, workers=3, **OPTIONS)
    for a, b in zip(one, three):
        assert a.history == b.history and a.losses == b.losses
        for k, v in a.state_dict.items():
            torch.testing.assert_close(v, b.state_dict[k], msg=k)


class _DtypeProbe(nn.Module):
    """A student that records the dtype its first layer computes in, training and validating."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.dtypes: dict[bool, set[torch.dtype]] = {True: set(), False: set()}

    def forward(self, x):
        y = self.conv(x)
        self.dtypes[self.training].add(y.dtype)
        return self.fc(y.float().mean((2, 3)))


@pytest.mark.parametrize("native", [True, False])
def test_bf16_default_follows_the_device(monkeypatch, native):
    """``bf16=None`` autocasts exactly where ``native_bf16`` says the device has bf16; an explicit
    value wins either way. Validation always runs in float32."""
    from botorch_archsearch.utils import precision

    data, teacher, _ = _setup()
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    expected = torch.bfloat16 if native else torch.float32
    for bf16, dtype in ((None, expected), (True, torch.bfloat16), (False, torch.float32)):
        probe = _DtypeProbe()
        [result] = evaluate_students(teacher, [probe], data, bf16=bf16, **OPTIONS)
        assert result.ok
        assert probe.dtypes == {True: {dtype}, False: {torch.float32}}
        assert all(p.dtype == torch.float32 for p in probe.parameters())  # weights stay float32


def test_bf16_autocast_barely_moves_the_accuracies():
    """bf16 autocast against float32 on the same batches: it does change the arithmetic (the
    losses differ), but the accuracies only a little."""
    data, teacher, _ = _setup()
    fp32 = evaluate_students(teacher, _students(4), data, bf16=False, **OPTIONS)
    bf16 = evaluate_students(teacher, _students(4), data, bf16=True, **OPTIONS)
    assert all(r.ok for r in fp32 + bf16)
    assert all(math.isfinite(loss) for r in bf16 for loss in r.losses)
    assert any(a.losses != b.losses for a, b in zip(fp32, bf16))  # bf16 was in effect
    difference = [abs(a.accuracy - b.accuracy) for a, b in zip(fp32, bf16)]
    assert max(difference) <= 0.05, difference


def test_bf16_must_be_a_bool_or_none():
    data, teacher, _ = _setup()
    with pytest.raises(ArchSearchError, match=r"bf16 must be True, False or None, got 'yes'"):
        evaluate_students(teacher, _students(1), data, bf16="yes", **OPTIONS)
