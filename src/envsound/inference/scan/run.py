"""``scan``: classify an archive into a results folder, batched, resumable, crash-safe (see :mod:`.tables` for the
folder, :mod:`.journal` for resuming, :mod:`.engine` for the local engine)."""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import signal
import sqlite3
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from envsound.errors import ConfigError, EnvsoundError
from envsound.fileio import disk_full, run_lock
from envsound.hardware import usable_cores
from envsound.inference.listing import as_inputs
from envsound.inference.predictor import Predictor
from envsound.inference.scan.engine import (FILE_TIMEOUT, PART_FILES, PART_WINDOWS, Engine, Finished, LocalEngine,
                                            default_batch_size, default_workers)
from envsound.inference.scan.engines import ENGINES
from envsound.inference.scan.handout import Handout
from envsound.inference.scan.journal import JOURNAL_NAME, Journal, damaged, damaged_message
from envsound.inference.scan.tables import EVENT_TABLES, TABLES, Part, check_format, rewrite_part


@dataclass
class ScanSummary:
    """What a scan did: ``files`` classified or failed in this run (``failed`` of them; ``changed`` of them done by
    an earlier run but changed since, so classified again), ``skipped`` as already done (or named twice),
    ``audio_seconds`` classified, ``wall_seconds`` of run time; ``total_files`` and ``total_failed`` over the whole
    results folder."""

    out: str
    files: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    total_files: int = 0
    total_failed: int = 0
    startup_seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    changed: int = 0

    @property
    def seconds(self) -> float:
        """Deprecated name of :attr:`audio_seconds` (it read as run time beside ``RunResult.metrics["seconds"]``)."""
        return self.audio_seconds

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio classified per second of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        """The last line a scan prints."""
        text = (f"{self.files} files ({self.audio_seconds / 3600:.2f} h of audio) in {self.wall_seconds:.1f} s, "
                f"{self.real_time_factor:.0f}x real time; {self.failed} failed")
        if self.changed:
            text += f"; {self.changed} changed since the last run, classified again"
        if self.skipped:
            text += f"; {self.skipped} already done"
        text += f"; results in {self.out}"
        if self.total_failed:
            text += f" ({self.total_failed} failed files listed in {Path(self.out) / 'errors'})"
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "real_time_factor": self.real_time_factor}


@dataclass(frozen=True)
class Tables:
    """What a scan writes: the results' shape (a results folder written with other tables is refused).

    Args:
        format: ``parquet``, ``csv`` or ``jsonl``.
        top_k: labels a file in ``files/``, >= 1.
        events: an ``events/`` table (the model's decoding, :mod:`envsound.events`).
        window_scores: every class's probability in ``windows/`` (``p:LABEL`` columns).
        event_tables: ``raven``, ``audacity``: a table per file with events (with ``events``).
        threshold: one decision threshold for every class (labels of a multi-label model, events), 0 < t < 1.
    """

    format: str = "parquet"
    top_k: int = 3
    events: bool = False
    window_scores: bool = False
    event_tables: tuple[str, ...] = ()
    threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_tables", tuple(dict.fromkeys(self.event_tables)))  # a list given: kept once


@dataclass(frozen=True)
class ScanOptions:
    """How a scan runs: where, how fast and what it shows, never which rows it writes (``precision`` excepted: it
    is part of a results folder's settings).

    Args:
        engine: ``local`` or ``ray`` (a Ray cluster at ``address``: ``auto``, ``host:port``, ``ray://...``; default
            ``RAY_ADDRESS``, else a Ray instance started for the job); either engine resumes the other's folder.
        workers: decoding processes (default: :func:`~envsound.inference.scan.engine.default_workers`), >= 1.
        batch_size: windows a forward (default :func:`~envsound.inference.scan.engine.default_batch_size`), >= 1.
        device: ``auto``, ``cpu``, ``cuda``, ``mps``, as
            :meth:`Predictor.from_checkpoint <envsound.inference.predictor.Predictor.from_checkpoint>` takes it.
        precision: ``auto`` (chosen for the machine) or as ``runtime.precision``.
        progress: a progress bar (a terminal) or a log line every few seconds.
        part_files: commit a part of the tables every this many files, or sooner (every 5 s at first, then every 5 %
            of the run's time, at most every 2 minutes): what a crash can lose.
        file_timeout: seconds a decoding worker may go without progress on one file (no data read, no CPU time, no
            windows sent) before it is ended and the file becomes an error row (a stalled network mount); a long
            file that keeps being read never trips it. Default 300, far above a spun-down disk waking or an NFS
            retransmission; ``None`` or 0: no limit. Either engine (Ray's decoding tasks go on to their next file).
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    part_files: int = PART_FILES
    file_timeout: float | None = FILE_TIMEOUT


def scan(model: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *, out: str | os.PathLike,
         files_from: str | os.PathLike | None = None, tables: Tables = Tables(), options: ScanOptions = ScanOptions(),
         **legacy: Any) -> ScanSummary:
    """Classify every audio file ``inputs`` name (one path or a list of them: files, folders at any depth, globs;
    then the lines of ``files_from``, ``-`` for standard input, in the order of
    :func:`~envsound.inference.listing.iter_inputs`) into the results folder ``out`` and return the
    :class:`ScanSummary`. ``tables`` says what it writes (:class:`Tables`), ``options`` how it runs
    (:class:`ScanOptions`). ``inputs`` one embeddings store folder (``envsound embed``): its files are ranked from
    their stored embeddings, no audio decoded (:mod:`envsound.inference.embeddings.rank`).

    Running it again with the same model and tables skips the files already done, so a killed run goes on where it
    stopped; Ctrl-C (and SIGTERM, as KeyboardInterrupt) commits the finished files before it propagates. The keywords
    of each value given to ``scan`` itself (``events=True``, ``workers=2`` ...) still work for a release, with a
    DeprecationWarning.

    >>> envsound.scan("runs/mine/model.ckpt", "archive/", out="scan", tables=Tables(events=True, format="csv"))

    Raises:
        ConfigError: a setting out of range or unknown, ``out`` holding other results, ``files_from`` unreadable, a
            Ray address that does not answer; an embeddings store embedded by another network than ``model``'s, or
            with other inputs or the Ray engine.
        CheckpointError: ``model`` is not a classifier this can run (an ONNX export, for a store).
    """
    tables, options = _with_legacy(tables, options, legacy)
    fmt, kinds, top_k, events, window_scores = (tables.format, tables.event_tables, tables.top_k, tables.events,
                                                tables.window_scores)
    engine, address, workers, batch_size = options.engine, options.address, options.workers, options.batch_size
    device, precision, progress = options.device, options.precision, options.progress
    started = time.monotonic()
    fmt = check_format(fmt)
    _check_settings(engine=engine, kinds=kinds, events=events, top_k=top_k, batch_size=batch_size, workers=workers,
                    files_from=files_from, file_timeout=options.file_timeout)
    from envsound.inference.embeddings.rank import StoredEngine, check_reads, embeddings_store_in  # (a cycle)

    store = embeddings_store_in(inputs, files_from=files_from, engine=engine)  # a DB: its embeddings are ranked
    if engine == "ray":  # a cluster that does not answer is said before the model loads
        from envsound.inference.scan.ray_engine import RayEngine, connect

        connect(address)
    predictor = Predictor.from_checkpoint(model, device=device, precision=precision, threshold=tables.threshold)
    model_path = predictor.source.path  # opened once, by the predictor
    fingerprint = {"model": predictor.source.digest, "model_file": str(model_path), "labels": predictor.labels,
                   "task": predictor.task.to_dict(), "top_k": top_k, "events": events,
                   "window_scores": window_scores, "event_tables": list(kinds), "format": fmt,
                   "precision": precision}
    if store is not None:  # its rows come from the store's float16 embeddings: not to be mixed with the audio's
        check_reads(predictor, store, model)
        fingerprint["embeddings"] = {key: store.settings.get(key) for key in ("model", "layer", "precision")}
    workers = workers or default_workers(predictor.model.runtime.accelerator)
    batch_size = batch_size or default_batch_size(predictor.model.runtime)
    shape = {"batch_size": batch_size, "top_k": top_k, "events": events, "window_scores": window_scores}
    listing = None  # the inputs' names
    if store is not None:
        stored = StoredEngine(predictor, store, top_k=top_k, events=events, window_scores=window_scores)
        runner: Engine = stored
        listing, threads = stored.names, contextlib.nullcontext()
    elif engine == "ray":
        runner = RayEngine(predictor, address=address, device=device, file_timeout=options.file_timeout, **shape)
        threads = contextlib.nullcontext()
    else:
        runner = LocalEngine(predictor, workers=workers, file_timeout=options.file_timeout, **shape)
        threads = _model_threads(predictor, workers)
    summary = ScanSummary(out=str(out), settings={"engine": runner.describe(), "batch_size": batch_size,
                                                  "runtime": predictor.model.runtime.describe()})
    with _in_one_line(Path(out)), run_lock(out), threads, _stop_on_sigterm():
        journal = Journal.open(out, fingerprint, tables=TABLES)
        try:
            summary.startup_seconds = time.monotonic() - started
            _run(runner, journal, summary, inputs=as_inputs(inputs), files_from=files_from, fmt=fmt, kinds=kinds,
                 progress=progress, part_files=options.part_files, listing=listing)
            totals = journal.totals()
            summary.total_files, summary.total_failed = totals["files"], totals["failed"]
        finally:
            journal.close()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _with_legacy(tables: Tables, options: ScanOptions, legacy: dict[str, Any]) -> tuple[Tables, ScanOptions]:
    """``scan``'s old keywords (``events=True``, ``workers=2`` ...) into its two values, with a DeprecationWarning;
    an unknown one is a ConfigError offering the nearest name."""
    if not legacy:
        return tables, options
    names = {field.name: "tables" for field in fields(Tables)} | {field.name: "options" for field in fields(ScanOptions)}
    unknown = sorted(set(legacy) - set(names))
    if unknown:
        near = difflib.get_close_matches(unknown[0], ["out", "files_from", "tables", "options", *names], n=1)
        hint = f" (did you mean {near[0]}=?)" if near else ""
        raise ConfigError(f"scan(): unknown keyword {unknown[0]!r}{hint}; it takes out, files_from, tables=Tables(...) "
                          f"({', '.join(f.name for f in fields(Tables))}) and options=ScanOptions(...) "
                          f"({', '.join(f.name for f in fields(ScanOptions))})")
    warnings.warn(f"scan({', '.join(f'{key}=' for key in legacy)}): give them as tables=Tables(...) and "
                  "options=ScanOptions(...); the keywords go in a later release", DeprecationWarning, stacklevel=3)
    tables = replace(tables, **{key: value for key, value in legacy.items() if names[key] == "tables"})
    options = replace(options, **{key: value for key, value in legacy.items() if names[key] == "options"})
    return tables, options


def _run(engine: Engine, journal: Journal, summary: ScanSummary, *, inputs: list, files_from, fmt: str,
         kinds: tuple[str, ...], progress: bool, part_files: int, listing=None) -> None:
    """Scan, committing parts as they fill; on Ctrl-C or SIGTERM, commit what is finished. ``listing()``: the names
    to scan in place of the inputs' (an embeddings store's files)."""
    predictor = engine.predictor
    # a store's files are ranked from its embeddings: a change to the audio since is not theirs
    handout = Handout(journal, inputs, files_from=files_from, progress=progress, listing=listing,
                      watch=listing is None)
    precision = predictor.expected_precision
    part = Part(labels=predictor.labels, top_k=engine.top_k, window_scores=engine.window_scores,
                precision=precision)
    state = {"number": journal.next_part(), "full": False}

    def commit() -> None:
        nonlocal part
        if not part.finished or state["full"]:
            return
        names = [name for name, _, _ in part.finished]
        try:
            part.write(journal.out, state["number"], fmt)
            if kinds:
                part.write_event_tables(journal.out, kinds, high_hz=predictor.features.sample_rate / 2)
            # the parts holding older rows of changed files, written again without them under new numbers; all
            # committed at once with this part, then the old ones removed (see the journal's docstring)
            held = journal.parts_holding([name for name in names if name in handout.changed],
                                         besides=state["number"])
            rewritten: dict[int, int | None] = {}
            fresh = state["number"] + 1
            for old, dropped in sorted(held.items()):
                rewritten[old] = fresh if rewrite_part(journal.out, old, fresh, fmt, set(dropped)) else None
                fresh += rewritten[old] is not None
            journal.commit(state["number"], part.finished, stats={name: handout.stats[name] for name in names
                                                                 if name in handout.stats}, rewritten=rewritten)
        except (OSError, sqlite3.Error) as exc:
            if disk_full(exc) is None:
                raise
            state["full"] = True  # not tried again on the way out
            journal.remove_orphans(TABLES)  # what this part wrote before the disk filled: uncommitted, so removed
            raise _disk_error(exc, journal.out, committed=journal.totals()["files"], need=part.size(fmt)) from exc
        # at once: a stop from here on (SIGTERM is a KeyboardInterrupt) calls commit() again on the way out, which
        # must find nothing left to write, not this part again under its committed number
        state["number"] = journal.next_part()
        part = Part(labels=predictor.labels, top_k=engine.top_k, window_scores=engine.window_scores,
                    precision=precision)
        if rewritten:
            journal.remove_orphans(TABLES)  # else the next open removes them
        handout.committed(names)

    def on_file(finished: Finished) -> None:
        if finished.error is not None:
            part.add_error(finished.name, finished.error)
        else:
            part.add(finished.prediction, finished.window_probs, stat=handout.stats.get(finished.name))
        handout.count(finished)
        if handout.due() or len(part.finished) >= part_files or part.rows("windows") >= PART_WINDOWS:
            commit()

    try:
        handout.run(engine, on_file, commit=commit, summary=summary)
    finally:
        summary.changed = len(handout.changed)


def _check_settings(*, engine: str, kinds: tuple[str, ...], events: bool, top_k: int, batch_size: int,
                    workers: int | None, files_from, file_timeout: float | None = None) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is unknown; valid: {', '.join(ENGINES)}")
    unknown = [kind for kind in kinds if kind not in EVENT_TABLES]
    if unknown:
        raise ConfigError(f"event table {unknown[0]!r} is unknown; valid: {', '.join(EVENT_TABLES)}")
    if kinds and not events:
        raise ConfigError("event_tables list events: pass events=True too")
    if top_k < 1 or (batch_size is not None and batch_size < 1) or (workers is not None and workers < 1):
        raise ConfigError(f"top_k, batch_size and workers must be >= 1 (got {top_k}, {batch_size}, {workers})")
    if file_timeout is not None and not file_timeout >= 0:  # NaN too
        raise ConfigError(f"file_timeout must be >= 0 seconds (0 or None: no limit), got {file_timeout}")
    if files_from is not None and os.fspath(files_from) != "-" and not os.access(files_from, os.R_OK):
        raise ConfigError(f"{files_from}: cannot read this file list (missing or not readable)")


@contextlib.contextmanager
def _in_one_line(out: Path) -> Iterator[None]:
    """A full results disk (before the first part: the lock, a new journal) or a journal found damaged mid-run
    raised as one line (:func:`_disk_error`) instead of a traceback."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        error = _disk_error(exc, out)
        if error is None:
            raise
        raise error from exc


def _disk_error(exc: BaseException, out: Path, *, committed: int = 0, need: int = 0) -> EnvsoundError | None:
    """``exc`` in one line when it is a full disk (naming the file, the free space and the ``need`` bytes of the
    part being written) or a damaged journal, else None. ``committed``: the files the journal holds."""
    if disk_full(exc) is None:
        return ConfigError(damaged_message(out, f"SQLite: {damaged(exc)}")) if damaged(exc) else None
    where = (exc.filename or out) if isinstance(exc, OSError) else out / JOURNAL_NAME
    existing = next((folder for folder in (out, *out.parents) if folder.exists()), out)  # out may be removed
    try:
        space = f"{_in_units(shutil.disk_usage(existing).free)} free there"
    except OSError:
        space = "free space unknown"
    if need:
        space += f"; the part being written needs {_in_units(need)}"
    kept = f", which goes on from the {committed} files committed so far (they are kept)" if committed else ""
    return EnvsoundError(f"{disk_full(exc)} while writing {where} ({space}): free space there and run the same scan "
                         f"again{kept}, or write to another out folder")


def _in_units(size: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1024:.0f} KB"


@contextlib.contextmanager
def _model_threads(predictor: Predictor, workers: int) -> Iterator[None]:
    """On a CPU the model gets the cores the decoding workers leave (they and it must not fight over cores)."""
    runtime = predictor.model.runtime
    if runtime.accelerator != "cpu" or not predictor.model.scores_windows:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() - workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops a scan as Ctrl-C does (finished files committed), where a handler can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
