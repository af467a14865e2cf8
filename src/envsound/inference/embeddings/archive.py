"""``embed_archive``: every evaluation window of an archive and its embedding into a store folder (:mod:`.store`),
through the scan's machinery: the one listing, the local engine's decoding workers (each file cut into the windows
``predict`` scores), the journal (a second run skips the files done, a killed run resumes), an errors table.

The engine is :class:`~envsound.inference.scan.engine.LocalEngine` (or, ``engine="ray"``,
:class:`~envsound.inference.scan.ray_engine.RayEngine`) asked for the network's embedding (``network.embed``, what its
head sees) instead of probabilities; a part is committed as ``predict --out`` commits
its parts (every few seconds at first, at most every 2 minutes), or at :data:`PART_WINDOWS` windows, so a part's
embeddings stay ~100 MB at 1,000 dimensions.

A file that changed since it was embedded (its size or modification time differs from the journal's: a recorder
still writing) is embedded again, as ``predict --out`` classifies it again: its new windows go in the new part, and
every committed part from the first that holds its older rows on is written again under a new number
(:func:`_renumbered`): its windows without the changed files' (their embeddings dropped with them, ``errors`` rows
too), the window ids renumbered so that they still run 0, 1, ... over the parts in order. All of it is committed in
the new part's one journal transaction, then the old part files are removed: a crash before it leaves the old parts
and ids, after it the new, each file's windows in the store once. The windows of the parts before the first one
rewritten keep their ids; the changed files' old ids name no window any more (a later window may take the number).
"""

from __future__ import annotations

import difflib
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import atomic_open, run_lock
from envsound.inference.listing import as_inputs
from envsound.inference.predictor import Prediction, Predictor
from envsound.inference.scan.engine import (Engine, Finished, LocalEngine, default_batch_size,
                                            default_workers)
from envsound.inference.scan.engines import ENGINES
from envsound.inference.scan.handout import Handout
from envsound.inference.scan.journal import JOURNAL_NAME, Journal
from envsound.inference.scan.run import (ScanOptions, ScanSummary, _in_one_line, _model_threads,
                                        _stop_on_sigterm)
from envsound.inference.embeddings.index import INDEX_MIN_WINDOWS, faiss_or_none, update_index
from envsound.inference.embeddings.store import STORE_KIND, TABLES, EmbeddingsStore

PART_WINDOWS = 50_000  # windows a part at most: 100 MB of float16 at 1,000 dimensions


@dataclass
class StoreSummary(ScanSummary):
    """A :class:`~envsound.inference.scan.run.ScanSummary` with the ``windows`` embedded in this run, the store's
    ``total_windows`` and the embedding's ``width``."""

    windows: int = 0
    total_windows: int = 0
    width: int = 0

    def line(self) -> str:
        text = (f"{self.files} files ({self.audio_seconds / 3600:.2f} h of audio), {self.windows} windows embedded "
                f"in {self.wall_seconds:.1f} s; {self.failed} failed")
        if self.changed:
            text += f"; {self.changed} changed since the last run, embedded again"
        if self.skipped:
            text += f"; {self.skipped} already done"
        text += f"; {self.total_windows} windows in {self.out}"
        if self.total_failed:
            text += f" ({self.total_failed} failed files listed in {Path(self.out) / 'errors'})"
        return text


def embed_archive(model: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
                  out: str | os.PathLike, files_from: str | os.PathLike | None = None,
                  options: ScanOptions | None = None, **legacy) -> StoreSummary:
    """Embed every evaluation window of the files ``inputs`` name (one path or a list: files, folders at any depth,
    globs; then the lines of ``files_from``) into the store folder ``out`` (:mod:`.store`) and return what was done.

    Running it again with the same model and precision skips the files done (a killed run goes on where it
    stopped) and embeds again a file whose size or modification time changed since, its older windows dropped (see
    the module's docstring); a file that cannot be read becomes a row of ``errors`` and the others go on.
    ``options`` is how it runs, as :func:`~envsound.inference.scan.scan` takes it
    (:class:`~envsound.inference.scan.ScanOptions`: the engine, ``local`` or ``ray``, either resuming the other's
    store; decoding workers and batch size, which change the speed, never the rows; device, precision, progress, how
    often a part is committed and the per-file timeout); its fields given as keywords
    (``workers=1``) still work, with a DeprecationWarning. A store of
    :data:`~envsound.inference.embeddings.index.INDEX_MIN_WINDOWS` windows or more gets its search index brought up
    to date at the end (where faiss is installed).

    >>> summary = embed_archive("efficientat-mn04", "recordings/", out="recordings.db",
    ...                         options=ScanOptions(workers=2))
    >>> summary.total_windows

    Raises:
        CheckpointError: ``model`` is an ONNX export (no embedding output) or not a classifier.
        ConfigError: the model has no embedding (a baseline, an ensemble), ``out`` holds another model's store or
            other results, a setting out of range, an unknown engine, Ray missing or its address not answering.
    """
    started = time.monotonic()
    options = _options(options or ScanOptions(), legacy)
    engine, address, device, precision = options.engine, options.address, options.device, options.precision
    workers, batch_size = options.workers, options.batch_size
    if (workers is not None and workers < 1) or (batch_size is not None and batch_size < 1):
        raise ConfigError(f"workers and batch_size must be >= 1 (got {workers}, {batch_size})")
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is unknown; valid: {', '.join(ENGINES)}")
    if engine == "ray":  # a cluster that does not answer is said before the model loads
        from envsound.inference.scan.ray_engine import connect

        connect(address)
    if (Path(out) / JOURNAL_NAME).is_file():
        EmbeddingsStore(out)  # a results folder of predict --out is refused in these words, before the model loads
    predictor = Predictor.from_checkpoint(model, device=device, precision=precision)
    network = getattr(predictor.model, "network", None)
    if not hasattr(predictor.model, "window_embeddings"):
        raise CheckpointError(f"{model}: an ONNX export carries no embedding output; embed with the model.ckpt it "
                              "was exported from (or an AudioSet release such as efficientat-mn04)")
    if network is None or not hasattr(network, "embed"):
        raise ConfigError(f"{model}: model {predictor.model.config.model.name!r} has no embedding (a baseline or an "
                          "ensemble); embeddings come from one network")
    fingerprint = {"store": STORE_KIND, "model": predictor.source.digest, "model_file": str(predictor.source.path),
                   "precision": precision, "layer": "embed",
                   "window_seconds": predictor.features.window_seconds, "cwd": os.getcwd()}
    workers = workers or default_workers(predictor.model.runtime.accelerator)
    batch_size = batch_size or default_batch_size(predictor.model.runtime)
    if engine == "ray":
        runner = _ray_engine(predictor, address=address, device=device, batch_size=batch_size,
                             file_timeout=options.file_timeout)
    else:
        runner = _EmbeddingEngine(predictor, workers=workers, batch_size=batch_size,
                                  file_timeout=options.file_timeout)
    summary = StoreSummary(out=str(out), settings={"engine": runner.describe(), "batch_size": batch_size,
                                                   "runtime": predictor.model.runtime.describe()})
    with _in_one_line(Path(out)), run_lock(out), _model_threads(predictor, workers), _stop_on_sigterm():
        journal = Journal.open(out, fingerprint, tables=TABLES)
        try:
            summary.startup_seconds = time.monotonic() - started
            _run(runner, journal, summary, inputs=as_inputs(inputs), files_from=files_from, options=options)
            totals = journal.totals()
            summary.total_files, summary.total_failed = totals["files"], totals["failed"]
        finally:
            journal.close()
    store = EmbeddingsStore(out)
    summary.total_windows = store.windows
    if store.windows >= INDEX_MIN_WINDOWS and faiss_or_none() is not None:
        update_index(store)  # new parts added to the search index (or it built): search need not do it
    summary.wall_seconds = time.monotonic() - started
    return summary


class _FileEmbeddings:
    """One file's windows, chunk by chunk: their times (as :class:`~envsound.inference.predictor.FileScores` gives a
    window's) and embeddings (float16); what the engine asks of a file's scores."""

    def __init__(self, predictor: Predictor) -> None:
        self.features, self.step = predictor.features, predictor.step
        self.begins: list[float] = []
        self.vectors: list[np.ndarray] = []

    def add(self, offset: int, shift: int, embeddings: np.ndarray, starts: list[int]) -> None:
        rate = self.features.sample_rate
        self.begins += [(offset + start * self.step + shift) / rate for start in starts]
        self.vectors.append(np.asarray(embeddings, dtype=np.float16))

    def finish(self, name: str, read: int, *, top_k: int) -> Prediction:
        """The windows as a Prediction's ``segments`` (``start``, ``end`` in seconds, within the file)."""
        length = read / self.features.sample_rate
        window = self.features.window_seconds
        segments = []
        for begin in self.begins:
            start = round(max(begin, 0.0), 3)
            segments.append({"start": start, "end": round(max(min(begin + window, length), start), 3)})
        return Prediction(file=name, segments=segments, duration=length)

    def window_probs(self) -> np.ndarray:
        """``(n_windows, d)`` float16: the embeddings, in the order of the segments."""
        return np.concatenate(self.vectors) if self.vectors else np.zeros((0, 0), np.float16)


def _ray_engine(predictor: Predictor, *, address: str | None, device: str, batch_size: int,
                file_timeout: float | None):
    """The Ray engine with the actors asked for embeddings and each file's windows gathered as :class:`_FileEmbeddings`
    (Ray imported only here: the local engine does not need it)."""
    from envsound.inference.scan.ray_engine import RayEngine

    class _RayEmbeddingEngine(RayEngine):
        embed = True

        def _file_scores(self) -> _FileEmbeddings:
            return _FileEmbeddings(self.predictor)

    return _RayEmbeddingEngine(predictor, address=address, device=device, batch_size=batch_size, top_k=1,
                               events=False, window_scores=True, file_timeout=file_timeout)


class _EmbeddingEngine(LocalEngine):
    """The local engine with the network's embedding of each window in place of its probabilities."""

    def __init__(self, predictor: Predictor, *, workers: int, batch_size: int, file_timeout: float | None) -> None:
        super().__init__(predictor, workers=workers, batch_size=batch_size, top_k=1, events=False,
                         window_scores=True, file_timeout=file_timeout)

    def _file_scores(self) -> _FileEmbeddings:
        return _FileEmbeddings(self.predictor)

    def _probabilities(self, chunks: list) -> list[tuple]:
        embedded = self.model.window_embeddings(np.concatenate([chunk.windows for _, chunk, *_ in chunks]))
        out, at = [], 0
        for _, chunk, *_ in chunks:
            out.append((embedded[at:at + len(chunk.windows)], chunk.starts))
            at += len(chunk.windows)
        return out


@dataclass
class _Part:
    """The rows of the files finished since the last commit."""

    files: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    finished: list[tuple[str, bool, float]] = field(default_factory=list)

    def add(self, prediction: Prediction, embeddings: np.ndarray) -> None:
        segments = prediction.segments or []
        self.files += [prediction.file] * len(segments)
        self.starts += [segment["start"] for segment in segments]
        self.ends += [segment["end"] for segment in segments]
        if len(segments):
            self.vectors.append(embeddings)
        self.finished.append((prediction.file, True, prediction.duration or 0.0))

    def add_error(self, name: str, reason: str) -> None:
        self.errors.append((name, reason))
        self.finished.append((name, False, 0.0))

    def write(self, out: Path, number: int, first: int) -> None:
        """``windows``, ``embeddings`` and ``errors`` parts (those with rows), each renamed into place whole."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"part-{number:06d}"
        if self.files:
            with atomic_open(out / "embeddings" / f"{name}.npy") as fh:
                np.save(fh, np.concatenate(self.vectors).astype(np.float16, copy=False))
            table = pa.table({"window": pa.array(np.arange(first, first + len(self.files)), pa.int64()),
                              "file": pa.array(self.files, pa.string()),
                              "start": pa.array(self.starts, pa.float64()), "end": pa.array(self.ends, pa.float64())})
            with atomic_open(out / "windows" / f"{name}.parquet") as fh:
                pq.write_table(table, fh)
        if self.errors:
            table = pa.table({"file": [e[0] for e in self.errors], "error": [e[1] for e in self.errors]})
            with atomic_open(out / "errors" / f"{name}.parquet") as fh:
                pq.write_table(table, fh)


def _run(engine: Engine, journal: Journal, summary: StoreSummary, *, inputs: list, files_from,
         options: ScanOptions) -> None:
    """Embed, committing parts as they fill; on Ctrl-C or SIGTERM, commit what is finished. A changed file's older
    windows are dropped as its new ones are committed (see the module's docstring)."""
    handout = Handout(journal, inputs, files_from=files_from, progress=options.progress, watch=True)
    state = {"number": journal.next_part(), "part": _Part(), "first": EmbeddingsStore(journal.out).windows}

    def commit() -> None:
        part = state["part"]
        if not part.finished:
            return
        number = state["number"]
        names = [name for name, _, _ in part.finished]
        held = journal.parts_holding([name for name in names if name in handout.changed], besides=number)
        drop = {name for dropped in held.values() for name in dropped}
        # the committed parts, in order, from the first holding a changed file's older rows: renumbered after this one
        later = [old for old, in journal.db.execute("SELECT part FROM parts WHERE part >= ? AND part != ? ORDER BY "
                                                    "part", (min(held, default=number), number))] if held else []
        first = state["first"] - sum(_rows(journal.out, old) for old in later)
        part.write(journal.out, number, first)
        rewritten, end = _renumbered(journal.out, later, drop, number=number + 1, first=first + len(part.files))
        journal.commit(number, part.finished, stats={name: handout.stats[name] for name in names
                                                     if name in handout.stats}, rewritten=rewritten)
        # at once: a stop from here on (SIGTERM is a KeyboardInterrupt) calls commit() again on the way out, which
        # must find nothing left to write, not this part again over the renumbered ones
        state.update(number=journal.next_part(), part=_Part(), first=end)
        summary.windows += len(part.files)
        if rewritten:
            journal.remove_orphans(TABLES)  # else the next open removes them
        handout.committed(names)

    def on_file(finished: Finished) -> None:
        part = state["part"]
        if finished.error is not None:
            part.add_error(finished.name, finished.error)
        else:
            part.add(finished.prediction, finished.window_probs)
            summary.width = summary.width or int(finished.window_probs.shape[1])
        handout.count(finished)
        if handout.due() or len(part.finished) >= options.part_files or len(part.files) >= PART_WINDOWS:
            commit()

    try:
        handout.run(engine, on_file, commit=commit, summary=summary)
    finally:
        summary.changed = len(handout.changed)


def _rows(out: Path, number: int) -> int:
    """The windows of committed part ``number`` (its embeddings' rows; 0 when it holds only errors)."""
    path = out / "embeddings" / f"part-{number:06d}.npy"
    return int(np.load(path, mmap_mode="r").shape[0]) if path.exists() else 0


def _renumbered(out: Path, parts: list[int], drop: set[str], *, number: int, first: int) -> tuple[dict, int]:
    """The committed ``parts`` (in order) written again as parts ``number``, ``number + 1`` ... without the rows of
    the files ``drop``, their windows numbered on from ``first``; each file whole or absent (written under a temporary
    name and renamed; an embeddings part with no row dropped is linked, not copied). A part left with no row is not
    written. Returns ``{old part: its new number, or None}`` for :meth:`Journal.commit` and the id after the last
    window."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rewritten: dict[int, int | None] = {}
    for old in parts:
        new = number
        windows, vectors, errors = (out / table / f"part-{old:06d}{suffix}" for table, suffix in
                                    (("windows", ".parquet"), ("embeddings", ".npy"), ("errors", ".parquet")))
        kept_errors = None
        if errors.exists():
            table = pq.read_table(errors)
            kept_errors = table.filter(pc.invert(pc.is_in(table["file"], value_set=pa.array(sorted(drop),
                                                                                          pa.string()))))
        table, keep = None, None
        if windows.exists():
            table = pq.read_table(windows)
            keep = pc.invert(pc.is_in(table["file"], value_set=pa.array(sorted(drop), pa.string())))
            table = table.filter(keep)
        rows = 0 if table is None else table.num_rows
        if not rows and not (kept_errors is not None and kept_errors.num_rows):
            rewritten[old] = None
            continue
        if rows:
            ids = pa.array(np.arange(first, first + rows), pa.int64())
            with atomic_open(out / "windows" / f"part-{new:06d}.parquet") as fh:
                pq.write_table(table.set_column(table.schema.get_field_index("window"), "window", ids), fh)
            keep = keep.to_numpy(zero_copy_only=False)
            if keep.all():
                _link(vectors, out / "embeddings" / f"part-{new:06d}.npy")
            else:
                with atomic_open(out / "embeddings" / f"part-{new:06d}.npy") as fh:
                    np.save(fh, np.load(vectors)[keep])
        if kept_errors is not None and kept_errors.num_rows:
            with atomic_open(out / "errors" / f"part-{new:06d}.parquet") as fh:
                pq.write_table(kept_errors, fh)
        rewritten[old] = new
        number, first = number + 1, first + rows
    return rewritten, first


def _link(source: Path, target: Path) -> None:
    """``target`` made the same file as ``source`` (a hard link; a copy, renamed into place, where the file system
    has none: FAT, exFAT)."""
    target.unlink(missing_ok=True)  # an orphan of an interrupted commit
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, atomic_open(target) as fh:
            shutil.copyfileobj(src, fh)


def _options(options: ScanOptions, legacy: dict) -> ScanOptions:
    """``embed_archive``'s old keywords (``workers=1`` ...) into its :class:`ScanOptions`, with a DeprecationWarning;
    an unknown one is a ConfigError offering the nearest name."""
    if not legacy:
        return options
    names = [f.name for f in fields(ScanOptions)]
    unknown = sorted(set(legacy) - set(names))
    if unknown:
        near = difflib.get_close_matches(unknown[0], ["out", "files_from", "options", *names], n=1)
        hint = f" (did you mean {near[0]}=?)" if near else ""
        raise ConfigError(f"embed(): unknown keyword {unknown[0]!r}{hint}; it takes out, files_from and "
                          f"options=ScanOptions(...) ({', '.join(names)})")
    warnings.warn(f"embed({', '.join(f'{key}=' for key in legacy)}): give them as options=ScanOptions(...); the "
                  "keywords go in a later release", DeprecationWarning, stacklevel=3)
    return replace(options, **legacy)
