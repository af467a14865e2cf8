"""The decoding side of a scan, run in worker processes: a file -> its evaluation windows, chunk by chunk.

A worker takes ``(file id, path)`` tasks from its end of a pipe (``None``: stop) and sends messages back on it:
``("start", id, pid)``, then ``("chunk", id, Chunk)`` for each chunk of the file (a minute of audio plus one window,
:class:`~envsound.inference.predictor.WindowBuffer`; :class:`Chunk`), then ``("done", id, samples read)``,
or ``("error", id, reason)`` for a file it cannot use (a sender thread writes them, so decoding goes on while the
scan is busy with the model). A pipe of the worker's own (no queue shared by all, no lock) is what lets the scan
survive a worker killed mid-message: only that pipe is cut. The windows are the log-mel (or waveform) windows the
model scores (:func:`~envsound.features.extract.waveform_windows`), so the scoring process batches the windows of
many files in one forward. For a model that computes its own features (an exported ``.onnx``) a chunk carries the
waveform and the ``before`` of :meth:`~envsound.inference.predictor.WindowScorer.waveform_probs` instead. The Ray
engine's decoding tasks cut files with the same :func:`decode_file`.

Each worker runs torch on one thread (the log-mel of one clip is faster on one thread than two, docs/benchmarks.md)
and asks the kernel to kill it when its parent dies, so a ``kill -9`` of the scan leaves no orphan.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import threading
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from envsound.audio.load import iter_audio_blocks
from envsound.config import FeatureConfig
from envsound.errors import EnvsoundError
from envsound.features.edges import EdgeStream
from envsound.inference.predictor import WindowBuffer


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file, cut as the model scores it: ``offset``, its first sample in the edge-shaped stream,
    ``shift`` the stream's :attr:`~envsound.features.edges.EdgeStream.shift`; then either ``windows`` (the feature
    windows, ``(n, C, n_mels, window_frames)`` or ``(n, 1, window_samples)`` float32) and their ``starts`` within the
    chunk (frames or samples), or, for a model that cuts its own windows, ``samples`` (the waveform ``(samples,)``
    float32) and ``before`` (its windows are those starting before it; ``None``: all)."""

    offset: int
    shift: int
    windows: np.ndarray | None = None
    starts: list[int] = field(default_factory=list)
    samples: np.ndarray | None = None
    before: int | None = None

    @property
    def n_windows(self) -> int:
        """Windows it holds; a waveform chunk counts as one (its windows are known once the model cuts them)."""
        return len(self.windows) if self.windows is not None else 1


@dataclass(frozen=True)
class DecodeJob:
    """What every worker needs to cut files as the model's :class:`~envsound.inference.predictor.Predictor` does."""

    features: FeatureConfig
    block_seconds: float
    block_step: int  # samples a chunk gives out (a whole number of window hops)
    overlap: int  # samples past it a chunk holds: one window
    step: int  # samples per window-start unit
    windows: bool  # True: send feature windows; False: send waveform chunks (the model computes its own features)
    credits: int  # windows (or chunks) decoded ahead of the model at most: what bounds the memory in flight

    @classmethod
    def of(cls, predictor, *, windows: bool = True, credits: int = 1) -> "DecodeJob":
        """The job that cuts files as ``predictor`` (a :class:`~envsound.inference.predictor.Predictor`) does."""
        return cls(features=predictor.features, block_seconds=predictor.block_seconds,
                   block_step=predictor.block_step, overlap=predictor.features.window_samples, step=predictor.step,
                   windows=windows, credits=credits)


def chunk_credits(job: DecodeJob, chunk: Chunk) -> int:
    """Credits a chunk takes until it is scored: its windows (a waveform chunk: one), at most all there are."""
    return min(chunk.n_windows, job.credits) or 1


def decode_worker(job: DecodeJob, conn, credits) -> None:
    """The loop of one worker process: until a ``None`` task on ``conn`` (a
    :class:`multiprocessing.connection.Connection`), decode each file and report it on ``conn``; before it sends a
    chunk it takes :func:`chunk_credits` from the semaphore ``credits`` (the scoring process gives them back once the
    chunk is scored), so the worker waits while the model is behind."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scan's to handle: it stops the workers itself
    frontend = None
    if job.windows:
        import torch

        torch.set_num_threads(1)
        from envsound.features.parallel import frontend_for

        frontend = frontend_for(job.features)
    outbox: queue.Queue = queue.Queue()  # what the sender thread writes, while this one decodes on
    sender = threading.Thread(target=_send_all, args=(conn, outbox), daemon=True, name="envsound-decode-sender")
    sender.start()
    try:
        while (task := conn.recv()) is not None:
            file_id, path = task
            outbox.put(("start", file_id, os.getpid()))
            try:
                read = 0
                for read, chunk in decode_file(job, path, frontend):
                    for _ in range(chunk_credits(job, chunk)):
                        credits.acquire()
                    outbox.put(("chunk", file_id, chunk))
                outbox.put(("done", file_id, read))
            except EnvsoundError as exc:
                outbox.put(("error", file_id, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one file's surprise must not end a million-file run
                outbox.put(("error", file_id, f"{path}: {type(exc).__name__}: {exc}"))
            # a file's last message is in the pipe before the next file is opened: a worker killed while reading a
            # file is then never charged to the one before it (whose "done" it still held)
            outbox.join()
    except (EOFError, OSError):
        pass  # the scan is gone (on Linux the kernel ends its workers with it)
    finally:
        outbox.put(None)
        sender.join()


def _send_all(conn, outbox: queue.Queue) -> None:
    """A worker's sender thread: pickle and write each message (as a Queue's feeder thread does), so that decoding
    goes on while the scan's process is busy with the model and not reading. Every message taken is marked done,
    sent or not (the scan gone), so that ``outbox.join()`` never waits for ever."""
    gone = False
    while True:
        message = outbox.get()
        try:
            if message is None:
                return
            if not gone:
                try:
                    conn.send(message)
                except OSError:  # the scan is gone
                    gone = True
        finally:
            outbox.task_done()


def decode_file(job: DecodeJob, path: str, frontend) -> Iterator[tuple[int, Chunk]]:
    """Yield (samples read so far, :class:`Chunk`) for each chunk of ``path``; the last ``read`` is the file's
    length. Raises :class:`~envsound.errors.EnvsoundError` subclasses for unusable audio."""
    features = job.features
    blocks = iter_audio_blocks(path, sample_rate=features.sample_rate, block_seconds=job.block_seconds,
                               min_seconds=features.min_seconds)
    stream = EdgeStream(blocks, features)

    def cut(chunk: np.ndarray, *, before: int | None) -> tuple:
        if not job.windows:
            return chunk.copy(), before
        from envsound.features.extract import waveform_windows

        return waveform_windows(chunk, features, frontend=frontend, before=before)

    def chunk(offset: int, cut_out, starts_or_before) -> Chunk:
        if job.windows:
            return Chunk(offset, stream.shift, windows=cut_out, starts=list(starts_or_before))
        return Chunk(offset, stream.shift, samples=cut_out, before=starts_or_before)

    buffer = WindowBuffer(cut, block_step=job.block_step, overlap=job.overlap, step=job.step)
    for block in stream:
        for piece in buffer.push(block):
            yield stream.read, chunk(*piece)
    for piece in buffer.finish():
        yield stream.read, chunk(*piece)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it dies (prctl PR_SET_PDEATHSIG); elsewhere the
    worker notices at its next task instead."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
