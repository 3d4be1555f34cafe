r"""Tests of botorch_archsearch/utils/files.py."""

from __future__ import annotations

import os

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.utils import make_dir
from botorch_archsearch.utils.files import write_text_atomic


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


def test_write_text_atomic_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "config.json"
    write_text_atomic(path, "first")
    write_text_atomic(path, "second ünïcode")
    assert path.read_text(encoding="utf-8") == "second ünïcode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_write_text_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    """A write that fails midway (here: text that cannot be encoded) leaves the previous contents whole
    and no temporary file: a reader never sees a cut-off file."""
    path = tmp_path / "config.json"
    write_text_atomic(path, '{"a": 1}')
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, '{"a": 2, "b": "\ud800"}')
    assert path.read_text() == '{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
