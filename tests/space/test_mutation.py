r"""Tests of botorch_archsearch/space/mutation.py: mutation and uniform crossover of edits."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.graph import ArchGraph, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import Edit, SearchSpace
from botorch_archsearch.space.mutation import crossover_edits, mutate_edits, perturb_edits


@functools.lru_cache(maxsize=None)
def _graph(name: str) -> ArchGraph:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    return trace(teacher, torch.randn(1, 3, 32, 32))


@functools.lru_cache(maxsize=None)
def _space(name: str = "resnet18", **options) -> SearchSpace:
    return SearchSpace(_graph(name), **options)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _skip_vector(space: SearchSpace, edit: Edit) -> np.ndarray:
    present = set(edit.skips)
    return np.array([s in present for s in space.skip_candidates])


@pytest.mark.parametrize("name", ["resnet18", "shufflenet", "mobilenetv2"])
def test_mutated_and_crossed_edits_pass_check_and_build(name):
    space = _space(name)
    parents = space.sample(200, generator=_gen(0))
    children = mutate_edits(space, parents, _gen(1), rate=0.3)
    crossed = crossover_edits(space, parents[:100], parents[100:], _gen(2))
    assert len(children) == 200 and len(crossed) == 100
    for edit in children + crossed + mutate_edits(space, crossed, _gen(3), rate=1.0):
        space.check(edit)
    for edit in children[:20] + crossed[:20]:
        space.apply(edit)  # builds a student graph


def test_rate_zero_gives_identical_edits():
    space = _space("resnet18")
    parents = space.sample(100, generator=_gen(0)) + [space.identity_edit()]
    assert mutate_edits(space, parents, _gen(1), rate=0.0) == parents
    assert mutate_edits(space, [], _gen(1)) == []


def test_mutation_rates_match_the_documented_probabilities():
    space = _space("resnet34")
    parents = space.sample(400, generator=_gen(0))
    rate = 0.2
    children = mutate_edits(space, parents, _gen(1), rate=rate)
    removable = list(space.removable)
    flips = np.mean([
        np.mean(np.array(p.remove_mask)[removable] != np.array(c.remove_mask)[removable])
        for p, c in zip(parents, children)
    ])
    assert abs(flips - rate) < 0.01
    changed = np.mean([
        np.mean(np.array(p.shrink_ratios) != np.array(c.shrink_ratios)) for p, c in zip(parents, children)
    ])
    assert abs(changed - rate) < 0.02  # a redrawn ratio equals the old one with probability 0
    dropped = sum(len(set(p.skips) - set(c.skips)) for p, c in zip(parents, children))
    assert abs(dropped / sum(len(p.skips) for p in parents) - rate) < 0.02
    added = sum(len(set(c.skips) - set(p.skips)) for p, c in zip(parents, children))
    absent = sum(len(space.skip_candidates) - len(p.skips) for p in parents)
    expected = rate * np.mean(space.skip_probs) * absent
    assert abs(added / expected - 1) < 0.1


def test_mutation_draws_new_ratios_within_the_shrink_range():
    space = _space("resnet18", shrink_range=(0.25, 0.5))
    parents = space.sample(50, generator=_gen(0))
    children = mutate_edits(space, parents, _gen(1), rate=1.0)
    ratios = np.array([c.shrink_ratios for c in children])
    assert ratios.min() >= 0.25 and ratios.max() < 0.5
    assert not np.array_equal(ratios, np.array([p.shrink_ratios for p in parents]))


@pytest.mark.parametrize(
    "switch, component",
    [("removal", "remove_mask"), ("shrinkage", "shrink_ratios"), ("skip", "skips")],
)
def test_switched_off_components_are_not_varied(switch, component):
    on = _space("resnet18")
    off = _space("resnet18", **{switch: False})
    # Parents with every component present, drawn in the full space (valid in both spaces).
    parents = on.sample(60, generator=_gen(0))
    mutated = mutate_edits(off, parents, _gen(1), rate=0.5)
    crossed = crossover_edits(off, parents[:30], parents[30:], _gen(2))
    assert [getattr(c, component) for c in mutated] == [getattr(p, component) for p in parents]
    assert [getattr(c, component) for c in crossed] == [getattr(p, component) for p in parents[:30]]
    # The components that are on still change.
    others = {"remove_mask", "shrink_ratios", "skips"} - {component}
    for other in others:
        assert [getattr(c, other) for c in mutated] != [getattr(p, other) for p in parents]


def test_mutation_from_the_teacher_with_only_removal_adds_nothing_else():
    space = _space("resnet18", shrinkage=False, skip=False)
    children = mutate_edits(space, [space.identity_edit()] * 50, _gen(0), rate=0.3)
    assert all(c.skips == () and set(c.shrink_ratios) == {0.0} for c in children)
    assert sum(c.num_removed for c in children) > 0


def test_crossover_takes_every_entry_from_one_parent():
    space = _space("resnet34")
    a = space.sample(100, generator=_gen(0))
    b = space.sample(100, generator=_gen(1))
    children = crossover_edits(space, a, b, _gen(2))
    from_a = from_b = 0
    for pa, pb, c in zip(a, b, children):
        for x, y, z in zip(pa.remove_mask, pb.remove_mask, c.remove_mask):
            assert z in (x, y)
        for x, y, z in zip(pa.shrink_ratios, pb.shrink_ratios, c.shrink_ratios):
            assert z in (x, y)
            from_a += z == x
            from_b += z == y
        assert set(c.skips) <= set(pa.skips) | set(pb.skips)
        assert set(pa.skips) & set(pb.skips) <= set(c.skips) or _crowded(space, c)
    assert abs(from_a / (from_a + from_b) - 0.5) < 0.05  # uniform crossover
    # Crossing an edit with itself gives it back.
    assert crossover_edits(space, a, a, _gen(3)) == a


def _crowded(space: SearchSpace, edit: Edit) -> bool:
    counts = np.bincount([j for _, j in edit.skips], minlength=space.graph.num_layers)
    return bool((counts == space.max_skips_per_layer).any())


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_skip_cap_is_respected(cap):
    space = _space("resnet18", max_skips_per_layer=cap, skip_probs=(0.5,))
    parents = space.sample(40, generator=_gen(0))
    for edits in (
        mutate_edits(space, parents, _gen(1), rate=1.0),  # adds with probability 0.5 each
        crossover_edits(space, parents[:20], parents[20:], _gen(2)),
    ):
        for edit in edits:
            space.check(edit)
            if edit.skips:
                assert np.bincount([j for _, j in edit.skips]).max() <= cap
    if cap:
        assert any(len(e.skips) for e in mutate_edits(space, parents, _gen(1), rate=1.0))


def test_reproducible_with_a_generator():
    space = _space("resnet18")
    parents = space.sample(50, generator=_gen(0))
    assert mutate_edits(space, parents, _gen(7)) == mutate_edits(space, parents, _gen(7))
    assert mutate_edits(space, parents, _gen(7)) != mutate_edits(space, parents, _gen(8))
    assert crossover_edits(space, parents, parents[::-1], _gen(7)) == crossover_edits(
        space, parents, parents[::-1], _gen(7)
    )


def test_operators_are_fast_enough_for_thousands_of_edits():
    import time

    space = _space("resnet34")
    parents = space.sample(1000, generator=_gen(0))
    mutate_edits(space, parents[:10], _gen(1))  # warm up
    start = time.perf_counter()
    children = mutate_edits(space, parents, _gen(1))
    crossover_edits(space, parents, children, _gen(2))
    assert time.perf_counter() - start < 5.0  # ~0.3 s on one core; generous for loaded CI


@pytest.mark.parametrize("rate", [-0.1, 1.5, math.nan, "0.1", True])
def test_bad_rate_is_rejected(rate):
    space = _space("resnet18")
    with pytest.raises(InvalidEditError, match=r"mutate_edits: rate must be a probability in \[0, 1\], got"):
        mutate_edits(space, [space.identity_edit()], _gen(0), rate=rate)


def test_edits_that_do_not_fit_are_rejected_naming_the_edit():
    space = _space("resnet18")
    good = space.identity_edit()
    fixed = next(j for j in range(space.graph.num_layers) if j not in space.removable)
    bad_remove = Edit(tuple(j == fixed for j in range(space.graph.num_layers)), good.shrink_ratios)
    bad_ratio = Edit(good.remove_mask, (math.nan,) + good.shrink_ratios[1:])
    short = Edit(good.remove_mask[:-1], good.shrink_ratios)
    bad_skip = Edit(good.remove_mask, good.shrink_ratios, ((0, 1),))
    cases = [(bad_remove, "cannot be removed"), (bad_ratio, "must lie in"), (short, "remove_mask has"),
             (bad_skip, "not allowed")]
    for bad, what in cases:
        message = rf"mutate_edits: edits\[1\] does not fit the space: .*{what}"
        with pytest.raises(InvalidEditError, match=message):
            mutate_edits(space, [good, bad], _gen(0))
        message = rf"crossover_edits: parents_b\[1\] does not fit the space: .*{what}"
        with pytest.raises(InvalidEditError, match=message):
            crossover_edits(space, [good, good], [good, bad], _gen(0))
    message = r"edits\[0\] does not fit the space: Expected an Edit, got str"
    with pytest.raises(InvalidEditError, match=message):
        mutate_edits(space, ["edit"], _gen(0))
    with pytest.raises(InvalidEditError, match=r"edits must be a sequence of Edit, got Edit"):
        mutate_edits(space, good, _gen(0))
    with pytest.raises(InvalidEditError, match=r"space must be a SearchSpace, got ArchGraph"):
        mutate_edits(space.graph, [good], _gen(0))
    message = r"parents_a and parents_b must have the same length, got 2 and 1"
    with pytest.raises(InvalidEditError, match=message):
        crossover_edits(space, [good, good], [good], _gen(0))


# ---------------------------------------------------------------------------- channel order
@functools.lru_cache(maxsize=None)
def _magnitude_setup(name: str = "resnet18"):
    """A teacher (eval mode), its space with channel importance (drawing magnitude edits)."""
    from botorch_archsearch.space import channel_importance

    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    graph = trace(teacher, torch.zeros(1, 3, 16, 16))
    importance = channel_importance(graph, teacher)
    return teacher, SearchSpace(graph, channel_importance=importance, channel_order="magnitude")


def test_children_keep_their_parents_channel_order():
    _, space = _magnitude_setup()
    magnitude = space.sample(40, generator=_gen(0))
    assert all(e.channel_order == "magnitude" for e in magnitude)
    even = [dataclasses.replace(e, channel_order="even") for e in space.sample(40, generator=_gen(1))]
    mixed = [m if c % 3 else e for c, (m, e) in enumerate(zip(magnitude, even))]
    children = mutate_edits(space, mixed, _gen(2), rate=0.3)
    assert [c.channel_order for c in children] == [p.channel_order for p in mixed]
    assert {c.channel_order for c in children} == {"even", "magnitude"}
    assert all(c != p for c, p in zip(children, mixed))  # they did change
    # Crossover: the order of parents_a, whatever parents_b's.
    flip = {"even": "magnitude", "magnitude": "even"}
    other = [dataclasses.replace(e, channel_order=flip[e.channel_order]) for e in mixed]
    crossed = crossover_edits(space, mixed, other, _gen(3))
    assert [c.channel_order for c in crossed] == [a.channel_order for a in mixed]
    crossed = crossover_edits(space, other, mixed, _gen(3))
    assert [c.channel_order for c in crossed] == [a.channel_order for a in other]
    # Rate 0 gives the parents back, order included.
    assert mutate_edits(space, mixed, _gen(4), rate=0.0) == mixed


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2])
def test_local_edits_of_magnitude_students_build_and_run(rate):
    from botorch_archsearch.graph import build_student
    from botorch_archsearch.space import oneshot_edit

    teacher, space = _magnitude_setup()
    parents = [oneshot_edit(space, "magnitude", 0.3), oneshot_edit(space, "magnitude", 0.3, scope="global")]
    parents += space.sample(6, generator=_gen(5))
    children = mutate_edits(space, parents * 2, _gen(6), rate=rate)
    assert sum(c != p for c, p in zip(children, parents * 2)) >= len(children) // 2
    x = torch.randn(2, 3, 16, 16, generator=_gen(7))
    for child in children:
        assert child.channel_order == "magnitude"
        space.check(child)
        student = build_student(space.student(child), teacher).eval()
        with torch.no_grad():
            y = student(x)
        assert y.shape == (2, 10) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------- perturb_edits (local edits)
@pytest.mark.parametrize("scale", [0.05, 0.15])
def test_perturbed_edits_take_small_steps_at_the_documented_rates(scale):
    space = _space()
    parents = space.sample(400, generator=_gen(0))
    children = perturb_edits(space, parents, _gen(1), scale)
    removable = list(space.removable)
    steps = np.array([np.subtract(c.shrink_ratios, p.shrink_ratios) for c, p in zip(children, parents)])
    before = np.array([p.shrink_ratios for p in parents])
    inside = (before > 3 * scale) & (before < 1 - 3 * scale)  # steps there are rarely clipped
    assert abs(steps[inside].std() - scale) < 0.1 * scale
    assert abs(steps[inside].mean()) < 0.1 * scale
    assert ((np.array([c.shrink_ratios for c in children]) >= 0) & (np.array([c.shrink_ratios for c in children]) < 1)).all()
    flips = [sum(c.remove_mask[j] != p.remove_mask[j] for j in removable) for c, p in zip(children, parents)]
    assert abs(np.mean(flips) - 10 * scale) < 0.25  # 10 * scale flips on average, whatever the depth
    assert all(c.remove_mask[j] == p.remove_mask[j] for c, p in zip(children, parents)
               for j in range(len(p.remove_mask)) if j not in space.removable)
    present = sum(len(p.skips) for p in parents)
    dropped = sum(len(set(p.skips) - set(c.skips)) for c, p in zip(children, parents))
    assert abs(dropped / present - scale) < 3 * math.sqrt(scale / present) + 0.01
    for child in children[:20]:
        space.check(child)


def test_perturb_scale_zero_gives_identical_edits_and_bad_scales_are_rejected():
    space = _space()
    parents = space.sample(20, generator=_gen(0))
    assert perturb_edits(space, parents, _gen(1), 0.0) == parents
    for scale in (-0.1, 1.5, True):
        with pytest.raises(InvalidEditError, match="perturb_edits: scale must be a probability"):
            perturb_edits(space, parents, _gen(1), scale)


# ---------------------------------------------------------------------------- correlated ratios in the sampler
def test_shrink_spread_draws_ratios_near_one_ratio_per_candidate():
    reference = _space().sample(300, generator=_gen(0))
    spread = SearchSpace(_graph("resnet18"), shrink_spread=0.05).sample(300, generator=_gen(0))
    within = lambda edits: np.mean([np.std(e.shrink_ratios) for e in edits])  # noqa: E731
    assert within(spread) < 0.06 < 0.2 < within(reference)  # uniform [0, 1) ratios: std ~0.29
    ratios = np.array([e.shrink_ratios for e in spread])
    assert (ratios >= 0).all() and (ratios < 1).all()
    assert 0.4 < ratios.mean() < 0.6  # the candidates' own ratios are still spread over the range
    ranged = SearchSpace(_graph("resnet18"), shrink_spread=0.3, shrink_range=(0.2, 0.5)).sample(100, generator=_gen(0))
    assert all(0.2 <= r <= 0.5 for e in ranged for r in e.shrink_ratios)
    with pytest.raises(InvalidEditError, match="shrink_spread must be None or a number >= 0"):
        SearchSpace(_graph("resnet18"), shrink_spread=-1)
