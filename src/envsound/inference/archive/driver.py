"""The archive driver: one run over an archive into a folder of parts, whatever the folder holds. ``scan``'s results
tables (:class:`~envsound.inference.scan.results.ResultsSink`) and the embeddings store
(:mod:`envsound.inference.embeddings.archive`) are two :class:`Sink` s of it; the engine (:mod:`.engines`) gives the
files' rows, the sink keeps and writes them, and this module decides when and with what around it.

What it does for either: the folder's lock, its journal opened (:mod:`.journal`: resuming, the settings checked), a
full disk or a damaged journal said in one line, SIGTERM as Ctrl-C, the model's torch threads beside the decoding
workers, the names handed out (:class:`~envsound.inference.archive.handout.Handout`), and the commit loop: a part is
committed when its files wait long enough (5 s at first, then 5 % of the run's time, at most 2 minutes), or at
``part_files`` files, or at the sink's ``max_windows`` windows, and on the way out of a stop. A file that changed
since an earlier run committed it has its older rows dropped in the same commit: each committed part holding some
(and, for a sink whose rows are numbered across parts, every part after it) is written again by the sink without
them under the next free numbers, all recorded in the new part's one journal transaction, then the old part files
removed (see :mod:`.journal`).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator, Protocol

from envsound.errors import ConfigError, EnvsoundError
from envsound.fileio import disk_full, run_lock
from envsound.cores import usable_cores
from envsound.stopping import sigterm_as_interrupt
from envsound.inference.predictor import Predictor
from envsound.inference.archive.engine import Engine, Finished, default_workers
from envsound.inference.archive.engines import EngineKind
from envsound.inference.archive.handout import Handout
from envsound.inference.archive.journal import JOURNAL_NAME, Journal, Stat, damaged, damaged_message
from envsound.inference.archive.options import ScanOptions, ScanSummary

Listing = Callable[[], Iterator[str]]  # the names to do in place of a listing of inputs (an embeddings store's files)


class Sink(Protocol):
    """A folder of parts as the driver fills it: what a part accumulates, how it writes itself and how an older part
    is written again without some files' rows; the driver says when.

    Attributes:
        tables: the folder's tables (sub-folders of parts), for the journal's removal of orphans.
        max_windows: a part is committed once it holds this many windows.
        renumbers: rows are numbered across parts (a store's window ids), so rewriting a part goes on to every
            committed part after it; else only the parts holding dropped rows are written again.
        finished: the files of the part being filled: (name, done without error, seconds of audio).
    """

    tables: tuple[str, ...]
    max_windows: int
    renumbers: bool

    @property
    def finished(self) -> list[tuple[str, bool, float]]: ...

    def start(self, journal: Journal) -> None:
        """The folder is open (orphans removed): read what the sink needs of its committed parts."""

    def add(self, finished: Finished, stat: Stat | None) -> None:
        """A file's rows (or its error) into the part being filled; ``stat``: its size and time when handed out."""

    def windows(self) -> int:
        """Windows in the part being filled."""

    def size(self) -> int:
        """Bytes the part being filled takes written (0: not known), for a full disk's message."""

    def write(self, number: int, stale: list[int]) -> None:
        """The part being filled written as part ``number`` (each file whole or absent), before the committed parts
        ``stale`` are written again after it."""

    def rewrite(self, old: int, new: int, drop: set[str]) -> bool:
        """Committed part ``old`` written again as part ``new`` without the rows of the files ``drop`` (``old`` left
        for the journal to drop); False when no row is left (nothing written)."""

    def committed(self) -> None:
        """The part was committed: a new one begins."""


def run_archive(engine: Engine, sink: Sink, summary: ScanSummary, *, fingerprint: dict,
                inputs: list | Listing, files_from, options: ScanOptions, started: float,
                model_threads: int | None = None) -> ScanSummary:
    """Run ``engine`` over ``inputs`` into the folder ``summary.out`` through ``sink`` (see the module's docstring)
    and return ``summary`` with the run's counts and times.

    Args:
        fingerprint: the settings the folder's rows depend on (JSON values); a folder made with others is refused.
        inputs: entries to list (files, folders, globs), then ``files_from``'s lines; or a :data:`Listing`, names
            not watched for changes.
        options: how it runs (``progress``, ``part_files``; the engine was built from the rest).
        started: ``time.monotonic()`` when the caller began (the model's loading counts as startup).
        model_threads: the decoding workers the model's torch threads leave their cores to (None: the model does
            not run in this process beside them).

    Raises:
        ConfigError: the folder holds other results or a damaged journal.
        EnvsoundError: the folder's disk is full (one line; what was committed is kept).
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the finished files are committed.
    """
    out = Path(summary.out)
    threads = _model_threads(engine.predictor, model_threads) if model_threads else contextlib.nullcontext()
    # SIGTERM stops a run as Ctrl-C does (finished files committed)
    with _in_one_line(out), run_lock(out), threads, sigterm_as_interrupt(reason=None):
        journal = Journal.open(out, fingerprint, tables=sink.tables)
        try:
            summary.startup_seconds = time.monotonic() - started
            sink.start(journal)
            _fill(engine, journal, sink, summary, inputs=inputs, files_from=files_from, options=options)
            totals = journal.totals()
            summary.total_files, summary.total_failed = totals["files"], totals["failed"]
        finally:
            journal.close()
    summary.wall_seconds = time.monotonic() - started
    return summary


def built_engine(kind: EngineKind, predictor: Predictor, options: ScanOptions,
                 shape: dict) -> tuple[Engine, int | None]:
    """The engine of ``kind`` for ``predictor``, placed as ``options`` say (``workers`` by default
    :func:`~envsound.inference.archive.engine.default_workers`), asked for ``shape`` (see
    :class:`~envsound.inference.archive.engines.EngineKind`); and the ``model_threads`` for :func:`run_archive`."""
    workers = options.workers or default_workers(predictor.model.runtime.accelerator)
    engine = kind.build(predictor, shape, address=options.address, device=options.device, workers=workers,
                        file_timeout=options.file_timeout)
    return engine, workers if kind.model_threads else None


def run_settings(engine: Engine, batch_size: int) -> dict:
    """A summary's ``settings``: where the run ran, its batch size and the model's runtime."""
    return {"engine": engine.describe(), "batch_size": batch_size, "runtime": engine.predictor.model.runtime.describe()}


def _fill(engine: Engine, journal: Journal, sink: Sink, summary: ScanSummary, *, inputs: list | Listing, files_from,
          options: ScanOptions) -> None:
    """Run, committing parts as they fill; on Ctrl-C or SIGTERM, commit what is finished."""
    listing = inputs if callable(inputs) else None
    handout = Handout(journal, [] if listing else list(inputs), files_from=files_from, progress=options.progress,
                      listing=listing, watch=listing is None)
    state = {"number": journal.next_part(), "full": False}

    def commit() -> None:
        number = state["number"]
        if not sink.finished or state["full"]:
            return
        names = [name for name, _, _ in sink.finished]
        try:
            rewritten = _commit(journal, sink, number, handout, names)
        except (OSError, sqlite3.Error) as exc:
            if disk_full(exc) is None:
                raise
            state["full"] = True  # not tried again on the way out
            journal.remove_orphans(sink.tables)  # what this part wrote before the disk filled: uncommitted, so removed
            raise _disk_error(exc, journal.out, committed=journal.totals()["files"], need=sink.size()) from exc
        # at once: a stop from here on (SIGTERM is a KeyboardInterrupt) calls commit() again on the way out, which
        # must find nothing left to write, not this part again under its committed number
        sink.committed()
        state["number"] = journal.next_part()
        if rewritten:
            journal.remove_orphans(sink.tables)  # else the next open removes them
        handout.committed(names)

    def on_file(finished: Finished) -> None:
        sink.add(finished, handout.stats.get(finished.name))
        handout.count(finished)
        if handout.due() or len(sink.finished) >= options.part_files or sink.windows() >= sink.max_windows:
            commit()

    try:
        handout.run(engine, on_file, commit=commit, summary=summary)
    finally:
        summary.changed = len(handout.changed)


def _commit(journal: Journal, sink: Sink, number: int, handout: Handout, names: list[str]) -> dict[int, int | None]:
    """The sink's part written as part ``number``, the committed parts holding older rows of changed files among
    ``names`` written again without them under the numbers after it, all committed in one transaction. Returns
    ``{old part: its new number, or None when no row was left}``."""
    held = journal.parts_holding([name for name in names if name in handout.changed], besides=number)
    drop = {name for dropped in held.values() for name in dropped}
    stale = journal.parts_from(min(held), besides=number) if held and sink.renumbers else sorted(held)
    sink.write(number, stale)
    rewritten: dict[int, int | None] = {}
    fresh = number + 1
    for old in stale:
        rewritten[old] = fresh if sink.rewrite(old, fresh, drop) else None
        fresh += rewritten[old] is not None
    journal.commit(number, sink.finished, stats={name: handout.stats[name] for name in names
                                                 if name in handout.stats}, rewritten=rewritten)
    return rewritten


@contextlib.contextmanager
def _in_one_line(out: Path) -> Iterator[None]:
    """A full disk (before the first part: the lock, a new journal) or a journal found damaged mid-run raised as one
    line (:func:`_disk_error`) instead of a traceback."""
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
