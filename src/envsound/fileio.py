"""Atomic writes: a result or checkpoint is either complete on disk or absent, never half-written. Also the other
small file helpers every stage shares: a results folder's lock, a file's digest, SQLite connections set one way."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On an exception (or an interrupt) the temporary file is removed and ``path`` is untouched.

    >>> with atomic_path("out/cv.json") as tmp:
    ...     tmp.write_text("{}")
    """
    fd, tmp = _temporary_beside(Path(path))
    os.close(fd)
    with _replacing(tmp, Path(path)):
        yield tmp


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """:func:`atomic_path`, but yields the temporary file already open for binary writing: one ``open`` fewer, which
    counts where a store writes thousands of small files (a system call cost 0.3 ms on one sandboxed machine)."""
    fd, tmp = _temporary_beside(Path(path))
    with _replacing(tmp, Path(path)), os.fdopen(fd, "wb") as fh:
        yield fh


def _temporary_beside(path: Path) -> tuple[int, Path]:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:  # the folder is created only when missing: mkdir is a system call too
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes it private (0600); the result gets an ordinary file's mode
    return fd, Path(name)


def _file_mode() -> int:
    """The mode ``open`` gives a new file under this process's umask (read once: reading it means setting it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextmanager
def _replacing(tmp: Path, path: Path) -> Iterator[None]:
    try:
        yield
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a write through an open file names none (a full disk): name the file it was for
            exc.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def disk_full(exc: BaseException) -> str | None:
    """What ``exc`` says, in a few words, when it is a full disk or an exceeded quota, else None: an ``OSError``
    ``ENOSPC`` ("no space left on device") or ``EDQUOT`` ("disk quota exceeded"), or SQLite's ``SQLITE_FULL`` or
    ``SQLITE_IOERR_SHMSIZE`` (its write-ahead log's shared-memory file, beside the database, could not grow: a
    "disk I/O error" that on a full disk is the first thing a new database in WAL mode meets).

    >>> disk_full(OSError(errno.ENOSPC, "No space left on device"))
    'no space left on device'
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return os.strerror(exc.errno).lower()
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    if type(exc).__module__ == "sqlite3" and (code & 0xFF == 13 or code == 4874  # SQLITE_FULL, SQLITE_IOERR_SHMSIZE
                                              or str(exc) == "database or disk is full"):  # Python < 3.11
        return "no space left on device"
    return None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


LOCK_NAME = ".envsound.lock"


@contextmanager
def run_lock(out_dir: str | os.PathLike, *, scratch: tuple[str, ...] = ()) -> Iterator[None]:
    """Hold ``out_dir``'s lock for the block, so that a second run writing into the same folder refuses at once.

    The lock is an ``flock`` on ``out_dir/.envsound.lock``: the operating system releases it when its holder exits,
    however it exits (a ``kill -9`` leaves no stale lock to block ``--resume``). The file is removed when the block
    ends (while still locked; a run that opened it meanwhile sees it replaced and locks the new one). When the block
    fails in a folder this call created, and the folder holds nothing but the files named in ``scratch`` (written
    before any work, such as the run's config) and empty folders, it is removed, with the parents this call created
    that are left empty: a failed run leaves no folder that holds nothing. A folder that existed before is never
    removed. Only process 0 of a multi-process run takes the lock (the others are launched by it, or by
    torchrun/SLURM with a rank in the environment). Where the platform has no ``flock`` the block runs unlocked.

    Raises:
        EnvsoundError: another live run holds the lock (the message names its process id).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    if launched_rank() != 0:
        yield
        return
    out_dir = Path(out_dir)
    created = _missing_folders(out_dir)
    fd = _locked(out_dir / LOCK_NAME, fcntl)
    ok = False
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
        ok = True
    finally:
        try:  # still locked: no other run can be using the folder while it is tidied
            (out_dir / LOCK_NAME).unlink(missing_ok=True)
            if not ok and created:
                _remove_if_nothing_in(created, scratch)
        finally:
            os.close(fd)  # releases the flock


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and the parents of it that do not exist yet, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _locked(path: Path, fcntl) -> int:
    """An open descriptor of ``path`` holding its exclusive flock, the file being the one now at ``path``."""
    from envsound.errors import EnvsoundError

    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a failed run removed its empty folder just now: make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EnvsoundError(f"{path.parent}: another envsound run (process {holder}) is writing here; wait for "
                                "it to finish or choose another output folder") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the run that held it removed it as it finished: lock the file now there


def _remove_if_nothing_in(created: list[Path], scratch: tuple[str, ...]) -> None:
    """Remove ``created[0]`` when it holds only ``scratch`` files and empty folders, then each further folder of
    ``created`` (its parents) left empty."""
    folder = created[0]
    try:
        entries = list(folder.iterdir())
        if any(not (e.name in scratch and e.is_file() and not e.is_symlink()) and not _empty_tree(e)
               for e in entries):
            return  # the run produced something: keep it
        for entry in entries:
            entry.unlink() if entry.is_file() else _remove_tree_of_folders(entry)
        for folder in created:
            folder.rmdir()
    except OSError:  # not empty after all (another run began), or gone: leave it
        return


def _empty_tree(path: Path) -> bool:
    """A folder (not a link) holding no file at any depth."""
    return path.is_dir() and not path.is_symlink() and all(_empty_tree(e) for e in path.iterdir())


def _remove_tree_of_folders(path: Path) -> None:
    for entry in path.iterdir():
        _remove_tree_of_folders(entry)
    path.rmdir()


def launched_rank() -> int:
    """The global rank a launcher gave this process (Lightning, torchrun or SLURM set these), else 0."""
    return _rank_from(("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def launched_local_rank() -> int:
    """This process's rank on its own machine (torchrun, Lightning or SLURM set it), else 0."""
    return _rank_from(("LOCAL_RANK", "SLURM_LOCALID"))


def _rank_from(keys: tuple[str, ...]) -> int:
    for key in keys:
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex: a model's identity (a retrained model is another model) in a scan's
    fingerprint and in the events a sensor reports."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def use_wal(connection, *, timeout: float = 30.0, synchronous: str = "NORMAL") -> None:
    """Set a SQLite connection (:mod:`sqlite3`'s, or the DB-API one SQLAlchemy hands its ``connect`` event) as every
    envsound database runs: write-ahead logging, so readers never wait for the writer; a busy timeout of ``timeout``
    seconds (> 0), so a second writer waits instead of failing; ``synchronous`` ``NORMAL`` (WAL's safe setting: a
    crash of the process loses no commit; a power cut may lose the last ones) or ``FULL`` (not even those).

    >>> db = sqlite3.connect("journal.sqlite")
    >>> use_wal(db)
    """
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous={synchronous!r}: NORMAL or FULL")
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def connect_sqlite(path: str | os.PathLike, *, timeout: float = 30.0, synchronous: str = "NORMAL",
                   autocommit: bool = False):
    """A :class:`sqlite3.Connection` to ``path`` (made when missing), usable from any thread, set by
    :func:`use_wal`; ``autocommit``: no implicit transactions (``isolation_level=None``), the caller says ``BEGIN``.

    Raises:
        sqlite3.Error: the file cannot be opened as a database (the caller names it in its own error).
    """
    import sqlite3

    options = {"isolation_level": None} if autocommit else {}
    connection = sqlite3.connect(path, timeout=timeout, check_same_thread=False, **options)
    try:
        use_wal(connection, timeout=timeout, synchronous=synchronous)
    except BaseException:
        connection.close()
        raise
    return connection


def stable_zip_member(name: str, *, compress: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    """A zip member ``name`` with a fixed time and mode: the same contents zip to the same bytes (and sha256), where
    ``zipfile`` and ``np.savez`` stamp each member with the time it was written."""
    member = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    member.compress_type, member.external_attr = compress, 0o644 << 16
    return member
