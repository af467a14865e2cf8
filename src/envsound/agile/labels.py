"""Labels on the windows of an embeddings store (``envsound embed MODEL INPUTS --out DB``): verdicts read from a CSV
(:func:`label`, ``envsound label DB --from CSV``), kept in the deploy store beside its tokens (``DB/review.sqlite`` by
default, a PostgreSQL URL for a team: :func:`store_of`), read back as the current verdict per window and label
(:func:`labelled`), and exported as CSV or Raven selection tables (:func:`export_labels`).

A CSV has a header and one of two forms (other columns are ignored; with both, ``file,start,end`` is used):

- ``file,start,end,label,verdict``: a row whose start and end equal a window's of that file within 0.01 s labels that
  window; any other row labels every window of that file whose centre lies in ``[start, end)``;
- ``window,label,verdict``: the window of this store with that id.

A verdict is ``yes``, ``no`` or ``unsure``; a row whose verdict is empty is not reviewed yet and is left out (a sheet
to fill in, as ``envsound check`` writes, can be given half done); a label is any name without a comma. Every verdict
given is kept, with its reviewer and the time; the current one of a window and label is the latest given, whoever gave
it. A label keeps the window's id, file, start and end, so another store of the same files finds the window by file
and times.
"""

from __future__ import annotations

import csv
import getpass
import io
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from envsound.agile.names import check_label
from envsound.deploy.schema import VERDICTS
from envsound.deploy.store import Store
from envsound.deploy.times import iso
from envsound.errors import ConfigError
from envsound.fileio import atomic_open
from envsound.inference.embeddings.store import EmbeddingsStore
from envsound.inference.scan.tables import EVENT_TABLES, RAVEN_COLUMNS, safe_relative

REVIEW_STORE = "review.sqlite"  # a store folder's own labels and tokens, when no other store is named
TOLERANCE = 0.01  # seconds: a row's start and end within this of a window's name that window
FILE_FORM = ("file", "start", "end", "label", "verdict")
WINDOW_FORM = ("window", "label", "verdict")
EXPORT_COLUMNS = ("window", "file", "start", "end", "label", "verdict", "reviewer", "given")
FORMATS = ("csv", "raven")
RAVEN_LABEL_COLUMNS = [*RAVEN_COLUMNS[:RAVEN_COLUMNS.index("Annotation") + 1], "Verdict"]


@dataclass(frozen=True)
class Verdicts:
    """The current verdicts of one label in one store: ``windows`` ``(n,)`` int64 window ids of that store, in
    increasing order, and ``verdicts`` ``(n,)`` str, each ``"yes"``, ``"no"`` or ``"unsure"``."""

    windows: np.ndarray
    verdicts: np.ndarray


@dataclass(frozen=True)
class LabelSummary:
    """What :func:`label` did: ``stored`` verdicts (a row by a file's range gives one to each window centred in it)
    from ``rows`` rows of ``source`` into ``store``; ``problems``: one line for each row refused."""

    source: str
    store: str
    rows: int
    stored: int
    problems: list[str] = field(default_factory=list)
    unanswered: int = 0

    def line(self) -> str:
        text = f"{self.stored} verdicts from {self.rows} rows of {self.source} stored in {self.store}"
        if self.unanswered:
            text += f"; {self.unanswered} rows without a verdict left out"
        if self.problems:
            text += f"; {len(self.problems)} rows refused"
        return text


def store_of(db: str | os.PathLike, store: str | os.PathLike | None = None) -> Store:
    """The store that keeps the labels (and the server's tokens) of the embeddings store folder ``db``: ``store`` (a
    path, ``sqlite:///...`` or ``postgresql://...``), or by default ``db/review.sqlite``; made when missing. The
    caller closes it.

    >>> reviews = store_of("archive.db")
    >>> reviews.labels(label="chainsaw")[-1]["verdict"]

    Raises:
        ConfigError: ``db`` is not an embeddings store; ``store`` is a URL of another database.
        StoreError: the store cannot be opened or migrated.
    """
    EmbeddingsStore(db)  # a folder that is not an embeddings store is refused in one line, before a store is made
    return Store.open(Path(db) / REVIEW_STORE if store is None else store)


def default_reviewer() -> str:
    """The operating system's user name, or ``"unknown"``: who gives labels when no reviewer is named."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):  # no USER/LOGNAME and no password entry (a container's uid)
        return "unknown"


def label(db: str | os.PathLike, source: str | os.PathLike, *, store: str | os.PathLike | None = None,
          reviewer: str | None = None) -> LabelSummary:
    """Store the verdicts of the CSV ``source`` on windows of the embeddings store ``db`` (the forms are the module's);
    rows that name no window of ``db`` or hold a bad value are each one line of the summary's ``problems`` (naming the
    CSV, its line and the problem), and the other rows are stored, in one transaction. ``store``: where labels are
    kept (:func:`store_of`); ``reviewer``: who gives them (default: the operating system's user name).

    >>> summary = label("archive.db", "reviewed.csv", reviewer="ana")
    >>> summary.stored, summary.problems

    Raises:
        ConfigError: ``db`` is not an embeddings store; the CSV cannot be read or its header is neither form; a
            reviewer's name that is empty or over 64 characters.
        StoreError: the store cannot be opened or written (nothing is stored).
    """
    embeddings = EmbeddingsStore(db)
    windows = _Windows(embeddings)
    rows, problems, read, unanswered = _read_csv(Path(source), windows, db)
    with _opened(db, store) as opened:
        stored = opened.add_labels(rows, reviewer=reviewer or default_reviewer())
        return LabelSummary(str(source), opened.shown, read, stored, problems, unanswered)


def labelled(db: str | os.PathLike, names: list[str], *,
             store: str | os.PathLike | Store | None = None) -> dict[str, Verdicts]:
    """The current verdict of each window of ``db`` labelled for each of ``names``: the latest given, whoever gave it
    (at the same time: the one stored last). A label given in another store of the same files counts for the window
    of ``db`` whose file is its file and whose start and end are within 0.01 s of its own; a label that names no window
    of ``db`` is left out. Every name is a key (a name without labels: empty arrays). ``store``: where the labels
    are (:func:`store_of`), or a :class:`Store` already opened (left open: a server opens it once).

    >>> verdicts = labelled("archive.db", ["chainsaw"])["chainsaw"]
    >>> verdicts.windows[verdicts.verdicts == "yes"]

    Raises:
        ConfigError: ``db`` is not an embeddings store.
        StoreError: the store cannot be opened or read.
    """
    names = [names] if isinstance(names, str) else names
    embeddings = EmbeddingsStore(db)
    with _opened(db, store) as opened:
        given = {name: opened.labels(label=name) for name in dict.fromkeys(names)}
    resolver = _Resolver(embeddings)
    out = {}
    for name, rows in given.items():
        current = {}
        for row, window in zip(rows, resolver.resolve(rows)):  # oldest first: a later verdict replaces an earlier
            if window >= 0:
                current[int(window)] = row["verdict"]
        ids = sorted(current)
        out[name] = Verdicts(np.array(ids, dtype=np.int64), np.array([current[i] for i in ids], dtype=str))
    return out


def export_labels(db: str | os.PathLike, out: str | os.PathLike, *, format: str = "csv", history: bool = False,
                  store: str | os.PathLike | None = None) -> Path:
    """Write the labels of ``db``'s windows to ``out`` and return it: the current verdict of each window and label
    (``history``: every verdict given, oldest first, ``window`` empty for one that names no window of ``db``).

    ``format="csv"``: one file, columns ``window,file,start,end,label,verdict,reviewer,given`` (``given`` ISO 8601
    UTC), which :func:`label` reads back. ``format="raven"``: ``out`` is a folder of Raven selection tables, one per
    audio file (``out/<file's path>.Table.1.selections.txt``, tab-separated: Raven's columns, ``Annotation`` the label,
    then ``Verdict``; ``High Freq (Hz)`` the file's Nyquist frequency, 0 when the file cannot be read). Every file is
    written whole or not at all.

    >>> export_labels("archive.db", "labels.csv")
    >>> export_labels("archive.db", "raven/", format="raven")

    Raises:
        ConfigError: ``db`` is not an embeddings store; a format other than csv and raven.
        StoreError: the store cannot be opened or read.
    """
    if format not in FORMATS:
        raise ConfigError(f"labels export format {format!r} is unknown; valid: {', '.join(FORMATS)}")
    embeddings = EmbeddingsStore(db)
    with _opened(db, store) as opened:
        rows = opened.labels()
    ids = _Resolver(embeddings).resolve(rows)
    if history:
        chosen = list(zip(rows, ids))
    else:
        current = {}
        for row, window in zip(rows, ids):
            if window >= 0:
                current[(int(window), row["label"])] = (row, window)
        chosen = sorted(current.values(), key=lambda item: (item[0]["file"], item[0]["start"], item[0]["label"]))
    out = Path(out)
    if format == "csv":
        _write_csv(out, chosen)
    else:
        _write_raven(out, chosen)
    return out


# ---------------------------------------------------------------------------------------------------------- reading

class _Windows:
    """Every window of a store as numpy arrays grouped by file: read once (pyarrow, the committed parts' ``file``,
    ``start``, ``end`` and ``window`` columns), then matched a file's slice at a time. A file's windows are
    the positions ``bounds[code]:bounds[code + 1]``; methods answer positions (``ids[position]`` is the window's id)."""

    def __init__(self, store: EmbeddingsStore) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = ["window", "file", "start", "end"]
        # `file` read as Parquet stores it, dictionary-encoded: ten million windows' paths never become strings
        tables = [pq.read_table(store.windows_path(part.number), columns=columns, read_dictionary=["file"])
                  for part in store.parts if part.rows]
        if not tables:
            tables = [pa.table({"window": pa.array([], pa.int64()),
                                "file": pa.array([], pa.string()).dictionary_encode(),
                                "start": pa.array([], pa.float64()), "end": pa.array([], pa.float64())})]
        table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
        files = table.column("file").chunk(0) if table.column("file").num_chunks else None
        self.names = files.dictionary.to_pylist() if files is not None else []
        self.code = {name: code for code, name in enumerate(self.names)}
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
        return None if code is None else slice(int(self.bounds[code]), int(self.bounds[code + 1]))

    def exact(self, file: str, start: float, end: float) -> int:
        """The position of ``file``'s window whose start and end are both within 0.01 s of these (the nearest), or
        -1."""
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


class _Resolver:
    """Stored labels -> window ids of one store: a label's own id when that window of this store has the label's
    file and times (within 0.01 s), else the window of its file and times (:meth:`_Windows.exact`), else -1. Reads
    only the parts that hold the ids, and every window only when some label was given in another store."""

    def __init__(self, store: EmbeddingsStore) -> None:
        self.store = store
        self._windows: _Windows | None = None

    def resolve(self, rows: list[dict]) -> np.ndarray:
        out = np.full(len(rows), -1, dtype=np.int64)
        ids = np.array([-1 if row["window"] is None else row["window"] for row in rows], dtype=np.int64)
        inside = np.flatnonzero((ids >= 0) & (ids < self.store.windows))
        if len(inside):
            wanted = np.unique(ids[inside])
            there = dict(zip(wanted.tolist(), self.store.rows(wanted)))
            for at in inside:
                row, window = rows[at], there[int(ids[at])]
                if (window["file"] == row["file"] and abs(window["start"] - row["start"]) <= TOLERANCE + 1e-9
                        and abs(window["end"] - row["end"]) <= TOLERANCE + 1e-9):
                    out[at] = ids[at]
        for at in np.flatnonzero(out < 0):
            if self._windows is None:
                self._windows = _Windows(self.store)
            row = rows[at]
            found = self._windows.exact(row["file"], row["start"], row["end"])
            out[at] = self._windows.ids[found] if found >= 0 else -1
        return out


def _read_csv(source: Path, windows: _Windows, db) -> tuple[list[dict], list[str], int, int]:
    """The CSV's rows as labels of ``windows`` (a row by a file's range: one for each window centred in it), a
    problem line for each row refused, the number of rows read and of those without a verdict (left out)."""
    try:
        with open(source, encoding="utf-8-sig", newline="") as fh:
            records = list(_records(fh))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the labels ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{source}: not a CSV of labels ({exc})") from None
    if not records:
        raise ConfigError(f"{source}: empty; a labels CSV starts with the header {','.join(FILE_FORM)} or "
                          f"{','.join(WINDOW_FORM)}")
    header = [name.strip().lower() for name in records[0][1]]
    if len(set(header)) == len(header) and set(FILE_FORM) <= set(header):
        form = FILE_FORM
    elif len(set(header)) == len(header) and set(WINDOW_FORM) <= set(header):
        form = WINDOW_FORM
    else:
        raise ConfigError(f"{source}:{records[0][0]}: the header must be {','.join(FILE_FORM)} or "
                          f"{','.join(WINDOW_FORM)} (got {','.join(records[0][1])[:200]})")
    where = {name: header.index(name) for name in form}
    rows, problems, read, unanswered = [], [], 0, 0
    for line, record in records[1:]:
        if not any(cell.strip() for cell in record):
            continue
        read += 1
        try:
            if len(record) != len(header):
                raise _Refused(f"{len(record)} fields where the header has {len(header)}")
            values = {name: record[at].strip() for name, at in where.items()}
            if not values["verdict"]:  # not reviewed yet: a sheet given half filled in
                unanswered += 1
                continue
            rows += _row(values, windows, db)
        except _Refused as refused:
            problems.append(f"{source}:{line}: {refused}")
    return rows, problems, read, unanswered


def _records(fh) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each record: the line it starts on."""
    reader = csv.reader(fh)
    line = 1
    for record in reader:
        yield line, record
        line = reader.line_num + 1


class _Refused(Exception):
    """A row that is not stored; its message is the problem."""


def _row(values: dict[str, str], windows: _Windows, db) -> list[dict]:
    """One CSV row's labels (a dict per window it names)."""
    name, verdict = values["label"], values["verdict"].lower()
    if not name:
        raise _Refused("an empty label")
    try:
        check_label(name)
    except ConfigError as exc:
        raise _Refused(str(exc)) from None
    if verdict not in VERDICTS:
        raise _Refused(f"verdict {values['verdict']!r} is not {', '.join(VERDICTS[:-1])} or {VERDICTS[-1]}")
    if "file" not in values:
        try:
            window = int(values["window"])
        except ValueError:
            raise _Refused(f"window {values['window']!r} is not a window id (a whole number)") from None
        found = windows.of_id(window)
        if found < 0:
            raise _Refused(f"window {window} is not in {db} (its windows are 0-{windows.count - 1})")
        return [windows.row(found, label=name, verdict=verdict)]
    file = values["file"]
    start, end = _seconds(values["start"], "start"), _seconds(values["end"], "end")
    if start >= end:
        raise _Refused(f"start {start:g} s is not before end {end:g} s")
    if not file:
        raise _Refused("an empty file name")
    if file not in windows.code:
        raise _Refused(f"no file {file} in {db}")
    found = windows.exact(file, start, end)
    positions = [found] if found >= 0 else windows.centred(file, start, end)
    if not len(positions):
        raise _Refused(f"no window of {file} in {db} is within {TOLERANCE} s of {start:g}-{end:g} s or has its "
                       f"centre in [{start:g}, {end:g})")
    return [windows.row(int(at), label=name, verdict=verdict) for at in positions]


def _seconds(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Refused(f"{name} {text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise _Refused(f"{name} {text!r} is not a number of seconds")
    return value


@contextmanager
def _opened(db, store) -> Iterator[Store]:
    """``store`` when it is an opened :class:`Store` (the caller's to close: a server's, opened once), else
    :func:`store_of`'s, closed after."""
    if isinstance(store, Store):
        yield store
        return
    opened = store_of(db, store)
    try:
        yield opened
    finally:
        opened.close()


# ---------------------------------------------------------------------------------------------------------- writing

def _write_csv(out: Path, chosen: list[tuple[dict, int]]) -> None:
    with atomic_open(out) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(EXPORT_COLUMNS)
        for row, window in chosen:
            writer.writerow(["" if window < 0 else int(window), row["file"], float(row["start"]),
                             float(row["end"]), row["label"], row["verdict"], row["reviewer"], iso(row["given"])])
        text.flush()
        text.detach()


def _write_raven(out: Path, chosen: list[tuple[dict, int]]) -> None:
    by_file: dict[str, list[dict]] = {}
    for row, _ in chosen:
        by_file.setdefault(row["file"], []).append(row)
    out.mkdir(parents=True, exist_ok=True)
    for file, rows in by_file.items():
        high = _nyquist(file)
        lines = ["\t".join(RAVEN_LABEL_COLUMNS)]
        for number, row in enumerate(sorted(rows, key=lambda r: (r["start"], r["end"], r["label"])), start=1):
            lines.append("\t".join(str(v) for v in (number, "Spectrogram 1", 1, f"{row['start']:.3f}",
                                                    f"{row['end']:.3f}", 0, f"{high:.1f}", row["label"],
                                                    row["verdict"])))
        with atomic_open(out / (safe_relative(file) + EVENT_TABLES["raven"])) as fh:
            fh.write(("\n".join(lines) + "\n").encode("utf-8"))


def _nyquist(file: str) -> float:
    import soundfile as sf

    try:
        return sf.info(file).samplerate / 2
    except (RuntimeError, OSError, ValueError):  # soundfile's LibsndfileError is a RuntimeError
        return 0.0

