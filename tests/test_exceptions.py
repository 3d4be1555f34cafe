r"""Tests of botorch_archsearch/exceptions.py: every exception of the package lives there, in one tree
where bad input is a ``ValueError`` and failures at run time are not."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import botorch_archsearch
from botorch_archsearch import exceptions as ex


def _package_classes() -> list[type]:
    """Every class defined in a module of the package (private modules included)."""
    out = []
    for info in pkgutil.walk_packages(botorch_archsearch.__path__, prefix="botorch_archsearch."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        out += [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    return out


def test_every_exception_and_warning_of_the_package_is_defined_in_exceptions():
    classes = _package_classes()
    assert any(c is ex.ArchSearchError for c in classes)  # the walk reaches exceptions.py itself
    public = [c for c in classes if issubclass(c, BaseException) and not c.__name__.startswith("_")]
    outside = [f"{c.__module__}.{c.__name__}" for c in public if c.__module__ != ex.__name__]
    assert outside == []
    assert {c.__name__ for c in public} == set(ex.__all__) - {"failure_reason"}


@pytest.mark.parametrize("name", [n for n in ex.__all__ if n != "failure_reason"])
def test_the_tree(name):
    cls = getattr(ex, name)
    if issubclass(cls, Warning):
        assert issubclass(cls, ex.ArchSearchWarning) and not issubclass(cls, ex.ArchSearchException)
        return
    assert issubclass(cls, ex.ArchSearchException)
    bad_input = issubclass(cls, ex.ArchSearchError)
    runtime = issubclass(cls, ex.ArchSearchRuntimeError)
    if cls is not ex.ArchSearchException:
        assert bad_input != runtime  # exactly one branch
    assert issubclass(cls, ValueError) == bad_input
    assert issubclass(cls, RuntimeError) == runtime


def test_runtime_failures_are_no_value_errors():
    for cls in (ex.ClusterLostError, ex.RunDirectoryLockedError):
        with pytest.raises(ex.ArchSearchException):
            raise cls("x")
        try:
            raise cls("x")
        except ValueError:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{cls.__name__} was caught as a ValueError")
        except RuntimeError:
            pass


def test_old_import_paths_still_work():
    from botorch_archsearch.search import JournalError, JournalWarning, RunDirectoryLockedError
    from botorch_archsearch.search.backends import ClusterLostError

    assert (JournalError, JournalWarning, RunDirectoryLockedError, ClusterLostError) == (
        ex.JournalError, ex.JournalWarning, ex.RunDirectoryLockedError, ex.ClusterLostError)


def test_failure_reason_keeps_our_messages_and_names_other_types():
    assert ex.failure_reason(ex.ClusterLostError("scheduler gone\nmore")) == "scheduler gone"
    assert ex.failure_reason(ex.InvalidEditError("bad edit")) == "bad edit"
    assert ex.failure_reason(RuntimeError("CUDA out of memory\ntrace")) == "RuntimeError: CUDA out of memory"
    assert ex.failure_reason(KeyError()) == "KeyError: "
