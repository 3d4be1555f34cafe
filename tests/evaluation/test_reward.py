r"""Tests of botorch_archsearch/evaluation/reward.py against hand-computed values."""

from __future__ import annotations

import pytest

from botorch_archsearch.evaluation.reward import FAILED_REWARD, compression, reward
from botorch_archsearch.exceptions import ArchSearchError


def test_compression():
    assert compression(25, 100) == 0.75
    assert compression(100, 100) == 0.0
    assert compression(0, 100) == 1.0


@pytest.mark.parametrize(
    "accuracy, teacher_accuracy, params, teacher_params, expected",
    [
        # C = 0.9: 0.9 * 1.1 = 0.99; * 0.90 / 0.95
        (0.90, 0.95, 1_000_000, 10_000_000, 0.99 * 0.90 / 0.95),
        # C = 0.5: 0.5 * 1.5 = 0.75; same accuracy as the teacher
        (0.80, 0.80, 50, 100, 0.75),
        # the teacher itself: C = 0
        (0.93, 0.93, 100, 100, 0.0),
        # C = 0.75: 0.75 * 1.25 = 0.9375; accuracy above the teacher's
        (0.99, 0.90, 250, 1000, 0.9375 * 1.1),
    ],
)
def test_n2n_reward_hand_values(accuracy, teacher_accuracy, params, teacher_params, expected):
    assert reward(accuracy, teacher_accuracy, params, teacher_params) == pytest.approx(expected, rel=1e-12)


def test_flops_measure_uses_flops_not_params():
    # params C = 0.5 (0.75), FLOPs C = 0.8 (0.8 * 1.2 = 0.96)
    value = reward(0.9, 0.9, 50, 100, flops=200, teacher_flops=1000, measure="flops")
    assert value == pytest.approx(0.96)
    assert reward(0.9, 0.9, 50, 100, flops=200, teacher_flops=1000) == pytest.approx(0.75)


def test_hard_budget():
    assert reward(0.9, 0.9, 50, 100, budget=50) == pytest.approx(0.75)  # at the budget: kept
    assert reward(0.9, 0.9, 51, 100, budget=50) == 0.0
    # a FLOPs budget while C measures params
    assert reward(0.9, 0.9, 50, 100, flops=300, budget=250, budget_measure="flops") == 0.0
    assert reward(0.9, 0.9, 50, 100, flops=200, budget=250, budget_measure="flops") == pytest.approx(0.75)


def test_failed_student_gets_the_documented_floor():
    assert FAILED_REWARD == 0.0
    assert reward(0.9, 0.9, 10, 100, failed=True) == FAILED_REWARD
    # the floor is what any student no larger than the teacher can reach at worst
    assert reward(0.0, 0.9, 10, 100) == FAILED_REWARD


def test_accuracy_kind_is_the_accuracy_ratio_within_the_budget():
    # within the budget the size does not count: two students of different sizes, same accuracy
    assert reward(0.72, 0.90, 50, 100, budget=60, kind="accuracy") == pytest.approx(0.8, rel=1e-12)
    assert reward(0.72, 0.90, 10, 100, budget=60, kind="accuracy") == pytest.approx(0.8, rel=1e-12)
    assert reward(0.72, 0.90, 60, 100, budget=60, kind="accuracy") == pytest.approx(0.8, rel=1e-12)  # at it
    assert reward(0.99, 0.90, 61, 100, budget=60, kind="accuracy") == 0.0  # above it
    # a FLOPs budget while the (unused) measure is params
    assert reward(0.9, 0.9, 50, 100, flops=300, budget=250, budget_measure="flops", kind="accuracy") == 0.0
    assert reward(0.9, 0.9, 50, 100, flops=250, budget=250, budget_measure="flops", kind="accuracy") == 1.0
    assert reward(0.9, 0.9, 10, 100, budget=60, failed=True, kind="accuracy") == FAILED_REWARD
    # the N2N reward of the same student is lower: it is the kind, not the default, that changed
    assert reward(0.72, 0.90, 50, 100, budget=60) == pytest.approx(0.75 * 0.8, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="pareto"), "kind"),
        (dict(measure="latency"), "measure"),
        (dict(budget_measure="memory"), "budget_measure"),
        (dict(teacher_accuracy=0.0), "teacher_accuracy"),
        (dict(accuracy=1.5), "accuracy"),
        (dict(measure="flops"), "flops"),
        (dict(measure="flops", flops=10), "teacher_flops"),
        (dict(budget=0), "budget"),
        (dict(teacher_params=0), "teacher_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(accuracy=0.9, teacher_accuracy=0.9, params=10, teacher_params=100)
    args.update(kwargs)
    with pytest.raises(ArchSearchError, match=match):
        reward(**args)
