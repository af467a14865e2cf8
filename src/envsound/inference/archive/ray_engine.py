"""The Ray engine of a scan: the same results folder as the local engine, from a Ray cluster.

Ray Data does the distributing: the names not yet done are handed over in groups (``GROUP_FILES`` at a time, so a
list of millions is never held whole); CPU tasks decode each file into its windows (the very
:func:`~envsound.inference.archive.decode.decode_file` of the local engine), a pool of actors, one model each (a GPU
each where the cluster has them), scores them in batches, and the driver, this process, gathers each file's
windows (:class:`~envsound.inference.predictor.FileScores`) and hands the finished files to the same parts and
journal as the local engine. A file is finished when every window of every chunk is back, counted from the rows
themselves, so a task Ray retries after a worker died may send a row twice: the second copy is dropped.

Every model the local engine runs, runs here with the same rows: an envsound checkpoint, an AudioSet release file or
its installed name (resolved on the driver, so ``ENVSOUND_MODELS`` need not be set on the workers), an exported
``.onnx``, a frozen network (``birdnet-v2.4``, ``yamnet``) or a head learned over one. Each actor opens the very file
the driver opened (:class:`_ModelCopy`: its bytes, kind and, for a release file or a frozen network, the label names
the driver read; for a learned head, its trunk's bytes too) through
:meth:`~envsound.inference.predictor.Predictor.from_checkpoint` (a frozen network: :mod:`.frozen_copy`), on
``device`` at the precision the driver chose (``runtime.precision`` of its model); the model file need not be on the
workers. LiteRT runs on the CPU: a frozen network gets no GPU, and one actor of one LiteRT thread per CPU it is
given (:func:`~envsound.inference.archive.frozen_copy.litert_actors`). A model that scores feature windows (a
checkpoint) gets them from the decoding tasks, a row each; one that cuts its own (an ``.onnx``, a frozen network)
gets each chunk's waveform, a row a chunk, and gives back a row a window. The audio must
be readable at the same path on every node (a shared file system), the results folder only on the driver.
``envsound embed --engine ray`` (:func:`~envsound.inference.embeddings.embed_archive`) asks the actors for each window's
embedding in place of its probabilities (:attr:`RayEngine.embed`), float16 as the store keeps them.

A read that never returns (a stalled network mount) is caught as the local engine catches it, by time without
progress on one file (``file_timeout``): a decoding task decodes each file in a thread of its own and counts as
progress each chunk it hands over and the growth of that thread's CPU time or bytes read (``/proc``); after
``file_timeout`` seconds without any, the file is an error row at once (no retry) and the task goes on to its next
file. The thread is left behind: see :func:`_decoded_in_a_thread`.
"""

from __future__ import annotations

import csv
import logging
import os
import queue
import socket
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from envsound.errors import ConfigError, EnvsoundError
from envsound.inference.archive.decode import Chunk, DecodeJob, decode_file
from envsound.inference.archive.embedding import FileEmbeddings
from envsound.inference.archive.engine import FILE_TIMEOUT, Finished, proc_activity, put_until
from envsound.inference.archive.frozen_copy import (is_frozen, is_learned_head, litert_actors, open_export, open_frozen,
                                                    open_learned, spec_files, trunk_bytes, trunk_path)
from envsound.inference.predictor import FileScores, Predictor
from envsound.models.files import FROZEN, HEAD_EXPORT, RELEASE
from envsound.models.frozen_head import export_files
from envsound.models.releases import LABELS_FILE

log = logging.getLogger(__name__)
GROUP_FILES = 10_000  # names handed to Ray Data at a time
DECODE_MEMORY = 512 * 2**20
FILES_A_TASK = 8


def connect(address: str | None):
    """``ray.init`` at ``address`` (``auto``, ``ray://...``, ``host:port``; ``None``: ``RAY_ADDRESS``, else a Ray
    instance started for the job on this machine). Raises ConfigError when Ray is missing or the address does not
    answer."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install 'envsound[cluster]'") from None
    address = address or os.environ.get("RAY_ADDRESS") or None
    _check_answers(address)
    if ray.is_initialized():
        return ray
    # Ray's notice that a local instance has token authentication on reads as an error among the scan's lines; a
    # real authentication problem still raises below
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)

    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ... here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Ray cluster at {address or 'a new local instance'} cannot be used: {reason}") from None
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines at each dataset's start and end
    context = DataContext.get_current()
    context.enable_progress_bars = False  # the scan's own progress says files, hours and x real time
    return ray


def _check_answers(address: str | None, *, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) that refuses a TCP connection is refused at once: ``ray.init`` would
    retry it for minutes."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"Ray cluster at {address} does not answer ({exc.strerror or exc}); start it with "
                          "'ray start --head' or check the address") from None


@dataclass(frozen=True)
class _ModelCopy:
    """The model file the driver opened, for an actor to open the same way: its name, kind and bytes; for a release
    file or a frozen network the label names the driver read (beside the file or in its models folder: a worker may
    have neither); for a head learned over a frozen network, its trunk's bytes (:mod:`.frozen_copy`)."""

    name: str
    kind: str
    data: bytes
    labels: tuple[str, ...] = ()
    trunk: bytes = b""
    beside: tuple[tuple[str, bytes], ...] = ()  # an exported head's other files (its head and trunk), by name

    @classmethod
    def of(cls, predictor: Predictor) -> "_ModelCopy":
        source = predictor.source
        if source is None:
            raise ConfigError("the Ray engine runs a model opened from its file (Predictor.from_checkpoint)")
        if source.kind == HEAD_EXPORT:  # a folder: its manifest (source.path) and the files the manifest pins
            return cls(name=source.path.name, kind=source.kind, data=source.path.read_bytes(),
                       beside=tuple((path.name, path.read_bytes()) for path in export_files(source.path)))
        learned = is_learned_head(predictor.model)
        spec = spec_files(trunk_path(predictor.model) if learned else source.path) if learned or \
            source.kind == FROZEN else ()  # a spec member's resolved spec goes with its copy
        return cls(name=source.path.name, kind=source.kind, data=source.path.read_bytes(),
                   labels=tuple(predictor.labels) if source.kind in (RELEASE, FROZEN) else (),
                   trunk=trunk_bytes(predictor.model) if learned else b"", beside=spec)

    def open(self, *, device: str, precision: str, embed: bool = False) -> Predictor:
        """The :class:`~envsound.inference.predictor.Predictor` the driver built, built again here (``embed``: a
        frozen network's embedding interpreter opened too, while its file is here)."""
        with tempfile.TemporaryDirectory(prefix="envsound-model-") as folder:
            path = Path(folder) / self.name
            path.write_bytes(self.data)
            for name, data in self.beside:
                (path.parent / name).write_bytes(data)
            if self.kind == FROZEN:
                return Predictor(open_frozen(path, list(self.labels), embed=embed))
            if self.trunk:
                return Predictor(open_learned(path, self.trunk))
            if self.kind == HEAD_EXPORT:  # as a learned head: one interpreter of one thread an actor
                return Predictor(open_export(path))
            if self.kind == RELEASE:
                with (path.parent / LABELS_FILE).open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["index", "mid", "display_name"])
                    writer.writerows([i, "", label] for i, label in enumerate(self.labels))
            return Predictor.from_checkpoint(path, device=device, precision=precision)


class RayEngine:
    """Runs :meth:`run` on a Ray cluster; see the module's docstring. ``device``: where the actors run the model
    (``auto``: a GPU each where the cluster has them, else the CPU; ``cpu``: the CPU even so); ``file_timeout``:
    seconds without progress on one file before it is an error row (``None`` or 0: no limit), as the local engine's."""

    def __init__(self, predictor: Predictor, *, address: str | None, device: str = "auto", batch_size: int,
                 top_k: int, events: bool, window_scores: bool, file_timeout: float | None = FILE_TIMEOUT,
                 embed: bool = False) -> None:
        self.predictor = predictor
        self.embed = embed
        self.file_timeout = file_timeout or None
        self.top_k, self.events, self.window_scores = top_k, events, window_scores
        self.frames = events and predictor.has_frames
        self.batch_size = batch_size
        self.device = device
        self.ray = connect(address)
        self.by_windows = predictor.model.scores_windows  # else a row a chunk: the model cuts its own windows
        self.job = DecodeJob.of(predictor, windows=self.by_windows)
        self.model_ref = self.ray.put(_ModelCopy.of(predictor))  # in a list below: the actor gets it itself
        resources = self.ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        # an actor's batch: windows, or waveform chunks (FILES_A_TASK, a decoding task's worth)
        self.actor_batch = batch_size if self.by_windows else FILES_A_TASK
        if is_frozen(predictor.model):  # LiteRT runs on the CPU, a window at a time: an actor, a thread, a CPU each
            self.gpus, self.actors = 0, litert_actors(cpus)
            # a chunk at a time: a chunk is up to a minute of windows (BirdNET 20, 0.6 s of work), and an actor waiting
            # for 8 chunks of 48-kHz audio (11.5 MB each) stalled 20 s in 34 s where Ray's object store held fewer
            # (300 MB; 14 s a chunk at a time, 12 clips of 60 s, 2 CPUs)
            self.actor_batch = 1
        else:
            self.gpus = 0 if device == "cpu" else int(resources.get("GPU", 0))
            self.actors = self.gpus or max(1, cpus // 4)

    def describe(self) -> str:
        kind = f"{self.gpus} GPU actor(s)" if self.gpus else f"{self.actors} CPU actor(s)"
        limit = f", {self.file_timeout:g} s per file without progress" if self.file_timeout else ""
        return f"Ray {self.ray.__version__}, {int(self.ray.cluster_resources().get('CPU', 0))} CPUs, {kind}{limit}"

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Scan every name ``names`` yields, group by group, calling ``on_file`` as each file finishes."""
        first_id = 0
        while not stop.is_set():
            group = list(islice(names, GROUP_FILES))
            if not group:
                return
            self._run_group({first_id + i: name for i, name in enumerate(group)}, on_file, stop)
            first_id += len(group)

    def _file_scores(self):
        """What gathers one file's windows (``add``, ``finish``, ``window_probs``): scores, or with ``embed`` the
        embeddings."""
        if self.embed:
            return FileEmbeddings(self.predictor)
        return FileScores(self.predictor, segments=True, events=self.events, window_scores=self.window_scores)

    def _run_group(self, files: dict[int, str], on_file, stop: threading.Event) -> None:
        ray = self.ray
        items = [{"file_id": file_id, "file": name} for file_id, name in files.items()]
        # a decoding task takes a block of FILES_A_TASK files: one task a 5-s clip spent more time in Ray than decoding
        dataset = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // FILES_A_TASK)))
        # Ray Data's defaults retry a task whose worker died, and restart a dead actor and retry its batch, forever.
        # The decoding tasks state their memory (a minute of audio and its windows, torch): besides being true, the
        # differing resources keep Ray Data from fusing them into the actors, where they would not run in parallel.
        decoded = dataset.map_batches(_decode_rows, batch_size=None,
                                      fn_kwargs={"job": self.job, "file_timeout": self.file_timeout}, num_cpus=1,
                                      memory=DECODE_MEMORY)
        precision = str(self.predictor.model.runtime.precision)
        scored = decoded.map_batches(
            _Scorer, batch_size=self.actor_batch,
            compute=ray.data.ActorPoolStrategy(size=self.actors), num_gpus=1 if self.gpus else 0,
            num_cpus=0 if self.gpus else 1,
            fn_constructor_kwargs={"model": [self.model_ref], "device": self.device, "precision": precision,
                                   "frames": self.frames, "batch_size": self.batch_size, "embed": self.embed})
        gathering = _Gathering(self, files, on_file)
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            if stop.is_set():
                return
            gathering.add(batch)
        gathering.check_done()


@dataclass(frozen=True)
class _Window:
    """One scored window as it comes back: its chunk's ``offset`` and ``shift``, its ``start`` within the chunk, its
    probabilities ``(K,)`` and (a frame model, with events) its frames' ``(steps, K)``."""

    offset: int
    shift: int
    start: int
    probs: np.ndarray
    frames: np.ndarray | None


class _Gathering:
    """The rows of a group's files coming back in any order -> each file's Prediction once all of its are in."""

    def __init__(self, engine: RayEngine, files: dict[int, str], on_file) -> None:
        self.engine, self.files, self.on_file = engine, files, on_file
        self.rows: dict[int, dict[tuple[int, int], _Window]] = defaultdict(dict)  # file -> (chunk, index) -> row
        self.expected: dict[int, dict[int, int]] = defaultdict(dict)  # file -> chunk -> its windows
        self.chunks: dict[int, int] = {}  # file -> its number of chunks, once its last chunk is seen
        self.read: dict[int, int] = defaultdict(int)  # file -> samples read, as far as its rows say

    def add(self, batch: dict[str, np.ndarray]) -> None:
        frames = batch.get("frames")
        for i, file_id in enumerate(batch["file_id"].tolist()):
            if file_id not in self.files:
                continue  # a copy of a row of a file already finished (a retried task)
            error = str(batch["error"][i])
            if error:  # the rows of its chunks that came before are dropped with it
                for held in (self.rows, self.expected, self.chunks, self.read):
                    held.pop(file_id, None)
                self.on_file(Finished(self.files.pop(file_id), error=error))
                continue
            chunk = int(batch["chunk"][i])
            self.expected[file_id][chunk] = int(batch["chunk_windows"][i])
            if batch["last"][i]:
                self.chunks[file_id] = chunk + 1
            self.read[file_id] = max(self.read[file_id], int(batch["read"][i]))
            if batch["chunk_windows"][i] == 0:  # a chunk of no window (its one row says so): nothing to keep
                self._finish_if_complete(file_id)
                continue
            self.rows[file_id][(chunk, int(batch["index"][i]))] = _Window(
                int(batch["offset"][i]), int(batch["shift"][i]), int(batch["start"][i]), batch["probs"][i],
                None if frames is None else frames[i])
            self._finish_if_complete(file_id)

    def _finish_if_complete(self, file_id: int) -> None:
        chunks = self.chunks.get(file_id)
        expected = self.expected[file_id]
        if chunks is None or len(expected) < chunks or len(self.rows[file_id]) < sum(expected.values()):
            return
        engine = self.engine
        scores = engine._file_scores()
        rows = self.rows.pop(file_id)
        for chunk in range(chunks):
            mine = [rows[(chunk, index)] for index in range(expected[chunk])]
            if not mine:
                continue
            probs = np.stack([window.probs for window in mine])
            framed = (np.stack([window.frames for window in mine]),) if engine.frames else ()
            scores.add(mine[0].offset, mine[0].shift, probs, [window.start for window in mine], *framed)
        read = self.read.pop(file_id)
        del self.expected[file_id], self.chunks[file_id]
        prediction = scores.finish(self.files.pop(file_id), read, top_k=engine.top_k)
        self.on_file(Finished(prediction.file, prediction, scores.window_probs() if engine.window_scores else None))

    def check_done(self) -> None:
        """Every file of the group has come back (Ray Data returns every row, or raises)."""
        if self.files:
            raise EnvsoundError(f"the Ray engine lost {len(self.files)} file(s) of a group, e.g. "
                                f"{next(iter(self.files.values()))}; run the same command again to scan them")


def _decode_rows(batch: dict[str, np.ndarray], *, job: DecodeJob,
                 file_timeout: float | None = None) -> Iterator[dict[str, np.ndarray]]:
    """A Ray Data task: each file of ``batch`` -> one batch of rows per chunk (a window each, or with
    ``job.windows`` False the chunk's waveform in one row), or one error row (among them a file with no progress for
    ``file_timeout`` seconds, :func:`_decoded_in_a_thread`; ``None``: no limit)."""
    frontend = None
    if job.windows:
        import torch

        from envsound.features.parallel import frontend_for

        torch.set_num_threads(1)
        frontend = frontend_for(job.features)
    for file_id, path in zip(batch["file_id"].tolist(), batch["file"].tolist()):
        held = None  # each chunk is given out once the next one (or the end) says whether it is the last
        try:
            chunks = _decoded_in_a_thread(job, path, frontend, file_timeout) if file_timeout else \
                decode_file(job, path, frontend)
            for chunk_number, (read, chunk) in enumerate(chunks):
                if held is not None:
                    yield _chunk_rows(file_id, *held, last=False)
                held = (chunk_number, read, chunk)
            yield _chunk_rows(file_id, *held, last=True)
        except _Stalled as exc:  # no retry: the mount that stalled would stall the next task too
            yield _error_row(file_id, f"{path}: no data for {exc.seconds:g} s while reading it (a stalled mount?); "
                                      "its decoding task went on to its next file and the scan went on; check the "
                                      "disk or network mount it is on, or allow more time (file_timeout, "
                                      "--file-timeout; 0: no limit)", job)
        except EnvsoundError as exc:
            yield _error_row(file_id, str(exc), job)
        except Exception as exc:  # noqa: BLE001 - one file's surprise must not end the job
            yield _error_row(file_id, f"{path}: {type(exc).__name__}: {exc}", job)


class _Stalled(Exception):
    """No progress on a file for ``seconds``: see :func:`_decoded_in_a_thread`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no progress for {seconds:g} s")
        self.seconds = seconds


def _decoded_in_a_thread(job: DecodeJob, path: str, frontend, timeout: float) -> Iterator[tuple[int, Chunk]]:
    """:func:`~envsound.inference.archive.decode.decode_file` of ``path``, decoded in a daemon thread that hands each
    chunk over (two ahead at most); raises :class:`_Stalled` once the thread shows no progress for ``timeout``
    seconds: no chunk handed over, and neither its CPU time nor its bytes read grown (the first pass over a long MP3
    hands over nothing for a while). Time spent by the caller between chunks (Ray consuming the rows) never counts.

    A thread blocked in the kernel (a read on a hung mount) cannot be ended from Python, nor this Ray worker process
    killed for it (it runs other tasks): the thread is left behind, told to stop, and ends when its read returns (at
    most one chunk later, which may use ``frontend`` beside the next file's thread: a stateless module)."""
    handed: queue.Queue = queue.Queue(maxsize=2)
    abandoned = threading.Event()
    thread = threading.Thread(target=_decode_into, args=(job, path, frontend, handed, abandoned), daemon=True,
                              name="envsound-decode-file")
    thread.start()
    try:
        activity, moved = _thread_activity(thread.native_id), time.monotonic()
        while True:
            try:
                kind, item = handed.get(timeout=min(1.0, timeout / 4))
            except queue.Empty:
                now, seen = time.monotonic(), _thread_activity(thread.native_id)
                if seen != activity:
                    activity, moved = seen, now
                elif now - moved >= timeout:
                    raise _Stalled(timeout) from None
                continue
            if kind == "error":
                raise item
            if kind == "end":
                return
            yield item
            moved = time.monotonic()
    finally:
        abandoned.set()


def _decode_into(job: DecodeJob, path: str, frontend, handed: queue.Queue, abandoned: threading.Event) -> None:
    """The thread of :func:`_decoded_in_a_thread`: ``("chunk", (read, Chunk))`` for each chunk, then ``("end",
    None)``, or ``("error", exception)``; it stops once ``abandoned`` is set."""
    def hand(message) -> bool:
        return put_until(handed, message, abandoned)

    try:
        for item in decode_file(job, path, frontend):
            if abandoned.is_set() or not hand(("chunk", item)):
                return
        hand(("end", None))
    except Exception as exc:  # noqa: BLE001 - raised again in the task's thread
        hand(("error", exc))


def _thread_activity(tid: int | None) -> tuple | None:
    """A thread's CPU time (clock ticks) and bytes read, from ``/proc/self/task/<tid>``; None where they cannot be
    read (not Linux): then only the chunks handed over count as progress."""
    return None if tid is None else proc_activity(f"/proc/self/task/{tid}")


def _chunk_rows(file_id: int, chunk_number: int, read: int, chunk: Chunk, *, last: bool) -> dict[str, np.ndarray]:
    """A chunk's rows: a window each (``start``, ``windows``), or a waveform chunk in one row (``samples`` as float32
    bytes, ``before``, -1 for all); ``chunk_windows`` counts the rows of the chunk the scorer gives back."""
    n = len(chunk.windows) if chunk.windows is not None else 1
    rows = {"file_id": np.full(n, file_id, np.int64), "chunk": np.full(n, chunk_number, np.int32),
            "index": np.arange(n, dtype=np.int32), "chunk_windows": np.full(n, n, np.int32),
            "last": np.full(n, last), "offset": np.full(n, chunk.offset, np.int64),
            "shift": np.full(n, chunk.shift, np.int64), "read": np.full(n, read, np.int64),
            "error": np.full(n, "", dtype=object)}
    if chunk.windows is not None:
        rows["start"] = np.asarray(chunk.starts, np.int64)
        rows["windows"] = np.ascontiguousarray(chunk.windows, np.float32)
    else:
        rows["before"] = np.full(1, -1 if chunk.before is None else chunk.before, np.int64)
        rows["samples"] = np.asarray([np.asarray(chunk.samples, np.float32).tobytes()], dtype=object)
    return rows


def _error_row(file_id: int, reason: str, job: DecodeJob) -> dict[str, np.ndarray]:
    """A row saying ``reason``, with the columns of the rows of ``job``'s chunks."""
    if job.windows:
        from envsound.models.clip import window_shape

        chunk = Chunk(0, 0, windows=np.zeros((1, *window_shape(job.features)), np.float32), starts=[0])
    else:
        chunk = Chunk(0, 0, samples=np.zeros(0, np.float32))
    row = _chunk_rows(file_id, 0, 0, chunk, last=True)
    row["error"] = np.asarray([reason], dtype=object)
    return row


class _Scorer:
    """A Ray Data actor: the driver's model (:class:`_ModelCopy`), opened once; windows -> probabilities, or a model
    that cuts its own windows: chunks -> a row a window; ``embed``: each window's embedding (float16) in place of its
    probabilities. ``model`` is ``[ObjectRef]``: a reference inside a list is not resolved by Ray, so the
    constructor's arguments stay small and a restarted actor fetches the model again from the driver's object."""

    def __init__(self, *, model: list, device: str, precision: str, frames: bool, batch_size: int,
                 embed: bool = False) -> None:
        import ray

        self.model = ray.get(model[0]).open(device=device, precision=precision, embed=embed).model
        if self.model.scores_windows:
            self.model.batch_size = batch_size
        self.frames, self.embed = frames, embed
        if embed:  # the width, so that a batch of error rows alone has the others' shape
            self.width = self._embedding_width()

    def _embedding_width(self) -> int:
        if not self.model.scores_windows:  # a frozen network: the windows of an empty waveform (one zero-padded)
            return self.model.waveform_embeddings(np.zeros(0, np.float32))[0].shape[1]
        from envsound.models.clip import window_shape

        return self.model.window_embeddings(np.zeros((1, *window_shape(self.model.config.features)),
                                                     np.float32)).shape[1]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "samples" in batch:
            return self._score_chunks(batch)
        windows = batch.pop("windows")
        good = np.asarray([not error for error in batch["error"]])
        if self.embed:  # float16, as the store keeps them (half the bytes back to the driver)
            batch["probs"] = np.zeros((len(windows), self.width), np.float16)
            if good.any():
                batch["probs"][good] = self.model.window_embeddings(windows[good])
            return batch
        probs = np.zeros((len(windows), self.model.n_classes), np.float32)
        framed = None
        if good.any():
            probs[good], framed = self.model.scored_windows(windows[good], frames=self.frames)
        if self.frames:
            batch["frames"] = np.zeros((len(windows), *(framed.shape[1:] if framed is not None
                                                        else (0, probs.shape[1]))), np.float32)
            if framed is not None:
                batch["frames"][good] = framed
        batch["probs"] = probs
        return batch

    def _chunk_windows(self, samples: np.ndarray, before: int | None) -> tuple:
        """A waveform chunk -> (its windows' probabilities, or with ``embed`` embeddings; their starts; frames or
        None), as the local engine scores or embeds a chunk the model cuts itself."""
        if self.embed:
            vectors, starts = self.model.waveform_embeddings(samples, before=before)
            return np.asarray(vectors, np.float16), starts, None
        scored = self.model.waveform_probs(samples, before=before, frames=self.frames)
        return np.asarray(scored[0], np.float32), scored[1], np.asarray(scored[2], np.float32) if self.frames else None

    def _score_chunks(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Waveform chunks -> the rows of their windows, as the decoding tasks give them for a checkpoint: the
        windows' ``start``, ``index`` and ``chunk_windows`` (a chunk of no window: one row with 0), ``probs``
        (``frames``), or with ``embed`` their embeddings; an error row stays one row."""
        samples, before = batch.pop("samples"), batch.pop("before")
        width, kind = (self.width, np.float16) if self.embed else (self.model.n_classes, np.float32)
        n_classes = self.model.n_classes
        if not len(samples):
            empty = {"start": np.zeros(0, np.int64), "probs": np.zeros((0, width), kind)}
            return {**batch, **empty, **({"frames": np.zeros((0, 0, n_classes), np.float32)} if self.frames else {})}
        pieces = []  # per chunk: (its row in batch, its chunk_windows, starts, probs, frames or None)
        for i, error in enumerate(batch["error"]):
            if error:
                pieces.append((i, 1, [0], np.zeros((1, width), kind), None))
                continue
            probs, starts, framed = self._chunk_windows(np.frombuffer(samples[i], np.float32),
                                                        None if before[i] < 0 else int(before[i]))
            if not len(starts):
                pieces.append((i, 0, [0], np.zeros((1, width), kind), None))
                continue
            pieces.append((i, len(starts), list(starts), probs, framed))
        rows = [i for i, n, starts, *_ in pieces for _ in starts]
        out = {key: batch[key][rows] for key in ("file_id", "chunk", "last", "offset", "shift", "read", "error")}
        out["index"] = np.concatenate([np.arange(len(starts)) for _, _, starts, *_ in pieces]).astype(np.int32)
        out["chunk_windows"] = np.concatenate([np.full(len(starts), n) for _, n, starts, *_ in pieces]
                                              ).astype(np.int32)
        out["start"] = np.concatenate([np.asarray(starts) for _, _, starts, *_ in pieces]).astype(np.int64)
        out["probs"] = np.concatenate([probs for *_, probs, _ in pieces])
        if self.frames:
            steps = next((framed.shape[1] for *_, framed in pieces if framed is not None), 0)
            out["frames"] = np.concatenate([framed if framed is not None else np.zeros((1, steps, n_classes),
                                                                                        np.float32)
                                            for *_, framed in pieces])
        return out
