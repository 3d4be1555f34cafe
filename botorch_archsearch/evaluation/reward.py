r"""The compression reward ``f(x)`` that the search maximises (N2N, paper section 4.1).

``f(x) = C (2 - C) A(x) / A_teacher`` with ``C = 1 - size(x) / size_teacher``: ``C (2 - C)``
rises from 0 (no compression) to 1 (everything removed) with a slope that decreases, so that
accuracy is traded for size less and less eagerly. The size is the number of parameters (paper)
or, as an option, the FLOPs (multiply-accumulates of convolutions and linear layers). A hard
budget (size at most ``B``) gives students above it a reward of 0.

At a budget, ``kind="accuracy"`` rewards accuracy alone, ``f(x) = A(x) / A_teacher`` for the
students within the budget and 0 above it: the question a user with a FLOPs or params target
asks ("the most accurate student that fits"). The N2N reward instead keeps trading accuracy for
size below the budget, and returns smaller, less accurate students than the budget allows.
"""

from __future__ import annotations

import math

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils.validation import check_choice

REWARD_MEASURES = ("params", "flops")
REWARD_KINDS = ("n2n", "accuracy")
r"""The reward's shape: ``"n2n"`` (the paper, ``C (2 - C) A / A_teacher``) or ``"accuracy"``
(``A / A_teacher`` within the budget, 0 above it; needs a budget)."""
FAILED_REWARD = 0.0
r"""The reward of a student that failed to train (NaN loss, out of memory, an error): 0.0, the
reward of a student with no accuracy, and the floor of ``f`` for students no larger than the
teacher."""


def compression(size: float, teacher_size: float) -> float:
    r"""``C = 1 - size / teacher_size``.

    Args:
        size: The student's size (parameters or FLOPs).
        teacher_size: The teacher's size, > 0.

    Returns:
        The compression, 0 for the teacher's size and 1 for nothing left.
    """
    if not (teacher_size > 0 and math.isfinite(teacher_size)):
        raise ArchSearchError(f"compression: teacher_size must be a positive number, got {teacher_size!r}.")
    if not (size >= 0 and math.isfinite(size)):
        raise ArchSearchError(f"compression: size must be a number >= 0, got {size!r}.")
    return 1.0 - size / teacher_size


def reward(
    accuracy: float,
    teacher_accuracy: float,
    params: float,
    teacher_params: float,
    *,
    flops: float | None = None,
    teacher_flops: float | None = None,
    measure: str = "params",
    budget: float | None = None,
    budget_measure: str | None = None,
    failed: bool = False,
    kind: str = "n2n",
) -> float:
    r"""The reward of one student: N2N's ``f(x) = C (2 - C) A / A_teacher``, or ``A / A_teacher``
    for ``kind="accuracy"``; 0 above the budget either way.

    Args:
        accuracy: The student's validation accuracy (fraction).
        teacher_accuracy: The teacher's validation accuracy (fraction, > 0).
        params: The student's number of parameters.
        teacher_params: The teacher's number of parameters.
        flops: The student's FLOPs (needed for ``measure="flops"`` or a FLOPs budget).
        teacher_flops: The teacher's FLOPs (needed for ``measure="flops"``).
        measure: What ``C`` measures: ``"params"`` (paper) or ``"flops"``.
        budget: A hard limit: a student whose size is above it gets a reward of 0.
        budget_measure: What the budget limits, ``"params"`` or ``"flops"`` (default: ``measure``).
        failed: The student failed to train: :data:`FAILED_REWARD`.
        kind: The reward's shape, one of :data:`REWARD_KINDS`. ``"accuracy"`` ignores ``C``
            (``measure``); without a budget it would be maximised by the teacher itself, which is
            why the search's configuration requires one (the function does not).

    Returns:
        ``f(x)``.

    Example:
        >>> reward(0.90, 0.95, params=1e6, teacher_params=1e7)  # C = 0.9
        0.9378947368421054
        >>> reward(0.90, 0.95, params=1e6, teacher_params=1e7, budget=2e6, kind="accuracy")
        0.9473684210526316
    """
    check_choice("kind", kind, REWARD_KINDS, where="reward")
    check_choice("measure", measure, REWARD_MEASURES, where="reward")
    budget_measure = measure if budget_measure is None else budget_measure
    check_choice("budget_measure", budget_measure, REWARD_MEASURES, where="reward")
    if not (teacher_accuracy > 0 and math.isfinite(teacher_accuracy)):
        raise ArchSearchError(f"reward: teacher_accuracy must be a positive number, got {teacher_accuracy!r}.")
    if failed:
        return FAILED_REWARD
    if not (0 <= accuracy <= 1):
        raise ArchSearchError(f"reward: accuracy must lie in [0, 1], got {accuracy!r}.")
    if "flops" in (measure, budget_measure) and flops is None:
        raise ArchSearchError("reward: pass flops (and teacher_flops) to measure compression or a budget in FLOPs.")
    if budget is not None:
        if not budget > 0:
            raise ArchSearchError(f"reward: budget must be a positive number, got {budget!r}.")
        if (params if budget_measure == "params" else flops) > budget:
            return 0.0
    if kind == "accuracy":
        return accuracy / teacher_accuracy
    if measure == "params":
        c = compression(params, teacher_params)
    else:
        if teacher_flops is None:
            raise ArchSearchError("reward: pass teacher_flops to measure compression in FLOPs.")
        c = compression(flops, teacher_flops)
    return c * (2.0 - c) * accuracy / teacher_accuracy


__all__ = ["FAILED_REWARD", "REWARD_KINDS", "REWARD_MEASURES", "compression", "reward"]
