"""The local engine of a scan: decoding workers feed one scoring process that batches windows across files.

Three kinds of work run at once: a lister thread walks the inputs and hands the files not yet done to the workers
(:mod:`~envsound.inference.scan.decode`, one process each, one torch thread each); the workers decode, resample and
cut windows; this process stacks the windows of many files into one forward of the model (``batch_size`` windows),
gathers each file's results (:class:`~envsound.inference.predictor.FileScores`) and commits them in parts
(:class:`~envsound.inference.scan.tables.Part`, :class:`~envsound.inference.scan.journal.Journal`). Queues are
bounded, so the listing, the decoded windows and the uncommitted part all stay small whatever the archive's size.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from envsound.hardware import usable_cores
from envsound.inference.predictor import FileScores, Predictor
from envsound.inference.scan.decode import DecodeJob, chunk_credits, decode_worker

log = logging.getLogger(__name__)

COMMIT_MIN_SECONDS = 5.0  # a part is committed every 5 s at first, then every 5 % of the run's time, at most 2 min:
COMMIT_FRACTION = 0.05  # a crash loses at most that much work, and a long run makes a few hundred parts
COMMIT_MAX_SECONDS = 120.0
PART_FILES = 20_000  # or sooner, when this many files or windows wait
PART_WINDOWS = 500_000


@dataclass
class Finished:
    """What the engine hands back for each file: its prediction (and window probabilities), or its error."""

    name: str
    prediction: object | None = None  # a Prediction
    window_probs: np.ndarray | None = None
    error: str | None = None


@dataclass
class _Pending:
    """Chunks waiting to be scored together, and the files whose last chunk is among them."""

    chunks: list[tuple[int, tuple]] = field(default_factory=list)
    windows: int = 0
    done: list[tuple[int, int]] = field(default_factory=list)  # (file id, samples read)


class LocalEngine:
    """Runs :meth:`run` over the names the lister gives; see the module's docstring."""

    def __init__(self, predictor: Predictor, *, workers: int, batch_size: int, top_k: int, events: bool,
                 window_scores: bool) -> None:
        self.predictor = predictor
        self.model = predictor.model
        self.workers = workers
        self.batch_size = batch_size
        self.top_k, self.events, self.window_scores = top_k, events, window_scores
        self.frames = events and predictor.has_frames
        self.by_windows = hasattr(self.model, "window_probs")  # a ClipModel: features cut by the workers
        if self.by_windows:
            self.model.batch_size = batch_size
        self.job = DecodeJob.of(predictor, windows=self.by_windows, credits=4 * batch_size + 64)

    def describe(self) -> str:
        return f"local: {self.workers} decoding process(es), the model in this one"

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Scan every name ``names`` yields, calling ``on_file`` (in this thread) as each file finishes, until the
        names run out or ``stop`` is set (then in-flight files are dropped unfinished)."""
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        tasks = context.Queue(maxsize=2 * self.workers)
        results = context.Queue()  # bounded by the credits: a chunk is put only with its windows' credits taken
        self.credits = context.Semaphore(self.job.credits)
        processes: dict[int, multiprocessing.Process] = {}

        def start_worker() -> None:
            process = context.Process(target=decode_worker, args=(self.job, tasks, results, self.credits),
                                      daemon=True)
            process.start()
            processes[process.pid] = process

        for _ in range(self.workers):
            start_worker()
        files: dict[int, str] = {}  # file id -> name, for the files handed out and not yet finished
        lister = threading.Thread(target=self._list, args=(names, files, tasks, stop), daemon=True,
                                  name="envsound-scan-lister")
        lister.start()
        scores: dict[int, FileScores] = {}
        current: dict[int, int] = {}  # worker pid -> the file id it decodes
        pending = _Pending()
        exited = 0
        try:
            while exited < len(processes) and not stop.is_set():
                try:
                    kind, file_id, payload = results.get(timeout=0.02 if pending.chunks else 1.0)
                except queue.Empty:
                    if pending.chunks:
                        self._score(pending, scores, files, on_file)
                    else:
                        self._replace_dead(processes, current, files, scores, on_file, start_worker)
                    continue
                if kind == "start":
                    current[payload] = file_id
                    scores[file_id] = FileScores(self.predictor, segments=True, events=self.events,
                                                 window_scores=self.window_scores)
                elif kind == "chunk":
                    pending.chunks.append((file_id, payload))
                    pending.windows += len(payload[2])
                    if pending.windows >= self.batch_size or not self.by_windows:
                        self._score(pending, scores, files, on_file)
                elif kind == "done":
                    _forget(current, file_id)
                    pending.done.append((file_id, payload))
                    if not pending.chunks:
                        self._score(pending, scores, files, on_file)
                elif kind == "error":  # at the header, or after some chunks (a PCM file cut short)
                    _forget(current, file_id)
                    self._drop(pending, file_id)
                    scores.pop(file_id, None)
                    on_file(Finished(files.pop(file_id), error=payload))
                elif kind == "exit":
                    exited += 1
            if not stop.is_set():
                self._score(pending, scores, files, on_file)
        finally:
            stop.set()
            for process in processes.values():
                if process.is_alive():
                    process.kill()
            for process in processes.values():
                process.join()
            lister.join(timeout=5)
            tasks.cancel_join_thread()
            results.cancel_join_thread()

    def _list(self, names: Iterator[str], files: dict[int, str], tasks, stop: threading.Event) -> None:
        """The lister thread: hand each name to the workers (waiting while they are busy), then one ``None`` each."""
        try:
            for file_id, name in enumerate(names):
                files[file_id] = name
                if not _put(tasks, (file_id, name), stop):
                    return
        finally:
            for _ in range(self.workers):
                if not _put(tasks, None, stop):
                    return

    def _score(self, pending: _Pending, scores: dict[int, FileScores], files: dict[int, str], on_file) -> None:
        """Score the pending chunks in one batch, add them to their files, finish the files that are complete."""
        if pending.chunks:
            for (file_id, chunk), scored in zip(pending.chunks, self._probabilities(pending.chunks)):
                scores[file_id].add(chunk[0], chunk[1], *scored)
                for _ in range(chunk_credits(self.job, chunk)):
                    self.credits.release()
        for file_id, read in pending.done:
            file_scores = scores.pop(file_id)
            prediction = file_scores.finish(files.pop(file_id), read, top_k=self.top_k)
            on_file(Finished(prediction.file, prediction,
                             file_scores.window_probs() if self.window_scores else None))
        pending.chunks, pending.windows, pending.done = [], 0, []

    def _drop(self, pending: _Pending, file_id: int) -> None:
        """Forget the unscored chunks of a file that failed, giving their credits back."""
        dropped = [chunk for owner, chunk in pending.chunks if owner == file_id]
        for chunk in dropped:
            for _ in range(chunk_credits(self.job, chunk)):
                self.credits.release()
        pending.chunks = [(owner, chunk) for owner, chunk in pending.chunks if owner != file_id]
        pending.windows -= sum(len(chunk[2]) for chunk in dropped)

    def _probabilities(self, chunks: list[tuple[int, tuple]]) -> list[tuple]:
        """(window probabilities, starts[, frame probabilities]) of each chunk; windows of all chunks in one batch."""
        if not self.by_windows:  # the model cuts its own windows: one call a chunk
            return [self.model.waveform_probs(chunk, before=before, frames=self.frames)
                    for _, (_, _, chunk, before) in chunks]
        probs, extra = self.model.scored_windows(np.concatenate([chunk[2] for _, chunk in chunks]),
                                                 frames=self.frames)
        out, at = [], 0
        for _, (_, _, chunk_windows, starts) in chunks:
            end = at + len(chunk_windows)
            out.append((probs[at:end], starts) + ((extra[at:end],) if extra is not None else ()))
            at = end
        return out

    def _replace_dead(self, processes, current, files, scores, on_file, start_worker) -> None:
        """A worker that died (killed, out of memory) fails the file it held and is replaced."""
        for pid, process in list(processes.items()):
            if process.is_alive() or process.exitcode == 0:
                continue
            del processes[pid]
            file_id = current.pop(pid, None)
            if file_id is not None and file_id in files:
                scores.pop(file_id, None)
                on_file(Finished(files[file_id], error=f"{files.pop(file_id)}: the decoding process died "
                                                       f"(exit code {process.exitcode}; out of memory?)"))
            start_worker()


def _forget(current: dict[int, int], file_id: int) -> None:
    for pid, held in list(current.items()):
        if held == file_id:
            del current[pid]


def _put(tasks, item, stop: threading.Event) -> bool:
    """Put ``item`` on a bounded queue, giving up when ``stop`` is set."""
    while not stop.is_set():
        try:
            tasks.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def default_workers(accelerator: str) -> int:
    """Decoding processes: half the cores on a CPU (the model takes the other half), all but one beside a GPU."""
    cores = usable_cores()
    return max(1, cores - 1) if accelerator != "cpu" else max(1, cores // 2)


def default_batch_size(runtime) -> int:
    """Windows a forward: 256 on a GPU; on a CPU 64 in bf16 and 16 in fp32, where a larger batch ran slower (mn04 on a
    2-core Xeon with AMX: 159 windows/s at 16 against 116 at 64 on one thread, docs/benchmarks.md)."""
    if runtime.accelerator != "cpu":
        return 256
    return 64 if "bf16" in str(runtime.precision) else 16
