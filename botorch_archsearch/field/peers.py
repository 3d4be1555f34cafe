r"""Practitioners' tools run side by side with the harness (FIELD.md "Practitioners' tools").

:func:`torch_pruning_student` prunes a copy of the teacher with Torch-Pruning's magnitude pruner
(DepGraph groups, ``GroupMagnitudeImportance(p=2)``, ``MetaPruner``), step by step until the
student is within a size target, the way its users do. The pruned network is then an ordinary
module: :func:`~botorch_archsearch.evaluation.evaluate_students` distils it and
:func:`~botorch_archsearch.evaluation.finetune` trains it to the end exactly as the harness's own
students (``benchmarks/bench_methods.py``).

Torch-Pruning is an optional dependency (``pip install 'botorch-archsearch[bench]'``,
``torch-pruning==1.6.1``); nothing else in the package imports it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import count_flops, count_params, trace
from botorch_archsearch.utils.validation import check_bool, check_choice, check_float, check_int


def torch_pruning_student(
    model: nn.Module,
    example: torch.Tensor,
    target: float,
    measure: str = "flops",
    global_pruning: bool = False,
    steps: int = 200,
    max_ratio: float = 0.99,
) -> tuple[nn.Module, dict[str, Any]]:
    r"""Torch-Pruning's one-shot magnitude pruning of ``model`` to a size target.

    The pruner removes channels in ``steps`` equal increments of the channel ratio (up to
    ``max_ratio``); pruning stops at the first increment whose network is within the target, so
    the result is the largest of its students within it, up to one increment. Sizes are counted by
    this package (:func:`~botorch_archsearch.graph.count_flops` of the traced network: MACs per
    image), so they compare with every other method's. The classifier's output layer is kept.

    Args:
        model: The trained teacher (not changed).
        example: An input batch of the teacher's image shape.
        target: The student keeps at most this fraction of the teacher's ``measure``, in ``(0, 1]``.
        measure: ``"flops"`` or ``"params"``.
        global_pruning: Torch-Pruning's ``global_pruning`` (one importance ranking for all
            groups) instead of one ratio for every group.
        steps: Increments of the channel ratio.
        max_ratio: The largest channel ratio tried.

    Returns:
        ``(student, info)``: the pruned copy, and its ``flops``, ``params``, the channel ratio and
        the step it stopped at.

    Raises:
        ArchSearchError: If Torch-Pruning is not installed, or the target is not reached at
            ``max_ratio``.
    """
    where = "torch_pruning_student"
    check_float("target", target, 0, 1, exclusive_minimum=True, where=where)
    check_choice("measure", measure, ("flops", "params"), where=where)
    check_bool("global_pruning", global_pruning, where=where)
    check_int("steps", steps, 1, where=where)
    check_float("max_ratio", max_ratio, 0, 1, exclusive_minimum=True, exclusive_maximum=True, where=where)
    try:
        import torch_pruning as tp
    except ImportError:
        raise ArchSearchError(
            "torch_pruning_student needs Torch-Pruning: pip install 'botorch-archsearch[bench]' (torch-pruning==1.6.1)."
        ) from None
    count = count_flops if measure == "flops" else count_params
    student = copy.deepcopy(model).cpu().eval()
    example = example.cpu()
    full = count(trace(student, example))
    linears = [m for m in student.modules() if isinstance(m, nn.Linear)]
    ignored = linears[-1:]  # the classifier's output layer keeps its classes
    pruner = tp.pruner.MetaPruner(
        student, example, importance=tp.importance.GroupMagnitudeImportance(p=2), global_pruning=global_pruning,
        pruning_ratio=max_ratio, iterative_steps=steps, ignored_layers=ignored,
    )
    for step in range(1, steps + 1):
        pruner.step()
        graph = trace(student, example)
        size = count(graph)
        if size <= target * full:
            return student, {"flops": count_flops(graph), "params": count_params(graph), "step": step,
                             "ratio": max_ratio * step / steps, "global_pruning": global_pruning}
    raise ArchSearchError(
        f"torch_pruning_student: Torch-Pruning's magnitude pruner does not reach {target:.4g} of the teacher's "
        f"{measure} at a channel ratio of {max_ratio} (it keeps {size / full:.4g}); give a larger target."
    )


__all__ = ["torch_pruning_student"]
