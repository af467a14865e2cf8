"""The vector index of an embeddings store: FAISS IVF-PQ over the stored windows, kept in the store folder, so that
search by example over millions of windows takes milliseconds instead of a scan of every stored window.

Chosen by measurement (docs/benchmarks.md, "Search by example"): on mn04's embeddings of ESC-50 recordings an
IVF-PQ index (64 bytes a window) whose candidates are re-scored exactly from the store's float16 vectors keeps 0.997
of the exact top 100 in under a millisecond a query; USearch's and FAISS's HNSW graphs match its recall but hold 2.3-2.5
kB a window in memory (23 GB for 10 million windows) and took 377 s to build 200,000; below
:data:`INDEX_MIN_WINDOWS` windows exact search is fast enough and the index is neither built nor read.

- ``DB/index.npz`` (written whole or not at all): ``index`` (the serialized FAISS index, ids = the store's window
  ids, vectors unit length so inner product is cosine), ``parts`` (the part numbers it covers, in order), ``windows``
  (the windows of those parts) and ``trained`` (the windows it was trained on).
- The store grows by parts; the index follows: windows of parts it does not cover are added to its lists (no new
  training) until the store holds :data:`RETRAIN_GROWTH` times the windows it was trained on, then it is built anew.
  A part it covers that the store no longer lists (written again when a changed file was embedded again, its window
  ids renumbered) empties its lists, which are refilled with every stored window (kept training): a removed window
  or an old id is never returned.
- ``embed`` brings the index up to date at the end of a run that leaves the store at or above
  :data:`INDEX_MIN_WINDOWS`; a search that finds it missing, unreadable or behind the store brings it up to date
  first (one log line says which), so no stored window is left out of the candidates. The index is approximate:
  ``search(exact=True)`` (``search --exact``) scores every window, to check its recall.

Needs ``faiss`` (``pip install 'envsound[index]'``); without it every search is exact (one log line says so).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from envsound.errors import ConfigError
from envsound.fileio import atomic_open
from envsound.inference.embeddings.store import EmbeddingsStore

log = logging.getLogger(__name__)

INDEX_MIN_WINDOWS = 200_000  # exact search below: ~0.2-0.6 s a query at 200,000 windows of 512 dims (benchmarks)
INDEX_NAME = "index.npz"
NPROBE = 32  # lists searched a query: recall@100 0.997 on mn04's ESC-50 windows (0.954 at 8, 1.000 at 128)
RESCORE = 4  # candidates a wanted row, re-scored exactly from the store's float16 vectors
RETRAIN_GROWTH = 8  # the lists are trained anew when the store has grown this many times since training
TRAIN_PER_LIST = 64  # k-means training vectors a list (FAISS asks for 39-256)
# lists at most: reached at ~1M windows. At 10M the lists hold ~2,400 windows each and nprobe 32 scans ~78,000 codes
# (milliseconds), where 4 sqrt(N) = 16,384 lists would train k-means on 1M windows (2 GB, about an hour on 2 cores)
# and assign each added window against 4 times the centroids
NLIST_MAX = 4_096
_LOADED: dict = {}  # index file -> ((its mtime, size), StoreIndex): a server searching again does not read it again
# one build or extension at a time in a process (the page's requests run in threads): two requests on a store without
# an index would each build it
_UPDATING = threading.Lock()


def faiss_or_none():
    """The ``faiss`` module, or None where it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@dataclass
class StoreIndex:
    """An index loaded from (or built for) a store: the FAISS index, the part numbers and windows it covers, and the
    windows it was trained on."""

    index: object
    parts: list[int]
    windows: int
    trained: int

    def nearest(self, store: EmbeddingsStore, query: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``pool`` windows most like the unit ``query`` ``(d,)`` float32 and their exact cosine similarities,
        best first (ties by window id), as exact search gives them: the index proposes ``RESCORE * pool``
        candidates, whose stored vectors are scored exactly."""
        self.index.nprobe = NPROBE
        wanted = min(self.windows, RESCORE * pool)
        ids = self.index.search(query[None].astype(np.float32), wanted)[1][0]
        ids = np.unique(ids[ids >= 0])
        vectors = store.vectors(ids)
        scores = vectors @ query / np.maximum(np.sqrt(np.einsum("ij,ij->i", vectors, vectors)), 1e-12)
        order = np.lexsort((ids, -scores))[:pool]
        return scores[order].astype(np.float32), ids[order]


def index_for(store: EmbeddingsStore) -> StoreIndex | None:
    """The store's index, brought up to date with its parts (built, extended or rebuilt, one log line a change);
    None where the store is below :data:`INDEX_MIN_WINDOWS` windows or faiss is not installed (exact search).

    >>> index = index_for(EmbeddingsStore("archive.db"))
    >>> index.windows if index else "exact"
    """
    if store.windows < INDEX_MIN_WINDOWS:
        return None
    if faiss_or_none() is None:
        log.info("%s: exact search over %d windows (faiss is not installed; pip install 'envsound[index]' for an "
                 "index)", store.path, store.windows)
        return None
    return update_index(store)


def update_index(store: EmbeddingsStore) -> StoreIndex:
    """Bring ``DB/index.npz`` up to date with the store's committed parts and return it: windows of new parts added,
    or the index built anew when it is missing, unreadable, of other parts, or trained on under
    1/:data:`RETRAIN_GROWTH` of the store. Writes the file whole or not at all.

    >>> update_index(EmbeddingsStore("archive.db")).windows

    Raises:
        ConfigError: faiss is not installed.
    """
    faiss = faiss_or_none()
    if faiss is None:
        raise ConfigError(f"{store.path}: its search index needs faiss: pip install 'envsound[index]'")
    with _UPDATING:
        return _updated(store, faiss)


def _updated(store: EmbeddingsStore, faiss) -> StoreIndex:
    path = store.path / INDEX_NAME
    loaded, why = _load(store)
    numbers = [part.number for part in store.parts]
    if loaded is not None and loaded.parts == numbers[:len(loaded.parts)] and \
            store.windows <= RETRAIN_GROWTH * loaded.trained:
        if loaded.parts == numbers:
            return loaded
        started = time.monotonic()
        new = store.parts[len(loaded.parts):]
        # a copy extended: another thread may be searching the loaded one
        extended = StoreIndex(faiss.clone_index(loaded.index), list(loaded.parts), loaded.windows, loaded.trained)
        added = _add(store, extended, new)
        _save(path, extended)
        log.info("%s: %d windows of %d new part(s) added to its index in %.1f s", store.path, added, len(new),
                 time.monotonic() - started)
        return extended
    if loaded is not None and loaded.parts != numbers[:len(loaded.parts)] and \
            store.windows <= RETRAIN_GROWTH * loaded.trained:
        # parts it covers were written again (files embedded again, their windows renumbered): every window is added
        # anew to a copy of its trained lists, so no removed window and no old id is ever a candidate
        started = time.monotonic()
        refilled = StoreIndex(faiss.clone_index(loaded.index), [], 0, loaded.trained)
        refilled.index.reset()
        _add(store, refilled, store.parts)
        _save(path, refilled)
        log.info("%s: it covers parts the store has written again (files embedded again); its lists refilled with "
                 "%d windows in %.1f s", path, refilled.windows, time.monotonic() - started)
        return refilled
    if loaded is not None:
        why = (f"the store has grown {store.windows / loaded.trained:.0f}-fold since it was trained"
               if loaded.parts == numbers[:len(loaded.parts)] else "it covers other parts than the store's")
    started = time.monotonic()
    built = _build(store)
    _save(path, built)
    log.info("%s: %s; built anew over %d windows in %.1f s", path, why, built.windows, time.monotonic() - started)
    return built


def _load(store: EmbeddingsStore) -> tuple[StoreIndex | None, str]:
    """The saved index, or None and why not (missing, unreadable)."""
    import faiss

    path = store.path / INDEX_NAME
    if not path.exists():
        return None, "no index yet"
    stat = path.stat()
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == (stat.st_mtime_ns, stat.st_size):
        return cached[1], ""
    try:
        with np.load(path, allow_pickle=False) as saved:
            index = faiss.deserialize_index(saved["index"])
            loaded = StoreIndex(index, [int(n) for n in saved["parts"]], int(saved["windows"]), int(saved["trained"]))
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in numpy, zipfile or faiss, each its own way
        return None, f"the index cannot be read ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]})"
    if loaded.index.ntotal != loaded.windows or loaded.index.d != _width(store):
        return None, f"the index holds {loaded.index.ntotal} {loaded.index.d}-d vectors, not its {loaded.windows}"
    _LOADED[path] = ((stat.st_mtime_ns, stat.st_size), loaded)
    return loaded, ""


def _save(path, index: StoreIndex) -> None:
    import faiss

    with atomic_open(path) as fh:
        np.savez(fh, index=faiss.serialize_index(index.index), parts=np.asarray(index.parts, np.int64),
                 windows=np.int64(index.windows), trained=np.int64(index.trained))
    stat = path.stat()
    _LOADED[path] = ((stat.st_mtime_ns, stat.st_size), index)


def _width(store: EmbeddingsStore) -> int:
    return next((int(store.embeddings(part).shape[1]) for part in store.parts if part.rows), 0)


@dataclass(frozen=True)
class IndexShape:
    """The sizes of a new index: ``nlist`` k-means lists, trained on ``train`` windows; ``codes`` sub-quantisers of
    ``bits`` bits a window."""

    nlist: int
    train: int
    codes: int
    bits: int


def index_shape(windows: int, dim: int) -> IndexShape:
    """The sizes of a new IVF-PQ index of ``windows`` (>= 1) vectors of ``dim`` (>= 1) dimensions: ``nlist`` = 4
    sqrt(N) as a power of two, at most :data:`NLIST_MAX` and N/39; trained on :data:`TRAIN_PER_LIST` windows a list
    (all of them below that), so at most 262,144 whatever the store's size; 64-byte codes (fewer sub-quantisers where
    the width does not divide by 64, fewer bits a code for a small store).

    >>> index_shape(10_000_000, 512)
    IndexShape(nlist=4096, train=262144, codes=64, bits=8)
    """
    nlist = int(min(2 ** max(0, round(math.log2(4 * math.sqrt(windows)))), NLIST_MAX, max(1, windows // 39)))
    train = min(windows, TRAIN_PER_LIST * max(nlist, 256))
    codes = next(m for m in (64, 32, 16, 8, 4, 2, 1) if dim % m == 0 and m <= max(1, dim // 4))
    bits = int(min(8, max(1, math.floor(math.log2(max(2, train / 39))))))
    return IndexShape(nlist, train, codes, bits)


def _build(store: EmbeddingsStore) -> StoreIndex:
    """A new IVF-PQ index of every stored window (:func:`index_shape`), trained on windows spread evenly over the
    store, then the windows added part by part, :data:`~envsound.inference.embeddings.store.CHUNK_ROWS` at a time."""
    import faiss

    n, dim = store.windows, _width(store)
    shape = index_shape(n, dim)
    sample = np.unique(np.linspace(0, n - 1, shape.train).astype(np.int64))
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, shape.nlist, shape.codes, shape.bits,
                             faiss.METRIC_INNER_PRODUCT)
    index.train(_unit(store.vectors(sample)))
    built = StoreIndex(index, [], 0, n)
    _add(store, built, store.parts)
    return built


def _add(store: EmbeddingsStore, index: StoreIndex, parts) -> int:
    """Add the windows of ``parts`` (in order, after those the index covers) and return how many."""
    added = 0
    for part in parts:
        for ids, vectors in store.chunks(parts=[part]):
            index.index.add_with_ids(_unit(vectors), ids)
        index.parts.append(part.number)
        index.windows += part.rows
        added += part.rows
    return added


def _unit(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (a float32 array of the caller's own) scaled to unit length in place: no copy of a training sample
    of 262,144 x 512 (512 MB)."""
    vectors /= np.maximum(np.sqrt(np.einsum("ij,ij->i", vectors, vectors)), 1e-12)[:, None]
    return np.ascontiguousarray(vectors, np.float32)
