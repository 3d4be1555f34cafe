r"""Folders the package writes to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from botorch_archsearch.exceptions import ArchSearchError


def make_dir(path: str | os.PathLike, what: str) -> Path:
    r"""Create a folder (and its parents) that is about to be written to, or fail with one clear error.

    Args:
        path: The folder.
        what: What it is, for the message (``"run directory"``, ``"teacher cache directory"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`, an existing writable folder.

    Raises:
        ArchSearchError: Naming ``what``, the path and the operating system's reason (a file in
            the way, permission denied, ...).

    Example:
        >>> run_dir = make_dir("outputs/run", "run directory")
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArchSearchError(f"cannot create the {what} {str(path)!r}: {_reason(path, error)}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ArchSearchError(f"cannot write to the {what} {str(path)!r}: permission denied.")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    r"""Write a text file so that no reader ever sees it half-written: the text goes to a temporary
    file in the same folder, which then replaces ``path`` in one step (``os.replace``).

    A process killed while writing leaves the previous file (or none), never a cut-off one, and a
    process reading it meanwhile (another search resuming the run) reads the old or the new text.

    Args:
        path: The file to write.
        text: Its new contents (UTF-8).

    Example:
        >>> write_text_atomic(run_dir / "config.json", json.dumps(values))
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reason(path: Path, error: OSError) -> str:
    if isinstance(error, FileExistsError) and not path.is_dir():  # mkdir(exist_ok=True) on a file
        return f"{error.strerror} (it is a file, not a folder)"
    reason = error.strerror or str(error)
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if isinstance(error, NotADirectoryError) and blocking is not None:
        reason += f" ({str(blocking)!r} is a file)"
    return reason


__all__ = ["make_dir", "write_text_atomic"]
