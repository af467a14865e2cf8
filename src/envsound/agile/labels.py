"""Labels on the windows of an embeddings store (``envsound embed MODEL INPUTS --out DB``): verdicts read from a CSV
(:func:`label`, ``envsound label DB --from CSV``), kept in a deployment database beside its tokens
(``DB/review.sqlite`` by default, a PostgreSQL URL for a team: :func:`store_of`; the table is
:mod:`envsound.deploy.labels`'), read back as the current verdict per window and label (:func:`labelled`), and
exported as CSV or Raven selection tables (:func:`export_labels`). Matching a verdict to a window and the current
verdicts are the labelled view's (:class:`~envsound.agile.labelled.LabelledStore`).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from envsound.agile.labelled import (REVIEW_STORE, TOLERANCE, CurrentVerdicts, LabelledStore, Verdicts,
                                     WindowIndex, labels_store)
from envsound.agile.names import check_label
from envsound.deploy.schema import VERDICTS
from envsound.deploy.store import Store
from envsound.deploy.times import iso
from envsound.errors import ConfigError
from envsound.fileio import atomic_open
from envsound.inference.embeddings.store import EmbeddingsStore
from envsound.inference.scan.tables import EVENT_TABLES, RAVEN_COLUMNS, safe_relative

__all__ = ["REVIEW_STORE", "TOLERANCE", "LabelSummary", "Verdicts", "default_reviewer", "export_labels", "label",
           "labelled", "store_of"]
FILE_FORM = ("file", "start", "end", "label", "verdict")
WINDOW_FORM = ("window", "label", "verdict")
EXPORT_COLUMNS = ("window", "file", "start", "end", "label", "verdict", "reviewer", "given")
FORMATS = ("csv", "raven")
RAVEN_LABEL_COLUMNS = [*RAVEN_COLUMNS[:RAVEN_COLUMNS.index("Annotation") + 1], "Verdict"]


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
    >>> Labels(reviews).read(label="chainsaw")[-1]["verdict"]

    Raises:
        ConfigError: ``db`` is not an embeddings store; ``store`` is a URL of another database.
        StoreError: the store cannot be opened or migrated.
    """
    EmbeddingsStore(db)  # a folder that is not an embeddings store is refused in one line, before a store is made
    return Store.open(labels_store(db, store))


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
    with LabelledStore.open(db, store) as labelled:
        rows, problems, read, unanswered = _read_csv(Path(source), labelled.index, db)  # before the store is made
        stored = labelled.add(rows, reviewer=reviewer or default_reviewer())
        return LabelSummary(str(source), labelled.store.shown, read, stored, problems, unanswered)


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
    with LabelledStore.open(db, store) as labelled:
        return labelled.verdicts(names)


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
    with LabelledStore.open(db, store) as labelled:
        rows = labelled.labels.read()
        ids = labelled.match(rows)
    if history:
        chosen = list(zip(rows, ids))
    else:
        by_label: dict[str, list[int]] = {}
        for at, row in enumerate(rows):
            by_label.setdefault(row["label"], []).append(at)
        current = [item for ats in by_label.values()
                   for item in _current([rows[at] for at in ats], ids[ats])]
        chosen = sorted(current, key=lambda item: (item[0]["file"], item[0]["start"], item[0]["label"]))
    out = Path(out)
    if format == "csv":
        _write_csv(out, chosen)
    else:
        _write_raven(out, chosen)
    return out


# ---------------------------------------------------------------------------------------------------------- reading

def _read_csv(source: Path, windows: WindowIndex, db) -> tuple[list[dict], list[str], int, int]:
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


def _row(values: dict[str, str], windows: WindowIndex, db) -> list[dict]:
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


def _current(rows: list[dict], ids) -> list[tuple[dict, int]]:
    """The current verdict of one label's ``rows`` on each window (``ids``: the window each names), with its row."""
    current = CurrentVerdicts()
    current.add(rows, ids)
    return current.rows()


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

