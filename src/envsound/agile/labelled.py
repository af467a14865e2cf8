"""One labelled view of an embeddings store: :class:`LabelledStore`, the store's windows with the verdicts reviewers
gave them. ``label``, ``learn``, ``check`` and the Review page all read labels through it: which window of this store
a stored verdict names (:meth:`LabelledStore.match`), and each window's current verdict of a label
(:meth:`LabelledStore.verdicts`, :class:`CurrentVerdicts`: the latest given, whoever gave it).

Where the labels live: in a deployment database (:class:`envsound.deploy.labels.Labels`), by default
``DB/review.sqlite`` beside the store's parts, or any path or ``postgresql://`` URL (a team's servers share one), with
the server's tokens. A verdict keeps the window's id, file, start and end: it names the window of this store with its
id when that window still has its file and times (within :data:`TOLERANCE`), else the window of its file and times
(a label given in another store of the same files, or before ``embed`` renumbered the windows), else, for a verdict
given on a span of a file rather than on a window (a fleet event's), every window centred in the span.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from envsound.deploy.labels import Labels
from envsound.deploy.store import Store
from envsound.inference.embeddings.store import EmbeddingsStore

REVIEW_STORE = "review.sqlite"  # a store folder's own labels and tokens, when no other store is named
TOLERANCE = 0.01  # seconds: a row's start and end within this of a window's name that window


@dataclass(frozen=True)
class Verdicts:
    """The current verdicts of one label in one store: ``windows`` ``(n,)`` int64 window ids of that store, in
    increasing order, and ``verdicts`` ``(n,)`` str, each ``"yes"``, ``"no"`` or ``"unsure"``."""

    windows: np.ndarray
    verdicts: np.ndarray


class CurrentVerdicts:
    """Each window's current verdict of one label, from stored verdicts added in any pieces (all at once, or those
    stored since the last read): the latest given wins, by ``(given, id)`` (at the same time, the one stored last)."""

    def __init__(self) -> None:
        self.current: dict[int, tuple[tuple[datetime, int], dict]] = {}
        self._verdicts: Verdicts | None = None

    def add(self, rows: Sequence[dict], windows: np.ndarray) -> None:
        """Add stored verdicts ``rows`` and the window of this store each names (``windows``, -1: none, left out)."""
        for row, window in zip(rows, np.asarray(windows).tolist()):
            key = (row["given"], row["id"])
            if window >= 0 and (window not in self.current or self.current[window][0] < key):
                self.current[window] = (key, row)
                self._verdicts = None

    @property
    def verdicts(self) -> Verdicts:
        if self._verdicts is None:
            ids = sorted(self.current)
            self._verdicts = Verdicts(np.array(ids, dtype=np.int64),
                                      np.array([self.current[i][1]["verdict"] for i in ids], dtype=str))
        return self._verdicts

    def rows(self) -> list[tuple[dict, int]]:
        """``(the stored verdict, its window)`` of each window, in window order."""
        return [(self.current[window][1], window) for window in sorted(self.current)]


class LabelledStore:
    """An embeddings store (``windows``) with the labels store where its verdicts are kept (``labels``, opened on
    first use when given by path or URL, and closed by :meth:`close`; an opened :class:`Store` is the caller's).

    >>> with LabelledStore.open("archive.db") as labelled:
    ...     verdicts = labelled.verdicts(["chainsaw"])["chainsaw"]
    """

    def __init__(self, windows: EmbeddingsStore, store: Store | str | os.PathLike | None = None) -> None:
        self.windows = windows
        self._spec = store
        self._store: Store | None = store if isinstance(store, Store) else None
        self._owned = not isinstance(store, Store)
        self._index: WindowIndex | None = None

    @classmethod
    def open(cls, db: str | os.PathLike, store: Store | str | os.PathLike | None = None) -> "LabelledStore":
        """The store folder ``db`` with its labels in ``store`` (a :class:`Store`, a path or URL; None:
        ``db/review.sqlite``).

        Raises:
            ConfigError: ``db`` is not an embeddings store.
        """
        return cls(EmbeddingsStore(db), store)

    @property
    def store(self) -> Store:
        """The labels store, opened (made when missing) on first use.

        Raises:
            StoreError: it cannot be opened or migrated.
        """
        if self._store is None:
            self._store = Store.open(labels_store(self.windows.path, self._spec))
        return self._store

    @property
    def labels(self) -> Labels:
        return Labels(self.store)

    def close(self) -> None:
        if self._owned and self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "LabelledStore":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    @property
    def index(self) -> "WindowIndex":
        """Every window of the store by file (read once, on first use: :class:`WindowIndex`)."""
        if self._index is None:
            self._index = WindowIndex(self.windows)
        return self._index

    def match(self, rows: Sequence[dict], *, kept: Mapping[int, dict] | None = None) -> np.ndarray:
        """``(len(rows),)`` int64: the window of this store each stored verdict names (-1: none; the module says
        how). Reads only the parts that hold the rows' ids (none of those in ``kept``: window id -> its ``file``,
        ``start``, ``end``, a server's), and every window (once) only when some verdict's id does not match."""
        kept = {} if kept is None else kept
        out = np.full(len(rows), -1, dtype=np.int64)
        ids = np.array([-1 if row["window"] is None else row["window"] for row in rows], dtype=np.int64)
        inside = np.flatnonzero((ids >= 0) & (ids < self.windows.windows))
        missing = np.unique([i for i in ids[inside].tolist() if i not in kept]).astype(np.int64)
        read = dict(zip(missing.tolist(), self.windows.rows(missing))) if len(missing) else {}
        for at in inside:
            row, window = rows[at], kept.get(int(ids[at])) or read[int(ids[at])]
            if (window["file"] == row["file"] and abs(window["start"] - row["start"]) <= TOLERANCE + 1e-9
                    and abs(window["end"] - row["end"]) <= TOLERANCE + 1e-9):
                out[at] = ids[at]
        for at in np.flatnonzero(out < 0):
            row = rows[at]
            found = self.index.exact(row["file"], row["start"], row["end"])
            out[at] = self.index.ids[found] if found >= 0 else -1
        return out

    def current(self, rows: Sequence[dict]) -> CurrentVerdicts:
        """The current verdicts of stored verdicts ``rows`` (of one label). A verdict on a span of a file that names
        no window (a fleet event's, on its snippet: :mod:`envsound.agile.fleet_review`) is each window's centred in
        that span."""
        current = CurrentVerdicts()
        matched = self.match(rows)
        current.add(rows, matched)
        for row in [row for row, at in zip(rows, matched.tolist()) if at < 0 and row["window"] is None]:
            positions = self.index.centred(row["file"], row["start"], row["end"])
            current.add([row] * len(positions), self.index.ids[positions])
        return current

    def verdicts(self, names: Sequence[str]) -> dict[str, Verdicts]:
        """Each of ``names``' current verdicts on this store's windows (every name a key; a name without labels:
        empty arrays).

        Raises:
            StoreError: the labels store cannot be opened or read.
        """
        names = [names] if isinstance(names, str) else names
        labels = self.labels
        given = {name: labels.read(label=name) for name in dict.fromkeys(names)}
        return {name: self.current(rows).verdicts for name, rows in given.items()}

    def add(self, rows: Sequence[dict], *, reviewer: str) -> int:
        """Store verdicts on this store's windows (:meth:`Labels.add <envsound.deploy.labels.Labels.add>`)."""
        return self.labels.add(rows, reviewer=reviewer)


class WindowIndex:
    """Every window of a store as numpy arrays grouped by file: read once (the committed parts' ``window``,
    ``file``, ``start`` and ``end``, ``file`` dictionary-encoded), then matched a file's slice at a time. A file's
    windows are the positions ``bounds[code]:bounds[code + 1]``; methods answer positions (``ids[position]`` is the
    window's id)."""

    def __init__(self, store: EmbeddingsStore) -> None:
        table = store.columns(dictionary=True).combine_chunks()
        files = table.column("file").chunk(0) if table.column("file").num_chunks else None
        self.names = files.dictionary.to_pylist() if files is not None else []
        self.code = {name: code for code, name in enumerate(self.names)}
        self.store, self._absolute = store, None  # the relative names, resolved where embed listed them (on use)
        codes = files.indices.to_numpy(zero_copy_only=False) if files is not None else np.zeros(0, np.int32)
        ids = table.column("window").to_numpy().astype(np.int64, copy=False)
        starts = table.column("start").to_numpy().astype(np.float64, copy=False)
        ends = table.column("end").to_numpy().astype(np.float64, copy=False)
        self.count = len(ids)
        if np.all(codes[1:] >= codes[:-1]):  # as embed writes a store: a file's windows together, codes in order
            self.codes, self.ids, self.starts, self.ends = codes, ids, starts, ends
        else:
            order = np.argsort(codes, kind="stable")  # a file's windows together (matching needs no other order)
            self.codes, self.ids, self.starts, self.ends = codes[order], ids[order], starts[order], ends[order]
        self.bounds = np.searchsorted(self.codes, np.arange(len(self.names) + 1, dtype=self.codes.dtype))
        if np.array_equal(self.ids, np.arange(self.count)):  # a position is its window's id
            self.by_id = self.sorted_ids = self.ids
        else:
            self.by_id = np.argsort(self.ids)
            self.sorted_ids = self.ids[self.by_id]

    def of_id(self, window: int) -> int:
        """The position of the window with id ``window``, or -1."""
        at = int(np.searchsorted(self.sorted_ids, window))
        return int(self.by_id[at]) if at < self.count and int(self.sorted_ids[at]) == window else -1

    def row(self, position: int, **more) -> dict:
        """The window at ``position`` as a label's ``window``, ``file``, ``start``, ``end`` (and ``more``)."""
        return {"window": int(self.ids[position]), "file": self.names[int(self.codes[position])],
                "start": float(self.starts[position]), "end": float(self.ends[position]), **more}

    def _slice(self, file: str) -> slice | None:
        code = self.code.get(file)
        if code is None and os.path.isabs(file):  # a verdict naming the file absolutely (a fleet event's snippet)
            if self._absolute is None:  # where the store's names are (embed events-fleet/snippets, ../x.wav)
                self._absolute = {os.path.normpath(self.store.resolve(name).absolute()): code
                                  for code, name in enumerate(self.names)}
            code = self._absolute.get(os.path.normpath(file))
        return None if code is None else slice(int(self.bounds[code]), int(self.bounds[code + 1]))

    def exact(self, file: str, start: float, end: float) -> int:
        """The position of ``file``'s window whose start and end are both within :data:`TOLERANCE` of these (the
        nearest), or -1."""
        where = self._slice(file)
        if where is None or where.start == where.stop:
            return -1
        off = np.maximum(np.abs(self.starts[where] - start), np.abs(self.ends[where] - end))
        nearest = int(np.argmin(off))
        return where.start + nearest if off[nearest] <= TOLERANCE + 1e-9 else -1

    def centred(self, file: str, start: float, end: float) -> np.ndarray:
        """The positions of ``file``'s windows whose centre lies in ``[start, end)``."""
        where = self._slice(file)
        if where is None:
            return np.zeros(0, np.int64)
        centres = (self.starts[where] + self.ends[where]) / 2
        return where.start + np.flatnonzero((centres >= start) & (centres < end))


def labels_store(db: str | os.PathLike, store: str | os.PathLike | None = None) -> Path | str | os.PathLike:
    """Where the labels of the store folder ``db`` are kept: ``store``, or by default ``db/review.sqlite``."""
    return Path(db) / REVIEW_STORE if store is None else store
