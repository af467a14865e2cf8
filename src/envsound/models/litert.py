"""LiteRT (``ai-edge-litert``) runs a frozen TFLite network of :mod:`envsound.models.frozen`: batched windows ->
logits or scores and the 1,024-d embedding (read with ``experimental_preserve_all_tensors``, the tensor the classifier
layer takes), and :class:`FrozenModel`, what :class:`~envsound.inference.predictor.Predictor` asks of a model, so
``envsound predict birdnet-v2.4 FILE`` and ``load_model("yamnet")`` take files of any length and rate (decoded and
resampled with soxr by :func:`~envsound.audio.load.iter_audio_blocks`, as for every model).

Windows: every ``hop_seconds`` from 0 (BirdNET: 3 s, overlap 0), plus one aligned to the end of a file longer than a
window (:func:`~envsound.features.windows.window_starts`; BirdNET-Analyzer pads its last chunk instead); a file
shorter than a window is zero-padded, as BirdNET does.

    >>> net = LiteRTNetwork.open("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
    >>> logits, embedding = net.run(windows)        # (n, 6522), (n, 1024) from (n, 144000) float32 at 48 kHz
"""

from __future__ import annotations

import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from envsound.config import Config
from envsound.config.files import bare_config
from envsound.cores import usable_cores
from envsound.errors import CheckpointError, ConfigError
from envsound.features.windows import eval_starts
from envsound.models.frozen import FrozenRelease, Structure, labels_beside, read_frozen_labels, recognise_structure
from envsound.models.frozen_head import read_head_export
from envsound.models.open_set import OpenSet
from envsound.models.runtimes import EngineRuntime
from envsound.models.spec import check_no_classes
from envsound.task import MULTI_LABEL, Task

log = logging.getLogger(__name__)


def open_interpreter(path: Path, *, threads: int | None = None, keep: bool = False):
    """A LiteRT interpreter of the TFLite file ``path`` (``keep``: its intermediate tensors kept, for reading an
    embedding), tensors not allocated yet.

    Raises:
        CheckpointError: not a readable TFLite file (one line).
        ConfigError: LiteRT is not installed (the pip line).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ConfigError(f"{path}: running a TFLite network needs LiteRT ({exc}); pip install "
                          "'envsound[litert]' (ai-edge-litert)") from exc
    with warnings.catch_warnings():  # LiteRT warns that keeping tensors costs memory: it is how we read the embedding
        warnings.simplefilter("ignore", UserWarning)
        try:
            return Interpreter(model_path=str(path), experimental_preserve_all_tensors=keep, num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{path}: not a readable TFLite network ({reason[:160]})") from exc


def structure_of(interpreter) -> Structure:
    """The :class:`~envsound.models.frozen.Structure` of a LiteRT interpreter's network."""
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        return Structure(0, {}, [])
    return Structure(int(inputs[0]["shape"][-1]),
                     {d["name"]: int(d["shape"][-1]) for d in interpreter.get_output_details()},
                     [d["name"] for d in interpreter.get_tensor_details()])


MAX_INTERPRETERS = 4
"""The most interpreters one :class:`LiteRTNetwork` runs side by side by default (one a usable core up to this)."""


def default_interpreters(threads: int | None) -> int:
    """How many interpreters :meth:`LiteRTNetwork.open` runs side by side: one when LiteRT's ``threads`` are set (a
    Ray actor: one thread on one CPU, the engine runs one actor a CPU), else one a usable core, up to
    :data:`MAX_INTERPRETERS`."""
    return 1 if threads is not None else max(1, min(usable_cores(), MAX_INTERPRETERS))


class LiteRTNetwork:
    """A frozen network in one or more LiteRT interpreters of the same file (see :meth:`open`)."""

    def __init__(self, interpreter, release: FrozenRelease, *, path: Path, embedding: bool = True,
                 others: list | None = None) -> None:
        self.interpreter, self.release, self.path = interpreter, release, path
        self.embedding = embedding  # False: the interpreter keeps no intermediate tensor, run gives no embedding
        self._others = list(others or [])  # interpreters of the same file beside the first, sharing a batch
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # an interpreter runs one call at a time
        self._input = interpreter.get_input_details()[0]["index"]
        self._shape = tuple(interpreter.get_input_details()[0]["shape"])  # (1, samples), or (samples,) in some exports
        self._output = _output_index(interpreter, release, path)
        self._embedding = next((d["index"] for d in interpreter.get_tensor_details()
                                if _names(d["name"], release.embedding_tensor, exact=release.exact)
                                and int(np.prod(d["shape"][1:] if len(d["shape"]) > 1 else d["shape"]))
                                == release.embedding_width), None)
        if self._embedding is None:
            raise CheckpointError(f"{path}: its {release.embedding_tensor} tensor is not {release.embedding_width} "
                                  f"wide, as {release.name}'s embedding is; pass {release.name}'s own .tflite")

    @classmethod
    def open(cls, path: str | Path, *, threads: int | None = None, embedding: bool = True,
             interpreters: int | None = None, release: FrozenRelease | None = None) -> "LiteRTNetwork":
        """Load the TFLite file at ``path`` and recognise it by structure (``threads``: LiteRT's CPU threads,
        ``None``: its default, one). ``embedding``: keep the intermediate tensors, so :meth:`run` reads the embedding
        (``experimental_preserve_all_tensors``); without it (prediction) BirdNET runs about 18 % faster (0.030 s
        against 0.036 s a window on 2 shared cores). ``interpreters``: how many interpreters of the file share a
        batch's windows, each in its own thread (``None``: :func:`default_interpreters`), all opened now, while the
        file is there (a Ray actor's copy is removed once opened). LiteRT releases the GIL while it runs: on 2 cores
        two 1-thread interpreters scored 195 seconds of audio a second with BirdNET, one 99, one of 2 threads 129
        (docs/benchmarks.md). ``release``: the member it is (a spec member, :func:`open_network`); ``None``:
        recognised by its structure.

        Raises:
            CheckpointError: not a readable TFLite file, or a network of no known member (the message lists them).
            ConfigError: LiteRT is not installed.
        """
        path = Path(path)
        interpreter = open_interpreter(path, threads=threads, keep=embedding)
        release = release or recognise_structure(structure_of(interpreter))
        if release is None:
            from envsound.models.frozen import FROZEN

            raise CheckpointError(f"{path}: a TFLite network that is none of {', '.join(FROZEN)} (input, outputs "
                                  "or embedding tensor differ); pass BirdNET V2.4's or YAMNet's .tflite")
        _fit_input(interpreter, release)
        interpreter.allocate_tensors()
        others = []
        for _ in range((default_interpreters(threads) if interpreters is None else interpreters) - 1):
            others.append(open_interpreter(path, threads=threads, keep=embedding))
            _fit_input(others[-1], release)
            others[-1].allocate_tensors()
        return cls(interpreter, release, path=path, embedding=embedding, others=others)

    @property
    def interpreters(self) -> int:
        """How many interpreters share a batch's windows."""
        return 1 + len(self._others)

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Windows ``(n, input_samples)`` float32 in [-1, 1] at the release's rate -> (``(n, n_classes)`` the
        network's output: BirdNET's logits, YAMNet's scores; ``(n, embedding_width)`` the embedding, ``None`` when
        opened with ``embedding=False``).

        Each interpreter stays at its file's batch of one and takes its windows one by one: LiteRT's XNNPACK costs
        the same per window at any batch (BirdNET 0.032-0.034 s on 2 shared cores) but prepares every new batch
        size at its first invoke (0.75 s a window), and the quantized YAMNet export takes no other batch. The
        windows are shared out in contiguous slices among the interpreters (:meth:`open`'s ``interpreters``); every
        window gets what one interpreter gives it.

        Raises:
            ConfigError: ``windows`` is not ``(n, input_samples)``.
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.release.input_samples:
            raise ConfigError(f"{self.path}: windows of shape {windows.shape}; {self.release.name} takes "
                              f"(n, {self.release.input_samples})")
        output = np.zeros((len(windows), self.release.n_classes), np.float32)  # (n, 0): a spec member's, no logits
        embedding = np.zeros((len(windows), self.release.embedding_width), np.float32) if self.embedding else None
        with self._lock:
            shares = min(1 + len(self._others), len(windows))
            if shares < 2:
                self._run_on(self.interpreter, windows, output, embedding, 0)
                return output, embedding
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(self._others), thread_name_prefix="litert")
            others = self._others[:shares - 1]
            bounds = np.linspace(0, len(windows), shares + 1).astype(int)
            futures = [self._pool.submit(self._run_on, other, windows[lo:hi], output, embedding, lo)
                       for other, lo, hi in zip(others, bounds[1:-1], bounds[2:])]
            self._run_on(self.interpreter, windows[:bounds[1]], output, embedding, 0)
            for future in futures:
                future.result()
        return output, embedding

    def _run_on(self, interpreter, windows: np.ndarray, output: np.ndarray, embedding: np.ndarray | None,
                first: int) -> None:
        """Run ``interpreter`` on ``windows`` one by one, into rows ``first ...`` of ``output`` and ``embedding``."""
        for row, window in enumerate(windows, start=first):
            interpreter.set_tensor(self._input, window.reshape(self._shape))
            interpreter.invoke()
            if self._output is not None:
                output[row] = interpreter.get_tensor(self._output).reshape(-1)
            if embedding is not None:
                embedding[row] = interpreter.get_tensor(self._embedding).reshape(-1)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Windows ``(n, input_samples)`` (or ``(n, 1, input_samples)``) float32 at the release's rate -> their
        ``(n, embedding_width)`` float32 embeddings, what a learned head reads (an embeddings store's rows).

        Raises:
            ConfigError: the network was opened with ``embedding=False``, or ``windows`` has the wrong shape.
        """
        if not self.embedding:
            raise ConfigError(f"{self.path}: opened without its embedding (embedding=False); open it with "
                              "embedding=True to embed")
        windows = np.asarray(windows, dtype=np.float32)
        _, embedding = self.run(windows.reshape(len(windows), -1))
        return embedding

    def scores(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """As :meth:`run`, the output as probabilities in [0, 1]: BirdNET's ``sigmoid(logit)`` (its sensitivity 1),
        YAMNet's scores as they are."""
        output, embedding = self.run(windows)
        return activate(output, self.release.activation), embedding


def _fit_input(interpreter, release: FrozenRelease) -> None:
    """A spec member whose input length is free (a dynamic dimension, checked at install by running a window of the
    spec's length) takes windows of the spec's length, one at a time."""
    detail = interpreter.get_input_details()[0]
    shape = [int(d) for d in detail["shape"]]
    if release.family == "spec" and shape[-1] != release.input_samples:
        interpreter.resize_tensor_input(detail["index"], [1] * (len(shape) - 1) + [release.input_samples])


def _names(name: str, wanted: str, *, exact: bool) -> bool:
    """Whether tensor ``name`` is the one ``wanted`` names: the same name (a spec's), or ending so (a built-in
    row's, whatever scope an export puts before it)."""
    return name == wanted if exact else name.endswith(wanted)


def _output_index(interpreter, release: FrozenRelease, path: Path) -> int | None:
    """The tensor index of the output holding ``release``'s logits or scores: the one a spec names, else the one with
    a column a class; ``None`` for a network with no classes (embeddings only).

    Raises:
        CheckpointError: no such output.
    """
    if release.n_classes == 0:
        return None
    outputs = interpreter.get_output_details()
    found = next((d["index"] for d in outputs if (d["name"] == release.logits_tensor if release.logits_tensor
                                                  else int(d["shape"][-1]) == release.n_classes)), None)
    if found is None:
        raise CheckpointError(f"{path}: no output {release.logits_tensor or f'of {release.n_classes} columns'} "
                              f"(outputs: {', '.join(d['name'] for d in outputs)}); install it again with its spec")
    return found


def open_network(path: str | Path, *, threads: int | None = None, embedding: bool = True,
                 interpreters: int | None = None):
    """The frozen network in the file at ``path``, in the runtime that runs it: a member installed from a spec
    (:func:`~envsound.models.spec.spec_beside`) in its own (:class:`~envsound.models.onnx_network.OnnxNetwork` for
    ONNX), else BirdNET's or YAMNet's TFLite file in a :class:`LiteRTNetwork` (see :meth:`LiteRTNetwork.open` for
    the arguments and errors)."""
    from envsound.models.spec import spec_beside

    release = spec_beside(path)
    if release is not None and release.runtime == "onnx":
        from envsound.models.onnx_network import OnnxNetwork

        return OnnxNetwork.open(path, release, threads=threads, embedding=embedding, interpreters=interpreters)
    return LiteRTNetwork.open(path, threads=threads, embedding=embedding, interpreters=interpreters, release=release)


def activate(output: np.ndarray, activation: str) -> np.ndarray:
    """A network's ``(n, K)`` output as probabilities in [0, 1], float32: ``sigmoid`` of logits, ``softmax`` over a
    row's logits, ``none``: scores already."""
    if activation == "sigmoid":
        output = sigmoid(output)
    elif activation == "softmax" and output.size:
        output = softmax(output)
    return output.astype(np.float32, copy=False)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-logits))`` elementwise; a logit beyond float range gives 0 or 1 without a warning."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits))


def softmax(logits: np.ndarray) -> np.ndarray:
    """``(n, K)`` logits -> ``(n, K)`` probabilities summing to 1 along each row (shifted by the row's maximum, so a
    large logit does not overflow)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def frozen_config(release: FrozenRelease, *, hop_seconds: float | None = None) -> Config:
    """The config a frozen network is described by: its waveform windows (rate, window, hop: ``hop_seconds``, the
    release's default hop when ``None``), its name."""
    hop = release.hop_seconds if hop_seconds is None else hop_seconds
    return bare_config(model=release.name, overrides=[
        "features.kind=waveform", f"features.sample_rate={release.sample_rate}",
        f"features.window_seconds={release.window_seconds}", f"features.eval_hop_seconds={hop}"])


class FrozenModel:
    """A frozen network with its labels, answering what a :class:`~envsound.inference.predictor.Predictor` asks
    (``waveform_probs``, labels, task, config): a multi-label tagger at threshold 0.5 (see :meth:`load`), or a head
    learned over its embedding (:meth:`from_checkpoint`, :meth:`from_export`), with the "none of these" gate of a
    single-label probe when it was calibrated (:attr:`open_set`)."""

    scores_windows = False  # cuts its own windows from the waveform (the frontend is inside the network)
    has_frames = False
    frame_seconds = 0.0
    # a learned head's "none of these" gate (envsound.models.open_set), applied by head_probs as ClipModel applies a
    # torch network's; None: every window is one of its classes (the network's own classes, envsound learn's heads)
    open_set: OpenSet | None = None

    def __init__(self, network: LiteRTNetwork, *, labels: list[str], device: str = "cpu",
                 head: tuple[np.ndarray, np.ndarray] | None = None, task: Task | None = None) -> None:
        self.network, self.release = network, network.release
        self.labels = list(labels)
        self.config = frozen_config(self.release)
        self.task = task or Task(MULTI_LABEL)
        # a learned head (envsound learn): weights (K, embedding_width) and bias (K,) over the embedding, in place of
        # the network's own classes; None: the network's outputs
        self.head = None if head is None else (np.asarray(head[0], np.float32), np.asarray(head[1], np.float32))
        self.meta: dict[str, Any] = {"kind": "frozen", "network": self.release.name, "licence": self.release.licence,
                                     "file": str(network.path)}
        self.runtime = (EngineRuntime("cpu", "CPUExecutionProvider") if self.release.runtime == "onnx"
                        else EngineRuntime("cpu", "XNNPACK", engine="litert"))  # on the CPU, float32
        self.threads: int | None = None  # LiteRT's CPU threads (None: its default)
        self._embedder: LiteRTNetwork | None = None

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", precision: str = "auto",
             threads: int | None = None) -> "FrozenModel":
        """Open the TFLite file at ``path`` and its label file beside it, on the CPU (``device`` ``auto`` or
        ``cpu``) in float32 (``precision`` ``auto`` or ``32``).

        Raises:
            CheckpointError: see :meth:`LiteRTNetwork.open`; the label file is missing or has the wrong count.
            ConfigError: another device or precision; LiteRT is not installed.
        """
        check_cpu_float32(path, device, precision)
        network = open_network(path, threads=threads, embedding=False)
        release = network.release  # a spec member may have no classes of its own: embeddings only
        labels = read_frozen_labels(release, labels_beside(release, Path(path))) if release.n_classes else []
        model = cls(network, labels=labels)
        model.threads = threads
        return model

    @classmethod
    def from_checkpoint(cls, checkpoint, *, path: str | Path, device: str = "auto", precision: str = "auto",
                         threads: int | None = None) -> "FrozenModel":
        """A learned head over a frozen network (a ``model.ckpt`` :func:`write_learned` or ``train --init NAME``
        wrote): the trunk found by digest (:func:`learned_trunk`) in one interpreter that keeps its tensors, its
        windows scored by the head, through the checkpoint's open-set gate when it has one (``checkpoint.open_set``,
        a single-label probe's; checkpoints without one load as before: no gate).

        Raises:
            CheckpointError: the trunk is missing or another file; not such a checkpoint; a gate of the wrong shape.
            ConfigError: another device or precision than the CPU in float32; LiteRT is not installed.
        """
        if not is_learned(checkpoint):
            raise CheckpointError(f"{path}: not a head learned over a frozen network")
        check_cpu_float32(path, device, precision)
        network = open_network(learned_trunk(checkpoint, given=path), threads=threads, embedding=True)
        state = checkpoint.state_dict
        if "head.weight" not in state or "head.bias" not in state:
            raise CheckpointError(f"{path}: a learned head without head.weight and head.bias; learn it again")
        head = (state["head.weight"].float().numpy(), state["head.bias"].float().numpy())
        gate = None if checkpoint.open_set is None else OpenSet.from_payload(
            checkpoint.open_set, n_classes=len(checkpoint.labels), source=str(path),
            width=network.release.embedding_width)
        model = cls._headed(network, head, labels=checkpoint.labels, task=checkpoint.task, meta=checkpoint.meta,
                            path=path, threads=threads, open_set=gate)
        # the hop it was trained and evaluated at (cv --init ... --set features.eval_hop_seconds=...), not the default
        model.config = frozen_config(network.release, hop_seconds=checkpoint.config.features.eval_hop_seconds)
        return model

    @classmethod
    def from_export(cls, path: str | Path, *, device: str = "auto", precision: str = "auto",
                    threads: int | None = None) -> "FrozenModel":
        """A learned head as ``envsound export`` writes it (a folder: :mod:`envsound.models.frozen_head`; ``path``:
        the folder or its manifest): its trunk's copy in one interpreter that keeps its tensors, its head (and its
        open-set gate, when exported with one) read with numpy. No torch.

        Raises:
            CheckpointError: not such a folder, a file in it changed or missing (their sha256 are checked), the
                trunk is another network than the manifest names.
            ConfigError: another device or precision than the CPU in float32; LiteRT is not installed.
        """
        check_cpu_float32(path, device, precision)
        export = read_head_export(path)
        network = open_network(export.trunk, threads=threads, embedding=True)
        if network.release.name != export.release.name:
            raise CheckpointError(f"{export.trunk}: holds {network.release.name}, not {export.release.name} as "
                                  "its manifest says; export the head again")
        return cls._headed(network, (export.weight, export.bias), labels=export.labels, task=export.task,
                           meta=export.meta, path=export.folder, threads=threads, open_set=export.open_set)

    @classmethod
    def _headed(cls, network: LiteRTNetwork, head: tuple[np.ndarray, np.ndarray], *, labels: list[str],
                task: Task, meta: dict, path: str | Path, threads: int | None,
                open_set: OpenSet | None = None) -> "FrozenModel":
        """The model of a learned head over ``network`` (opened with its embedding): one interpreter, the head
        reading its embedding, gated by ``open_set`` when given; ``meta`` (the learning's) over the network's,
        ``file`` the model's ``path``.

        Raises:
            CheckpointError: the head's width is not the network's embedding width (the gate's is checked where it
                is read).
        """
        if head[0].shape[1:] != (network.release.embedding_width,):
            raise CheckpointError(f"{path}: its head reads {head[0].shape[1:]}-d embeddings, not the "
                                  f"{network.release.embedding_width}-d of {network.release.name}; learn it again")
        model = cls(network, labels=labels, head=head, task=task)
        model.open_set = open_set
        model._embedder, model.threads = network, threads  # one interpreter: the head reads its embedding
        model.meta.update({key: value for key, value in meta.items() if key not in ("file",)})
        model.meta["file"] = str(path)
        return model

    @property
    def embedder(self) -> LiteRTNetwork:
        """The same file in a second interpreter that keeps its tensors, so it reads the embedding; opened at the
        first embedding asked (prediction alone never pays for it: :meth:`LiteRTNetwork.open`)."""
        if self._embedder is None:
            self._embedder = open_network(self.network.path, threads=self.threads, embedding=True)
        return self._embedder

    def window_embeddings(self, windows: np.ndarray) -> np.ndarray:
        """Windows ``(n, input_samples)`` or ``(n, 1, input_samples)`` float32 -> ``(n, embedding_width)`` float32,
        the embedding each window's scores are read from (see :meth:`LiteRTNetwork.embed`)."""
        return self.embedder.embed(windows)

    def waveform_embeddings(self, samples: np.ndarray, *, before: int | None = None) -> tuple[np.ndarray, list[int]]:
        """As :meth:`waveform_probs`, each window's embedding ``(n, embedding_width)`` float32 in place of its
        probabilities: the windows ``predict`` scores, so a store's rows and a prediction's segments agree."""
        windows, starts = self._windows(samples, before)
        if not starts:
            return np.zeros((0, self.release.embedding_width), dtype=np.float32), []
        return self.window_embeddings(windows), starts

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def waveform_probs(self, samples: np.ndarray, *, before: int | None = None, frames: bool = False) -> tuple:
        """A waveform ``(samples,)`` float32 at the network's rate -> (window probabilities ``(n, K)``, window
        starts in samples): the windows of the whole waveform that start before ``before`` (all: ``None``), the
        last zero-padded when the waveform is shorter than a window."""
        if frames:
            raise ConfigError(f"{self.release.name}: a frozen network scores windows, not frames")
        windows, starts = self._windows(samples, before)
        if not starts:
            return np.zeros((0, self.n_classes), dtype=np.float32), []
        if self.head is not None:
            return self.head_probs(self.window_embeddings(windows)), starts
        check_no_classes(self.release, self.network.path)
        probs, _ = self.network.scores(windows)
        return probs, starts

    def head_probs(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, embedding_width)`` embeddings (any float dtype: a store's float16) -> ``(n, K)`` probabilities of the
        learned head, ``sigmoid(x . w + b)`` (a single-label task's head, as ``cv``/``train --init`` write for a set
        of one class a clip: the softmax over its classes), through the :attr:`open_set` gate when it has one (a
        class ruled out, its probability negated, in the windows not close enough to its training clips, as
        :meth:`~envsound.models.clip.ClipModel.head_probs`): what ``predict`` gives the same windows, so a store's
        windows rank as the audio scores.

        Raises:
            ConfigError: no learned head (the network's own classifier is inside the TFLite file, not a head envsound
                reads).
        """
        if self.head is None:
            raise ConfigError(f"{self.release.name} is a frozen network whose classifier is inside its file, not a "
                              "head over its embedding; learn one on a store with envsound learn")
        weights, bias = self.head
        if len(embeddings) == 0:
            return np.zeros((0, len(bias)), dtype=np.float32)
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
        logits = embeddings @ weights.T + bias
        probs = (sigmoid(logits) if self.task.multi_label else softmax(logits)).astype(np.float32)
        return probs if self.open_set is None else self.open_set.gate(probs, embeddings)

    def _windows(self, samples: np.ndarray, before: int | None) -> tuple[np.ndarray, list[int]]:
        """The windows ``(n, input_samples)`` of a waveform that start before ``before`` (all: ``None``) and their
        starts in samples, the last zero-padded when the waveform is shorter than a window."""
        features, width = self.config.features, self.release.input_samples
        samples = np.asarray(samples, dtype=np.float32)
        starts = [s for s in eval_starts(len(samples), features) if before is None or s < before]
        windows = np.zeros((len(starts), width), dtype=np.float32)
        for row, start in enumerate(starts):
            piece = samples[start:start + width]
            windows[row, :len(piece)] = piece
        return windows, starts


LEARNED_KIND = "frozen-head"
"""``meta["kind"]`` of a ``model.ckpt`` that ``envsound learn`` wrote over a frozen network: a head and the trunk's
name and digest (:func:`write_learned`), read by :meth:`FrozenModel.from_checkpoint`."""


def is_learned(checkpoint) -> bool:
    """True when a :class:`~envsound.models.checkpoint.Checkpoint` is a head learned over a frozen network."""
    return (checkpoint.meta or {}).get("kind") == LEARNED_KIND


def write_learned(trunk: Path, labels: list[str], weights: np.ndarray, bias: np.ndarray, thresholds: list[float],
                  path: Path, *, meta: dict) -> Path:
    """``path``: a ``model.ckpt`` of a head learned on the embeddings of the frozen network in the file ``trunk``:
    the network's config (rate, window, hop), ``labels``, a multi-label task at ``thresholds``, ``head.weight``
    ``(K, embedding_width)`` and ``head.bias`` ``(K,)``; ``meta`` (the learning's) gains the trunk (``network``,
    ``digest``, ``file``, ``layer``) and the network's licence, which travels with every model learned on it.
    Needs torch (the checkpoint format); the network is not copied in.

    Raises:
        ConfigError: the head's width is not the network's embedding width.
    """
    import torch

    from envsound.fileio import file_digest
    from envsound.models.checkpoint import Checkpoint, save_checkpoint

    network = open_network(trunk, embedding=False, interpreters=1)
    release = network.release
    if weights.shape[1] != release.embedding_width:
        raise ConfigError(f"{trunk}: {release.name}'s embedding is {release.embedding_width}-d, the head reads "
                          f"{weights.shape[1]}-d vectors; embed the archive again with this network")
    trunk_meta = {**meta.get("trunk", {}), "network": release.name, "digest": file_digest(trunk), "file": str(trunk),
                  "layer": "embed"}
    learned = Checkpoint(config=frozen_config(release), labels=list(labels),
                         task=Task(MULTI_LABEL, class_thresholds=tuple(float(t) for t in thresholds)),
                         state_dict={"head.weight": torch.from_numpy(np.ascontiguousarray(weights, np.float32)),
                                     "head.bias": torch.from_numpy(np.ascontiguousarray(bias, np.float32))},
                         meta={**meta, "kind": LEARNED_KIND, "network": release.name, "licence": release.licence,
                               "trunk": trunk_meta})
    return save_checkpoint(path, learned)


def learned_trunk(checkpoint, *, given: str | Path = "model") -> Path:
    """The file of the frozen network a learned head reads: the installed member of its name, else the file it was
    learned with; either must have the digest the checkpoint records.

    Raises:
        CheckpointError: neither is there, or the file there is another network (its digest differs).
    """
    from envsound.fileio import file_digest
    from envsound.models.frozen import FROZEN
    from envsound.models.releases import installed_path

    trunk = checkpoint.meta.get("trunk") or {}
    name, digest = trunk.get("network", ""), trunk.get("digest", "")
    places = [installed_path(FROZEN[name])] if name in FROZEN else []
    places.append(Path(trunk["file"]) if trunk.get("file") else None)
    found = [place for place in places if place is not None and place.is_file()]
    for place in found:
        if file_digest(place) == digest:
            return place
    where = ", ".join(str(place) for place in found) or "not installed"
    raise CheckpointError(f"{given}: its head was learned on {name} {digest[:16]}, which is not here ({where}); "
                          f"install that file with 'envsound download {name} --from FILE'")


def check_cpu_float32(path: str | Path, device: str, precision: str) -> None:
    """Refuse (ConfigError) a device or precision LiteRT does not run a TFLite network at: it runs on the CPU in
    float32."""
    if device not in ("auto", "cpu") or precision not in ("auto", "32"):
        raise ConfigError(f"{path}: a TFLite network runs on the CPU in float32 through LiteRT; use --device "
                          "auto/cpu and --precision auto/32")
