"""Atomic writes: complete or absent, never half-written; the folder is made when missing."""

import pytest

from envsound.fileio import atomic_open, atomic_path, write_text_atomic


@pytest.mark.parametrize("opener", ["path", "open"])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, opener):
    target = tmp_path / "deep" / "result.bin"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt):
        if opener == "path":
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half")
                raise KeyboardInterrupt
        else:
            with atomic_open(target) as fh:
                fh.write(b"half")
                raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["result.bin"]


def test_atomic_open_creates_the_folder_and_replaces_in_one_rename(tmp_path):
    target = tmp_path / "a" / "b" / "entry.npy"
    with atomic_open(target) as fh:
        fh.write(b"new bytes")
        assert not target.exists()
    assert target.read_bytes() == b"new bytes"
    assert [p.name for p in target.parent.iterdir()] == ["entry.npy"]


@pytest.mark.parametrize("opener", ["path", "open"])
def test_an_atomic_write_gets_the_mode_a_plain_write_gets(tmp_path, opener):
    """mkstemp's temporary file is private (0600); the file it becomes is shared like any other (umask applies)."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    if opener == "path":
        with atomic_path(target) as tmp:
            tmp.write_text("x")
    else:
        with atomic_open(target) as fh:
            fh.write(b"x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
