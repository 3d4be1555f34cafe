r"""Tests of botorch_archsearch/space/oneshot.py: the one-shot edit (uniform or group-magnitude
pruning) whose student is the largest within a size target.

References are brute force: a uniform ratio only matters through each group's kept count
``ceil((1 - r) C)``, which changes only near the ratios ``1 - k / C`` (found exactly by bisection,
as rounding tolerances shift them a little, differently for each ``C``); so the students of all
ratios are the students of those breakpoints, and the largest that fits is found by trying them. A
global threshold only matters at the (normalised) importance values; the next lower one is tried.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.graph import ArchGraph, count_flops, count_params, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import (
    MAGNITUDE_SCOPES,
    ONESHOT_METHODS,
    Edit,
    SearchSpace,
    channel_importance,
    oneshot_edit,
)

TARGETS = (0.5, 0.2, 0.1)
COUNT = {"params": count_params, "flops": count_flops}


@functools.lru_cache(maxsize=None)
def _teacher() -> tuple[nn.Module, ArchGraph]:
    torch.manual_seed(0)
    teacher = get_teacher("resnet18", num_classes=10, in_channels=3, width=0.125)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct BN scales (the zoo initialises them to 1)
        for m in teacher.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=generator))
    teacher = teacher.eval()
    return teacher, trace(teacher, torch.zeros(1, 3, 16, 16))


@functools.lru_cache(maxsize=None)
def _space(importance: bool = True) -> SearchSpace:
    teacher, graph = _teacher()
    if not importance:
        return SearchSpace(graph)
    return SearchSpace(graph, channel_importance=channel_importance(graph, teacher))


def _size(space: SearchSpace, edit: Edit, measure: str) -> int:
    return COUNT[measure](space.apply(edit))


def _exact_ratios(space: SearchSpace) -> list[float]:
    """0 and every ratio ``1 - k / C`` at which a group of ``C`` channels keeps exactly ``k``,
    ascending: the uniform students in which every group keeps the same fraction as nearly as
    its size allows."""
    sizes = {space.channels.size[r] for r in space.channels.group_roots}
    assert all(space.channels.blocks[r] == 1 for r in space.channels.group_roots)
    return sorted({0.0} | {1.0 - k / c for c in sizes for k in range(1, c)})


@functools.lru_cache(maxsize=None)
def _ratio_sizes(measure: str) -> tuple[tuple[float, int], ...]:
    space = _space()
    return tuple((r, _size(space, space.uniform_edit(r, "even"), measure)) for r in _exact_ratios(space))


def _plain(edit: Edit, space: SearchSpace, order: str) -> None:
    assert edit.channel_order == order
    assert not any(edit.remove_mask) and len(edit.remove_mask) == space.graph.num_layers
    assert edit.skips == ()
    assert len(edit.shrink_ratios) == space.num_groups
    space.check(edit)


# ---------------------------------------------------------------------------- one ratio
@pytest.mark.parametrize("measure", ["params", "flops"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", ONESHOT_METHODS)
def test_group_scope_is_the_largest_student_within_the_target(method, target, measure):
    space = _space()
    teacher_size = COUNT[measure](space.graph)
    limit = target * teacher_size
    edit = oneshot_edit(space, method, target, measure=measure)  # scope "group" by default
    _plain(edit, space, "even" if method == "uniform" else "magnitude")
    assert len(set(edit.shrink_ratios)) == 1  # one ratio for every group
    ratio = edit.shrink_ratios[0]
    size = _size(space, edit, measure)
    assert size <= limit
    # Brute force over the exact ratios: sizes fall as the ratio rises, and the edit has the
    # smallest ratio that fits, so the next smaller one (one channel more somewhere) does not.
    table = _ratio_sizes(measure)
    fitting = [r for r, s in table if s <= limit]
    assert ratio == min(fitting)
    assert size == max(s for _, s in table if s <= limit)
    smaller = [s for r, s in table if r < ratio]
    assert ratio == 0.0 or smaller[-1] > limit
    # Every group keeps the same fraction as nearly as its size allows: ceil((1 - ratio) * C).
    plan = space.plan(edit)
    for r in space.channels.group_roots:
        c, k = space.channels.size[r], int(plan.counts[r])
        assert k / c >= 1 - ratio - 1e-12 and (k - 1) / c < 1 - ratio - 1e-12, (c, k, ratio)


@pytest.mark.parametrize("measure", ["params", "flops"])
@pytest.mark.parametrize("target", TARGETS)
def test_uniform_and_magnitude_group_students_have_the_same_architecture(target, measure):
    space = _space()
    uniform = oneshot_edit(space, "uniform", target, measure=measure)
    magnitude = oneshot_edit(space, "magnitude", target, measure=measure, scope="group")
    assert uniform.channel_order == "even" and magnitude.channel_order == "magnitude"
    assert space.apply(uniform).key() == space.apply(magnitude).key()
    assert any(
        not np.array_equal(space.plan(uniform).indices(r), space.plan(magnitude).indices(r))
        for r in space.channels.group_roots
    )


def test_smaller_targets_give_smaller_students():
    space = _space()
    for measure in COUNT:
        edits = [oneshot_edit(space, "uniform", t, measure=measure) for t in (0.8, 0.5, 0.2)]
        sizes = [_size(space, e, measure) for e in edits]
        assert sizes[0] > sizes[1] > sizes[2]


# ---------------------------------------------------------------------------- one threshold
def _global_edit(space: SearchSpace, normalized: list[np.ndarray], t: float) -> Edit:
    """Every group keeps its channels whose normalised importance is at least ``t`` (at least one)."""
    ratios = [1.0 - max(int((v >= t).sum()), 1) / len(v) for v in normalized]
    return Edit((False,) * space.graph.num_layers, ratios, (), "magnitude")


@pytest.mark.parametrize("measure", ["params", "flops"])
@pytest.mark.parametrize("target", TARGETS)
def test_global_scope_is_the_largest_student_within_the_target(target, measure):
    teacher, graph = _teacher()
    space = _space()
    importance = channel_importance(graph, teacher)
    normalized = [v / v.mean() for v in importance]  # each group's importances divided by their mean
    assert all(space.channels.blocks[r] == 1 for r in space.channels.group_roots)
    limit = target * COUNT[measure](graph)
    edit = oneshot_edit(space, "magnitude", target, measure=measure, scope="global")
    _plain(edit, space, "magnitude")
    size = _size(space, edit, measure)
    assert size <= limit
    assert len(set(edit.shrink_ratios)) > 1  # groups are pruned unevenly
    # The threshold the edit stands for: the smallest importance value that gives its ratios.
    values = np.unique(np.concatenate(normalized))
    same = [
        i for i, t in enumerate(values)
        if _global_edit(space, normalized, t).shrink_ratios == edit.shrink_ratios
    ]
    assert same, "the edit keeps no importance threshold's channels"
    i = same[0]
    threshold = values[i]
    # Every group keeps exactly its channels at or above the threshold (its most important ones).
    plan = space.plan(edit)
    for g, r in enumerate(space.channels.group_roots):
        keep = np.flatnonzero(normalized[g] >= threshold)
        if len(keep) == 0:
            keep = np.array([np.argmax(normalized[g])])
        np.testing.assert_array_equal(plan.indices(r), keep)
    # Lowering the threshold to the next lower importance value exceeds the target.
    assert i > 0
    lower = _global_edit(space, normalized, values[i - 1])
    assert _size(space, lower, measure) > limit


# ---------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("scope", MAGNITUDE_SCOPES)
@pytest.mark.parametrize("method", ONESHOT_METHODS)
def test_target_one_gives_the_teacher(method, scope):
    space = _space()
    for measure, count in COUNT.items():
        edit = oneshot_edit(space, method, 1.0, measure=measure, scope=scope)
        assert edit.shrink_ratios == (0.0,) * space.num_groups
        assert not any(edit.remove_mask) and edit.skips == ()
        assert space.apply(edit).key() == space.graph.key()
        assert _size(space, edit, measure) == count(space.graph)


@pytest.mark.parametrize("scope", MAGNITUDE_SCOPES)
@pytest.mark.parametrize("method", ONESHOT_METHODS)
@pytest.mark.parametrize("measure", ["params", "flops"])
def test_unreachable_target_names_the_smallest_size(method, scope, measure):
    space = _space()
    # The smallest student: one channel per group.
    ratios = [1.0 - 1 / space.channels.size[r] for r in space.channels.group_roots]
    smallest = Edit((False,) * space.graph.num_layers, ratios)
    assert set(space.plan(smallest).counts[list(space.channels.group_roots)]) == {1}
    fraction = _size(space, smallest, measure) / COUNT[measure](space.graph)
    with pytest.raises(ArchSearchError, match=rf"smallest student keeps {fraction:.4g}\b"):
        oneshot_edit(space, method, 1e-6, measure=measure, scope=scope)
    # Just above the smallest size, the smallest student is found.
    edit = oneshot_edit(space, method, min(1.0, fraction * (1 + 1e-9)), measure=measure, scope=scope)
    assert _size(space, edit, measure) == _size(space, smallest, measure)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "random"}, r"method must be one of \['uniform', 'magnitude'\], got 'random'"),
        ({"measure": "latency"}, r"measure must be one of \['params', 'flops'\], got 'latency'"),
        ({"scope": "layer"}, r"scope must be one of \['group', 'global'\], got 'layer'"),
        ({"target": 0.0}, r"target must be a fraction .* got 0.0"),
        ({"target": -0.5}, r"target must be a fraction .* got -0.5"),
        ({"target": 1.5}, r"target must be a fraction .* got 1.5"),
        ({"target": math.nan}, r"target must be a fraction .* got nan"),
        ({"target": True}, r"target must be a fraction .* got True"),
        ({"target": "0.5"}, r"target must be a fraction .* got '0.5'"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = {"method": "magnitude", "target": 0.5, **kwargs}
    with pytest.raises(ArchSearchError, match=message):
        oneshot_edit(_space(), **arguments)


def test_magnitude_needs_the_importance():
    space = _space(importance=False)
    for scope in MAGNITUDE_SCOPES:
        with pytest.raises(ArchSearchError, match=r"'magnitude' needs the teacher's channel importance"):
            oneshot_edit(space, "magnitude", 0.5, scope=scope)
    # Uniform works without it.
    edit = oneshot_edit(space, "uniform", 0.5)
    assert edit.channel_order == "even" and _size(space, edit, "params") <= 0.5 * count_params(space.graph)
