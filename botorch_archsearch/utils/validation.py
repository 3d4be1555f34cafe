r"""Checks of plain arguments (integers, numbers, flags, choices), in one place.

Each ``check_*`` returns the value if it is accepted and otherwise raises an
:class:`~botorch_archsearch.exceptions.ArchSearchError` (or the subclass passed as ``error``) whose
message names the argument, what is accepted and the value it got::

    fit_architecture_gp: max_steps must be an integer >= 1, got 0.

``bool`` is an ``int`` in Python; no check takes ``True`` for a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any, TypeVar

from botorch_archsearch.exceptions import ArchSearchError

T = TypeVar("T")


def is_int(value: Any, minimum: int | None = None) -> bool:
    r"""Whether ``value`` is an ``int`` (not a ``bool``), at least ``minimum`` if given.

    For conditions on several values at once, e.g. every item of a sequence.

    Args:
        value: Anything.
        minimum: The smallest accepted value (``None``: any integer).

    Returns:
        ``True`` if :func:`check_int` accepts ``value``.
    """
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def check_int(
    name: str,
    value: Any,
    minimum: int | None = None,
    *,
    optional: bool = False,
    where: str | None = None,
    error: type[ArchSearchError] = ArchSearchError,
) -> int | None:
    r"""Check that ``value`` is an ``int`` (not a ``bool``), at least ``minimum`` if given.

    Args:
        name: The argument's name, as the caller spells it.
        value: The argument.
        minimum: The smallest accepted value (``None``: any integer).
        optional: Accept ``None`` too.
        where: The function or class that takes the argument (the message's prefix).
        error: The exception class raised, ``ArchSearchError`` or a subclass of it.

    Returns:
        ``value``.

    Example:
        >>> check_int("max_steps", 0, 1, where="fit_architecture_gp")
        Traceback (most recent call last):
        ...
        botorch_archsearch.exceptions.ArchSearchError: fit_architecture_gp: max_steps must be an integer >= 1, got 0.
    """
    if (value is None and optional) or is_int(value, minimum):
        return value
    accepted = "an integer" if minimum is None else f"an integer >= {minimum}"
    raise _error(error, where, name, _or_none(accepted, optional), value)


def check_float(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    finite: bool = False,
    optional: bool = False,
    what: str | None = None,
    where: str | None = None,
    error: type[ArchSearchError] = ArchSearchError,
) -> float | None:
    r"""Check that ``value`` is a real number (not a ``bool``, not NaN) within the given bounds.

    Args:
        name: The argument's name, as the caller spells it.
        value: The argument.
        minimum: The lower bound (``None``: none).
        maximum: The upper bound (``None``: none).
        exclusive_minimum: Reject ``minimum`` itself.
        exclusive_maximum: Reject ``maximum`` itself.
        finite: Reject infinities.
        optional: Accept ``None`` too.
        what: What the number is, for the message (default ``"a number"``, or ``"a finite number"``
            with ``finite``), e.g. ``"a probability"``.
        where: The function or class that takes the argument (the message's prefix).
        error: The exception class raised, ``ArchSearchError`` or a subclass of it.

    Returns:
        ``float(value)``, or ``None``.

    Example:
        >>> check_float("mutation_rate", 1.5, 0, 1, what="a probability")
        Traceback (most recent call last):
        ...
        botorch_archsearch.exceptions.ArchSearchError: mutation_rate must be a probability in [0, 1], got 1.5.
    """
    if value is None and optional:
        return None
    if isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
        ok = not math.isnan(number) and not (finite and math.isinf(number))
        if minimum is not None:
            ok = ok and (number > minimum if exclusive_minimum else number >= minimum)
        if maximum is not None:
            ok = ok and (number < maximum if exclusive_maximum else number <= maximum)
        if ok:
            return number
    accepted = what if what is not None else "a finite number" if finite else "a number"
    if minimum is not None and maximum is not None:
        low, high = "(" if exclusive_minimum else "[", ")" if exclusive_maximum else "]"
        accepted += f" in {low}{_number(minimum)}, {_number(maximum)}{high}"
    elif minimum is not None:
        accepted += f" {'>' if exclusive_minimum else '>='} {_number(minimum)}"
    elif maximum is not None:
        accepted += f" {'<' if exclusive_maximum else '<='} {_number(maximum)}"
    raise _error(error, where, name, _or_none(accepted, optional), value)


def check_bool(
    name: str,
    value: Any,
    *,
    optional: bool = False,
    where: str | None = None,
    error: type[ArchSearchError] = ArchSearchError,
) -> bool | None:
    r"""Check that ``value`` is ``True`` or ``False`` (not a truthy string or number).

    Args:
        name: The argument's name, as the caller spells it.
        value: The argument.
        optional: Accept ``None`` too.
        where: The function or class that takes the argument (the message's prefix).
        error: The exception class raised, ``ArchSearchError`` or a subclass of it.

    Returns:
        ``value``.
    """
    if isinstance(value, bool) or (value is None and optional):
        return value
    raise _error(error, where, name, "True, False or None" if optional else "True or False", value)


def check_choice(
    name: str,
    value: Any,
    choices: Iterable[T],
    *,
    where: str | None = None,
    error: type[ArchSearchError] = ArchSearchError,
) -> T:
    r"""Check that ``value`` is one of ``choices`` (of the same type: ``True`` is not ``1``).

    Args:
        name: The argument's name, as the caller spells it.
        value: The argument.
        choices: The accepted values, in the order the message lists them.
        where: The function or class that takes the argument (the message's prefix).
        error: The exception class raised, ``ArchSearchError`` or a subclass of it.

    Returns:
        ``value``.

    Example:
        >>> check_choice("objective", "mll", ("loo", "exact"), where="fit_architecture_gp")
        Traceback (most recent call last):
        ...
        botorch_archsearch.exceptions.ArchSearchError: fit_architecture_gp: objective must be one of ['loo', 'exact'], got 'mll'.
    """
    choices = list(choices)
    for choice in choices:
        if isinstance(value, type(choice)) and isinstance(value, bool) == isinstance(choice, bool) and value == choice:
            return value
    raise _error(error, where, name, f"one of {choices}", value)


def _error(error: type[ArchSearchError], where: str | None, name: str, accepted: str, value: Any) -> ArchSearchError:
    prefix = "" if where is None else f"{where}: "
    return error(f"{prefix}{name} must be {accepted}, got {value!r}.")


def _or_none(accepted: str, optional: bool) -> str:
    return f"None or {accepted}" if optional else accepted


def _number(bound: float) -> str:
    # 0 and 1.0 read as "0" and "1" in "[0, 1]"; other bounds as Python writes them.
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


__all__ = ["check_bool", "check_choice", "check_float", "check_int", "is_int"]
