"""``embed_archive``: every evaluation window of an archive and its embedding into a store folder (:mod:`.store`),
through the archive machinery ``predict --out`` runs on too (:mod:`envsound.inference.archive`): the one listing, the
local engine's decoding workers (each file cut into the windows ``predict`` scores), the journal (a second run skips
the files done, a killed run resumes), an errors table.

It runs on the archive driver (:mod:`envsound.inference.archive.driver`), the store being one of its sinks: the
engine named (:mod:`envsound.inference.archive.engines`: ``local``, ``ray``) is asked for the network's embedding
(``network.embed``, what its head sees) instead of probabilities; a part is committed as ``predict --out`` commits
its parts (every few seconds at first, at most every 2 minutes), or at :data:`PART_WINDOWS` windows, so a part's
embeddings stay ~100 MB at 1,000 dimensions.

A file that changed since it was embedded (its size or modification time differs from the journal's: a recorder
still writing) is embedded again, as ``predict --out`` classifies it again: its new windows go in the new part, and
every committed part from the first that holds its older rows on is written again under a new number
(:func:`_rewrite_part`): its windows without the changed files' (their embeddings dropped with them, ``errors`` rows
too), the window ids renumbered so that they still run 0, 1, ... over the parts in order. All of it is committed in
the new part's one journal transaction, then the old part files are removed: a crash before it leaves the old parts
and ids, after it the new, each file's windows in the store once. The windows of the parts before the first one
rewritten keep their ids; the changed files' old ids name no window any more (a later window may take the number).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import atomic_open
from envsound.inference.archive.driver import built_engine, run_archive, run_settings
from envsound.inference.archive.engine import Finished, default_batch_size
from envsound.inference.archive.engines import engine_kind
from envsound.inference.archive.journal import JOURNAL_NAME, Journal, Stat, other_files, part_name
from envsound.inference.archive.options import ScanOptions, ScanSummary, with_legacy
from envsound.inference.embeddings.index import INDEX_MIN_WINDOWS, faiss_or_none, update_index
from envsound.inference.embeddings.store import STORE_KIND, TABLES, EmbeddingsStore
from envsound.inference.listing import as_inputs
from envsound.inference.predictor import Prediction, Predictor
from envsound.inference.archive.frozen_copy import is_learned_head
from envsound.models.files import FROZEN, HEAD_EXPORT

PART_WINDOWS = 50_000  # windows a part at most: 100 MB of float16 at 1,000 dimensions


@dataclass
class StoreSummary(ScanSummary):
    """A :class:`~envsound.inference.archive.options.ScanSummary` with the ``windows`` embedded in this run, the store's
    ``total_windows`` and the embedding's ``width``."""

    windows: int = 0
    total_windows: int = 0
    width: int = 0

    def line(self) -> str:
        return self._line(f"{self.files} files ({self.audio_seconds / 3600:.2f} h of audio), {self.windows} windows "
                          f"embedded in {self.wall_seconds:.1f} s", done="embedded",
                          where=f"{self.total_windows} windows in {self.out}")


def embed_archive(model: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
                  out: str | os.PathLike, files_from: str | os.PathLike | None = None,
                  options: ScanOptions | None = None, **legacy) -> StoreSummary:
    """Embed every evaluation window of the files ``inputs`` name (one path or a list: files, folders at any depth,
    globs; then the lines of ``files_from``) into the store folder ``out`` (:mod:`.store`) and return what was done.

    Running it again with the same model and precision skips the files done (a killed run goes on where it
    stopped) and embeds again a file whose size or modification time changed since, its older windows dropped (see
    the module's docstring); a file that cannot be read becomes a row of ``errors`` and the others go on.
    ``options`` is how it runs, as :func:`~envsound.inference.scan.scan` takes it
    (:class:`~envsound.inference.archive.options.ScanOptions`: the engine, ``local`` or ``ray``, either resuming the
    other's store; decoding workers and batch size, which change the speed, never the rows; device, precision,
    progress, how often a part is committed and the per-file timeout); its fields given as keywords
    (``workers=1``) still work, with a DeprecationWarning. A store of
    :data:`~envsound.inference.embeddings.index.INDEX_MIN_WINDOWS` windows or more gets its search index brought up
    to date at the end (where faiss is installed).

    ``model`` may be a frozen network (``birdnet-v2.4``, ``yamnet``): LiteRT cuts and embeds each chunk's windows,
    the windows ``predict`` scores, and the store records its rate and hop too (local engine only).

    >>> summary = embed_archive("efficientat-mn04", "recordings/", out="recordings.db",
    ...                         options=ScanOptions(workers=2))
    >>> summary.total_windows

    Raises:
        CheckpointError: ``model`` is an ONNX export (no embedding output) or not a classifier.
        ConfigError: the model has no embedding (a baseline, an ensemble), ``out`` holds another model's store or
            other results, a setting out of range, an unknown engine, Ray missing or its address not answering.
    """
    started = time.monotonic()
    options = with_legacy("embed", {"options": options or ScanOptions()}, legacy,
                          also=("out", "files_from"))["options"]
    workers, batch_size = options.workers, options.batch_size
    if (workers is not None and workers < 1) or (batch_size is not None and batch_size < 1):
        raise ConfigError(f"workers and batch_size must be >= 1 (got {workers}, {batch_size})")
    kind = engine_kind(options.engine)
    if kind.connect is not None:  # a cluster that does not answer is said before the model loads
        kind.connect(options.address)
    if (Path(out) / JOURNAL_NAME).is_file():
        EmbeddingsStore(out)  # a results folder of predict --out is refused in these words, before the model loads
    predictor = Predictor.from_checkpoint(model, device=options.device, precision=options.precision)
    network = getattr(predictor.model, "network", None)
    if not hasattr(predictor.model, "window_embeddings"):
        raise CheckpointError(f"{model}: an ONNX export carries no embedding output; embed with the model.ckpt it "
                              "was exported from (or an AudioSet release such as efficientat-mn04)")
    if network is None or not hasattr(network, "embed"):
        raise ConfigError(f"{model}: model {predictor.model.config.model.name!r} has no embedding (a baseline or an "
                          "ensemble); embeddings come from one network")
    if is_learned_head(predictor.model) or predictor.source.kind == HEAD_EXPORT:
        name = predictor.model.release.name  # its windows' embeddings are the trunk's: a store of the trunk serves it
        raise ConfigError(f"{model}: a head learned over {name} embeds what {name} embeds; embed with the network "
                          f"itself (envsound embed {name} ...): search, learn and this model all read that store")
    fingerprint = {"store": STORE_KIND, "model": predictor.source.digest, "model_file": str(predictor.source.path),
                   "precision": options.precision, "layer": "embed",
                   "window_seconds": predictor.features.window_seconds, "cwd": os.getcwd()}
    if predictor.source.kind == FROZEN:  # a frozen network (BirdNET, YAMNet) is recorded by its rate and hop too
        fingerprint.update(sample_rate=predictor.features.sample_rate,
                           hop_seconds=predictor.features.eval_hop_seconds)
    batch_size = batch_size or default_batch_size(predictor.model.runtime)
    shape = {"batch_size": batch_size, "top_k": 1, "events": False, "window_scores": True, "embed": True}
    engine, threads = built_engine(kind, predictor, options, shape)
    sink = _StoreSink(out)
    summary = StoreSummary(out=str(out), settings=run_settings(engine, batch_size))
    run_archive(engine, sink, summary, fingerprint=fingerprint, inputs=as_inputs(inputs), files_from=files_from,
                options=options, started=started, model_threads=threads)
    summary.windows, summary.width = sink.written, sink.width
    store = EmbeddingsStore(out)
    summary.total_windows = store.windows
    if store.windows >= INDEX_MIN_WINDOWS and faiss_or_none() is not None:
        update_index(store)  # new parts added to the search index (or it built): search need not do it
    summary.wall_seconds = time.monotonic() - started
    return summary


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

        windows, vectors, errors = _paths(out, number)
        if self.files:
            with atomic_open(vectors) as fh:
                np.save(fh, np.concatenate(self.vectors).astype(np.float16, copy=False))
            table = pa.table({"window": pa.array(np.arange(first, first + len(self.files)), pa.int64()),
                              "file": pa.array(self.files, pa.string()),
                              "start": pa.array(self.starts, pa.float64()), "end": pa.array(self.ends, pa.float64())})
            with atomic_open(windows) as fh:
                pq.write_table(table, fh)
        if self.errors:
            table = pa.table({"file": [e[0] for e in self.errors], "error": [e[1] for e in self.errors]})
            with atomic_open(errors) as fh:
                pq.write_table(table, fh)


def _paths(out: Path, number: int) -> tuple[Path, Path, Path]:
    """Part ``number``'s ``windows``, ``embeddings`` and ``errors`` files."""
    name = part_name(number)
    return out / "windows" / f"{name}.parquet", out / "embeddings" / f"{name}.npy", out / "errors" / f"{name}.parquet"


class _StoreSink:
    """The store as the archive driver (:mod:`envsound.inference.archive.driver`) fills it: a :class:`_Part` at a time,
    its window ids running on from the parts before it; an older part written again without some files' windows has
    its ids renumbered (:func:`_rewrite_part`), so the driver rewrites every part after it too (``renumbers``)."""

    tables = TABLES
    max_windows = PART_WINDOWS
    renumbers = True

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.part = _Part()
        self.first = 0  # the id of the part's first window
        self.next = 0  # the id after the last window written (the part's, then the parts rewritten after it)
        self.written = 0  # windows committed in this run
        self.width = 0  # of the embeddings

    @property
    def finished(self) -> list[tuple[str, bool, float]]:
        return self.part.finished

    def start(self, journal: Journal) -> None:
        self.first = EmbeddingsStore(journal.out).windows

    def add(self, finished: Finished, stat: Stat | None) -> None:
        if finished.error is not None:
            self.part.add_error(finished.name, finished.error)
        else:
            self.part.add(finished.prediction, finished.window_probs)
            self.width = self.width or int(finished.window_probs.shape[1])

    def windows(self) -> int:
        return len(self.part.files)

    def size(self) -> int:
        return sum(vectors.nbytes for vectors in self.part.vectors)

    def write(self, number: int, stale: list[int]) -> None:
        first = self.first - sum(_rows(self.out, old) for old in stale)  # the stale parts' ids come after this one
        self.part.write(self.out, number, first)
        self.next = first + len(self.part.files)

    def rewrite(self, old: int, new: int, drop: set[str]) -> bool:
        rows = _rewrite_part(self.out, old, new, drop, first=self.next)
        self.next += rows or 0
        return rows is not None

    def committed(self) -> None:
        self.written += len(self.part.files)
        self.part, self.first = _Part(), self.next


def _rows(out: Path, number: int) -> int:
    """The windows of committed part ``number`` (its embeddings' rows; 0 when it holds only errors)."""
    path = _paths(out, number)[1]
    return int(np.load(path, mmap_mode="r").shape[0]) if path.exists() else 0


def _rewrite_part(out: Path, old: int, new: int, drop: set[str], *, first: int) -> int | None:
    """Committed part ``old`` written again as part ``new`` without the rows of the files ``drop``, its windows
    numbered on from ``first``; each file whole or absent (written under a temporary name and renamed; an embeddings
    part with no row dropped is linked, not copied). Returns the windows written, or None when no row (window or
    error) is left: nothing is written."""
    import pyarrow.parquet as pq

    windows, vectors, errors = _paths(out, old)
    kept_errors = None
    if errors.exists():
        table = pq.read_table(errors)
        kept_errors = table.filter(other_files(table, drop))
    table, keep = None, None
    if windows.exists():
        table = pq.read_table(windows)
        keep = other_files(table, drop)
        table = table.filter(keep)
    rows = 0 if table is None else table.num_rows
    if not rows and not (kept_errors is not None and kept_errors.num_rows):
        return None
    new_windows, new_vectors, new_errors = _paths(out, new)
    if rows:
        import pyarrow as pa

        ids = pa.array(np.arange(first, first + rows), pa.int64())
        with atomic_open(new_windows) as fh:
            pq.write_table(table.set_column(table.schema.get_field_index("window"), "window", ids), fh)
        keep = keep.to_numpy(zero_copy_only=False)
        if keep.all():
            _link(vectors, new_vectors)
        else:
            with atomic_open(new_vectors) as fh:
                np.save(fh, np.load(vectors)[keep])
    if kept_errors is not None and kept_errors.num_rows:
        with atomic_open(new_errors) as fh:
            pq.write_table(kept_errors, fh)
    return rows


def _link(source: Path, target: Path) -> None:
    """``target`` made the same file as ``source`` (a hard link; a copy, renamed into place, where the file system
    has none: FAT, exFAT)."""
    target.unlink(missing_ok=True)  # an orphan of an interrupted commit
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, atomic_open(target) as fh:
            shutil.copyfileobj(src, fh)
