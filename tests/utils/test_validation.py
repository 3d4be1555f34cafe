r"""Tests of botorch_archsearch/utils/validation.py."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from botorch_archsearch.exceptions import ArchSearchError, EncodingError, InvalidEditError
from botorch_archsearch.utils import check_bool, check_choice, check_float, check_int, is_int

# --- check_int / is_int -------------------------------------------------------------------------


@pytest.mark.parametrize("value, minimum", [(0, None), (-3, None), (1, 1), (7, 1), (0, 0), (2, 2)])
def test_check_int_accepts(value, minimum):
    assert check_int("n", value, minimum) is value
    assert is_int(value, minimum)


@pytest.mark.parametrize(
    "value, minimum, message",
    [
        (0, 1, "n must be an integer >= 1, got 0."),
        (-1, 0, "n must be an integer >= 0, got -1."),
        (2.0, 1, "n must be an integer >= 1, got 2.0."),
        (True, 1, "n must be an integer >= 1, got True."),
        (False, None, "n must be an integer, got False."),
        ("3", None, "n must be an integer, got '3'."),
        (None, 1, "n must be an integer >= 1, got None."),
        (np.int64(3), 1, "n must be an integer >= 1, got np.int64(3)."),
        (torch.tensor(3), 1, "n must be an integer >= 1, got tensor(3)."),
    ],
)
def test_check_int_rejects(value, minimum, message):
    assert not is_int(value, minimum)
    with pytest.raises(ArchSearchError) as info:
        check_int("n", value, minimum)
    assert str(info.value) == message.replace("np.int64(3)", repr(np.int64(3)))


def test_check_int_optional_where_and_error():
    assert check_int("workers", None, 1, optional=True) is None
    with pytest.raises(EncodingError) as info:
        check_int("workers", 0, 1, optional=True, where="encode", error=EncodingError)
    assert str(info.value) == "encode: workers must be None or an integer >= 1, got 0."


# --- check_float ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (0.5, {}),
        (-math.inf, {}),
        (3, {"minimum": 0}),  # an int is a number
        (0.0, {"minimum": 0}),
        (1.0, {"minimum": 0, "maximum": 1}),
        (0.0, {"minimum": 0, "maximum": 1}),
        (1e-300, {"minimum": 0, "exclusive_minimum": True}),
        (math.inf, {"minimum": 0, "exclusive_minimum": True}),
        (np.float32(0.25), {"minimum": 0, "maximum": 1}),
        (0.999, {"minimum": 0, "maximum": 1, "exclusive_maximum": True}),
    ],
)
def test_check_float_accepts(value, kwargs):
    result = check_float("x", value, **kwargs)
    assert type(result) is float and result == float(value)


@pytest.mark.parametrize(
    "value, kwargs, accepted",
    [
        (math.nan, {}, "a number"),
        (True, {}, "a number"),
        ("1", {}, "a number"),
        (None, {}, "a number"),
        (torch.tensor(0.5), {}, "a number"),
        (-0.1, {"minimum": 0}, "a number >= 0"),
        (0.0, {"minimum": 0, "exclusive_minimum": True}, "a number > 0"),
        (math.nan, {"minimum": 0, "exclusive_minimum": True}, "a number > 0"),
        (math.inf, {"minimum": 0, "exclusive_minimum": True, "finite": True}, "a finite number > 0"),
        (-math.inf, {"finite": True}, "a finite number"),
        (2.5, {"maximum": 2}, "a number <= 2"),
        (2.0, {"maximum": 2, "exclusive_maximum": True}, "a number < 2"),
        (1.5, {"minimum": 0, "maximum": 1}, "a number in [0, 1]"),
        (0.0, {"minimum": 0, "maximum": 1, "exclusive_minimum": True}, "a number in (0, 1]"),
        (1.0, {"minimum": 0, "maximum": 1, "exclusive_maximum": True}, "a number in [0, 1)"),
        (0.75, {"minimum": 0.125, "maximum": 0.5}, "a number in [0.125, 0.5]"),
        (1.5, {"minimum": 0, "maximum": 1, "what": "a probability"}, "a probability in [0, 1]"),
    ],
)
def test_check_float_rejects(value, kwargs, accepted):
    with pytest.raises(ArchSearchError) as info:
        check_float("x", value, **kwargs)
    assert str(info.value) == f"x must be {accepted}, got {value!r}."


def test_check_float_optional_where_and_error():
    assert check_float("spread", None, 0, optional=True) is None
    with pytest.raises(InvalidEditError, match=re.escape("SearchSpace: spread must be None or a number >= 0, got -1.")):
        check_float("spread", -1, 0, optional=True, where="SearchSpace", error=InvalidEditError)


# --- check_bool ----------------------------------------------------------------------------------


def test_check_bool():
    assert check_bool("skip", True) is True and check_bool("skip", False) is False
    assert check_bool("bf16", None, optional=True) is None
    for value in (1, 0, "false", None, np.bool_(True)):
        with pytest.raises(ArchSearchError) as info:
            check_bool("skip", value, where="SearchSpace")
        assert str(info.value) == f"SearchSpace: skip must be True or False, got {value!r}."
    with pytest.raises(ArchSearchError, match=r"^bf16 must be True, False or None, got 'yes'\.$"):
        check_bool("bf16", "yes", optional=True)


# --- check_choice --------------------------------------------------------------------------------


def test_check_choice():
    assert check_choice("objective", "exact", ("loo", "exact")) == "exact"
    assert check_choice("kind", "b", {"a": 1, "b": 2}) == "b"  # a mapping's keys
    assert check_choice("size", 2, iter([1, 2])) == 2
    for value in ("mll", None, ["loo"], torch.tensor(1.0)):
        with pytest.raises(ArchSearchError) as info:
            check_choice("objective", value, ("loo", "exact"), where="fit_architecture_gp")
        assert str(info.value) == f"fit_architecture_gp: objective must be one of ['loo', 'exact'], got {value!r}."
    with pytest.raises(ArchSearchError, match=r"size must be one of \[0, 1\], got False"):
        check_choice("size", False, (0, 1))  # a bool is not an int here
    with pytest.raises(InvalidEditError, match="size must be one of"):
        check_choice("size", 1.0, (0, 1), error=InvalidEditError)
