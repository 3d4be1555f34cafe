r"""One-shot students: one edit of the teacher that meets a size target, with no search.

- ``"uniform"``: every channel group shrunk by one ratio, evenly spread channels kept (the
  reference's channel choice), nothing removed or added.
- ``"magnitude"``: one-shot group-magnitude pruning, as Torch-Pruning's ``MetaPruner`` with
  ``GroupMagnitudeImportance``: each group keeps its most important channels (see
  :func:`~botorch_archsearch.space.channel_importance`), either one ratio for every group
  (``scope="group"``, Torch-Pruning's default) or one importance threshold for all groups
  (``scope="global"``, its ``global_pruning=True``; each group's importances divided by their mean).

A target is a relative size: the fraction of the teacher's parameters (or FLOPs) the student may
keep. The edit found is the largest student within it: the smallest ratio (or threshold) whose
student is at most the target, so one channel less shrinkage would exceed it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph.counting import count_flops, count_params
from botorch_archsearch.space.edits import Edit
from botorch_archsearch.space.search_space import SearchSpace
from botorch_archsearch.utils.validation import check_choice, check_float

ONESHOT_METHODS: tuple[str, ...] = ("uniform", "magnitude")
MAGNITUDE_SCOPES: tuple[str, ...] = ("group", "global")
SIZE_MEASURES: tuple[str, ...] = ("params", "flops")


def oneshot_edit(
    space: SearchSpace,
    method: str,
    target: float,
    measure: str = "params",
    scope: str = "group",
) -> Edit:
    r"""The one-shot edit of ``method`` whose student is the largest within ``target``.

    Args:
        space: The teacher's search space (``"magnitude"`` needs its channel importance).
        method: ``"uniform"`` or ``"magnitude"``.
        target: The relative size in ``(0, 1]``: the student keeps at most this fraction of the
            teacher's ``measure``.
        measure: ``"params"`` or ``"flops"``.
        scope: ``"magnitude"`` only: ``"group"`` (one ratio for all groups) or ``"global"`` (one
            importance threshold for all groups).

    Returns:
        The edit (no removals, no skips).

    Raises:
        ArchSearchError: For a bad argument, or if even keeping one channel block per group
            exceeds the target (naming the smallest size this teacher's groups reach).

    Example:
        >>> edit = oneshot_edit(space, "magnitude", 1 / 3, measure="flops")
        >>> student = space.student(edit)
    """
    where = "oneshot_edit"
    check_choice("method", method, ONESHOT_METHODS, where=where)
    check_choice("measure", measure, SIZE_MEASURES, where=where)
    check_choice("scope", scope, MAGNITUDE_SCOPES, where=where)
    check_float("target", target, 0, 1, exclusive_minimum=True, what="a fraction of the teacher's size", where=where)
    if method == "magnitude" and not space.has_importance:
        raise ArchSearchError(
            "oneshot_edit: 'magnitude' needs the teacher's channel importance; make the space with "
            "SearchSpace(graph, channel_importance=channel_importance(graph, teacher))."
        )
    count = count_params if measure == "params" else count_flops
    limit = target * count(space.graph)
    order = "even" if method == "uniform" else "magnitude"
    if method == "magnitude" and scope == "global":
        return _global_edit(space, count, limit, target, measure)

    def size(ratio: float) -> int:
        return count(space.apply(space.uniform_edit(ratio, order)))

    # Counts change only where some group keeps one channel fewer: at ratios 1 - k / C. The
    # smallest such ratio that fits, so that every group keeps the same fraction as nearly as
    # its size allows.
    sizes = {space.channels.size[r] for r in space.channels.group_roots}
    ratios = np.unique([0.0] + [1.0 - k / c for c in sizes for k in range(1, c)])
    if size(ratios[-1]) > limit:
        _unreachable(method, target, measure, size(ratios[-1]) / count(space.graph))
    lo, hi = -1, len(ratios) - 1  # size(ratios[hi]) fits; lo: index below the range
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(ratios[mid]) <= limit:
            hi = mid
        else:
            lo = mid
    return space.uniform_edit(float(ratios[hi]), order)


def importance_edit(
    space: SearchSpace,
    importance: tuple[np.ndarray, ...] | list[np.ndarray],
    target: float,
    measure: str = "flops",
    per_cost: bool = True,
) -> Edit:
    r"""The largest student within ``target`` that keeps the channels of highest ``importance``,
    by one threshold for all groups: the pruning rule of the regularised methods (Group Lasso,
    Variational Dropout; FIELD.md "dropping the smallest norm per FLOP until the target is met").

    Each channel's score is its importance divided, where ``per_cost``, by what one channel of its
    group costs (the teacher's ``measure`` saved per channel when the group is halved alone); every
    group keeps its channels scoring at or above the threshold, at least one block, and the
    threshold is the smallest whose student is within the target. No layer is removed.

    Args:
        space: The teacher's search space; build the student from
            ``space.with_importance(importance)`` so that it keeps exactly these channels.
        importance: Per channel group, one value >= 0 per channel (raw: not normalised per group).
        target: The relative size in ``(0, 1]``.
        measure: ``"params"`` or ``"flops"``.
        per_cost: Divide by each group's cost per channel (``False``: compare raw importances).

    Returns:
        The edit (channel order ``"magnitude"``).

    Raises:
        ArchSearchError: If the importance does not fit the space, or the target cannot be reached
            even with one block per group.
    """
    where = "importance_edit"
    check_choice("measure", measure, SIZE_MEASURES, where=where)
    check_float("target", target, 0, 1, exclusive_minimum=True, what="a fraction of the teacher's size", where=where)
    channels = space.channels
    roots = channels.group_roots
    values = [np.asarray(v, dtype=np.float64) for v in importance]
    if len(values) != len(roots) or any(v.shape != (channels.size[r],) for v, r in zip(values, roots)):
        raise ArchSearchError(
            f"importance_edit: importance must hold one value per channel of each of the {len(roots)} channel groups "
            f"(sizes {[channels.size[r] for r in roots][:8]}...), got {len(values)} arrays."
        )
    count = count_params if measure == "params" else count_flops
    full = count(space.graph)
    if per_cost:
        scores = []
        for g, (v, r) in enumerate(zip(values, roots)):
            size = channels.size[r]
            ratios = [0.0] * len(roots)
            ratios[g] = 0.5
            half = Edit((False,) * space.graph.num_layers, tuple(ratios), (), "even")
            kept = channels.keep_count(0.5, size, channels.blocks[r])
            saved = (full - count(space.apply(half))) / max(size - kept, 1)
            scores.append(v / max(saved, 1e-12))
        values = scores
    edit = _global_edit(space, count, target * full, target, measure, values, order="even")  # counts only
    return replace(edit, channel_order="magnitude")


def _global_edit(space: SearchSpace, count, limit: float, target: float, measure: str,
                 importance: list[np.ndarray] | None = None, order: str = "magnitude") -> Edit:
    """One importance threshold for every group (each group keeps its channels at or above it,
    at least one block)."""
    importance = space.channels.importance if importance is None else importance
    blocks = [space.channels.blocks[r] for r in space.channels.group_roots]
    thresholds = np.unique(np.concatenate(importance))

    def edit(t: float) -> Edit:
        ratios = []
        for values, b in zip(importance, blocks):
            keep = max(int((values >= t).sum()), b)
            ratios.append(1.0 - keep / len(values))
        return Edit((False,) * space.graph.num_layers, tuple(ratios), (), order)

    top = edit(math.inf)
    if count(space.apply(top)) > limit:
        _unreachable("magnitude", target, measure, count(space.apply(top)) / count(space.graph))
    # The smallest threshold whose student fits: sizes fall as the threshold rises.
    lo, hi = 0, len(thresholds)  # hi: index past the end stands for "keep one block per group"
    if count(space.apply(edit(thresholds[0]))) <= limit:
        return edit(thresholds[0])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(space.apply(edit(thresholds[mid]))) <= limit:
            hi = mid
        else:
            lo = mid
    return top if hi == len(thresholds) else edit(thresholds[hi])


def _unreachable(method: str, target: float, measure: str, smallest: float) -> None:
    raise ArchSearchError(
        f"one-shot {method!r} cannot reach a target of {target:.4g} of the teacher's {measure}: its smallest student "
        f"keeps {smallest:.4g}. Give a larger target."
    )


__all__ = ["MAGNITUDE_SCOPES", "ONESHOT_METHODS", "importance_edit", "oneshot_edit"]
