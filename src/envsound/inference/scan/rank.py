"""Ranking an embeddings store: ``envsound predict MODEL DB --out R`` (``envsound.scan(model, "DB", out=R)``) applies
the model's head to the embeddings the store holds, so no audio is decoded (it runs with the audio files removed).

:class:`StoredEngine` is an engine of the scan (:class:`~envsound.inference.archive.engine.Engine`): the scan's run
loop, journal, parts, resume and tables are the ones ``predict --out`` uses on audio, and so are the results'
columns; ``file`` holds the store's names (as ``embed`` listed them). The files are those the store holds windows
of, in the store's order; each file's windows and embeddings are read from its part (the ``.npy`` memory-mapped, a
part at a time), scored by :meth:`ClipModel.head_probs <envsound.models.clip.ClipModel.head_probs>` in batches of
:data:`ROWS` windows across files, and gathered as a file's windows are
(:class:`~envsound.inference.predictor.FileScores`: top labels, the multi-label decision, events from the window
track at the model's decoding). A window's start is the store's (seconds, rounded to the millisecond; a model with
``features.edge_pad`` has its first window's start at 0 there, where the audio's is before the file).

The model must read this store's embeddings: it is the network the store was embedded with (the same file, by
SHA-256), or a model whose checkpoint says its head reads that network's embeddings (``meta["trunk"]``:
``{"digest": <the network's SHA-256>, "layer": "embed"}``, what ``envsound learn`` writes).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.inference.archive.engine import Finished
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.embeddings.store import STORE_KIND, EmbeddingsStore, StorePart
from envsound.inference.listing import as_inputs
from envsound.inference.predictor import FileScores, Predictor
from envsound.models.files import ONNX

log = logging.getLogger(__name__)

ROWS = 65_536  # windows scored a batch, across files: 128 MB of float16 at 1,000 dimensions, copied once


def embeddings_store_in(inputs: str | os.PathLike | Iterable[str | os.PathLike], *, files_from=None,
                        engine: str = "local") -> EmbeddingsStore | None:
    """The store when ``inputs`` is one embeddings store folder (its journal says ``store: embeddings``), else None
    (audio to decode).

    >>> embeddings_store_in("recordings.db")
    <envsound.inference.embeddings.store.EmbeddingsStore object at ...>

    Raises:
        ConfigError: a store among other inputs or with ``files_from`` (a store is ranked alone), or with an engine
            other than ``local``.
    """
    listed = as_inputs(inputs)
    stores = [item for item in listed if _is_store(Path(item))]
    if not stores:
        return None
    if len(listed) > 1 or files_from is not None:
        raise ConfigError(f"{stores[0]}: an embeddings store is ranked alone (every file it holds); give it as the "
                          "only input, without files_from, or give audio files only")
    if engine != "local":
        raise ConfigError(f"{stores[0]}: a DB is ranked locally (its stored embeddings are read in this process, no "
                          f"audio is decoded); rank it with engine='local', not {engine!r}")
    return EmbeddingsStore(stores[0])


def _is_store(path: Path) -> bool:
    journal = path / JOURNAL_NAME
    if not (path.is_dir() and journal.is_file()):
        return False
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=60)
        try:
            row = db.execute("SELECT value FROM settings WHERE key = 'store'").fetchone()
        finally:
            db.close()
        return row is not None and json.loads(row[0]) == STORE_KIND
    except (sqlite3.DatabaseError, ValueError):
        return False  # not a journal this can read: listed as a folder, as before


def check_reads(predictor: Predictor, store: EmbeddingsStore, model: str | os.PathLike) -> None:
    """Refuse a model that cannot read ``store``'s embeddings (see the module's docstring).

    Raises:
        CheckpointError: ``model`` is an ONNX export (it takes audio, not embeddings).
        ConfigError: the store was embedded by another network than ``model``'s, at another layer, or the model's
            probabilities are not a head over an embedding (a baseline, an ensemble, a frame model).
    """
    source = predictor.source
    if source is not None and source.kind == ONNX:
        raise CheckpointError(f"{model}: an ONNX export takes audio, not the stored embeddings of {store.path}; rank "
                              "the DB with the model.ckpt it was exported from, or predict on the audio files")
    embedded = store.network_digest
    trunk = predictor.model.meta.get("trunk")
    trunk = trunk if isinstance(trunk, dict) else {}  # an autoencoder's meta names its trunk by a string
    digest = source.digest if source is not None else ""
    store.check_network(model, digest, trunk.get("digest"),
                        fix=f"predict on the audio files instead, or embed them with {model}")
    layer, stored_layer = trunk.get("layer", "embed"), store.settings.get("layer", "embed")
    if embedded != digest and layer != stored_layer:
        raise ConfigError(f"{store.path}: holds the network's {stored_layer!r} embeddings, the head of {model} reads "
                          f"its {layer!r} ones; predict on the audio files instead")
    try:
        predictor.model.head_probs(np.zeros((0, 1), np.float32))  # a model with no head over an embedding says so
    except ConfigError as exc:
        raise ConfigError(f"{store.path}: {exc}, so {model} cannot rank its stored embeddings; predict on the audio "
                          "files instead") from None


def store_files(store: EmbeddingsStore) -> Iterator[str]:
    """The names of the files ``store`` holds windows of, in the store's order (a part's ``file`` column at a time)."""
    for part in store.parts:
        if part.rows:
            files = store.part_columns(part, ["file"]).column("file").to_pylist()
            yield from (name for name, _ in itertools.groupby(files))


@dataclass
class _Piece:
    """Consecutive windows of one file waiting to be scored: their embeddings (a view of the part's memory map) and
    starts; ``last``: the file's last windows."""

    name: str
    scores: FileScores
    vectors: np.ndarray
    starts: np.ndarray
    last: bool


class _Walk:
    """The store's parts in order, one loaded at a time: where each file's windows lie in the part at hand."""

    def __init__(self, store: EmbeddingsStore) -> None:
        self.store = store
        self.index = -1
        self.spans: dict[str, tuple[int, int]] = {}
        self.starts = np.zeros(0)
        self.vectors: np.ndarray | None = None

    def find(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(embeddings, starts) of ``name``'s windows; the parts after the one at hand are looked in first (names
        come in the store's order), then the others; None when no part holds it."""
        parts = self.store.parts
        for _ in range(len(parts) + 1):
            if name in self.spans:
                lo, hi = self.spans[name]
                return self.vectors[lo:hi], self.starts[lo:hi]
            self.index = (self.index + 1) % max(len(parts), 1)
            if parts:
                self._load(parts[self.index])
        return None

    def _load(self, part: StorePart) -> None:
        self.spans = {}
        if not part.rows:
            return
        table = self.store.part_columns(part, ["file", "start"])
        at = 0
        for name, rows in itertools.groupby(table.column("file").to_pylist()):
            count = sum(1 for _ in rows)
            self.spans[name] = (at, at + count)
            at += count
        self.starts = table.column("start").to_numpy()
        self.vectors = self.store.embeddings(part)


class StoredEngine:
    """An engine of the scan that reads each file's windows and embeddings from an embeddings store instead of
    decoding audio (see the module's docstring); :meth:`names` lists the store's files.

    >>> engine = StoredEngine(predictor, EmbeddingsStore("recordings.db"), top_k=3, events=False, window_scores=True)
    >>> engine.describe()
    """

    def __init__(self, predictor: Predictor, store: EmbeddingsStore, *, top_k: int, events: bool,
                 window_scores: bool, rows: int = ROWS) -> None:
        self.predictor, self.store = predictor, store
        self.top_k, self.events, self.window_scores = top_k, events, window_scores
        self.rows = max(1, rows)

    def describe(self) -> str:
        return (f"local: the model's head over the embeddings stored in {self.store.path} (no audio decoded), "
                f"{self.rows} windows a batch")

    def names(self) -> Iterator[str]:
        """The store's files, in its order (the scan's listing)."""
        return store_files(self.store)

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Score every name ``names`` yields from the store, calling ``on_file`` as each file finishes, until the
        names run out or ``stop`` is set (then the files not yet scored are dropped unfinished)."""
        walk = _Walk(self.store)
        seconds = _Lengths(self.store.path / JOURNAL_NAME)
        pending: list[_Piece] = []
        try:
            for name in names:
                if stop.is_set():
                    return
                found = walk.find(name)
                if found is None:
                    on_file(Finished(name, error=f"{name}: {self.store.path} holds no windows of it; embed it again"))
                    continue
                vectors, starts = found
                scores = FileScores(self.predictor, segments=True, events=self.events,
                                    window_scores=self.window_scores)
                for at in range(0, len(starts), self.rows):  # a file longer than a batch goes in several
                    waiting = sum(len(piece.starts) for piece in pending)
                    if waiting and waiting + min(self.rows, len(starts) - at) > self.rows:
                        self._score(pending, seconds, on_file)
                    pending.append(_Piece(name, scores, vectors[at:at + self.rows], starts[at:at + self.rows],
                                          last=at + self.rows >= len(starts)))
            if not stop.is_set():
                self._score(pending, seconds, on_file)
        finally:
            seconds.close()

    def _score(self, pending: list[_Piece], seconds: "_Lengths", on_file: Callable[[Finished], None]) -> None:
        """Score the pending pieces in one call of the head, add them to their files, finish the files complete."""
        if not pending:
            return
        probs = self.predictor.model.head_probs(np.concatenate([piece.vectors for piece in pending]))
        at = 0
        rate = self.predictor.features.sample_rate
        for piece in pending:
            piece.scores.add_at(piece.starts.tolist(), probs[at:at + len(piece.starts)])
            at += len(piece.starts)
            if piece.last:
                length = seconds.of(piece.name)
                if length is None:  # not in the store's journal: its windows' end stands for its length
                    length = float(piece.starts[-1]) + self.predictor.features.window_seconds
                prediction = piece.scores.finish(piece.name, round(length * rate), top_k=self.top_k)
                on_file(Finished(prediction.file, prediction,
                                 piece.scores.window_probs() if self.window_scores else None))
        pending.clear()


class _Lengths:
    """Each file's length in seconds, as the store's journal recorded it when the file was embedded."""

    def __init__(self, journal: Path) -> None:
        self.db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=60)

    def of(self, name: str) -> float | None:
        row = self.db.execute("SELECT seconds FROM files WHERE name = ? AND ok = 1", (name,)).fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        self.db.close()
