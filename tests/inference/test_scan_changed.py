"""A file that changes after it was classified (issue 68: a recorder still writing): the next run of
`envsound predict MODEL INPUTS --out DIR` classifies it again, and its older rows are dropped from the tables."""

import os
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from changedfiles import grow, power_cut_before_a_rewriting_commit

import envsound
from envsound.inference.archive.journal import JOURNAL_NAME

FAST = envsound.ScanOptions(precision="32", progress=False, workers=1, part_files=2)  # parts of 2 files: a file's
# old part holds another file's rows too, which must be kept


@pytest.fixture
def recordings(tmp_path, synthetic_manifest) -> Path:
    """Five short clips; ``growing.wav`` and ``touched.wav`` among them."""
    root = tmp_path / "recordings"
    root.mkdir()
    names = ["a.wav", "growing.wav", "b.wav", "touched.wav", "c.wav"]
    for name, record in zip(names, synthetic_manifest.records):
        shutil.copy(record.path, root / name)
    return root


def _read(out: Path, table: str, fmt: str) -> pd.DataFrame:
    paths = sorted((out / table).glob("part-*"))
    frames = [pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path) for path in paths]
    return pd.concat(frames, ignore_index=True).sort_values(
        ["file", *(["start"] if table == "windows" else []), *(["onset", "label"] if table == "events" else [])],
        kind="stable").reset_index(drop=True)


def _parts_on_disk_are_the_journal_s(out: Path) -> None:
    with sqlite3.connect(out / JOURNAL_NAME) as db:
        committed = {row[0] for row in db.execute("SELECT part FROM parts")}
        listed = {row[0] for row in db.execute("SELECT DISTINCT part FROM files")}
    on_disk = {int(path.name[5:11]) for path in out.glob("*/part-*")}
    assert on_disk == committed == listed


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_that_changed_after_it_was_classified_is_classified_again_and_its_old_rows_dropped(
        tmp_path, trained_run, recordings, fmt):
    out = tmp_path / "scan"
    tables = envsound.Tables(events=True, format=fmt)
    first = envsound.scan(trained_run.checkpoint, recordings, out=out, tables=tables, options=FAST)
    assert (first.files, first.changed) == (5, 0)
    before = {table: _read(out, table, fmt) for table in ("files", "windows", "events")}
    growing, touched = str(recordings / "growing.wav"), str(recordings / "touched.wav")
    row = before["files"].set_index("file").loc[growing]
    assert row["size"] == os.stat(growing).st_size and row["mtime"] == pytest.approx(os.stat(growing).st_mtime)

    grow(recordings / "growing.wav", recordings / "a.wav")
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))  # same bytes, newer
    again = envsound.scan(trained_run.checkpoint, recordings, out=out, tables=tables, options=FAST)
    assert (again.files, again.changed, again.skipped, again.total_files) == (2, 2, 3, 5)
    assert "2 changed since the last run, classified again" in again.line()

    after = {table: _read(out, table, fmt) for table in ("files", "windows", "events")}
    files = after["files"].set_index("file")
    assert files.index.is_unique and len(files) == 5
    assert files.loc[growing, "duration"] > row["duration"] * 1.5  # the grown file's new rows, not its old
    assert files.loc[growing, "size"] == os.stat(growing).st_size
    assert files.loc[touched, "mtime"] == pytest.approx(os.stat(touched).st_mtime)
    windows = after["windows"]
    assert not windows.duplicated(["file", "start"]).any()
    assert windows[windows.file == growing].end.max() == pytest.approx(files.loc[growing, "duration"], abs=1.5)
    for table in ("files", "windows", "events"):  # the files that did not change: their rows as they were
        same = [growing, touched]
        old, new = before[table], after[table]
        pd.testing.assert_frame_equal(old[~old.file.isin(same)].reset_index(drop=True),
                                      new[~new.file.isin(same)].reset_index(drop=True), check_dtype=False)
    assert len(after["events"][after["events"].file == touched]) == len(before["events"][before["events"].file
                                                                                         == touched])
    _parts_on_disk_are_the_journal_s(out)

    third = envsound.scan(trained_run.checkpoint, recordings, out=out, tables=tables, options=FAST)
    assert (third.files, third.changed, third.skipped) == (0, 0, 5)  # unchanged files: skipped as before


def test_a_journal_written_before_sizes_were_kept_still_resumes_and_skips_its_files(tmp_path, trained_run,
                                                                                      recordings):
    out = tmp_path / "scan"
    first = envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    with sqlite3.connect(out / JOURNAL_NAME) as db:  # the journal as the release before wrote it
        db.execute("ALTER TABLE files DROP COLUMN size")
        db.execute("ALTER TABLE files DROP COLUMN mtime_ns")
    grow(recordings / "growing.wav", recordings / "a.wav")
    again = envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (first.files, again.files, again.changed, again.skipped) == (5, 0, 0, 5)  # not known to have changed
    (recordings / "new.wav").write_bytes((recordings / "a.wav").read_bytes())
    third = envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (third.files, third.total_files) == (1, 6)
    files = _read(out, "files", "parquet").set_index("file")
    assert files.loc[str(recordings / "new.wav"), "size"] == (recordings / "new.wav").stat().st_size
    with sqlite3.connect(out / JOURNAL_NAME) as db:  # the columns added; the older files' sizes recorded as they
        sizes = dict(db.execute("SELECT name, size FROM files"))  # were at the first run over the older journal
    assert sizes[str(recordings / "growing.wav")] == (recordings / "growing.wav").stat().st_size
    assert sizes[str(recordings / "new.wav")] == (recordings / "new.wav").stat().st_size
    grow(recordings / "growing.wav", recordings / "a.wav")  # so a change from then on is seen
    fourth = envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (fourth.files, fourth.changed, fourth.total_files) == (1, 1, 6)


def test_a_crash_before_the_rewritten_parts_are_committed_keeps_the_old_rows_and_the_next_run_completes(
        tmp_path, trained_run, recordings, monkeypatch):
    out = tmp_path / "scan"
    envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    before = _read(out, "windows", "parquet")
    with sqlite3.connect(out / JOURNAL_NAME) as db:
        parts = sorted(row[0] for row in db.execute("SELECT part FROM parts"))
    grow(recordings / "growing.wav", recordings / "a.wav")
    with power_cut_before_a_rewriting_commit(), pytest.raises(RuntimeError, match="power cut"):
        envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    # the journal's state is the old one: its parts hold the old rows (the new parts on disk are orphans, removed
    # when the journal is next opened)
    with sqlite3.connect(out / JOURNAL_NAME) as db:
        committed = sorted(row[0] for row in db.execute("SELECT part FROM parts"))
    assert committed == parts
    old = pd.concat([pd.read_parquet(out / "windows" / f"part-{part:06d}.parquet") for part in committed])
    pd.testing.assert_frame_equal(old.sort_values(["file", "start"], kind="stable").reset_index(drop=True), before)
    again = envsound.scan(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (again.files, again.changed) == (1, 1)
    windows = _read(out, "windows", "parquet")
    assert not windows.duplicated(["file", "start"]).any()
    assert len(windows[windows.file == str(recordings / "growing.wav")]) > len(
        before[before.file == str(recordings / "growing.wav")])
    _parts_on_disk_are_the_journal_s(out)


def test_the_done_index_answers_done_or_not_in_one_kind_and_kept_still_works_deprecated(tmp_path):
    """``DoneIndex.done``: None when a file is not done, else its kept size and time (None if unknown); ``kept``'s
    three kinds of answer (False, None, a stat) read alike in a test of truth, so it goes for a release."""
    from envsound.inference.archive.journal import Done, Journal

    journal = Journal.open(tmp_path / "out", {"model": "0" * 64}, tables=("files",))
    journal.commit(1, [("old.wav", True, 1.0), ("new.wav", True, 1.0)], stats={"new.wav": (10, 20)})
    index = journal.reader()
    try:
        assert index.done("other.wav") is None
        assert index.done("old.wav") == Done(stat=None) and index.done("new.wav") == Done(stat=(10, 20))
        with pytest.warns(DeprecationWarning, match=r"DoneIndex\.done"):
            assert [index.kept(name) for name in ("other.wav", "old.wav", "new.wav")] == [False, None, (10, 20)]
    finally:
        index.close()
        journal.close()
