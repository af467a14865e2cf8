"""ONNX Runtime runs a frozen network installed from an ONNX file and a spec (:mod:`envsound.models.spec`): batched
windows -> its logits (or scores) and its embedding, the same calls as
:class:`~envsound.models.litert.LiteRTNetwork`, so :class:`~envsound.models.litert.FrozenModel` and everything
above it take either.

The embedding may be an inner tensor: ONNX Runtime returns graph outputs only, so the graph is read with ``onnx``
and the tensor added to its outputs in memory (the file is never changed; its digest stays its identity).

    >>> net = OnnxNetwork.open("my-tagger.onnx", release)
    >>> logits, embedding = net.run(windows)        # (n, K), (n, d) from (n, window) float32
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from envsound.cores import usable_cores
from envsound.errors import CheckpointError, ConfigError
from envsound.models.frozen import FrozenRelease

BATCH = 64
"""Windows a call when the file's batch dimension is free (one by one when it is fixed)."""


def open_session(path: Path, *, extra_outputs: tuple[str, ...] = (), threads: int | None = None):
    """An ONNX Runtime session of the file at ``path`` on the CPU, ``extra_outputs`` (inner tensors) added to its
    outputs in memory.

    Raises:
        CheckpointError: not a readable ONNX file (one line).
        ConfigError: an inner tensor asked and ``onnx`` is not installed (the pip line).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.log_severity_level = 3  # no warnings about unused initialisers on every open
    try:
        if not extra_outputs:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        try:
            import onnx
        except ImportError as exc:
            raise ConfigError(f"{path}: reading the inner tensor {extra_outputs[0]} needs onnx ({exc}); pip install "
                              "onnx, or export the embedding as an output") from exc
        model = onnx.load(str(path))
        for name in extra_outputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except ConfigError:
        raise
    except Exception as exc:  # ONNX Runtime's own exception types (InvalidProtobuf, Fail ...) derive from Exception
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable ONNX network ({reason[:160]})") from exc


def tensor_names(path: Path) -> tuple[list[str], set[str]]:
    """The graph's outputs and every tensor a node makes, of the ONNX file at ``path`` (``onnx`` installed), or its
    outputs alone (twice) when ``onnx`` is not."""
    try:
        import onnx
    except ImportError:
        import onnxruntime as ort

        outputs = [o.name for o in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()]
        return outputs, set(outputs)
    graph = onnx.load(str(path)).graph
    return [o.name for o in graph.output], {name for node in graph.node for name in node.output}


class OnnxNetwork:
    """A frozen network in one ONNX Runtime session (see :meth:`open`)."""

    def __init__(self, session, release: FrozenRelease, *, path: Path, embedding: bool = True) -> None:
        self.session, self.release, self.path, self.embedding = session, release, Path(path), embedding
        self._input = session.get_inputs()[0]
        shape = list(self._input.shape)
        self._batched = len(shape) > 1  # "samples": one window a call, no batch dimension
        self._batch_free = self._batched and not isinstance(shape[0], int)
        self._layout = [-1, 1, release.input_samples] if len(shape) == 3 else [-1, release.input_samples]
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, release: FrozenRelease, *, threads: int | None = None,
             embedding: bool = True, interpreters: int | None = None) -> "OnnxNetwork":
        """The ONNX file at ``path``, the spec member ``release`` (``threads``: ONNX Runtime's intra-op threads,
        ``None``: one a usable core; ``embedding=False``: its embedding not read; ``interpreters`` is
        :class:`~envsound.models.litert.LiteRTNetwork`'s and ignored: one session runs a batch on every thread).

        Raises:
            CheckpointError: not a readable ONNX file, or a tensor the spec names is not there.
            ConfigError: the embedding is an inner tensor and ``onnx`` is not installed.
        """
        path = Path(path)
        session = open_session(path, threads=threads)
        outputs = [o.name for o in session.get_outputs()]
        wanted = ([release.embedding_tensor] if embedding else []) + ([release.logits_tensor] if release.n_classes
                                                                       else [])
        extra = tuple(name for name in wanted if name not in outputs)
        if extra:  # an inner tensor: the graph again, with it among the outputs
            session = open_session(path, extra_outputs=extra, threads=threads)
        return cls(session, release, path=path, embedding=embedding)

    @property
    def interpreters(self) -> int:
        """One: ONNX Runtime shares a batch among its threads itself."""
        return 1

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Windows ``(n, input_samples)`` float32 in [-1, 1] at the release's rate -> (``(n, n_classes)`` its
        output as the file gives it, ``(n, embedding_width)`` the embedding, ``None`` when opened with
        ``embedding=False``).

        Raises:
            ConfigError: ``windows`` is not ``(n, input_samples)``.
            CheckpointError: the network's output is not the width its install recorded.
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.release.input_samples:
            raise ConfigError(f"{self.path}: windows of shape {windows.shape}; {self.release.name} takes "
                              f"(n, {self.release.input_samples})")
        wanted = ([self.release.logits_tensor] if self.release.n_classes else []) + \
            ([self.release.embedding_tensor] if self.embedding else [])
        step = BATCH if self._batch_free else 1
        output = np.zeros((len(windows), self.release.n_classes), np.float32)
        embedding = np.zeros((len(windows), self.release.embedding_width), np.float32) if self.embedding else None
        with self._lock:
            for first in range(0, len(windows), step):
                chunk = windows[first:first + step]
                feed = chunk.reshape(self._layout) if self._batched else chunk.reshape(-1)
                results = dict(zip(wanted, self.session.run(wanted, {self._input.name: feed}))) if wanted else {}
                if self.release.n_classes:
                    output[first:first + len(chunk)] = self._rows(results[self.release.logits_tensor], len(chunk))
                if embedding is not None:
                    embedding[first:first + len(chunk)] = self._rows(results[self.release.embedding_tensor],
                                                                     len(chunk))
        return output, embedding

    def _rows(self, value: np.ndarray, n: int) -> np.ndarray:
        try:
            return np.asarray(value, dtype=np.float32).reshape(n, -1)
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: gave {np.shape(value)} for {n} windows; install it again with a "
                                  "spec that matches it") from exc

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Windows ``(n, input_samples)`` (or ``(n, 1, input_samples)``) -> ``(n, embedding_width)`` float32.

        Raises:
            ConfigError: opened with ``embedding=False``, or ``windows`` has the wrong shape.
        """
        if not self.embedding:
            raise ConfigError(f"{self.path}: opened without its embedding (embedding=False); open it with "
                              "embedding=True to embed")
        windows = np.asarray(windows, dtype=np.float32)
        return self.run(windows.reshape(len(windows), -1))[1]

    def scores(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """As :meth:`run`, the output as probabilities (the release's activation applied)."""
        from envsound.models.litert import activate

        output, embedding = self.run(windows)
        return activate(output, self.release.activation), embedding
