"""The Ray engine of a scan: the same results folder as the local engine, from a Ray cluster.

Ray Data does the distributing: the names not yet done are handed over in groups (``GROUP_FILES`` at a time, so a
list of millions is never held whole); CPU tasks decode each file into its windows (the very
:func:`~envsound.inference.scan.decode.decode_file` of the local engine), a pool of actors, one model each (a GPU
each where the cluster has them), scores them in batches, and the driver, this process, gathers each file's
windows (:class:`~envsound.inference.predictor.FileScores`) and hands the finished files to the same parts and
journal as the local engine. A file is finished when every window of every chunk is back, counted from the rows
themselves, so a task Ray retries after a worker died may send a row twice: the second copy is dropped.

The actors run at the precision the driver chose (``runtime.precision`` of its model), from the checkpoint's bytes
sent with them (the model file need not be on the workers); the audio must be readable at the same path on every
node (a shared file system), the results folder only on the driver.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections import defaultdict
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from envsound.errors import ConfigError, EnvsoundError
from envsound.inference.predictor import FileScores, Predictor
from envsound.inference.scan.decode import DecodeJob, decode_file
from envsound.inference.scan.engine import Finished

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


class RayEngine:
    """Runs :meth:`run` on a Ray cluster; see the module's docstring."""

    def __init__(self, predictor: Predictor, checkpoint: Path, *, address: str | None, batch_size: int, top_k: int,
                 events: bool, window_scores: bool) -> None:
        if not hasattr(predictor.model, "window_probs"):
            raise ConfigError("the Ray engine runs envsound checkpoints (model.ckpt); an exported .onnx model runs "
                              "with the local engine")
        self.predictor = predictor
        self.top_k, self.events, self.window_scores = top_k, events, window_scores
        self.frames = events and predictor.has_frames
        self.batch_size = batch_size
        self.ray = connect(address)
        self.job = DecodeJob.of(predictor)
        self.model_ref = self.ray.put(Path(checkpoint).read_bytes())  # in a list below: the actor gets it itself
        resources = self.ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.actors = self.gpus or max(1, int(resources.get("CPU", 1)) // 4)

    def describe(self) -> str:
        kind = f"{self.gpus} GPU actor(s)" if self.gpus else f"{self.actors} CPU actor(s)"
        return f"Ray {self.ray.__version__}, {int(self.ray.cluster_resources().get('CPU', 0))} CPUs, {kind}"

    def run(self, names: Iterator[str], on_file: Callable[[Finished], None], *, stop: threading.Event) -> None:
        """Scan every name ``names`` yields, group by group, calling ``on_file`` as each file finishes."""
        first_id = 0
        while not stop.is_set():
            group = list(islice(names, GROUP_FILES))
            if not group:
                return
            self._run_group({first_id + i: name for i, name in enumerate(group)}, on_file, stop)
            first_id += len(group)

    def _run_group(self, files: dict[int, str], on_file, stop: threading.Event) -> None:
        ray = self.ray
        items = [{"file_id": file_id, "file": name} for file_id, name in files.items()]
        # a decoding task takes a block of FILES_A_TASK files: one task a 5-s clip spent more time in Ray than decoding
        dataset = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // FILES_A_TASK)))
        # Ray Data's defaults retry a task whose worker died, and restart a dead actor and retry its batch, forever.
        # The decoding tasks state their memory (a minute of audio and its windows, torch): besides being true, the
        # differing resources keep Ray Data from fusing them into the actors, where they would not run in parallel.
        decoded = dataset.map_batches(_decode_rows, batch_size=None, fn_kwargs={"job": self.job}, num_cpus=1,
                                      memory=DECODE_MEMORY)
        precision = str(self.predictor.model.runtime.precision)
        scored = decoded.map_batches(
            _Scorer, batch_size=self.batch_size, compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_gpus=1 if self.gpus else 0, num_cpus=0 if self.gpus else 1,
            fn_constructor_kwargs={"model": [self.model_ref], "precision": precision, "frames": self.frames,
                                   "batch_size": self.batch_size})
        gathering = _Gathering(self, files, on_file)
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            if stop.is_set():
                return
            gathering.add(batch)
        gathering.check_done()


class _Gathering:
    """The rows of a group's files coming back in any order -> each file's Prediction once all of its are in."""

    def __init__(self, engine: RayEngine, files: dict[int, str], on_file) -> None:
        self.engine, self.files, self.on_file = engine, files, on_file
        self.rows: dict[int, dict[tuple[int, int], tuple]] = defaultdict(dict)  # file -> (chunk, index) -> row
        self.expected: dict[int, dict[int, int]] = defaultdict(dict)  # file -> chunk -> its windows
        self.chunks: dict[int, int] = {}  # file -> its number of chunks, once its last chunk is seen

    def add(self, batch: dict[str, np.ndarray]) -> None:
        frames = batch.get("frames")
        for i, file_id in enumerate(batch["file_id"].tolist()):
            if file_id not in self.files:
                continue  # a copy of a row of a file already finished (a retried task)
            error = str(batch["error"][i])
            if error:  # the rows of its chunks that came before are dropped with it
                for held in (self.rows, self.expected, self.chunks):
                    held.pop(file_id, None)
                self.on_file(Finished(self.files.pop(file_id), error=error))
                continue
            chunk = int(batch["chunk"][i])
            self.expected[file_id][chunk] = int(batch["chunk_windows"][i])
            if batch["last"][i]:
                self.chunks[file_id] = chunk + 1
            self.rows[file_id][(chunk, int(batch["index"][i]))] = (
                int(batch["offset"][i]), int(batch["shift"][i]), int(batch["start"][i]), int(batch["read"][i]),
                batch["probs"][i], None if frames is None else frames[i])
            self._finish_if_complete(file_id)

    def _finish_if_complete(self, file_id: int) -> None:
        chunks = self.chunks.get(file_id)
        expected = self.expected[file_id]
        if chunks is None or len(expected) < chunks or len(self.rows[file_id]) < sum(expected.values()):
            return
        engine = self.engine
        scores = FileScores(engine.predictor, segments=True, events=engine.events, window_scores=engine.window_scores)
        rows = self.rows.pop(file_id)
        read = 0
        for chunk in range(chunks):
            mine = [rows[(chunk, index)] for index in range(expected[chunk])]
            if not mine:
                continue
            offset, shift = mine[0][0], mine[0][1]
            read = max(read, *(row[3] for row in mine))
            probs = np.stack([row[4] for row in mine])
            framed = (np.stack([row[5] for row in mine]),) if engine.frames else ()
            scores.add(offset, shift, probs, [row[2] for row in mine], *framed)
        del self.expected[file_id], self.chunks[file_id]
        prediction = scores.finish(self.files.pop(file_id), read, top_k=engine.top_k)
        self.on_file(Finished(prediction.file, prediction, scores.window_probs() if engine.window_scores else None))

    def check_done(self) -> None:
        """Every file of the group has come back (Ray Data returns every row, or raises)."""
        if self.files:
            raise EnvsoundError(f"the Ray engine lost {len(self.files)} file(s) of a group, e.g. "
                                f"{next(iter(self.files.values()))}; run the same command again to scan them")


def _decode_rows(batch: dict[str, np.ndarray], *, job: DecodeJob) -> Iterator[dict[str, np.ndarray]]:
    """A Ray Data task: each file of ``batch`` -> one batch of rows per chunk (a window each), or one error row."""
    import torch

    from envsound.features.parallel import frontend_for

    torch.set_num_threads(1)
    frontend = frontend_for(job.features)
    for file_id, path in zip(batch["file_id"].tolist(), batch["file"].tolist()):
        held = None  # each chunk is given out once the next one (or the end) says whether it is the last
        try:
            for chunk_number, (read, chunk) in enumerate(decode_file(job, path, frontend)):
                if held is not None:
                    yield _chunk_rows(file_id, *held, last=False)
                held = (chunk_number, read, chunk)
            yield _chunk_rows(file_id, *held, last=True)
        except EnvsoundError as exc:
            yield _error_row(file_id, str(exc), job)
        except Exception as exc:  # noqa: BLE001 - one file's surprise must not end the job
            yield _error_row(file_id, f"{path}: {type(exc).__name__}: {exc}", job)


def _chunk_rows(file_id: int, chunk_number: int, read: int, chunk: tuple, *, last: bool) -> dict[str, np.ndarray]:
    offset, shift, windows, starts = chunk
    n = len(windows)
    return {"file_id": np.full(n, file_id, np.int64), "chunk": np.full(n, chunk_number, np.int32),
            "index": np.arange(n, dtype=np.int32), "chunk_windows": np.full(n, n, np.int32),
            "last": np.full(n, last), "offset": np.full(n, offset, np.int64), "shift": np.full(n, shift, np.int64),
            "read": np.full(n, read, np.int64), "start": np.asarray(starts, np.int64),
            "windows": np.ascontiguousarray(windows, np.float32), "error": np.full(n, "", dtype=object)}


def _error_row(file_id: int, reason: str, job: DecodeJob) -> dict[str, np.ndarray]:
    from envsound.models.clip import window_shape

    row = _chunk_rows(file_id, 0, 0, (0, 0, np.zeros((1, *window_shape(job.features)), np.float32), [0]), last=True)
    row["error"] = np.asarray([reason], dtype=object)
    return row


class _Scorer:
    """A Ray Data actor: one model, loaded once from the checkpoint's bytes; windows -> probabilities. ``model`` is
    ``[ObjectRef]``: a reference inside a list is not resolved by Ray, so the constructor's arguments stay small and a
    restarted actor fetches the bytes again from the driver's object."""

    def __init__(self, *, model: list, precision: str, frames: bool, batch_size: int) -> None:
        import ray

        from envsound.models.checkpoint import load_checkpoint
        from envsound.models.clip import ClipModel

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.ckpt"
            path.write_bytes(ray.get(model[0]))
            self.model = ClipModel.from_checkpoint(load_checkpoint(path), precision=precision)
        self.model.batch_size = batch_size
        self.frames = frames

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        windows = batch.pop("windows")
        good = np.asarray([not error for error in batch["error"]])
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
