"""An archive scan whose own disk fails it (issue 68): the results disk fills up, the journal is damaged on disk.

The full disk is a real one: an 8 MB tmpfs mounted for the test (the suite runs as root in its container). Where the
test may not mount, the disk is emulated at the results' write layer (:func:`envsound.inference.scan.tables.atomic_open`
raises ``ENOSPC`` once a byte budget is spent; SQLite then never fills, so the tests that need it are skipped)."""

import contextlib
import errno
import os
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import envsound
from envsound.errors import EnvsoundError
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.scan import tables

SETTINGS = {"tables": envsound.Tables(events=True, event_tables=("raven",)),
            "options": envsound.ScanOptions(precision="32", part_files=6, progress=False)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, synthetic_manifest) -> Path:
    """60 clips of 1.5 s in three folders and a file that is not audio."""
    root = tmp_path_factory.mktemp("clips")
    for i, record in enumerate(synthetic_manifest.records[:60]):
        target = root / f"site{i % 3}" / f"clip{i:02d}.wav"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(record.path, target)
    (root / "site0" / "notes.wav").write_text("not audio at all")
    return root


class Tmpfs:
    """An 8 MB tmpfs at ``path``: ``leave(n)`` fills it until ``n`` bytes are free, ``free_up()`` empties it again."""

    real = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def leave(self, free: int) -> None:
        self.filler.unlink(missing_ok=True)
        fill = shutil.disk_usage(self.path).free - free
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, fill)
        finally:
            os.close(fd)

    def free_up(self) -> None:
        self.filler.unlink()

    @staticmethod
    def taken(folder: Path) -> int:
        """Bytes the files under ``folder`` would take here, in whole 4 KB pages as tmpfs gives them."""
        return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


class WriteBudget:
    """Where the test may not mount: the results' writes raise ``ENOSPC`` once ``free`` bytes are spent."""

    real = False

    def __init__(self, path: Path, monkeypatch) -> None:
        self.path = path
        self.budget = float("inf")
        written = tables.atomic_open
        budget = self

        class Limited:
            def __init__(self, fh) -> None:
                self.fh = fh

            def write(self, data) -> int:
                budget.budget -= len(data)
                if budget.budget < 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self.fh.write(data)

            def __getattr__(self, name):
                return getattr(self.fh, name)

        @contextlib.contextmanager
        def limited(path):
            with written(path) as fh:
                yield Limited(fh)

        monkeypatch.setattr(tables, "atomic_open", limited)

    def leave(self, free: int) -> None:
        self.budget = free

    def free_up(self) -> None:
        self.budget = float("inf")

    @staticmethod
    def taken(folder: Path) -> int:
        """Bytes the results under ``folder`` would spend of the budget (the journal spends none)."""
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and JOURNAL_NAME not in p.name)


@pytest.fixture
def results_disk(tmp_path, monkeypatch):
    """A small disk for a scan's results: a real tmpfs, else the write budget."""
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        yield WriteBudget(path, monkeypatch)
        return
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def _table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name).sort_values(["file"] + (["start"] if name == "windows" else []),
                                                  kind="stable").reset_index(drop=True)


def _committed(out: Path) -> tuple[set[int], int]:
    """The parts the journal lists as committed and the files it counts, read by SQLite itself."""
    with contextlib.closing(sqlite3.connect(out / JOURNAL_NAME)) as db:
        return ({row[0] for row in db.execute("SELECT part FROM parts")},
                db.execute("SELECT COUNT(*) FROM files").fetchone()[0])


def _part_numbers(folder: Path) -> set[int]:
    return {int(p.name[5:11]) for p in folder.glob("part-*")}


def test_a_results_disk_that_fills_up_stops_in_one_line_and_the_same_scan_completes_once_freed(
        tmp_path, trained_run, clips, results_disk):
    """Issue 68: results on an 8 MB tmpfs with 400 KB free ended in three tracebacks of `OSError: [Errno 28] No
    space left on device`. Now the scan stops with one line naming the file it was writing, the free space and what
    the part needs; every committed part is whole and readable, the part that did not fit and its temporary files
    are gone; once space is freed the same scan goes on and ends with the rows of an uninterrupted run."""
    whole = envsound.scan(trained_run.checkpoint, [clips], out=tmp_path / "whole", **SETTINGS)
    out = results_disk.path / "scan"
    results_disk.leave(results_disk.taken(tmp_path / "whole") // 2)
    with pytest.raises(EnvsoundError) as caught:
        envsound.scan(trained_run.checkpoint, [clips], out=out, **SETTINGS)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"no space left on device while writing {out}"), message
    assert " free there; the part being written needs " in message and "or write to another out folder" in message
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    parts, files = _committed(out)
    assert parts and 0 < files < whole.total_files
    assert f"run the same scan again, which goes on from the {files} files committed so far" in message
    for table in ("files", "windows"):  # only committed parts are left, each readable
        assert _part_numbers(out / table) == parts, table
        assert all(len(pd.read_parquet(p)) for p in (out / table).glob("part-*"))
    assert sum(len(pd.read_parquet(p)) for table in ("files", "errors") for p in (out / table).glob("part-*")) == files

    results_disk.free_up()
    again = envsound.scan(trained_run.checkpoint, [clips], out=out, **SETTINGS)
    assert (again.skipped, again.files + again.skipped, again.total_files) == (files, 61, whole.total_files)
    for table in ("files", "windows", "events", "errors"):
        assert _table(out, table).equals(_table(tmp_path / "whole", table)), table
    tables_of = lambda folder: {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.txt")}  # noqa: E731
    assert tables_of(out / "raven") == tables_of(tmp_path / "whole" / "raven")


@pytest.mark.parametrize("free_kb", [0, 4, 8])
def test_a_results_disk_full_from_the_start_is_one_line_and_exit_1(tmp_path, trained_run, clips, results_disk,
                                                                   envsound_main, free_kb):
    """No room for the lock (0 KB), the journal (4 KB) or its write-ahead log (8 KB): one line on stderr naming the
    file and the folder, exit status 1, no traceback; once freed, the same command completes."""
    if not results_disk.real:
        pytest.skip("the journal (SQLite) fills only on a real disk, and this test may not mount one")
    out = results_disk.path / "scan"
    command = ("predict", trained_run.checkpoint, clips / "site1", "--out", out, "--precision", "32", "--quiet")
    results_disk.leave(free_kb * 1024)
    ran = envsound_main(*command)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines() == [ran.stderr.strip()], ran.stderr
    assert f"envsound predict: error: no space left on device while writing {out}" in ran.stderr
    results_disk.free_up()
    ran = envsound_main(*command)
    assert ran.returncode == 0, ran.stderr
    assert len(_table(out, "files")) == 20


def test_a_results_disk_with_room_for_the_journal_but_not_its_shared_memory_file_is_one_line(
        tmp_path, trained_run, clips, results_disk, envsound_main):
    """Issue 68, found by benchmarks/bench_scan_faults.py: with 12-36 KB free on the results disk the journal was made
    but its write-ahead log's shared-memory file (`journal.sqlite-shm`, 32 KB) could not grow, and the scan ended in
    a traceback of `sqlite3.OperationalError: disk I/O error` (SQLITE_IOERR_SHMSIZE). Now it is the full disk's one
    line, exit 1; once freed, the same command completes."""
    if not results_disk.real:
        pytest.skip("the journal (SQLite) fills only on a real disk, and this test may not mount one")
    out = results_disk.path / "scan"
    command = ("predict", trained_run.checkpoint, clips / "site2", "--out", out, "--precision", "32", "--quiet")
    results_disk.leave(20 * 1024)
    ran = envsound_main(*command)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr and "disk I/O error" not in ran.stderr, ran.stderr
    assert ran.stderr.strip().splitlines() == [ran.stderr.strip()], ran.stderr
    assert f"envsound predict: error: no space left on device while writing {out / JOURNAL_NAME}" in ran.stderr
    results_disk.free_up()
    ran = envsound_main(*command)
    assert ran.returncode == 0, ran.stderr
    assert len(_table(out, "files")) == 20


def test_a_quota_is_said_as_such():
    from envsound.fileio import disk_full

    assert disk_full(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))) == "disk quota exceeded"
    assert disk_full(OSError(errno.EACCES, os.strerror(errno.EACCES))) is None


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    pages = len(data) // 4096
    if how == "a page overwritten":
        middle = pages // 2 * 4096
        data = data[:middle] + random.Random(0).randbytes(4096) + data[middle + 4096:]
    elif how == "truncated to half":
        data = data[:pages // 2 * 4096]
    elif how == "header overwritten":
        data = random.Random(0).randbytes(100) + data[100:]
    else:  # emptied
        data = b""
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["a page overwritten", "truncated to half", "header overwritten", "emptied"])
def test_a_journal_damaged_on_disk_is_refused_in_one_line_and_the_results_are_kept(tmp_path, trained_run, clips,
                                                                                   envsound_main, how):
    """Issue 68: a damaged journal ended in a traceback, or (emptied) silently started the run again, removing the
    committed parts as orphans. Now the same command says the journal is damaged and to write to a new folder, exit
    status 1, and leaves every file of the folder as it was."""
    out = tmp_path / "scan"
    envsound.scan(trained_run.checkpoint, [clips / "site1"], out=out, **SETTINGS)
    assert not (out / f"{JOURNAL_NAME}-wal").exists()  # all of it in the journal's file
    _damage(out / JOURNAL_NAME, how)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    ran = envsound_main("predict", trained_run.checkpoint, clips / "site1", "--out", out, "--precision", "32",
                        "--events", "--event-tables", "raven", "--quiet")
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines() == [ran.stderr.strip()], ran.stderr
    assert f"error: {out / JOURNAL_NAME} is damaged (" in ran.stderr and "write to a new out folder" in ran.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith(JOURNAL_NAME + "-")}
    assert after == before
