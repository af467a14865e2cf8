"""A file that changes after it was embedded (issue 68: a recorder still writing): the next run of
`envsound embed MODEL INPUTS --out DB` embeds it again, its older windows and embeddings gone from the store, the window
ids renumbered to run 0, 1, ... again, labels and the search index following; and a journal written before sizes and
times were kept records them, so that a later change is seen."""

import logging
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from changedfiles import grow, power_cut_before_a_rewriting_commit

import envsound
from envsound.agile.labels import label, labelled
from envsound.inference.archive import handout as handout_module
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.embeddings import EmbeddingsStore, embed_archive, search
from envsound.inference.embeddings import archive as archive_module
from envsound.inference.embeddings import index as index_module

FAST = envsound.ScanOptions(precision="32", progress=False, workers=1, part_files=2)  # parts of 2 files: the grown
# file's old part holds another file's windows too, which must be kept


@pytest.fixture
def recordings(tmp_path, synthetic_manifest) -> Path:
    """Five short clips; ``a_growing.wav`` is listed first, so every later part is renumbered when it changes."""
    root = tmp_path / "recordings"
    root.mkdir()
    for name, record in zip(["a_growing.wav", "b.wav", "c.wav", "d.wav", "e.wav"], synthetic_manifest.records):
        shutil.copy(record.path, root / name)
    return root


def _windows(out: Path) -> pd.DataFrame:
    """Every stored window by its id, with its embedding (``vector``, float32) as the store gives it."""
    store = EmbeddingsStore(out)
    rows = pd.DataFrame(store.rows(np.arange(store.windows)))
    rows["vector"] = list(store.vectors(np.arange(store.windows)))
    return rows


def _store_is_whole(out: Path) -> None:
    """The parts on disk are the journal's; the ``window`` column runs 0, 1, ... over them in order; no window twice."""
    with sqlite3.connect(out / JOURNAL_NAME) as db:
        committed = {row[0] for row in db.execute("SELECT part FROM parts")}
    assert {int(path.name[5:11]) for path in out.glob("*/part-*")} <= committed
    store = EmbeddingsStore(out)
    column = pd.concat([pd.read_parquet(store.windows_path(part.number)) for part in store.parts if part.rows])
    assert column["window"].tolist() == list(range(store.windows))
    assert sum(part.rows for part in store.parts) == store.windows == len(column)
    assert not column.duplicated(["file", "start"]).any()


def test_a_file_that_changed_after_it_was_embedded_is_embedded_again_and_its_old_windows_dropped(
        tmp_path, trained_run, recordings, monkeypatch, caplog):
    pytest.importorskip("faiss")
    monkeypatch.setattr(index_module, "INDEX_MIN_WINDOWS", 0)  # the store searched through its index, however small
    monkeypatch.setattr(archive_module, "INDEX_MIN_WINDOWS", 0)
    out = tmp_path / "archive.db"
    first = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (first.files, first.changed) == (5, 0)
    before = _windows(out)
    growing, c = str(recordings / "a_growing.wav"), str(recordings / "c.wav")
    labels = tmp_path / "verdicts.csv"  # by id: the grown file's first window, and one of c.wav (renumbered later)
    ids = [int(before.index[before.file == growing][0]), int(before.index[before.file == c][-1])]
    labels.write_text("window,label,verdict\n" + "".join(f"{i},bird,yes\n" for i in ids))
    assert label(out, labels, store=tmp_path / "review.sqlite").stored == 2

    grow(recordings / "a_growing.wav", recordings / "b.wav")
    caplog.set_level(logging.INFO, logger=index_module.__name__)
    again = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (again.files, again.changed, again.skipped, again.total_files) == (1, 1, 4, 5)
    assert "1 changed since the last run, embedded again" in again.line()
    _store_is_whole(out)

    after = _windows(out)
    assert again.total_windows == len(after) == len(before) - (before.file == growing).sum() + again.windows
    grown = after[after.file == growing]
    assert len(grown) > (before.file == growing).sum() and grown.end.max() > before[before.file == growing].end.max()
    # the other files: the same windows and embeddings, under new ids
    same = [before[before.file != growing], after[after.file != growing]]
    pd.testing.assert_frame_equal(*(frame.drop(columns=["window", "vector"]).reset_index(drop=True) for frame in same))
    assert np.array_equal(np.stack(same[0].vector), np.stack(same[1].vector))
    assert after.loc[after.file == c, "window"].tolist() != before.loc[before.file == c, "window"].tolist()

    # the labels find their windows again by file, start and end
    verdicts = labelled(out, ["bird"], store=tmp_path / "review.sqlite")["bird"]
    found = after.loc[verdicts.windows]
    assert sorted(zip(found.file, found.start)) == sorted(zip(before.loc[ids].file, before.loc[ids].start))

    # the index was refilled, not extended with the old ids: its hits are exact search's
    assert any("written again" in record.message for record in caplog.records)
    index = index_module.update_index(EmbeddingsStore(out))
    assert index.parts == [part.number for part in EmbeddingsStore(out).parts] and index.windows == len(after)
    for window in (0, int(grown.window.iloc[-1]), len(after) - 1):
        assert search(out, windows=[window], top=6) == search(out, windows=[window], top=6, exact=True)

    third = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (third.files, third.changed, third.skipped, third.total_windows) == (0, 0, 5, len(after))


def test_a_crash_before_the_rewritten_parts_are_committed_keeps_the_old_windows_and_the_next_run_completes(
        tmp_path, trained_run, recordings, monkeypatch):
    out = tmp_path / "archive.db"
    embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    before = _windows(out)
    grow(recordings / "a_growing.wav", recordings / "b.wav")
    with power_cut_before_a_rewriting_commit(), pytest.raises(RuntimeError, match="power cut"):
        embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    during = _windows(out)  # the journal's parts: the old windows, ids and embeddings
    pd.testing.assert_frame_equal(before.drop(columns="vector"), during.drop(columns="vector"))
    assert np.array_equal(np.stack(before.vector), np.stack(during.vector))
    again = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (again.files, again.changed) == (1, 1)
    _store_is_whole(out)
    growing = str(recordings / "a_growing.wav")
    assert (_windows(out).file == growing).sum() > (before.file == growing).sum()


def test_a_stop_just_after_a_rewriting_commit_does_not_write_the_part_again_over_the_renumbered_ones(
        tmp_path, trained_run, recordings, monkeypatch):
    """Review of the session's change: SIGTERM (a KeyboardInterrupt) between the journal's commit and the run's own
    bookkeeping made the way out commit the same part again, with window ids from before the renumbering."""
    out = tmp_path / "archive.db"
    embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    grow(recordings / "a_growing.wav", recordings / "b.wav")
    committed = handout_module.Handout.committed

    def stopped(self, names):  # the signal lands just after the journal's commit, which renumbered the later parts
        monkeypatch.setattr(handout_module.Handout, "committed", committed)
        raise KeyboardInterrupt

    monkeypatch.setattr(handout_module.Handout, "committed", stopped)
    with pytest.raises(KeyboardInterrupt):  # a part a file: the commit is one of the run's, not its last
        embed_archive(trained_run.checkpoint, recordings, out=out, options=replace(FAST, part_files=1))
    _store_is_whole(out)
    again = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert again.failed == 0
    _store_is_whole(out)
    assert _windows(out).groupby("file").size().index.tolist() == sorted(str(p) for p in recordings.iterdir())


def test_a_journal_written_before_sizes_were_kept_records_them_so_a_later_change_is_seen(
        tmp_path, trained_run, recordings, monkeypatch, caplog):
    out = tmp_path / "archive.db"
    embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    with sqlite3.connect(out / JOURNAL_NAME) as db:  # the journal as the release before wrote it
        db.execute("ALTER TABLE files DROP COLUMN size")
        db.execute("ALTER TABLE files DROP COLUMN mtime_ns")
    monkeypatch.setattr(handout_module, "RECORD_BATCH", 2)  # recorded a few at a time, as ten million would be
    caplog.set_level(logging.INFO, logger=handout_module.__name__)
    again = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (again.files, again.changed, again.skipped) == (0, 0, 5)  # what they were before is not known
    said = [record.message for record in caplog.records if record.name == handout_module.__name__]
    assert said == ["5 files from an older journal: their size and time are recorded now; changes from here on are "
                    "seen"]
    with sqlite3.connect(out / JOURNAL_NAME) as db:
        kept = {name: (size, mtime) for name, size, mtime in db.execute("SELECT name, size, mtime_ns FROM files")}
    assert all(kept[str(path)] == (path.stat().st_size, path.stat().st_mtime_ns) for path in recordings.iterdir())

    caplog.clear()
    grow(recordings / "c.wav", recordings / "b.wav")
    third = embed_archive(trained_run.checkpoint, recordings, out=out, options=FAST)
    assert (third.files, third.changed, third.skipped) == (1, 1, 4)
    assert not [record for record in caplog.records if record.name == handout_module.__name__]  # said once
    _store_is_whole(out)
