r"""Exceptions and warnings of botorch-archsearch: every one the library defines is here.

The tree::

    ArchSearchException                      everything the library raises (catch this for all)
    ├── ArchSearchError (ValueError)         bad input: a value, file, network or edit it cannot take
    │   ├── UnsupportedLayerError            a traced network uses what the graph cannot represent
    │   ├── InvalidEditError                 an edit does not fit its search space
    │   ├── EncodingError                    an architecture cannot be encoded with these settings
    │   ├── DatasetNotFoundError             a data set's files are nowhere searched
    │   └── JournalError                     a journal that cannot be read
    └── ArchSearchRuntimeError (RuntimeError) a failure while running, not the caller's input
        ├── ClusterLostError                 the Dask scheduler went away
        └── RunDirectoryLockedError          another process searches in the run directory

    ArchSearchWarning (UserWarning)
    └── JournalWarning                       a journal was read with a repair

Bad input derives from ``ValueError`` (code catching plain ``ValueError`` keeps working); failures
at run time do not.
"""

from __future__ import annotations


class ArchSearchException(Exception):
    """Base class of every exception raised by botorch-archsearch."""


class ArchSearchError(ArchSearchException, ValueError):
    """Bad input: a value, file, network or edit that botorch-archsearch cannot take."""


class ArchSearchRuntimeError(ArchSearchException, RuntimeError):
    """A failure while running (a lost cluster, a run directory in use), not bad input."""


class UnsupportedLayerError(ArchSearchError):
    """A traced network uses a layer or operation that the architecture graph cannot represent."""


class InvalidEditError(ArchSearchError):
    """An edit does not fit the search space it is applied in."""


class EncodingError(ArchSearchError):
    """An architecture cannot be encoded with the requested settings."""


class DatasetNotFoundError(ArchSearchError):
    """The files of a data set are in none of the places searched for them."""


class JournalError(ArchSearchError):
    r"""A journal that cannot be read: a corrupted line before the last one, or a line that is
    not a record of it."""


class ClusterLostError(ArchSearchRuntimeError):
    r"""The Dask scheduler went away during a search (resume the run directory)."""


class RunDirectoryLockedError(ArchSearchRuntimeError):
    r"""Another process is searching in the run directory."""


class ArchSearchWarning(UserWarning):
    """Base class of every warning issued by botorch-archsearch."""


class JournalWarning(ArchSearchWarning):
    r"""A journal was read with a repair: a line that repeats an earlier record was skipped."""


def failure_reason(error: BaseException) -> str:
    r"""One line saying why something failed: our own messages as they are, any other error with
    its type (``RuntimeError: ...``); for records such as a failed student's ``reason``."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, ArchSearchException) else f"{type(error).__name__}: {text}"


__all__ = [
    "ArchSearchError",
    "ArchSearchException",
    "ArchSearchRuntimeError",
    "ArchSearchWarning",
    "ClusterLostError",
    "DatasetNotFoundError",
    "EncodingError",
    "InvalidEditError",
    "JournalError",
    "JournalWarning",
    "RunDirectoryLockedError",
    "UnsupportedLayerError",
    "failure_reason",
]
