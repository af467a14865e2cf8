"""The embeddings store: a folder of a scan's kind (a journal, parts written whole or not at all) holding one row per
evaluation window of every file and its embedding.

- ``journal.sqlite``: the scan's journal (:mod:`envsound.inference.scan.journal`): files done, parts committed, and
  the settings: ``store`` (``"embeddings"``), ``model`` (the model file's SHA-256), ``model_file`` (its path, which
  :func:`~envsound.inference.embeddings.search.search` loads), ``precision``, ``layer``, ``window_seconds``, ``cwd``
  (the working directory ``embed`` ran in: relative ``file`` and ``model_file`` names are relative to it);
- ``windows/part-NNNNNN.parquet``: ``window`` (the store's id of the window, from 0, int64), ``file`` (as the
  listing named it: the ``file`` of ``predict --out``), ``start``, ``end`` (seconds in that file);
- ``embeddings/part-NNNNNN.npy``: ``(n, d)`` float16, row ``i`` the embedding of the part's ``i``-th window;
- ``errors/part-NNNNNN.parquet``: ``file``, ``error`` (one line), for each file that could not be embedded;
- ``index.npz``: the search index of a store of 200,000 windows or more (:mod:`.index`), rebuilt when missing.

Window ids run on from one committed part to the next, so a part's first id is the number of windows in the parts
before it. A file embedded again because it changed (:mod:`.archive`) has its older windows dropped: the parts from
the first that held them on are written again under new numbers with their ids renumbered, so the ids still run
0 ... ``windows - 1`` and the ``window`` column says them; labels keep their file, start and end and find their
window again by those. The ``.npy`` parts open memory-mapped (:meth:`EmbeddingsStore.embeddings`): searching ten million
windows reads them a chunk at a time and never holds them all.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envsound.errors import ConfigError
from envsound.inference.scan.journal import JOURNAL_NAME

STORE_KIND = "embeddings"
TABLES = ("windows", "embeddings", "errors")


@dataclass(frozen=True)
class StorePart:
    """One committed part: its number, its first window id and its number of windows."""

    number: int
    first: int
    rows: int


class EmbeddingsStore:
    """A store folder opened for reading (see the module's docstring); it changes nothing in the folder.

    >>> store = EmbeddingsStore("archive.db")
    >>> store.settings["model_file"], store.windows
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        journal = self.path / JOURNAL_NAME
        if not journal.is_file():
            raise ConfigError(f"{self.path}: not an embeddings store (no {JOURNAL_NAME}); make one with "
                              "envsound embed MODEL INPUTS --out DB")
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=60)
        try:
            self.settings = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM settings")}
            numbers = [row[0] for row in db.execute("SELECT part FROM parts ORDER BY part")]
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: cannot read its {JOURNAL_NAME} ({exc})") from None
        finally:
            db.close()
        if self.settings.get("store") != STORE_KIND:
            raise ConfigError(f"{self.path}: a results folder of envsound predict --out, not an embeddings store; "
                              "make one with envsound embed MODEL INPUTS --out DB, in another folder")
        self.parts: list[StorePart] = []
        first = 0
        for number in numbers:
            path = self.embeddings_path(number)
            rows = int(np.load(path, mmap_mode="r").shape[0]) if path.exists() else 0
            self.parts.append(StorePart(number, first, rows))
            first += rows
        self.windows = first  # windows in the store

    def resolve(self, name: str) -> Path:
        """Where a file this store names is (a window's ``file``, its ``model_file``): the name as ``embed`` listed
        it, a relative one against the directory ``embed`` ran in (``settings["cwd"]``); when the file is not there
        (a store moved with its recordings) or the store is older than that setting, the folder above the store if
        the file is there; else the first of these (a missing file is named where it was looked for).

        >>> EmbeddingsStore("archive.db").resolve("recordings/a.wav")
        """
        path = Path(name)
        if path.is_absolute():
            return path
        ran_in = [Path(self.settings["cwd"]) / path] if self.settings.get("cwd") else []
        places = [*ran_in, self.path.absolute().parent / path]
        return next((place for place in places if place.exists()), ran_in[0] if ran_in else path)

    def embeddings_path(self, number: int) -> Path:
        return self.path / "embeddings" / f"part-{number:06d}.npy"

    def windows_path(self, number: int) -> Path:
        return self.path / "windows" / f"part-{number:06d}.parquet"

    def embeddings(self, part: StorePart) -> np.ndarray:
        """The part's ``(rows, d)`` float16 embeddings, memory-mapped (read-only)."""
        return np.load(self.embeddings_path(part.number), mmap_mode="r")

    def rows(self, ids: np.ndarray) -> list[dict]:
        """``{"window", "file", "start", "end"}`` of each window id in ``ids`` (in that order): from each part holding
        some, only the row groups holding them (``file`` read dictionary-encoded: a part's names are not all made
        strings)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = np.asarray(ids, dtype=np.int64)
        firsts = np.array([part.first for part in self.parts], dtype=np.int64)
        where = np.searchsorted(firsts, ids, side="right") - 1
        out: list[dict | None] = [None] * len(ids)
        for index in np.unique(where):
            part = self.parts[index]
            wanted = np.flatnonzero(where == index)
            rows = ids[wanted] - part.first
            parquet = pq.ParquetFile(self.windows_path(part.number), read_dictionary=["file"])
            sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            group_of = np.searchsorted(bounds, rows, side="right") - 1
            groups = np.unique(group_of)
            table = parquet.read_row_groups(groups.tolist(), columns=["window", "file", "start", "end"])
            # a row's place in the groups read: its offset in its group plus the rows of the groups read before it
            before = dict(zip(groups.tolist(), np.concatenate([[0], np.cumsum([sizes[g] for g in groups])[:-1]])))
            places = [int(row - bounds[g] + before[g]) for row, g in zip(rows.tolist(), group_of.tolist())]
            for at, row in zip(wanted, table.take(pa.array(places, pa.int64())).to_pylist()):
                out[at] = row
        return out  # type: ignore[return-value]

    def vectors(self, ids) -> np.ndarray:
        """``(len(ids), d)`` float32: the stored embeddings of window ids ``ids``.

        Raises:
            ConfigError: an id that is not a window of this store.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        outside = ids[(ids < 0) | (ids >= self.windows)]
        if len(outside):
            raise ConfigError(f"{self.path}: window {int(outside[0])} is not in this store (its windows are "
                              f"0-{self.windows - 1})")
        firsts = np.array([part.first for part in self.parts], dtype=np.int64)
        where = np.searchsorted(firsts, ids, side="right") - 1
        out = None
        for index in np.unique(where):  # one memory map a part, not one an id (10,000 ids: ~1 s -> ~10 ms)
            part = self.parts[index]
            wanted = np.flatnonzero(where == index)
            rows = np.asarray(self.embeddings(part)[ids[wanted] - part.first], dtype=np.float32)
            if out is None:
                out = np.empty((len(ids), rows.shape[1]), np.float32)
            out[wanted] = rows
        return out if out is not None else np.zeros((0, 0), np.float32)

    def errors(self) -> list[dict]:
        """``{"file", "error"}`` of every file the store could not embed."""
        import pyarrow.parquet as pq

        rows = []
        for part in self.parts:
            path = self.path / "errors" / f"part-{part.number:06d}.parquet"
            if path.exists():
                rows += pq.read_table(path).to_pylist()
        return rows
