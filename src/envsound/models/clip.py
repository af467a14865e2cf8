"""A trained model together with its feature settings: windows in, class probabilities out.

Clip-level predictions average the probabilities of the clip's windows (a clip shorter than a window is padded).
Used by evaluation (on cached features) and by inference (on freshly decoded audio), so both score a clip the same way.
"""

from __future__ import annotations

import copy
import logging
from typing import Sequence

import numpy as np
import torch
from torch import nn

from envsound.config import Config, FeatureConfig
from envsound.errors import CheckpointError, ConfigError
from envsound.hardware import Runtime, has_image_layers, probe_candidates, resolve_runtime
from envsound.features.extract import waveform_windows
from envsound.features.mel import logmel_frontend
from envsound.features.mfcc import mfcc_summary
from envsound.features.windows import eval_windows, samples_per_step
from envsound.models.checkpoint import Checkpoint
from envsound.models.ensemble import Ensemble
from envsound.models.frames import EPS
from envsound.models.open_set import OpenSet
from envsound.models.registry import build_model, check_feature_kind, get_model_class, is_torch_model
from envsound.task import Task

log = logging.getLogger(__name__)

HEAD_ROWS = 8192  # embeddings a batch of head_probs: 32 MB of float32 at 1,000 dimensions


def pooled_probs(frame_probs: np.ndarray) -> np.ndarray:
    """``(n, steps, K)`` frame probabilities -> ``(n, K)``: their linear-softmax pooling, what a frame model's
    ``forward`` gives (:func:`~envsound.models.frames.linear_softmax_logit`)."""
    pooled = (frame_probs ** 2).sum(axis=1) / np.maximum(frame_probs.sum(axis=1), EPS)
    return np.clip(pooled, EPS, 1 - EPS).astype(np.float32)


def splits_at_embedding(network: nn.Module, windows: torch.Tensor) -> bool:
    """Whether ``network``'s logits are its ``head`` applied to its ``embed`` (checked on ``windows``, in eval mode):
    then a prediction can read both from one pass (:meth:`ClipModel.embedded_probs`)."""
    if not (hasattr(network, "embed") and hasattr(network, "head")) or getattr(network, "has_frames", False):
        return False
    with torch.inference_mode():
        whole, split = network(windows).float(), network.head(network.embed(windows)).float()
    return bool(torch.allclose(whole, split, atol=1e-4, rtol=1e-4))


def input_shape(features: FeatureConfig) -> tuple[int, int, int]:
    """The ``(in_channels, n_mels, n_frames)`` a model is built with for these feature settings.

    Log-mel: ``(1 or 2 with deltas, n_mels, window_frames)``. Waveform: ``(1, 1, window_samples)``, i.e. a waveform
    model gets the window length in samples as ``n_frames`` (its input is ``(batch, samples)`` or
    ``(batch, 1, samples)``).
    """
    if features.kind == "waveform":
        return 1, 1, features.window_samples
    return (2 if features.deltas else 1), features.n_mels, features.window_frames


def window_shape(features: FeatureConfig) -> tuple[int, ...]:
    """One model window as training and prediction feed it: ``(C, n_mels, window_frames)`` log-mel or
    ``(1, window_samples)`` waveform (batched, a leading batch axis)."""
    if features.kind == "waveform":
        return 1, features.window_samples
    return input_shape(features)


def build_network(config: Config, n_classes: int) -> nn.Module:
    """The torch model named by ``config.model`` sized for ``config.features``; with ``train.ensemble`` N > 1, an
    :class:`~envsound.models.ensemble.Ensemble` of N of them.

    Raises:
        ConfigError: ``features.kind`` is not the kind of input the model takes (e.g. ``aclnet`` with log-mel).
    """
    check_feature_kind(config.model.name, config.features.kind)
    channels, n_mels, n_frames = input_shape(config.features)

    def network() -> nn.Module:
        return build_model(config.model, n_classes=n_classes, in_channels=channels, n_mels=n_mels, n_frames=n_frames)

    if config.train.ensemble > 1:
        return Ensemble([network() for _ in range(config.train.ensemble)])
    return network()


def inference_runtime(config: Config, build, *, device: str = "auto", precision: str = "auto",
                      network: nn.Module | None = None, setting: str = "--device", timed: bool = True) -> Runtime:
    """Where and how a network built by ``build()`` scores windows: ``device`` as ``runtime.accelerator`` (``auto``:
    CUDA, then MPS, else CPU), precision and memory format chosen by :func:`~envsound.hardware.resolve_runtime` with
    a probe of one-window batches (the latency a ``predict`` of a short clip sees), cached per machine; ``precision``
    other than ``auto`` (``32``: fp32) is taken as given. ``network``, the one that will run (if at hand), tells
    whether a waveform model has 2-D layers (else ``build`` is called on the meta device); ``setting`` is how an
    error names ``device`` (a probe's trunk runs on ``runtime.accelerator``). ``timed=False``: no probe, the first
    candidate taken (a caller that scores no audio, such as ``check`` on stored embeddings)."""
    shape = window_shape(config.features)
    probe = probe_candidates(build, shape, mode="infer", batch=1,
                             identity={"name": config.model.name, "filters": config.model.filters,
                                       "options": config.model.options,
                                       "ensemble": config.train.ensemble, "kind": config.features.kind}) \
        if timed else None
    image_layers = len(shape) == 3 or has_image_layers(network if network is not None else build)
    runtime = resolve_runtime(accelerator=device, precision=precision, channels_last="auto", image_input=image_layers,
                              setting=setting, probe=probe)
    log.debug("inference runtime: %s", runtime.describe())
    return runtime


class ClipModel:
    """Scores windows ``(n, C, n_mels, window_frames)`` and whole clips ``(C, n_mels, frames)`` (log-mel), or windows
    ``(n, 1, window_samples)`` and clips ``(1, samples)`` (waveform models, ``features.kind = "waveform"``).

    Exactly one of ``network`` (a torch model returning logits) or ``baseline`` (an sklearn baseline on MFCC
    statistics) is set. Probabilities follow ``task`` (:class:`~envsound.task.Task`): softmax outputs, or sigmoid
    outputs for multi-label models.
    """

    scores_windows = True  # takes feature windows cut elsewhere (scored_windows): the scan's workers cut them

    def __init__(self, *, config: Config, labels: Sequence[str], task: Task | None = None,
                 network: nn.Module | None = None, baseline=None, batch_size: int = 64,
                 runtime: Runtime | None = None) -> None:
        if (network is None) == (baseline is None):
            raise ValueError("ClipModel needs exactly one of network or baseline")
        self.config = config
        self.labels = list(labels)
        self.task = task or Task()
        self.runtime = runtime or Runtime(accelerator="cpu", devices=1, precision="32", channels_last=False,
                                          reason="as constructed")
        self.network = None
        if network is not None:
            fmt = torch.channels_last if self.runtime.channels_last else torch.contiguous_format
            self.network = network.eval().to(self.runtime.device, memory_format=fmt)
        self.baseline = baseline
        self.batch_size = batch_size
        self.trained_on: np.ndarray | None = None  # exact ids of the training clips, when the checkpoint has them
        self.trained_prints: np.ndarray | None = None  # and their robust-fingerprint excerpts (re-encoded copies)
        self.meta: dict = {}  # the checkpoint's meta: dataset, folds, versions, creation time, runtime
        self.open_set: OpenSet | None = None  # the "none of these" gate of prediction (scored_windows), if calibrated
        self._frontend: nn.Module | None = None  # built on the first waveform_probs

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, *, source: str = "checkpoint",
                        device: str = "auto", precision: str = "auto", timed: bool = True) -> "ClipModel":
        model = cls._from_checkpoint(checkpoint, source=source, device=device, precision=precision, timed=timed)
        model.trained_on, model.trained_prints = checkpoint.trained_on, checkpoint.trained_prints
        model.meta = dict(checkpoint.meta)
        if checkpoint.open_set is not None and model.network is not None:
            model.open_set = OpenSet.from_payload(checkpoint.open_set, n_classes=model.n_classes, source=source)
        return model

    @classmethod
    def _from_checkpoint(cls, checkpoint: Checkpoint, *, source: str, device: str, precision: str,
                         timed: bool = True) -> "ClipModel":
        """Rebuild the model a checkpoint describes, on ``device`` (``auto``: CUDA, then MPS, else CPU; precision
        and memory format chosen as :func:`inference_runtime` does, ``timed`` or not). A weight mismatch is a
        :class:`CheckpointError`; a device this machine lacks, a :class:`ConfigError`."""
        config, n_classes = checkpoint.config, len(checkpoint.labels)
        name = config.model.name
        if checkpoint.meta.get("kind") == "autoencoder":
            raise CheckpointError(f"{source}: is a pre-trained autoencoder, not a classifier; use it as "
                                  "'envsound train --init' and pass the resulting model.ckpt here")
        if is_torch_model(name):
            if checkpoint.state_dict is None:
                raise CheckpointError(f"{source}: model {name!r} checkpoint holds no weights")
            network = build_network(config, n_classes)
            try:
                network.load_state_dict(checkpoint.state_dict, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"{source}: weights do not fit model {name!r}: "
                                      f"{str(exc).splitlines()[0]}") from exc
            return cls(config=config, labels=checkpoint.labels, task=checkpoint.task, network=network,
                       runtime=inference_runtime(config, lambda: build_network(config, n_classes), device=device,
                                                   precision=precision, network=network, timed=timed))
        if checkpoint.sklearn_bytes is None:
            raise CheckpointError(f"{source}: baseline {name!r} checkpoint holds no fitted estimator")
        baseline = get_model_class(name).from_bytes(checkpoint.sklearn_bytes, n_classes=n_classes)
        return cls(config=config, labels=checkpoint.labels, task=checkpoint.task, baseline=baseline)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def deciding_at(self, threshold: float) -> "ClipModel":
        """A copy of this model deciding at ``threshold`` for every class (a multi-label model's labels, any model's
        events), over the checkpoint's tuned or per-class thresholds; this one is left as loaded.

        Raises:
            ConfigError: ``threshold`` not in (0, 1).
        """
        other = copy.copy(self)
        other.task = self.task.with_threshold(threshold)
        other.config = self.config.with_overrides(["events.threshold=null"])  # the events follow the task's
        return other

    @property
    def has_frames(self) -> bool:
        """True for a network with frame-level output (``model.options.frame_head``): events come from its frames."""
        return self.network is not None and bool(getattr(self.network, "has_frames", False))

    @property
    def frame_seconds(self) -> float:
        """Seconds between two frames of :meth:`frame_probs` (a frame model only)."""
        features = self.config.features
        return self.network.frame_step_frames * samples_per_step(features) / features.sample_rate

    def frame_probs(self, windows: np.ndarray) -> np.ndarray:
        """Windows (as :meth:`window_probs`) -> ``(n, steps, K)`` frame probabilities, frame ``m`` centred
        ``m x frame_seconds`` after its window's start (a frame model only)."""
        if len(windows) == 0:
            return np.zeros((0, 0, self.n_classes), dtype=np.float32)
        return self.run_network(windows, lambda batch: torch.sigmoid(self.network.frame_logits(batch).float()))

    def window_probs(self, windows: np.ndarray) -> np.ndarray:
        """``(n, C, n_mels, window_frames)`` log-mel or ``(n, 1, window_samples)`` waveform windows (float32) ->
        ``(n, n_classes)`` probabilities."""
        if len(windows) == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        if self.baseline is not None:
            stats = np.stack([mfcc_summary(w, n_mfcc=self.config.features.n_mfcc) for w in windows])
            return self.baseline.predict_proba(stats).astype(np.float32)

        def probabilities(batch: torch.Tensor) -> torch.Tensor:
            return self.task.activation(self.network(batch).float())

        return self.run_network(windows, probabilities)

    def waveform_probs(self, samples: np.ndarray, *, before: int | None = None, frames: bool = False) -> tuple:
        """A waveform ``(samples,)`` float32 at ``config.features.sample_rate`` -> (window probabilities ``(n, K)``,
        window starts in frames or samples): the evaluation windows of the whole waveform that start before
        ``before`` (all: ``None``). What :class:`~envsound.inference.predictor.Predictor` scores each block with.
        ``frames`` (a frame model): a third item, the windows' frame probabilities ``(n, steps, K)``."""
        features = self.config.features
        if features.kind == "logmel" and self._frontend is None:
            self._frontend = logmel_frontend(features).eval()
        windows, starts = waveform_windows(samples, features, frontend=self._frontend, before=before)
        probs, framed = self.scored_windows(windows, frames=frames)
        return (probs, starts, framed) if frames else (probs, starts)

    def scored_windows(self, windows: np.ndarray, *, frames: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(window probabilities ``(n, K)``, with ``frames`` the frame probabilities ``(n, steps, K)`` they pool,
        else ``None``): what every caller that scores windows for prediction (files, archives, live) asks of the
        model. A model with an :attr:`open_set` gate has a class ruled out in the windows that are not close enough to
        its training clips: its probability negated (:meth:`~envsound.models.open_set.OpenSet.gate`; readers take
        :func:`~envsound.models.open_set.admitted`, 0 there; a row with none above 0: none of the classes); evaluation
        reads :meth:`window_probs`, the closed-set probabilities."""
        if frames:
            framed = self.frame_probs(windows)
            return pooled_probs(framed), framed
        if self.open_set is None or len(windows) == 0:
            return self.window_probs(windows), None
        embeddings, probs = self.embedded_probs(windows)
        return self.open_set.gate(probs, embeddings), None

    def embedded_probs(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows -> (embeddings ``(n, d)``, probabilities ``(n, K)``) in one pass: the head of the network applied
        to its embedding (the networks an open-set gate is calibrated for: :func:`splits_at_embedding`)."""
        width = []

        def both(batch: torch.Tensor) -> torch.Tensor:
            embedding = self.network.embed(batch)
            width[:] = [embedding.shape[1]]
            return torch.cat([embedding.float(), self.task.activation(self.network.head(embedding).float())], dim=1)

        out = self.run_network(windows, both)
        return out[:, :width[0]], out[:, width[0]:]

    def head_probs(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, d)`` embeddings (what :meth:`window_embeddings` gives, ``network.embed``'s output; any float dtype,
        e.g. an embeddings store's float16) -> ``(n, n_classes)`` probabilities: the network's head, the task's
        activation and the open-set gate, so the same windows score as :meth:`scored_windows` scores them
        (:meth:`window_probs` for a model without a gate). Runs on the runtime's device and precision, in batches of
        :data:`HEAD_ROWS` rows (a head is cheap: the windows' batch size would leave it waiting on Python).

        >>> probs = model.head_probs(model.window_embeddings(windows))
        >>> probs.shape  # (len(windows), model.n_classes)

        Raises:
            ConfigError: the model's probabilities are not a head over its embedding (a baseline, an ensemble, a
                frame model, whose windows score from their frames).
        """
        network = self.network
        if network is None or not (hasattr(network, "embed") and hasattr(network, "head")) or self.has_frames:
            kind = "a frame model (it scores windows from their frames)" if self.has_frames else \
                "a baseline or an ensemble"
            raise ConfigError(f"model {self.config.model.name!r} is {kind}: its probabilities are not a head over one "
                              "network's embedding")
        if len(embeddings) == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        probs = self.run_network(embeddings, lambda batch: self.task.activation(network.head(batch).float()),
                                 batch_size=HEAD_ROWS)
        if self.open_set is None:
            return probs
        return self.open_set.gate(probs, np.asarray(embeddings, dtype=np.float32))

    def window_embeddings(self, windows: np.ndarray) -> np.ndarray:
        """Windows (as :meth:`window_probs`) -> ``(n, d)`` embeddings: what the network's head sees
        (``network.embed``)."""
        if self.network is None or not hasattr(self.network, "embed"):
            raise ConfigError(f"model {self.config.model.name!r} has no embedding (a baseline or an ensemble); "
                              "embeddings come from one network")
        return self.run_network(windows, lambda batch: self.network.embed(batch).float())

    def embed_clips(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """``(n_clips, d)``: the mean embedding of each clip's evaluation windows."""
        rows = [self.window_embeddings(self.clip_windows(clip)[0]).mean(axis=0) for clip in features]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)

    def run_network(self, windows: np.ndarray, fn, *, batch_size: int | None = None) -> np.ndarray:
        """``fn(batch)`` over ``windows`` in batches of ``batch_size`` (default :attr:`batch_size`) on the runtime's
        device, concatenated."""
        outputs = []
        runtime = self.runtime
        size = batch_size or self.batch_size
        with torch.inference_mode(), runtime.autocast():
            for start in range(0, len(windows), size):
                batch = torch.from_numpy(np.ascontiguousarray(windows[start:start + size], np.float32))
                batch = batch.to(runtime.device, non_blocking=True)
                if runtime.channels_last and batch.dim() == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                outputs.append(fn(batch).cpu())
        return torch.cat(outputs).numpy()

    def clip_windows(self, features: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Cut one clip's features (``(C, n_mels, frames)`` or ``(1, samples)``) into evaluation windows; returns
        (windows, starts in frames or samples)."""
        return eval_windows(features, self.config.features)

    def clip_probs(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One clip -> (mean probabilities ``(K,)``, per-window probabilities ``(n, K)``, window start frames)."""
        windows, starts = self.clip_windows(features)
        probs = self.window_probs(windows)
        return probs.mean(axis=0), probs, starts

    def predict_clips(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Clip-level probabilities ``(n_clips, n_classes)`` for a list of ``(C, n_mels, frames)`` arrays.

        Windows of many clips go through the model together (batches of ``batch_size``), then are averaged per clip.
        """
        result = np.zeros((len(features), self.n_classes), dtype=np.float32)
        pending: list[np.ndarray] = []
        owners: list[int] = []

        def flush() -> None:
            probs = self.window_probs(np.concatenate(pending))
            np.add.at(result, np.asarray(owners), probs)
            pending.clear()
            owners.clear()

        counts = np.zeros(len(features), dtype=np.float32)
        for i, clip in enumerate(features):
            windows, _ = self.clip_windows(clip)
            pending.append(windows)
            owners.extend([i] * len(windows))
            counts[i] = len(windows)
            if len(owners) >= self.batch_size:
                flush()
        if owners:
            flush()
        return result / np.maximum(counts, 1)[:, None]
