"""The embeddings store: a folder of a scan's kind (a journal, parts written whole or not at all) holding one row per
evaluation window of every file and its embedding.

- ``journal.sqlite``: the scan's journal (:mod:`envsound.inference.archive.journal`): files done, parts committed, and
  the settings: ``store`` (``"embeddings"``), ``model`` (the model file's SHA-256), ``model_file`` (its path, which
  :func:`~envsound.inference.embeddings.search.search` loads), ``precision``, ``layer``, ``window_seconds``, ``cwd``
  (the working directory ``embed`` ran in: relative ``file`` and ``model_file`` names are relative to it); for a
  frozen network (BirdNET, YAMNet) also ``sample_rate`` and ``hop_seconds``;
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

:class:`EmbeddingsStore` is the one reader of the folder: every pass over the stored vectors goes through
:meth:`~EmbeddingsStore.chunks` (:data:`CHUNK_ROWS` rows at a time), every read of a part's window columns through
:meth:`~EmbeddingsStore.part_columns` (or :meth:`~EmbeddingsStore.rows` for some ids), names through
:meth:`~EmbeddingsStore.resolve`, and the check that a model is the network the store was embedded with through
:meth:`~EmbeddingsStore.check_network` (search, learn, check, the Review page and ``predict`` on a store).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Sequence

import numpy as np

from envsound.errors import ConfigError
from envsound.inference.archive.journal import JOURNAL_NAME, part_name

if TYPE_CHECKING:  # loaded only where a store's network runs (torch)
    import pyarrow as pa

    from envsound.inference.predictor import Predictor

STORE_KIND = "embeddings"
TABLES = ("windows", "embeddings", "errors")
CHUNK_ROWS = 65_536  # stored windows read at once: 64 Ki x 1,000 dims x 4 bytes = 256 MB of float32 at most
WINDOW_COLUMNS = ("window", "file", "start", "end")


@dataclass(frozen=True)
class StorePart:
    """One committed part: its number, its first window id and its number of windows."""

    number: int
    first: int
    rows: int


@dataclass(frozen=True)
class StoredWindow:
    """One window of a store as search, suggest and the Review page answer it: ``window`` (the store's id), ``file``
    (as ``embed`` listed it), ``start``, ``end`` (seconds in that file); each adds its own fields after these."""

    window: int
    file: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return asdict(self)


class Chunk(NamedTuple):
    """Consecutive stored windows: ``ids`` ``(n,)`` int64 window ids and ``vectors`` ``(n, d)`` float32, the
    caller's own (a copy of the memory-mapped float16 rows: it may be changed in place)."""

    ids: np.ndarray
    vectors: np.ndarray


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

    @property
    def base(self) -> Path:
        """The directory the store's relative names are relative to: the one ``embed`` ran in (``settings["cwd"]``),
        else (a store older than that setting) the folder above the store. :meth:`resolve` also looks beside the
        store, for a store moved with its recordings."""
        cwd = self.settings.get("cwd")
        return Path(cwd) if cwd else self.path.absolute().parent

    def embeddings_path(self, number: int) -> Path:
        return self.path / "embeddings" / f"{part_name(number)}.npy"

    def windows_path(self, number: int) -> Path:
        return self.path / "windows" / f"{part_name(number)}.parquet"

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
            path = self.path / "errors" / f"{part_name(part.number)}.parquet"
            if path.exists():
                rows += pq.read_table(path).to_pylist()
        return rows

    # ------------------------------------------------------------------ reading, a chunk or a part at a time

    def chunks(self, *, rows: int = CHUNK_ROWS, parts: Sequence[StorePart] | None = None,
               width: int | None = None) -> Iterator[Chunk]:
        """Every stored window in id order (of ``parts`` only, when given), ``rows`` (>= 1) at a time: the one loop over
        a store's vectors (search, suggest, check, the index), so ten million windows need one chunk's memory.

        >>> for ids, vectors in EmbeddingsStore("archive.db").chunks():
        ...     scores = vectors @ query

        Raises:
            ConfigError: a part whose vectors are not ``width``-d (when given: what the caller's query or head reads).
        """
        for part in self.parts if parts is None else parts:
            if not part.rows:
                continue
            stored = self.embeddings(part)
            if width is not None and stored.shape[1] != width:
                raise ConfigError(f"{self.path}: part {part.number} holds {stored.shape[1]}-d embeddings, not the "
                                  f"{width}-d its reader takes; embedded by another network or damaged: embed again "
                                  "into a new folder, or use the model that made it")
            for at in range(0, part.rows, max(1, rows)):
                vectors = np.asarray(stored[at:at + rows], dtype=np.float32)
                yield Chunk(np.arange(part.first + at, part.first + at + len(vectors), dtype=np.int64), vectors)

    def part_columns(self, part: StorePart, columns: Sequence[str] = WINDOW_COLUMNS, *,
                     dictionary: bool = False) -> "pa.Table":
        """The ``windows`` columns ``columns`` of one committed part, as a pyarrow table (one row a window, in id
        order); ``dictionary``: ``file`` read as Parquet stores it, dictionary-encoded (ten million windows' paths
        never become strings). The one place a part's Parquet is read."""
        import pyarrow.parquet as pq

        return pq.read_table(self.windows_path(part.number), columns=list(columns),
                             read_dictionary=["file"] if dictionary and "file" in columns else None)

    def columns(self, columns: Sequence[str] = WINDOW_COLUMNS, *, dictionary: bool = False) -> "pa.Table":
        """:meth:`part_columns` of every committed part, one table (an empty one, of the columns' types, for a store
        of no windows)."""
        import pyarrow as pa

        tables = [self.part_columns(part, columns, dictionary=dictionary) for part in self.parts if part.rows]
        if tables:
            return pa.concat_tables(tables).unify_dictionaries() if dictionary else pa.concat_tables(tables)
        file = pa.array([], pa.string())
        empty = {"window": pa.array([], pa.int64()), "file": file.dictionary_encode() if dictionary else file,
                 "start": pa.array([], pa.float64()), "end": pa.array([], pa.float64())}
        return pa.table({name: empty[name] for name in columns})

    # ------------------------------------------------------------------ the network it was embedded with

    @property
    def network_digest(self) -> str:
        """The SHA-256 of the model file the store was embedded with (``settings["model"]``)."""
        return str(self.settings.get("model"))

    def network_file(self, model: str | os.PathLike | None = None, *, needed_for: str = "this") -> Path:
        """The model file of the store's network: ``model`` when given, else the ``model_file`` it records
        (:meth:`resolve`: a relative name against the directory ``embed`` ran in); not checked by digest
        (:meth:`check_network`).

        Raises:
            ConfigError: the file is not there (``needed_for`` says what needed it).
        """
        recorded = self.settings.get("model_file")
        path = Path(model) if model is not None else self.resolve(recorded) if recorded else None
        if path is None or not path.is_file():
            raise ConfigError(f"{self.path}: its model {path} is missing; {needed_for} needs the model file the store "
                              "was embedded with (pass it, or put it back where embed found it)")
        return path

    def check_network(self, given: str | os.PathLike, *digests: str | None, fix: str) -> None:
        """Refuse a model that is not the network this store was embedded with: none of ``digests`` (the SHA-256 of
        ``given``'s file; for a learned head also the network it reads, its ``meta["trunk"]["digest"]``) is the
        store's. The one digest check of a store's model (search, learn, check, the Review page, ``predict DB``).

        Raises:
            ConfigError: ``DB: embedded by model <digest>, not the network of MODEL (<digest>); <fix>``.
        """
        known = [digest for digest in digests if digest]
        if self.network_digest not in known:
            shown = known[-1] if known else "unknown"
            raise ConfigError(f"{self.path}: embedded by model {self.network_digest[:16]}, not the network of {given} "
                              f"({shown[:16]}); {fix}")

    def network(self, model: "str | os.PathLike | Predictor | None" = None, *, device: str = "auto",
                needed_for: str = "this") -> "Predictor":
        """The store's network, loaded at the precision it was embedded at and checked by digest: ``model`` (a
        :class:`~envsound.inference.predictor.Predictor` already loaded, a server's, returned as it is; or a path),
        else the model file the store records.

        >>> predictor = EmbeddingsStore("archive.db").network(device="cpu")

        Raises:
            ConfigError: the model file is missing or is not the store's network (by SHA-256).
            CheckpointError: it cannot be loaded.
        """
        from envsound.fileio import file_digest
        from envsound.inference.predictor import Predictor

        fix = f"{needed_for} needs the model that made it"
        if isinstance(model, Predictor):
            self.check_network(model.source.path, model.source.digest, fix=fix)
            return model
        path = self.network_file(model, needed_for=needed_for)
        self.check_network(path, file_digest(path), fix=fix)
        return Predictor.from_checkpoint(path, device=device, precision=self.settings.get("precision", "auto"))
