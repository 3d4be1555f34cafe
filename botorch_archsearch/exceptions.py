r"""Exceptions and warnings of botorch-archsearch.

Every error the library raises for bad input derives from :class:`ArchSearchError`, which also
derives from ``ValueError`` so that code catching plain ``ValueError`` keeps working.
"""

from __future__ import annotations


class ArchSearchError(ValueError):
    """Base class of every error raised by botorch-archsearch."""


class UnsupportedLayerError(ArchSearchError):
    """A traced network uses a layer or operation that the architecture graph cannot represent."""


class InvalidEditError(ArchSearchError):
    """An edit does not fit the search space it is applied in."""


class EncodingError(ArchSearchError):
    """An architecture cannot be encoded with the requested settings."""


class DatasetNotFoundError(ArchSearchError):
    """The files of a data set are in none of the places searched for them."""


class ArchSearchWarning(UserWarning):
    """Base class of every warning issued by botorch-archsearch."""


def failure_reason(error: BaseException) -> str:
    r"""One line saying why something failed: our own messages as they are, any other error with
    its type (``RuntimeError: ...``); for records such as a failed student's ``reason``."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, ArchSearchError) else f"{type(error).__name__}: {text}"


__all__ = [
    "ArchSearchError",
    "ArchSearchWarning",
    "DatasetNotFoundError",
    "EncodingError",
    "InvalidEditError",
    "UnsupportedLayerError",
    "failure_reason",
]
