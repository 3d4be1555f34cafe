r"""Tests of botorch_archsearch/utils/files.py."""

from __future__ import annotations

import os

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils import make_dir


def test_make_dir_creates_the_folder_and_its_parents(tmp_path):
    path = make_dir(tmp_path / "a" / "b", "run directory")
    assert path == tmp_path / "a" / "b" and path.is_dir()
    assert make_dir(str(path), "run directory") == path  # an existing folder is fine


def test_make_dir_names_the_folder_and_the_reason(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchSearchError, match=r"the run directory '.*file': File exists \(it is a file"):
        make_dir(tmp_path / "file", "run directory")
    with pytest.raises(ArchSearchError) as info:
        make_dir(tmp_path / "file" / "run" / "deeper", "run directory")
    assert str(info.value) == (
        f"cannot create the run directory {str(tmp_path / 'file' / 'run' / 'deeper')!r}: Not a directory "
        f"({str(tmp_path / 'file')!r} is a file)."
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_make_dir_permission_denied(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ArchSearchError, match="Permission denied"):
            make_dir(locked / "run", "run directory")
        with pytest.raises(ArchSearchError, match="cannot write to the run directory .*permission denied"):
            make_dir(locked, "run directory")
    finally:
        locked.chmod(0o700)
