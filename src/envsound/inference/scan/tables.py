"""The results of a scan: tables written in parts, and per-file event tables for Raven and Audacity.

A results folder holds one sub-folder per table, each a set of parts (``files/part-000001.parquet``, ...):

- ``files``: one row per classified file: ``file``, ``duration`` (s), ``size`` (bytes) and ``mtime`` (modification
  time, float seconds since 1970-01-01 UTC, as ``os.stat`` gives it) of the file when it was classified (null when
  not known: a run over an embeddings store), ``site`` and ``start`` (where it was recorded, as in ``counts``, and when
  it began, float seconds since 1970-01-01 with the recorder's clock read as UTC, null when its name carries no time:
  :mod:`envsound.inference.file_time`), ``label`` and ``score`` (the top label by mean
  window probability; a learned detector's: only the labels the file holds, by its best window), ``label_2``, ``score_2`` ... up to ``top_k``, and for
  a multi-label model ``labels`` (every label at or above its threshold, ``;``-separated; a learned detector's: every
  label with an event or a window at or above its threshold, :meth:`~envsound.inference.predictor.FileScores.finish`);
  a model with an open-set gate adds ``rejected`` (true: none of its classes, whose ``label``, ``score`` ... are then
  the network's ranking without the gate, :attr:`~envsound.inference.predictor.Prediction.closed`; null when an older
  ONNX export cannot say);
- ``windows``: ``file``, ``start``, ``end`` (s), ``label`` (null: none of the classes), ``score`` of every evaluation
  window, and with
  ``window_scores`` one column per class, ``p:LABEL``, holding its probability;
- ``events`` (with ``events``): ``file``, ``label``, ``onset``, ``offset`` (s), ``score``;
- ``errors``: ``file``, ``error`` (a one-line reason);
- ``counts``: per file, hour of the file (``hour``, from 0: the windows starting in ``[3600 h, 3600 (h + 1))`` s)
  and class, the ``windows`` decided as that class (a multi-label model's: at or above the class's threshold; a
  single-label model's: its best class) and the ``events`` of it (as ``events/`` decodes them, counted in the hour
  their onset is in), only where there are any; ``seconds``, the audio in that hour of the file; ``per_hour`` and
  ``events_per_hour``, per hour of audio. ``events`` is null where no events were decoded: a learned detector's
  (``envsound learn``) are decoded always, any other model's only with ``events``. When and where
  (:mod:`envsound.inference.file_time`): ``site``, the file's folder under its input folder; ``time``, ``date`` and
  ``hour_of_day``, when that hour of the file begins, from the time the file's name carries (AudioMoth, Wildlife
  Acoustics, or ``time_from``; null when it carries none). And for a class whose threshold was calibrated to a
  precision, that ``precision`` with its 95 % interval (``precision_low``, ``precision_high``), ``precision_from``
  (``check``: the random sample ``envsound check`` drew at that threshold, with verdicts; else ``learn``: the
  out-of-fold calibration; :mod:`envsound.inference.checked`) and ``expected`` = windows x precision, the windows
  expected to hold the class (null otherwise).

Parquet (pyarrow) by default; CSV or JSON lines on request. Every part is written under a temporary name and renamed,
so a part is whole or absent; the journal (:mod:`envsound.inference.archive.journal`) says which parts are committed. A
file that changed after it was classified is classified again by the next run, and the parts holding its older rows are
written again without them under new numbers (:func:`rewrite_part`), so each file's rows are in the tables once.
Read them with ``pandas.read_parquet("scan/files")`` or DuckDB's ``SELECT * FROM 'scan/files/*.parquet'`` (DuckDB is
not an envsound dependency: ``pip install duckdb``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envsound.errors import ConfigError
from envsound.fileio import atomic_open
from envsound.inference.archive.journal import other_files, part_name
from envsound.inference.file_time import Places
from envsound.inference.predictor import Prediction

TABLES = ("files", "windows", "events", "errors", "counts")
FORMATS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
EVENT_TABLES = {"raven": ".Table.1.selections.txt", "audacity": ".labels.txt"}
RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Annotation", "Score"]


def check_format(name: str) -> str:
    """``name`` if it is a format a scan writes; Parquet needs pyarrow (``pip install 'envsound[scan]'``)."""
    if name not in FORMATS:
        raise ConfigError(f"results format {name!r} is unknown; valid: {', '.join(FORMATS)}")
    if name == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("Parquet results need pyarrow: pip install 'envsound[scan]', or choose the format "
                              "csv or jsonl") from None
    return name


@dataclass
class Part:
    """The rows of the files finished since the last commit, column by column (a part of 10,000 files, or of a
    10-hour file's 72,000 windows, stays small)."""

    labels: list[str]
    top_k: int
    window_scores: bool = False
    # per class, the precision counts carry (envsound.inference.checked.carried_precision)
    precision: list[dict | None] | None = None
    where: Places | None = None  # each file's site and start time (envsound.inference.file_time)
    learned: bool = False  # a learned detector's (Predictor.learned): files/' top-k names only the labels a file holds
    rejects: bool = False  # a model with an open-set gate (Predictor.rejects): files/ has a column rejected
    columns: dict[str, dict[str, list]] = field(default_factory=lambda: {name: {} for name in TABLES})
    finished: list[tuple[str, bool, float]] = field(default_factory=list)  # (file, classified, seconds of audio)
    predictions: list[Prediction] = field(default_factory=list)  # those with events, for per-file event tables

    def add(self, prediction: Prediction, window_probs: np.ndarray | None = None, *,
            stat: tuple[int, int] | None = None) -> None:
        """A classified file (``window_probs``: its windows' probabilities, with ``window_scores``; ``stat``: its size
        in bytes and modification time in ns when it was handed out, None if not known)."""
        name = prediction.file
        row = {"file": name, "duration": prediction.duration, "size": stat and stat[0],
               "mtime": stat and stat[1] / 1e9}
        if self.where is not None:  # where, and when it began: the audio by site and date (counts/ has only finds)
            row["site"], row["start"] = self.where.site(name), self.where.start(name)
        # a learned detector ranks the labels the file holds (Prediction.labels), by its best window
        ranked = prediction.labels if self.learned and prediction.labels is not None else prediction.top
        if self.rejects:  # a file the gate rejected keeps the network's closed-set top-k, said by this column
            row["rejected"] = prediction.rejected
            ranked = (prediction.closed or []) if prediction.rejected else ranked
        for rank in range(1, min(self.top_k, len(self.labels)) + 1):  # a rank the open-set gate left empty: null
            best = ranked[rank - 1] if rank <= len(ranked) else {"label": None, "score": None}
            suffix = "" if rank == 1 else f"_{rank}"
            row[f"label{suffix}"], row[f"score{suffix}"] = best["label"], best["score"]
        if prediction.labels is not None:
            row["labels"] = ";".join(item["label"] for item in prediction.labels)
        self._append("files", row)
        windows = self.columns["windows"]
        segments = prediction.segments or []
        windows.setdefault("file", []).extend([name] * len(segments))
        for key in ("start", "end", "label", "score"):
            windows.setdefault(key, []).extend(segment[key] for segment in segments)
        if self.window_scores and window_probs is not None:
            for k, label in enumerate(self.labels):
                windows.setdefault(f"p:{label}", []).extend(window_probs[:, k].round(4).tolist())
        for event in prediction.events or []:
            self._append("events", {"file": name, "label": event["label"], "onset": event["onset"],
                                    "offset": event["offset"], "score": event["score"]})
        if prediction.events is not None:
            self.predictions.append(prediction)
        self._add_counts(prediction)
        self.finished.append((name, True, prediction.duration or 0.0))

    def _add_counts(self, prediction: Prediction) -> None:
        duration = prediction.duration or 0.0
        found = prediction.event_counts
        for hour, k in sorted(set(prediction.counts or {}) | set(found or {})):
            seconds = round(max(min(3600.0, duration - 3600.0 * hour), 0.0), 3)
            windows = (prediction.counts or {}).get((hour, k), 0)
            events = None if found is None else found.get((hour, k), 0)
            known = self.precision[k] if self.precision else None
            place = self.where.at(prediction.file, hour) if self.where else {}
            self._append("counts", {
                "file": prediction.file, "site": place.get("site"), "time": place.get("time"),
                "date": place.get("date"), "hour_of_day": place.get("hour_of_day"), "hour": hour,
                "label": self.labels[k], "windows": windows, "events": events, "seconds": seconds,
                "per_hour": _per_hour(windows, seconds), "events_per_hour": _per_hour(events, seconds),
                "precision": known and known["precision"], "precision_low": known and known["low"],
                "precision_high": known and known["high"], "precision_from": known and known.get("from", "learn"),
                "expected": round(windows * known["precision"], 3) if known else None})

    def add_error(self, name: str, reason: str) -> None:
        self._append("errors", {"file": name, "error": reason})
        self.finished.append((name, False, 0.0))

    def _append(self, table: str, row: dict) -> None:
        columns = self.columns[table]
        for key, value in row.items():
            columns.setdefault(key, []).append(value)

    def rows(self, table: str) -> int:
        return len(self.columns[table].get("file", ()))

    def write(self, out: Path, number: int, fmt: str) -> None:
        """Each table's rows as ``out/TABLE/part-NNNNNN.EXT`` (tables without rows write nothing)."""
        for table in TABLES:
            if self.rows(table):
                with atomic_open(_part_path(out, table, number, fmt)) as fh:
                    _WRITERS[fmt](self.columns[table], fh)

    def size(self, fmt: str) -> int:
        """Bytes :meth:`write` takes on disk for these rows in ``fmt`` (written to memory to count them): what a full
        results disk is told it needs."""
        total = 0
        for table in TABLES:
            if self.rows(table):
                buffer = io.BytesIO()
                _WRITERS[fmt](self.columns[table], buffer)
                total += buffer.getbuffer().nbytes
        return total

    def write_event_tables(self, out: Path, kinds: tuple[str, ...], *, high_hz: float) -> None:
        """Per classified file with events: a Raven selection table and/or an Audacity label track, named after the
        file's path under ``out/raven`` and ``out/audacity``; a file without events gets none (the ``events``
        table lists every file's)."""
        for prediction in self.predictions:
            if not prediction.events:
                continue
            for kind in kinds:
                path = out / kind / (safe_relative(prediction.file) + EVENT_TABLES[kind])
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_open(path) as fh:
                    fh.write(_event_table(kind, prediction.events, high_hz).encode("utf-8"))


def _per_hour(count: int | None, seconds: float) -> float | None:
    return round(count * 3600.0 / seconds, 3) if count is not None and seconds > 0 else None


def rewrite_part(out: Path, old: int, new: int, fmt: str, drop: set[str]) -> bool:
    """Part ``old`` of every table written again as part ``new`` (under a temporary name, renamed: whole or absent)
    without the rows of the files ``drop``; part ``old`` itself is left as it is, for the journal to drop. True when
    any row is left (a table left without rows writes nothing)."""
    kept = False
    for table in TABLES:
        path = _part_path(out, table, old, fmt)
        if not path.exists():
            continue
        left = _FILTERS[fmt](path.read_bytes(), drop)
        if left is not None:
            with atomic_open(_part_path(out, table, new, fmt)) as fh:
                fh.write(left)
            kept = True
    return kept


def _part_path(out: Path, table: str, number: int, fmt: str) -> Path:
    return out / table / f"{part_name(number)}{FORMATS[fmt]}"


def _filter_parquet(data: bytes, drop: set[str]) -> bytes | None:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    table = table.filter(other_files(table, drop))
    if not table.num_rows:
        return None
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _filter_csv(data: bytes, drop: set[str]) -> bytes | None:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    column = rows[0].index("file")
    kept = [row for row in rows[1:] if row[column] not in drop]
    if not kept:
        return None
    text = io.StringIO(newline="")
    csv.writer(text).writerows([rows[0], *kept])
    return text.getvalue().encode("utf-8")


def _filter_jsonl(data: bytes, drop: set[str]) -> bytes | None:
    kept = [line for line in data.splitlines(keepends=True) if json.loads(line)["file"] not in drop]
    return b"".join(kept) or None


_FILTERS = {"parquet": _filter_parquet, "csv": _filter_csv, "jsonl": _filter_jsonl}


def safe_relative(name: str) -> str:
    """A file's name as a relative path that stays inside a folder (``/a/../b.wav`` -> ``a/__/b.wav``)."""
    parts = [("__" if part == ".." else part) for part in Path(name).parts if part not in ("/", ".", "")]
    return os.path.join(*parts) if parts else "_"


def _event_table(kind: str, events: list[dict], high_hz: float) -> str:
    if kind == "audacity":  # Audacity's label track: start, end, label, tab-separated
        return "".join(f"{e['onset']:.3f}\t{e['offset']:.3f}\t{e['label']}\n" for e in events)
    lines = ["\t".join(RAVEN_COLUMNS)]
    for number, e in enumerate(events, start=1):
        lines.append("\t".join(str(v) for v in (number, "Spectrogram 1", 1, f"{e['onset']:.3f}", f"{e['offset']:.3f}",
                                                0, f"{high_hz:.1f}", e["label"], f"{e['score']:.4f}")))
    return "\n".join(lines) + "\n"


def _write_parquet(columns: dict[str, list], fh) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # a column of nulls only (no file of the part was one of the classes) is typed as what it holds elsewhere, so
    # the parts of one table read as one dataset
    arrays = {key: pa.array(values, type=_NULL_TYPES.get(key, _NULL_TYPES.get(key.split("_")[0])))
              if all(v is None for v in values) else pa.array(values) for key, values in columns.items()}
    pq.write_table(pa.table(arrays), fh, compression="zstd")


_NULL_TYPES = {"label": "string", "score": "float64", "per": "float64", "precision": "float64",
               "expected": "float64", "size": "int64", "mtime": "float64", "start": "float64", "events": "int64",
               "events_per_hour": "float64", "site": "string", "time": "string", "date": "string",
               "hour_of_day": "int64", "precision_from": "string"}


def _write_csv(columns: dict[str, list], fh) -> None:
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    text.flush()
    text.detach()


def _write_jsonl(columns: dict[str, list], fh) -> None:
    keys = list(columns)
    for values in zip(*columns.values()):
        fh.write((json.dumps(dict(zip(keys, values))) + "\n").encode("utf-8"))


_WRITERS = {"parquet": _write_parquet, "csv": _write_csv, "jsonl": _write_jsonl}
