"""The agile loop's one labelled view of a store (agile/labelled.py: which window a stored verdict names, the current
verdicts) and its one linear head (agile/head.py: fit, predict_proba, the one loop that scores a store). The store is
written directly in its layout (small random vectors, no model runs); the labels store is a SQLite file."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsound.agile.head import LinearHead, sigmoid, store_scores
from envsound.agile.labelled import LabelledStore
from envsound.agile.labels import labelled
from envsound.agile.learn import fit_head
from envsound.agile.suggest import score_chunks
from envsound.deploy.labels import Labels
from envsound.errors import ConfigError
from envsound.inference.archive.journal import Journal
from envsound.inference.embeddings.store import STORE_KIND, TABLES, EmbeddingsStore

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def write_store(out: Path, files: list[str], *, per_file: int = 4, part_files: int = 2, width: int = 6) -> Path:
    """A store of ``files`` (``per_file`` 1-s windows each at a 1-s hop), ``part_files`` files a part."""
    journal = Journal.open(out, {"store": STORE_KIND, "model": "0" * 64, "model_file": "none.ckpt",
                                 "window_seconds": 1.0}, tables=TABLES)
    for folder in ("windows", "embeddings"):
        (out / folder).mkdir(exist_ok=True)
    rng, first = np.random.default_rng(0), 0
    for number, at in enumerate(range(0, len(files), part_files), start=1):
        names = files[at:at + part_files]
        starts = np.tile(np.arange(per_file, dtype=np.float64), len(names))
        pq.write_table(pa.table({"window": pa.array(np.arange(first, first + len(starts)), pa.int64()),
                                 "file": np.repeat(names, per_file).tolist(), "start": starts, "end": starts + 1.0}),
                       out / "windows" / f"part-{number:06d}.parquet")
        np.save(out / "embeddings" / f"part-{number:06d}.npy",
                rng.standard_normal((len(starts), width)).astype(np.float16))
        journal.commit(number, [(name, True, float(per_file)) for name in names])
        first += len(starts)
    journal.close()
    return out


def verdict(file: str, start: float, label: str, said: str, *, window: int | None) -> dict:
    return {"window": window, "file": file, "start": start, "end": start + 1.0, "label": label, "verdict": said}


def test_a_verdict_names_its_window_by_id_else_by_file_and_times_and_the_latest_is_current(tmp_path):
    """One matching and one rule for the current verdict, for label, learn, check and the page: a verdict given in
    another store of the same files (other ids) finds its window by file and times; one of a file this store does not
    hold names none; the latest given wins whatever order the verdicts are read in (a server reads them in pieces)."""
    db = write_store(tmp_path / "a.db", ["a.wav", "b.wav", "c.wav"])
    other = write_store(tmp_path / "b.db", ["c.wav", "a.wav"])  # a.wav's windows are 4-7 there, 0-3 here
    spec = tmp_path / "review.sqlite"
    with LabelledStore.open(other, spec) as theirs:
        theirs.labels.add([verdict("a.wav", 1.0, "dog", "yes", window=5), verdict("c.wav", 0.0, "dog", "no",
                                                                                   window=0),
                           verdict("x.wav", 0.0, "dog", "yes", window=None)], reviewer="ana", given=T0)
        theirs.labels.add([verdict("a.wav", 1.0, "dog", "no", window=5)], reviewer="bo", given=T0 - timedelta(1))
        rows = theirs.labels.read(label="dog")
        assert theirs.match(rows).tolist() == [5, 5, 0, -1]  # ordered by given: bo's (a day earlier) first
    with LabelledStore.open(db, spec) as mine:
        assert mine.match(rows).tolist() == [1, 1, 8, -1]
        assert mine.match(rows, kept={5: {"file": "b.wav", "start": 1.0, "end": 2.0}}).tolist() == [1, 1, 8, -1]
        # a kept row is taken as it is (a server's, read before), not read again
        assert mine.match(rows, kept={5: {"file": "a.wav", "start": 1.0, "end": 2.0}}).tolist() == [5, 5, 8, -1]
        current = mine.current(rows[::-1])  # read newest first: still the latest given wins
        assert dict(zip(current.verdicts.windows.tolist(), current.verdicts.verdicts.tolist())) == {1: "yes", 8: "no"}
        both = mine.verdicts(["dog", "cat"])
    assert both["cat"].windows.size == 0 and both["dog"].windows.tolist() == [1, 8]
    assert labelled(db, ["dog"], store=spec)["dog"].verdicts.tolist() == ["yes", "no"]  # the function's same answer


def test_the_labels_store_is_opened_only_when_labels_are_read_or_written(tmp_path):
    db = write_store(tmp_path / "a.db", ["a.wav"])
    view = LabelledStore.open(db)
    assert view.index.exact("a.wav", 2.004, 3.0) == 2 and view.index.exact("a.wav", 2.02, 3.0) == -1
    assert not (db / "review.sqlite").exists()  # matching by file and times needs no labels store
    with view:
        assert view.add([verdict("a.wav", 0.0, "dog", "yes", window=0)], reviewer="ana") == 1
    assert Labels is type(view.labels) and (db / "review.sqlite").is_file()


def test_the_linear_head_fits_as_learn_did_and_scores_a_store_with_one_sigmoid(tmp_path):
    """learn, suggest and check score with one head (scikit-learn's fit and predict_proba) and one loop over the
    store; learn's fit_head and suggest's score_chunks (deprecated) are the head's."""
    rng = np.random.default_rng(1)
    x, weak = rng.normal(size=(20, 6)), rng.normal(size=(40, 6))
    truth = np.arange(20) < 6
    head = LinearHead().fit(x, truth, weak)
    w, b = fit_head(x, truth, weak)
    assert np.allclose(head.weights[0], w) and head.bias[0] == pytest.approx(b)
    assert np.allclose(head.predict_proba(x)[:, 0], 1 / (1 + np.exp(-(x @ w + b))))
    assert (head.predict_proba(x[truth]).mean() > 0.5 > head.predict_proba(x[~truth]).mean())
    assert LinearHead().fit(x[:3], np.ones(3, bool)).predict_proba(x).min() > 0.999  # one class: a constant
    two = LinearHead.stack([head, LinearHead().fit(x, ~truth, weak)])
    assert two.predict_proba(x).shape == (20, 2) and sigmoid(np.array([-1000.0]))[0] == 0.0

    store = EmbeddingsStore(write_store(tmp_path / "a.db", ["a.wav", "b.wav", "c.wav"]))
    vectors = store.vectors(np.arange(store.windows))
    ids, probs = (np.concatenate(parts) for parts in zip(*store_scores(store, two)))
    assert ids.tolist() == list(range(store.windows)) and probs.dtype == np.float32
    assert np.allclose(probs, two.predict_proba(vectors), atol=1e-6)
    with pytest.warns(DeprecationWarning, match="store_scores"):
        firsts, chunks = zip(*score_chunks(store, two.weights, two.bias))
    assert list(firsts) == [part.first for part in store.parts] and np.allclose(np.concatenate(chunks), probs)
    with pytest.raises(ConfigError, match="holds 6-d embeddings, not the 4-d"):
        next(store_scores(store, LinearHead(np.zeros((1, 4)), np.zeros(1))))
