"""Search by example in an embeddings store: the windows most like one or more example sounds, by cosine similarity:
exact (every stored window is scored, a memory-mapped chunk at a time, with numpy) below
:data:`~envsound.inference.embeddings.index.INDEX_MIN_WINDOWS` windows or when asked, else through the store's index
(:mod:`.index`: its candidates re-scored exactly, so the scores are the same)."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from envsound.errors import ConfigError
from envsound.inference.embeddings.index import index_for
from envsound.inference.embeddings.store import CHUNK_ROWS, EmbeddingsStore, StoredWindow
from envsound.inference.listing import as_inputs

if TYPE_CHECKING:  # loaded only where an example is embedded (torch)
    from envsound.inference.predictor import Predictor

log = logging.getLogger(__name__)

__all__ = ["CHUNK_ROWS", "Hit", "search"]  # CHUNK_ROWS: the store's (EmbeddingsStore.chunks), named here as before


@dataclass(frozen=True)
class Hit(StoredWindow):
    """One window found: ``window`` (the store's id), ``file`` (as ``embed`` listed it), ``start``, ``end``
    (seconds in that file) and ``score`` (cosine similarity in [-1, 1]: higher is closer)."""

    score: float


def search(db: str | os.PathLike, examples: str | os.PathLike | Iterable[str | os.PathLike] = (), *, top: int = 10,
           start: float | None = None, end: float | None = None, windows: Iterable[int] = (), collapse: bool = True,
           device: str = "auto", model: str | os.PathLike | Predictor | None = None,
           exact: bool = False) -> list[Hit]:
    """The ``top`` windows of the store ``db`` most like ``examples`` (one audio file or a list) and the stored
    ``windows`` (ids of the store), best first.

    Each example is cut into the store's windows and embedded by the store's model (the file it records, or
    ``model``: it must be the same file, by digest, or a :class:`~envsound.inference.predictor.Predictor` loaded
    from it, which a server keeps); with ``start``/``end`` (seconds) only the example windows whose
    centre lies in ``[start, end)`` count (the nearest one when none does). A stored window needs no model: its
    embedding is read from the store. The query is the mean of all these unit-length embeddings. ``collapse``: a
    window within one window length of a better one of the same file is left out, so one long sound does not fill
    the list. Fewer than ``top`` only when the store holds fewer. A store of
    :data:`~envsound.inference.embeddings.index.INDEX_MIN_WINDOWS` windows or more is searched through its index
    (:mod:`.index`, brought up to date first), unless ``exact``: every window scored, to check the index's recall.

    >>> hits = search("recordings.db", "chainsaw.wav", top=20)
    >>> hits[0].file, hits[0].start, hits[0].score

    Raises:
        ConfigError: ``db`` is not an embeddings store, its model file is missing or changed, ``top`` < 1, a range
            outside an example.
        AudioLoadError: an example cannot be read.
    """
    if top < 1:
        raise ConfigError(f"top must be >= 1 (got {top})")
    store = EmbeddingsStore(db)
    names = [os.fspath(example) for example in as_inputs(examples)]
    ids = list(windows)
    if not names and not ids:
        raise ConfigError("search needs an example: an audio file, or the id of a window of the store")
    units = [_unit(store.vectors(ids))] if ids else []
    if names:
        units += _example_windows(store, names, start=start, end=end, device=device, model=model)
    mean = np.concatenate(units).mean(axis=0)
    query = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    if store.windows == 0:
        return []
    window = float(store.settings.get("window_seconds") or 0.0)
    pool = min(store.windows, top * 8 + 64)
    index = None if exact else index_for(store)
    while True:
        scores, ids = _nearest(store, query, pool) if index is None else index.nearest(store, query, pool)
        if index is not None and len(ids) < pool:  # the probed lists hold fewer: every window scored from here on
            index = None
            scores, ids = _nearest(store, query, pool)
        rows = store.rows(ids)
        hits = [Hit(row["window"], row["file"], row["start"], row["end"], round(float(score), 6))
                for row, score in zip(rows, scores)]
        if collapse:
            hits = _collapsed(hits, window)
        if len(hits) >= top or pool >= store.windows:
            return hits[:top]
        pool = min(store.windows, pool * 4)  # collapsing left too few: score again with a larger pool


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _example_windows(store: EmbeddingsStore, names: list[str], *, start, end, device: str,
                     model) -> list[np.ndarray]:
    """Each example's chosen windows as unit-length embeddings, ``(n, d)`` float32 an example."""
    from envsound.features.parallel import frontend_for
    from envsound.inference.archive.decode import DecodeJob, decode_file
    from envsound.inference.archive.embedding import chunk_embeddings

    predictor = store.network(model, device=device, needed_for="searching by an audio example")
    cut = predictor.model.scores_windows  # else the model cuts its own windows (a frozen network)
    job = DecodeJob.of(predictor, windows=cut)
    frontend = frontend_for(predictor.features) if cut else None
    rate, window = predictor.features.sample_rate, predictor.features.window_seconds
    rows = []
    for name in names:
        begins, vectors, read = [], [], 0
        for read, chunk in decode_file(job, name, frontend):
            embedded, starts = chunk_embeddings(predictor.model, chunk)
            begins += [(chunk.offset + s * job.step + chunk.shift) / rate for s in starts]
            vectors.append(embedded)
        embedded = np.concatenate(vectors).astype(np.float32)
        chosen = _in_range(name, np.asarray(begins) + window / 2, read / rate, start=start, end=end)
        rows.append(_unit(embedded[chosen]))
    return rows


def _in_range(name: str, centres: np.ndarray, length: float, *, start, end) -> np.ndarray:
    """Indices of the windows whose centre lies in ``[start, end)`` (all without a range; the nearest if none)."""
    if start is None and end is None:
        return np.arange(len(centres))
    low = 0.0 if start is None else float(start)
    high = length if end is None else float(end)
    if not (0 <= low < high) or low >= length:
        raise ConfigError(f"{name}: the range {low:g}-{high:g} s is outside the file (0-{length:.3f} s) or empty; "
                          "give a start below its length and an end after the start")
    inside = np.flatnonzero((centres >= low) & (centres < high))
    return inside if len(inside) else np.array([int(np.argmin(np.abs(centres - (low + high) / 2)))])


def _nearest(store: EmbeddingsStore, query: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``pool`` highest cosine similarities to ``query`` over the whole store and their window ids, best first."""
    best_scores = np.zeros(0, np.float32)
    best_ids = np.zeros(0, np.int64)
    for ids, block in store.chunks(width=len(query)):
        # einsum: the rows' norms without the (rows, d) square that np.linalg.norm makes (0.3 s -> 0.04 s of the
        # 200,000-window benchmark, docs/benchmarks.md)
        scores = block @ query / np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block)), 1e-12)
        if len(scores) > pool:
            keep = np.argpartition(-scores, pool - 1)[:pool]
            scores, ids = scores[keep], ids[keep]
        best_scores = np.concatenate([best_scores, scores])
        best_ids = np.concatenate([best_ids, ids])
        if len(best_scores) > pool:
            keep = np.argpartition(-best_scores, pool - 1)[:pool]
            best_scores, best_ids = best_scores[keep], best_ids[keep]
    order = np.lexsort((best_ids, -best_scores))  # best first; ties by window id, so the order is stable
    return best_scores[order], best_ids[order]


def _collapsed(hits: list[Hit], window: float) -> list[Hit]:
    """Hits (best first) less those that start within ``window`` seconds of a better hit of the same file."""
    kept: dict[str, list[float]] = {}
    out = []
    for hit in hits:
        starts = kept.setdefault(hit.file, [])
        if any(math.isclose(hit.start, other) or abs(hit.start - other) < window for other in starts):
            continue
        starts.append(hit.start)
        out.append(hit)
    return out
