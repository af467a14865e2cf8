"""``scan``: classify an archive into a results folder, batched, resumable, crash-safe: the results tables
(:mod:`.tables`, :mod:`.results`) filled by the archive driver (:mod:`.driver`: the journal, commits, resuming) from
the engine named (:mod:`.engines`), or from an embeddings store's stored embeddings."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterable

from envsound.errors import ConfigError
from envsound.inference.archive.driver import built_engine, run_archive, run_settings
from envsound.inference.archive.engine import default_batch_size
from envsound.inference.archive.engines import engine_kind
from envsound.inference.archive.options import ScanOptions, ScanSummary, with_legacy
from envsound.inference.file_time import time_pattern
from envsound.inference.listing import as_inputs
from envsound.inference.predictor import Predictor
from envsound.inference.scan.rank import StoredEngine, check_reads, embeddings_store_in
from envsound.inference.scan.results import ResultsSink
from envsound.inference.scan.tables import EVENT_TABLES, check_format

__all__ = ["ScanOptions", "ScanSummary", "Tables", "scan"]


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
        time_from: a regular expression with the named groups ``year``, ``month``, ``day`` (and optionally
            ``hour``, ``minute``, ``second``), searched in each file's path for its start time (``counts/``'s
            ``date``, ``time``, ``hour_of_day``); None: the AudioMoth and Wildlife Acoustics names
            (:mod:`envsound.inference.file_time`).
    """

    format: str = "parquet"
    top_k: int = 3
    events: bool = False
    window_scores: bool = False
    event_tables: tuple[str, ...] = ()
    threshold: float | None = None
    time_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_tables", tuple(dict.fromkeys(self.event_tables)))  # a list given: kept once


def scan(model: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *, out: str | os.PathLike,
         files_from: str | os.PathLike | None = None, tables: Tables = Tables(), options: ScanOptions = ScanOptions(),
         **legacy: Any) -> ScanSummary:
    """Classify every audio file ``inputs`` name (one path or a list of them: files, folders at any depth, globs;
    then the lines of ``files_from``, ``-`` for standard input, in the order of
    :func:`~envsound.inference.listing.iter_inputs`) into the results folder ``out`` and return the
    :class:`ScanSummary`. ``tables`` says what it writes (:class:`Tables`), ``options`` how it runs
    (:class:`ScanOptions`). ``inputs`` one embeddings store folder (``envsound embed``): its files are ranked from
    their stored embeddings, no audio decoded (:mod:`envsound.inference.scan.rank`).

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
    started = time.monotonic()
    values = with_legacy("scan", {"tables": tables, "options": options}, legacy, also=("out", "files_from"))
    tables, options = values["tables"], values["options"]
    fmt = check_format(tables.format)
    kind = engine_kind(options.engine)
    _check_settings(tables, options, files_from=files_from)
    store = embeddings_store_in(inputs, files_from=files_from, engine=options.engine)  # a DB: its embeddings ranked
    if kind.connect is not None:  # a cluster that does not answer is said before the model loads
        kind.connect(options.address)
    predictor = Predictor.from_checkpoint(model, device=options.device, precision=options.precision,
                                          threshold=tables.threshold)
    fingerprint = {"model": predictor.source.digest, "model_file": str(predictor.source.path),
                   "labels": predictor.labels, "task": predictor.task.to_dict(), "top_k": tables.top_k,
                   "events": tables.events, "window_scores": tables.window_scores,
                   "event_tables": list(tables.event_tables), "format": fmt, "precision": options.precision}
    if tables.time_from is not None:  # only when given: a folder made before it resumes
        fingerprint["time_from"] = tables.time_from
    batch_size = options.batch_size or default_batch_size(predictor.model.runtime)
    shape = {"batch_size": batch_size, "top_k": tables.top_k, "events": tables.events,
             "window_scores": tables.window_scores}
    if store is not None:  # its rows come from the store's float16 embeddings: not to be mixed with the audio's
        check_reads(predictor, store, model)
        fingerprint["embeddings"] = {key: store.settings.get(key) for key in ("model", "layer", "precision")}
        shape.pop("batch_size")
        engine = StoredEngine(predictor, store, **shape)
        names, threads = engine.names, None  # a store's files are ranked from its embeddings: not watched
    else:
        engine, threads = built_engine(kind, predictor, options, shape)
        names = as_inputs(inputs)
    sink = ResultsSink(out, predictor, fmt=fmt, top_k=tables.top_k, window_scores=tables.window_scores,
                       event_tables=tables.event_tables, roots=[] if store is not None else names,
                       time_from=tables.time_from)
    summary = ScanSummary(out=str(out), settings=run_settings(engine, batch_size))
    return run_archive(engine, sink, summary, fingerprint=fingerprint, inputs=names, files_from=files_from,
                       options=options, started=started, model_threads=threads)


def _check_settings(tables: Tables, options: ScanOptions, *, files_from) -> None:
    kinds, top_k, batch_size, workers = tables.event_tables, tables.top_k, options.batch_size, options.workers
    unknown = [kind for kind in kinds if kind not in EVENT_TABLES]
    if unknown:
        raise ConfigError(f"event table {unknown[0]!r} is unknown; valid: {', '.join(EVENT_TABLES)}")
    if kinds and not tables.events:
        raise ConfigError("event_tables list events: pass events=True too")
    time_pattern(tables.time_from)  # a bad expression is said before the model loads
    if top_k < 1 or (batch_size is not None and batch_size < 1) or (workers is not None and workers < 1):
        raise ConfigError(f"top_k, batch_size and workers must be >= 1 (got {top_k}, {batch_size}, {workers})")
    if options.file_timeout is not None and not options.file_timeout >= 0:  # NaN too
        raise ConfigError(f"file_timeout must be >= 0 seconds (0 or None: no limit), got {options.file_timeout}")
    if files_from is not None and os.fspath(files_from) != "-" and not os.access(files_from, os.R_OK):
        raise ConfigError(f"{files_from}: cannot read this file list (missing or not readable)")
