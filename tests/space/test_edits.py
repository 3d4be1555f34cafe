r"""Tests of botorch_archsearch/space/edits.py: an edit is plain, hashable, replayable data."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest
import torch

from botorch_archsearch.exceptions import InvalidEditError
from botorch_archsearch.graph import ArchGraph, trace
from botorch_archsearch.models import get_teacher
from botorch_archsearch.space import Edit, SearchSpace


@functools.lru_cache(maxsize=None)
def _space(name: str) -> SearchSpace:
    torch.manual_seed(0)
    teacher = get_teacher(name, num_classes=10, in_channels=3, width=0.125).eval()
    graph: ArchGraph = trace(teacher, torch.randn(1, 3, 32, 32))
    return SearchSpace(graph)


def test_edit_normalises_its_fields():
    edit = Edit([1, 0, True, 0.0], [0, 0.5, torch.tensor(0.25).item()], [(3, 5), [1, 2], (3, 5), (1.0, 4)])
    assert edit.remove_mask == (True, False, True, False)
    assert all(type(b) is bool for b in edit.remove_mask)
    assert edit.shrink_ratios == (0.0, 0.5, 0.25)
    assert all(type(r) is float for r in edit.shrink_ratios)
    assert edit.skips == ((1, 2), (1, 4), (3, 5))  # sorted, duplicates dropped, integers
    assert all(type(i) is int for s in edit.skips for i in s)
    assert edit.num_removed == 2
    assert Edit((False,), ()).skips == ()


def test_edit_is_frozen_hashable_and_equal():
    a = Edit((True, False), (0.5,), ((0, 1),))
    b = Edit([True, False], [0.5], [[0, 1]])
    c = Edit((True, False), (0.5000001,), ((0, 1),))
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.shrink_ratios = (0.1,)


@pytest.mark.parametrize("skips", [[(1,)], [(1, 2, 3)], [("a", 2)], [None], 5])
def test_edit_rejects_malformed_skips(skips):
    with pytest.raises(InvalidEditError, match=r"Edit.skips must be pairs of layer indices \(i, j\), got"):
        Edit((False,) * 4, (), skips)


def test_to_dict():
    edit = Edit((False, True, False, True), (0.25, 0.0), ((0, 2), (1, 3)))
    assert edit.to_dict() == {
        "remove": [1, 3],
        "num_layers": 4,
        "shrink_ratios": [0.25, 0.0],
        "skips": [[0, 2], [1, 3]],
    }


@pytest.mark.parametrize("name", ["resnet18", "shufflenet"])
def test_round_trip_through_json(name):
    space = _space(name)
    edits = space.sample(50, generator=torch.Generator().manual_seed(0)) + [space.identity_edit()]
    for edit in edits:
        data = json.loads(json.dumps(edit.to_dict()))
        again = Edit.from_dict(data)
        assert again == edit and hash(again) == hash(edit)
        assert again.to_dict() == edit.to_dict()
        assert space.apply(again).key() == space.apply(edit).key()
        assert space.apply(again) == space.apply(edit)
    assert len(set(edits)) == len(edits)


@pytest.mark.parametrize(
    "data",
    [
        {"num_layers": 3, "shrink_ratios": [], "skips": []},
        {"remove": [], "shrink_ratios": [], "skips": []},
        {"remove": [], "num_layers": "three", "shrink_ratios": [], "skips": []},
        {"remove": [], "num_layers": 3, "shrink_ratios": None, "skips": []},
        {"remove": [], "num_layers": 3, "shrink_ratios": [], "skips": [[1]]},
        {"remove": 1, "num_layers": 3, "shrink_ratios": [], "skips": []},
        ["remove", "num_layers"],
    ],
)
def test_from_dict_rejects_malformed_data(data):
    with pytest.raises(InvalidEditError, match="remove|skips"):
        Edit.from_dict(data)


@pytest.mark.parametrize("remove", [[3], [7], [-1]])
def test_from_dict_rejects_removed_layers_out_of_range(remove):
    """A removed layer outside 0..num_layers-1 cannot round trip; it must not be dropped silently."""
    data = {"remove": remove, "num_layers": 3, "shrink_ratios": [], "skips": []}
    with pytest.raises(InvalidEditError, match="remove"):
        Edit.from_dict(data)


# ---------------------------------------------------------------------------- channel order
def test_channel_order_defaults_to_even_and_is_part_of_the_edit():
    even = Edit((False, True), (0.5,), ((0, 1),))
    magnitude = Edit((False, True), (0.5,), ((0, 1),), "magnitude")
    assert even.channel_order == "even"
    assert Edit((False, True), (0.5,), ((0, 1),), channel_order="even") == even
    assert magnitude.channel_order == "magnitude"
    assert magnitude != even and len({even, magnitude}) == 2
    assert dataclasses.replace(even, channel_order="magnitude") == magnitude


def test_to_dict_writes_the_channel_order_only_when_not_even():
    even = Edit((False, True, False), (0.25,), ((0, 2),))
    assert "channel_order" not in even.to_dict()
    magnitude = dataclasses.replace(even, channel_order="magnitude")
    data = magnitude.to_dict()
    assert data == {**even.to_dict(), "channel_order": "magnitude"}


def test_channel_order_round_trips_through_json():
    for order in ("even", "magnitude"):
        edit = Edit((False, True, False, True), (0.25, 0.75), ((0, 2),), order)
        again = Edit.from_dict(json.loads(json.dumps(edit.to_dict())))
        assert again == edit and again.channel_order == order and hash(again) == hash(edit)
        assert again.to_dict() == edit.to_dict()


def test_from_dict_of_an_old_dict_gives_even():
    old = {"remove": [1], "num_layers": 3, "shrink_ratios": [0.5], "skips": [[0, 2]]}
    edit = Edit.from_dict(old)
    assert edit.channel_order == "even"
    assert edit == Edit((False, True, False), (0.5,), ((0, 2),))
    assert edit.to_dict() == old


@pytest.mark.parametrize("order", ["random", "Magnitude", "", None, 1])
def test_invalid_channel_order_raises(order):
    with pytest.raises(InvalidEditError, match=r"Edit.channel_order must be one of \['even', 'magnitude'\]"):
        Edit((False,), (0.5,), (), order)
    data = {"remove": [], "num_layers": 1, "shrink_ratios": [0.5], "skips": [], "channel_order": order}
    with pytest.raises(InvalidEditError, match=r"channel_order"):
        Edit.from_dict(data)
