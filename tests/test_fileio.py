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


def test_every_sqlite_database_is_opened_one_way(tmp_path):
    """The scan's journal, a sensor's queue and the detections store share one helper (they set WAL three ways)."""
    import sqlite3

    from envsound.deploy.outbox import Outbox
    from envsound.fileio import connect_sqlite, use_wal
    from envsound.inference.archive.journal import _connect

    def settings(db):
        return tuple(db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "busy_timeout",
                                                                             "synchronous"))

    assert settings(connect_sqlite(tmp_path / "a.sqlite")) == ("wal", 30000, 1)  # synchronous 1: NORMAL
    assert settings(_connect(tmp_path / "journal.sqlite")) == ("wal", 60000, 1)
    assert settings(Outbox(tmp_path / "queue.sqlite").db) == ("wal", 30000, 2)  # FULL: a queue outlives a power cut
    plain = sqlite3.connect(tmp_path / "b.sqlite")
    use_wal(plain)
    assert settings(plain) == ("wal", 30000, 1)
    with pytest.raises(ValueError, match="OFF"):
        use_wal(plain, synchronous="OFF")
