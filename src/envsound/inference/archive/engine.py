"""The local engine of a scan: decoding workers feed one scoring process that batches windows across files.

Three kinds of work run at once: a lister thread walks the inputs for the files not yet done, which this process
hands to the workers (:mod:`~envsound.inference.archive.decode`, one process each, one torch thread each, two files
each at most); the workers decode, resample and cut windows; this process stacks the windows of many files into
one forward of the model (``batch_size`` windows), gathers each file's results
(:class:`~envsound.inference.predictor.FileScores`) and commits them in parts
(:class:`~envsound.inference.scan.tables.Part`, :class:`~envsound.inference.archive.journal.Journal`). Queues and
credits are bounded, so the listing, the decoded windows and the uncommitted part all stay small whatever the
archive's size.

Each worker has a pipe of its own (files go in, messages come out) and a share of the credits of its own, so a
worker that dies, even in the middle of a message, leaves the others' pipes and credits whole: its death is seen
at once (its process sentinel), the file it was reading is tried once more, then becomes an error row.

A read that never returns (a stalled network mount) is caught by a per-file timeout: a worker counts as progressing
on its file while its messages arrive, its credits come back, or its CPU time or bytes read grow (``/proc/<pid>/stat``
and ``/proc/<pid>/io`` on Linux; the first pass over a long MP3 or Ogg file sends no message for a while); after
``file_timeout`` seconds without any of these this process kills it (SIGKILL), the file becomes an error row at once
(no retry: the mount would stall again) and a new worker takes its place. Time is what counts, not the file's
length: a 10-hour file that keeps being read never trips it.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Callable, Iterator, Protocol

import numpy as np

from envsound.errors import EnvsoundError
from envsound.cores import usable_cores
from envsound.inference.archive.decode import Chunk, DecodeJob, chunk_credits, decode_worker
from envsound.inference.archive.embedding import FileEmbeddings, chunk_embeddings
from envsound.inference.predictor import FileScores, Prediction, Predictor

log = logging.getLogger(__name__)

COMMIT_MIN_SECONDS = 5.0  # a part is committed every 5 s at first, then every 5 % of the run's time, at most 2 min:
COMMIT_FRACTION = 0.05  # a crash loses at most that much work, and a long run makes a few hundred parts
COMMIT_MAX_SECONDS = 120.0
PART_FILES = 20_000  # or sooner, when this many files or windows wait
PART_WINDOWS = 500_000
FILE_TIMEOUT = 300.0  # seconds without progress on one file before its worker is ended: far above a spun-down disk
# waking (~10-30 s) or an NFS server's retransmission (60 s by default), so only a read that is stuck trips it


@dataclass
class Finished:
    """What the engine hands back for each file: its prediction (and window probabilities), or its error."""

    name: str
    prediction: Prediction | None = None
    window_probs: np.ndarray | None = None
    error: str | None = None


class Engine(Protocol):
    """What a scan asks of an engine (:class:`LocalEngine`, :class:`~envsound.inference.archive.ray_engine.RayEngine`):
    each is built from the one :class:`~envsound.inference.predictor.Predictor` the scan opened, classifies the names
    it is given and hands each file back as a :class:`Finished`, in any order; the results do not depend on which."""

    predictor: Predictor
    top_k: int
    window_scores: bool

    def describe(self) -> str:
        """One line for the run's settings: where it runs (e.g. ``local: 3 decoding process(es), ...``)."""

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Classify every name ``names`` yields, calling ``on_file`` in the calling thread as each file finishes,
        until the names run out or ``stop`` is set (then the files in flight are dropped unfinished)."""


@dataclass
class _Pending:
    """Chunks waiting to be scored together (with the worker their credits go back to, and how many), and the
    files whose last chunk is among them."""

    chunks: list[tuple[int, Chunk, "_Worker", int]] = field(default_factory=list)  # (file id, chunk, worker, taken)
    windows: int = 0
    done: list[tuple[int, int]] = field(default_factory=list)  # (file id, samples read)


@dataclass
class _State:
    """What one run keeps while it goes: the files handed out and not finished, their scores, the pending batch."""

    on_file: Callable[[Finished], None]
    files: dict[int, str] = field(default_factory=dict)  # file id -> name
    scores: dict[int, FileScores] = field(default_factory=dict)
    pending: _Pending = field(default_factory=_Pending)
    retry: collections.deque = field(default_factory=collections.deque)  # file ids to hand out again, first
    deaths: dict[int, int] = field(default_factory=dict)  # file id -> workers that died reading it
    next_id: int = 0
    listing: bool = True  # the lister has more names to come
    deaths_in_a_row: int = 0  # workers that died since a file last finished


@dataclass
class _Worker:
    """One decoding process, its end of their pipe, its credits, and the files handed to it and not finished."""

    process: multiprocessing.Process
    conn: object  # multiprocessing.connection.Connection
    credits: object  # its semaphore
    job: DecodeJob
    tasks: list[int] = field(default_factory=list)  # file ids, in the order it reads them: the first is the one
    reading: int | None = None  # the file its progress is watched on (its first task when last looked at)
    moved: float = 0.0  # when it last made progress on that file (time.monotonic())
    activity: tuple | None = None  # its CPU time and bytes read when last looked at
    stalled: float | None = None  # the seconds without progress it was killed for

    @classmethod
    def start(cls, context, job: DecodeJob) -> "_Worker":
        mine, theirs = context.Pipe()
        credits = context.Semaphore(job.credits)
        process = context.Process(target=decode_worker, args=(job, theirs, credits), daemon=True,
                                  name="envsound-decode")
        process.start()
        theirs.close()  # the worker's end lives in the worker alone: its death ends the pipe
        return cls(process, mine, credits, job, moved=time.monotonic())

    def give_back(self, taken: int) -> None:
        """Return ``taken`` credits (its chunks were scored or dropped): it may decode on, which counts as progress."""
        for _ in range(taken):
            self.credits.release()
        self.moved = time.monotonic()

    def stuck(self, now: float, timeout: float) -> bool:
        """True when it has shown no progress on its current file for ``timeout`` seconds (see the module)."""
        if not self.tasks:
            self.reading = None
            return False
        activity = proc_activity(f"/proc/{self.process.pid}")
        if self.tasks[0] != self.reading:  # a file begun since the last look: its clock starts now
            self.reading, self.activity, self.moved = self.tasks[0], activity, now
            return False
        if activity != self.activity:
            self.activity, self.moved = activity, now
            return False
        return now - self.moved >= timeout

    def send(self, task) -> bool:
        """Hand it a task (``None``: stop); False when it is gone."""
        try:
            self.conn.send(task)
            return True
        except OSError:
            return False

    def finished(self, file_id: int) -> None:
        self.tasks.remove(file_id)


class LocalEngine:
    """Runs :meth:`run` over the names the lister gives; see the module's docstring."""

    def __init__(self, predictor: Predictor, *, workers: int, batch_size: int, top_k: int, events: bool,
                 window_scores: bool, file_timeout: float | None = None, embed: bool = False) -> None:
        self.predictor = predictor
        self.file_timeout = file_timeout or None  # seconds without progress on a file; None (or 0): no limit
        self.embed = embed  # each window's embedding (network.embed) in place of its probabilities: a store's rows
        self.model = predictor.model
        self.workers = workers
        self.batch_size = batch_size
        self.top_k, self.events, self.window_scores = top_k, events, window_scores
        self.frames = events and predictor.has_frames
        self.by_windows = self.model.scores_windows  # a ClipModel: features cut by the workers
        if self.by_windows:
            self.model.batch_size = batch_size
        self.job = DecodeJob.of(predictor, windows=self.by_windows, credits=4 * batch_size + 64)

    def describe(self) -> str:
        limit = f", {self.file_timeout:g} s per file without progress" if self.file_timeout else ""
        return f"local: {self.workers} decoding process(es), the model in this one{limit}"

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Scan every name ``names`` yields, calling ``on_file`` (in this thread) as each file finishes, until the
        names run out or ``stop`` is set (then in-flight files are dropped unfinished).

        A worker that dies (the kernel's out-of-memory killer, say) is replaced at once; the file it was reading is
        tried once more by another worker, then is an error row saying how the worker died; the files it had not
        begun go to the others, its unscored windows are dropped. A worker with no progress on its file for
        ``file_timeout`` seconds is killed: its file is an error row at once, the rest goes as for a death."""
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        listed: queue.Queue = queue.Queue(maxsize=2 * self.workers)
        failure: list[BaseException] = []
        lister = threading.Thread(target=_list, args=(names, listed, stop, failure), daemon=True,
                                  name="envsound-scan-lister")
        state = _State(on_file=on_file)
        # each worker gets its share of the windows decoded ahead of the model, on a semaphore of its own: a dead
        # worker's credits go with it, and its replacement starts with a whole share
        job = replace(self.job, credits=max(1, self.job.credits // self.workers))
        workers: list[_Worker] = []
        looked = time.monotonic()  # when the workers' progress was last looked at
        try:
            workers.extend(_Worker.start(context, job) for _ in range(self.workers))
            lister.start()
            while not stop.is_set():
                self._hand_out(workers, listed, state)
                if failure:
                    raise failure[0]
                if not (state.listing or state.retry or any(worker.tasks for worker in workers)):
                    break
                hungry = state.listing and any(len(worker.tasks) < 2 for worker in workers)  # names may come
                ready = wait([worker.conn for worker in workers] + [worker.process.sentinel for worker in workers],
                             timeout=0.02 if state.pending.chunks or hungry else 0.2)
                if not ready and state.pending.chunks:
                    self._score(state)
                for worker in [worker for worker in workers if worker.process.sentinel in ready]:
                    self._receive(worker, state, most=sys.maxsize)  # what it said before it died counts
                    workers.remove(worker)
                    self._bury(worker, state)
                    workers.append(_Worker.start(context, job))
                for worker in [worker for worker in workers if worker.conn in ready]:
                    self._receive(worker, state)
                if self.file_timeout and time.monotonic() - looked >= min(1.0, self.file_timeout / 4):
                    looked = self._watch(workers, looked)
            if not stop.is_set():
                self._score(state)
                for worker in workers:  # each waits for a file: this one ends it
                    worker.send(None)
                for worker in workers:
                    worker.process.join(timeout=5)
        finally:
            stop.set()
            for worker in workers:  # stopped or failed: what they hold is dropped
                if worker.process.is_alive():
                    worker.process.kill()
                worker.process.join()
                worker.conn.close()
            lister.join(timeout=5)

    def _watch(self, workers: list[_Worker], looked: float) -> float:
        """Kill each worker stuck on its file for ``file_timeout`` seconds (its sentinel then brings it to
        :meth:`_bury`); returns the time it looked. Time this process spent away from the loop (a slow commit)
        counts for no worker: none could be seen progressing meanwhile."""
        now = time.monotonic()
        away = now - looked > max(5.0, self.file_timeout / 2)
        for worker in workers:
            if away:
                worker.moved = max(worker.moved, now)
            if worker.stalled is None and worker.stuck(now, self.file_timeout):
                worker.stalled = self.file_timeout
                worker.process.kill()
        return now

    def _hand_out(self, workers: list[_Worker], listed: queue.Queue, state: _State) -> None:
        """Give each worker up to two files (the one it reads and the next), files to try again first."""
        for worker in workers:
            while len(worker.tasks) < 2:
                if state.retry:
                    file_id = state.retry.popleft()
                elif not state.listing:
                    break
                else:
                    try:
                        name = listed.get_nowait()
                    except queue.Empty:
                        break
                    if name is _END:
                        state.listing = False
                        break
                    file_id, state.next_id = state.next_id, state.next_id + 1
                    state.files[file_id] = name
                if not worker.send((file_id, state.files[file_id])):
                    state.retry.appendleft(file_id)  # it is gone: its sentinel says so at the next wait
                    break
                worker.tasks.append(file_id)

    def _receive(self, worker: _Worker, state: _State, *, most: int = 64) -> None:
        """Handle the messages ``worker`` has sent so far, ``most`` of them (then the others' turn); a dead worker's
        last message, cut off, is dropped."""
        pending = state.pending
        for _ in range(most):
            try:
                if not worker.conn.poll():
                    return
                kind, file_id, payload = worker.conn.recv()
            except (EOFError, OSError):
                return
            worker.moved = time.monotonic()
            if kind == "start":
                state.scores[file_id] = self._file_scores()
            elif kind == "chunk":
                pending.chunks.append((file_id, payload, worker, chunk_credits(worker.job, payload)))
                pending.windows += payload.n_windows
                if pending.windows >= self.batch_size or not self.by_windows:
                    self._score(state)
            elif kind == "done":
                worker.finished(file_id)
                state.deaths_in_a_row = 0
                pending.done.append((file_id, payload))
                if not pending.chunks:
                    self._score(state)
            elif kind == "error":  # at the header, or after some chunks (a PCM file cut short)
                worker.finished(file_id)
                state.deaths_in_a_row = 0
                self._drop(state, file_id)
                state.deaths.pop(file_id, None)
                state.on_file(Finished(state.files.pop(file_id), error=payload))

    def _file_scores(self) -> FileScores | FileEmbeddings:
        """What gathers one file's scored windows (or, with ``embed``, their embeddings)."""
        if self.embed:
            return FileEmbeddings(self.predictor)
        return FileScores(self.predictor, segments=True, events=self.events, window_scores=self.window_scores)

    def _bury(self, worker: _Worker, state: _State) -> None:
        """A worker died: the file it was reading is tried once more, then is an error row saying how it died; the
        files it had not begun go back to the front of the line."""
        worker.process.join(timeout=5)
        worker.conn.close()
        how = _how_it_died(worker.process.exitcode)
        # killed by this process for a file that stalled (and still on that file): the file's doing, not the machine's
        stalled = worker.stalled is not None and bool(worker.tasks) and worker.tasks[0] == worker.reading
        state.deaths_in_a_row += 0 if stalled else 1
        if state.deaths_in_a_row > 2 * self.workers + 2:  # more than each worker's file twice: not the files' doing
            raise EnvsoundError(f"the decoding workers keep dying ({state.deaths_in_a_row} in a row, the last "
                                f"{how}) and no file finishes; check the machine's free memory")
        if not worker.tasks:
            log.warning("a decoding worker %s between files; another takes its place", how)
            return
        # the first of its files is the one it was reading (or about to: its "start" may not have come), the others
        # it had not begun
        file_id = worker.tasks[0]
        state.retry.extendleft(reversed(worker.tasks[1:]))
        self._drop(state, file_id)
        name = state.files[file_id]
        if stalled:  # no retry: the mount that stalled would stall the next worker too
            log.warning("%s: no progress for %g s while reading it; its decoding worker was ended", name,
                        worker.stalled)
            del state.files[file_id]
            state.deaths.pop(file_id, None)
            state.on_file(Finished(name, error=f"{name}: no data for {worker.stalled:g} s while reading it (a "
                                               "stalled mount?); its decoding worker was ended and the scan went on; "
                                               "check the disk or network mount it is on, or allow more time "
                                               "(file_timeout, --file-timeout; 0: no limit)"))
            return
        state.deaths[file_id] = state.deaths.get(file_id, 0) + 1
        if state.deaths[file_id] < 2:
            log.warning("%s: the decoding worker %s while reading it; trying the file once more", name, how)
            state.retry.appendleft(file_id)
            return
        del state.files[file_id], state.deaths[file_id]
        state.on_file(Finished(name, error=f"{name}: the decoding worker {how} while reading it, twice; if the "
                                           "machine is short of memory, scan it with fewer decoding workers, else "
                                           "leave it out"))

    def _score(self, state: _State) -> None:
        """Score the pending chunks in one batch, add them to their files, finish the files that are complete."""
        pending = state.pending
        if pending.chunks:
            for (file_id, chunk, worker, taken), scored in zip(pending.chunks, self._probabilities(pending.chunks)):
                state.scores[file_id].add(chunk.offset, chunk.shift, *scored)
                worker.give_back(taken)
        for file_id, read in pending.done:
            file_scores = state.scores.pop(file_id)
            prediction = file_scores.finish(state.files.pop(file_id), read, top_k=self.top_k)
            state.deaths.pop(file_id, None)
            state.on_file(Finished(prediction.file, prediction,
                                   file_scores.window_probs() if self.window_scores else None))
        pending.chunks, pending.windows, pending.done = [], 0, []

    def _drop(self, state: _State, file_id: int) -> None:
        """Forget the scores and unscored chunks of a file that failed, giving their credits back."""
        pending = state.pending
        state.scores.pop(file_id, None)
        mine = [entry for entry in pending.chunks if entry[0] == file_id]
        for _, chunk, worker, taken in mine:
            worker.give_back(taken)
            pending.windows -= chunk.n_windows
        pending.chunks = [entry for entry in pending.chunks if entry[0] != file_id]

    def _probabilities(self, chunks: list[tuple[int, Chunk, _Worker, int]]) -> list[tuple]:
        """(window probabilities, starts[, frame probabilities]) of each chunk; windows of all chunks in one batch.
        With ``embed``: (window embeddings, starts)."""
        if self.embed and not self.by_windows:  # the model cuts its own windows (a frozen network): one call a chunk
            return [chunk_embeddings(self.model, chunk) for _, chunk, *_ in chunks]
        if self.embed:
            embedded = self.model.window_embeddings(np.concatenate([chunk.windows for _, chunk, *_ in chunks]))
            sizes = np.cumsum([0] + [len(chunk.windows) for _, chunk, *_ in chunks])
            return [(embedded[at:end], chunk.starts) for (_, chunk, *_), at, end in zip(chunks, sizes, sizes[1:])]
        if not self.by_windows:  # the model cuts its own windows: one call a chunk
            return [self.model.waveform_probs(chunk.samples, before=chunk.before, frames=self.frames)
                    for _, chunk, *_ in chunks]
        probs, extra = self.model.scored_windows(np.concatenate([chunk.windows for _, chunk, *_ in chunks]),
                                                 frames=self.frames)
        out, at = [], 0
        for _, chunk, *_ in chunks:
            end = at + len(chunk.windows)
            out.append((probs[at:end], chunk.starts) + ((extra[at:end],) if extra is not None else ()))
            at = end
        return out


_END = object()  # what the lister puts after the last name


def _list(names: Iterator[str], listed: queue.Queue, stop: threading.Event, failure: list) -> None:
    """The lister thread: put each name on ``listed`` (waiting while it is full), then ``_END``; an exception from
    the listing goes to ``failure`` for the scan's thread to raise."""
    try:
        for name in names:
            if not put_until(listed, name, stop):
                return
    except BaseException as exc:  # noqa: BLE001 - raised again in the scan's thread
        failure.append(exc)
    put_until(listed, _END, stop)


def _how_it_died(code: int | None) -> str:
    """``"was killed (signal 9, SIGKILL, maybe out of memory)"`` and the like, from a process's exit code."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        oom = ", maybe out of memory" if -code == signal.SIGKILL else ""  # what the kernel's OOM killer sends
        return f"was killed (signal {-code}, {name}{oom})"
    return f"died (exit code {code})"


def proc_activity(folder: str) -> tuple | None:
    """The CPU time (clock ticks, all its threads) and bytes read (any file, a network mount's too) of the process or
    thread whose ``/proc`` folder is ``folder`` (``/proc/<pid>``, ``/proc/self/task/<tid>``); None where they cannot
    be read (not Linux): then only messages, credits or the chunks handed over count as progress."""
    try:
        with open(f"{folder}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command's name, which may hold spaces
        cpu = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    except (OSError, ValueError, IndexError):
        return None
    try:
        with open(f"{folder}/io", "rb") as io:
            read = next((int(line.split()[1]) for line in io if line.startswith(b"rchar:")), None)
    except (OSError, ValueError, IndexError):
        read = None  # /proc/<pid>/io needs ptrace access, which a hardened kernel may refuse
    return cpu, read


def put_until(target: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` on a bounded queue, giving up when ``stop`` is set (False)."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.2)
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
