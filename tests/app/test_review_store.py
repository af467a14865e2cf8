"""The Review view's reads of a store (agile/review.py): a label's verdicts kept between requests and brought up to
date with those stored since (by another server too), windows read by part and row group, relative file names
resolved against the directory ``embed`` ran in. Stores are written directly in their layout (small random vectors,
parts of several row groups): no model runs."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import sqlalchemy as sa

from envsound.agile.labels import labelled
from envsound.agile.review import NotFound, Review, learned_folder
from envsound.deploy import schema
from envsound.deploy.labels import Labels
from envsound.deploy.store import Store
from envsound.inference.archive.journal import Journal
from envsound.inference.embeddings.store import STORE_KIND, TABLES, EmbeddingsStore

PARTS, PART_WINDOWS, FILE_WINDOWS = 4, 50, 10


def write_store(out: Path, *, cwd: Path | None = None, numbers=range(1, PARTS + 1)) -> Path:
    """A store of 4 parts of 50 windows (1-s windows, 10 a file named ``recP-F.wav``, relative), each part's windows
    in row groups of 16; ``cwd``: the directory it records that ``embed`` ran in (None: an older store's none);
    ``numbers``: the parts written (more of them added to a store, as a resumed ``embed`` adds them)."""
    settings = {"store": STORE_KIND, "model": "0" * 64, "model_file": "none.ckpt", "precision": "32",
                "layer": "embed", "window_seconds": 1.0}
    if cwd is not None:
        settings["cwd"] = str(cwd)
    journal = Journal.open(out, settings, tables=TABLES)
    for folder in ("windows", "embeddings"):
        (out / folder).mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for number in numbers:
        first = (number - 1) * PART_WINDOWS
        files = [f"rec{number}-{f}.wav" for f in range(PART_WINDOWS // FILE_WINDOWS)]
        starts = np.tile(np.arange(FILE_WINDOWS, dtype=np.float64), len(files))
        table = pa.table({"window": pa.array(np.arange(first, first + PART_WINDOWS), pa.int64()),
                          "file": np.repeat(files, FILE_WINDOWS).tolist(), "start": starts, "end": starts + 1.0})
        pq.write_table(table, out / "windows" / f"part-{number:06d}.parquet", row_group_size=16)
        np.save(out / "embeddings" / f"part-{number:06d}.npy",
                rng.standard_normal((PART_WINDOWS, 8)).astype(np.float16))
        journal.commit(number, [(name, True, float(FILE_WINDOWS)) for name in files])
    journal.close()
    return out


class Reads:
    """What a Review reads: the verdicts' rows it asks the labels store for, and the Parquet files it opens."""

    def __init__(self, monkeypatch, store: Store) -> None:
        self.rows = 0
        self.parts: list[str] = []
        read, reads = Labels.read, self

        def counted_labels(labels, **kwargs):
            rows = read(labels, **kwargs)
            reads.rows += len(rows) if labels.store is store else 0
            return rows

        class CountedFile(pq.ParquetFile):
            def __init__(self, source, *args, **kwargs):
                reads.parts.append(Path(source).name)
                super().__init__(source, *args, **kwargs)

        read_table = pq.read_table

        def counted_table(source, *args, **kwargs):
            reads.parts.append(Path(source).name)
            return read_table(source, *args, **kwargs)

        monkeypatch.setattr(Labels, "read", counted_labels)
        monkeypatch.setattr(pq, "ParquetFile", CountedFile)
        monkeypatch.setattr(pq, "read_table", counted_table)

    def take(self) -> tuple[int, list[str]]:
        out = (self.rows, self.parts)
        self.rows, self.parts = 0, []
        return out


def current(db: Path, spec: str, review: Review, label: str) -> dict:
    """The review's current verdicts of ``label``, checked against labelled()'s reading of the whole store."""
    verdicts = review._state(label)[0]
    mine = dict(zip(verdicts.windows.tolist(), verdicts.verdicts.tolist()))
    whole = labelled(db, label, store=spec)[label]
    assert mine == dict(zip(whole.windows.tolist(), whole.verdicts.tolist()))
    return mine


def test_a_request_reads_only_the_verdicts_stored_since_and_the_rows_it_needs(tmp_path, monkeypatch, store_spec):
    """/next read every verdict of the label twice and every part of windows/ holding one (20 parts of a 1M-window
    store, 200 of 10M) on each request; now one indexed question, the verdicts stored since, and no part. On SQLite
    and on PostgreSQL (two servers of one team's store)."""
    db = write_store(tmp_path / "archive.db")
    spec = store_spec
    store, other = Store.open(spec), Store.open(spec)  # this server's, and another reviewer's server
    given = EmbeddingsStore(db).rows(np.arange(0, PARTS * PART_WINDOWS, 2))
    Labels(store).add([{**row, "label": "dog", "verdict": "yes" if i % 5 == 0 else "no"}
                      for i, row in enumerate(given)], reviewer="ana")
    review = Review(db, store=store, spec=spec)
    found, counts = review.next("dog", 5)
    assert len(found) == 5 and (counts.yes, counts.no, counts.since_learn) == (20, 80, 100)

    odd = EmbeddingsStore(db).rows(np.array([2, 3]))  # windows another server will label
    Labels(store).add([{**given[0], "label": "cat", "verdict": "no"}], reviewer="ana")
    reads = Reads(monkeypatch, store)
    assert review.labels() == ["dog", "cat"]  # the page's first request named them from every verdict read
    assert review.next("dog", 5) == (found, counts)
    assert reads.take() == (0, [])  # nothing stored since: no verdict read, no part
    counts = review.give(found[0].window, "dog", "yes", reviewer="ana")
    assert (counts.yes, counts.no, counts.since_learn) == (21, 80, 101)
    assert reads.take() == (1, [])  # its own verdict; the candidate's row was kept

    # another server's verdicts: one now, one stamped earlier by a clock behind (the later one stays current)
    Labels(other).add([{**odd[0], "label": "dog", "verdict": "yes"}], reviewer="bo")
    Labels(other).add([{**odd[0], "label": "dog", "verdict": "unsure"}, {**odd[1], "label": "dog", "verdict": "no"}],
                     reviewer="bo", given=datetime.now(timezone.utc) - timedelta(hours=1))
    assert review.counts("dog").since_learn == 104
    assert reads.take() == (3, ["part-000001.parquet"])  # windows 2 and 3: the part that holds them, read once
    assert current(db, spec, review, "dog")[2] == "yes"

    # a verdict removed behind the server's back (fewer than it read): all read again
    with other.engine.begin() as connection:
        connection.execute(sa.delete(schema.labels).where(schema.labels.c.reviewer == "bo"))
    after = current(db, spec, review, "dog")
    assert (after[2], 3 in after, review.counts("dog").since_learn) == ("no", False, 101)

    # a learning round: the verdicts after it count toward the next
    model = learned_folder(db, "dog") / "model.ckpt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    assert review.give(found[1].window, "dog", "no", reviewer="ana").since_learn == 1
    store.close()
    other.close()


def test_a_store_embedded_from_another_directory_plays_its_relative_files(tmp_path, monkeypatch):
    """A store's relative names were read from the directory `serve` ran in: embedded elsewhere, no sound."""
    origin, elsewhere = tmp_path / "field", tmp_path / "elsewhere"
    origin.mkdir()
    elsewhere.mkdir()
    sf.write(origin / "rec1-0.wav", np.full(8000 * 12, 0.1, np.float32), 8000)
    db = write_store(tmp_path / "stores" / "archive.db", cwd=origin)
    monkeypatch.chdir(elsewhere)
    store = Store.open(tmp_path / "review.sqlite")
    review = Review(db, store=store)
    samples, rate = review.samples(3)  # rec1-0.wav, 3-4 s
    assert rate == 8000 and len(samples) == 8000
    with pytest.raises(NotFound) as missing:
        review.samples(10)  # rec1-1.wav, never written
    assert str(missing.value).startswith(f"rec1-1.wav: the audio file of window 10 is missing (looked for "
                                         f"{origin / 'rec1-1.wav'})")
    assert "\n" not in str(missing.value)

    # an older store (no directory recorded): beside the store's folder, else the working directory
    older = write_store(origin / "older.db")
    assert Review(older, store=store).samples(3)[1] == 8000
    os.rename(origin / "rec1-0.wav", elsewhere / "rec1-0.wav")
    assert Review(older, store=store).samples(3)[1] == 8000
    store.close()


def test_a_store_moved_together_with_its_recordings_still_plays_them(tmp_path, monkeypatch):
    """Review of the session's change: with the directory embed ran in recorded, a relative name was looked for there
    only, so a store moved with its recordings (the folder above it) played nothing."""
    moved = tmp_path / "moved"
    moved.mkdir()
    sf.write(moved / "rec1-0.wav", np.full(8000 * 12, 0.1, np.float32), 8000)
    db = write_store(moved / "archive.db", cwd=tmp_path / "where-it-was-made")
    monkeypatch.chdir(tmp_path)
    assert EmbeddingsStore(db).resolve("rec1-0.wav") == moved / "rec1-0.wav"
    assert EmbeddingsStore(db).resolve("gone.wav") == tmp_path / "where-it-was-made" / "gone.wav"  # named as looked for
    store = Store.open(tmp_path / "review.sqlite")
    assert Review(db, store=store).samples(3)[1] == 8000
    store.close()


def test_a_rounds_search_asks_for_a_few_more_hits_than_it_offers_not_one_a_reviewed_window(tmp_path, monkeypatch):
    """Each round's search asked for k + every reviewed window's worth of hits (1,000 verdicts: 8,000 rows read from
    the parts a round); now 4 k first, more only while the reviewed ones crowd the top."""
    import importlib

    searching = importlib.import_module("envsound.inference.embeddings.search")  # the package names a function so
    db = write_store(tmp_path / "archive.db")
    store = Store.open(tmp_path / "review.sqlite")
    given = EmbeddingsStore(db).rows(np.arange(0, PARTS * PART_WINDOWS, 2))
    Labels(store).add([{**row, "label": "dog", "verdict": "yes" if i % 5 == 0 else "no"}
                      for i, row in enumerate(given)], reviewer="ana")
    asked, search = [], searching.search
    monkeypatch.setattr(searching, "search", lambda *args, **kwargs: asked.append(kwargs["top"]) or search(*args,
                                                                                                       **kwargs))
    review = Review(db, store=store)
    found = review.candidates("dog", 5)
    assert len(found) == 5 and not {c.window for c in found} & {row["window"] for row in given}
    assert asked and max(asked) <= 20, asked
    while review.candidates("dog", 5):  # the last unreviewed windows are still found (the search asks for more)
        for c in review.candidates("dog", 5):
            review.give(c.window, "dog", "no", reviewer="ana")
    assert review.counts("dog").no == PARTS * PART_WINDOWS - 20 and max(asked) > 20
    store.close()


def test_a_store_that_embed_extends_while_it_is_served_is_opened_again(tmp_path):
    """The Review kept the store it opened: windows added by a resumed embed were "not in" it until a restart."""
    db = write_store(tmp_path / "archive.db")
    store = Store.open(tmp_path / "review.sqlite")
    review = Review(db, store=store)
    assert review.row(7)["file"] == "rec1-0.wav"
    write_store(db, numbers=[PARTS + 1])
    assert review.row(PARTS * PART_WINDOWS + 3) == {"window": PARTS * PART_WINDOWS + 3, "file": f"rec{PARTS + 1}-0.wav",
                                                    "start": 3.0, "end": 4.0}
    assert review.windows.windows == (PARTS + 1) * PART_WINDOWS
    store.close()
