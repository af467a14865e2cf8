"""Classify audio files of any length with a trained checkpoint.

The model is a checkpoint's :class:`~envsound.models.clip.ClipModel` (torch) or an exported
:class:`~envsound.inference.onnx_model.OnnxModel` (onnxruntime): this module imports neither torch nor onnxruntime
until :meth:`Predictor.from_checkpoint` opens one, so an ONNX deployment runs without torch installed.

A file is decoded and resampled in blocks (:func:`iter_audio_blocks`), so memory stays bounded by the block size
however long the file is. Each block of ``block_seconds`` plus one window of overlap is turned into the checkpoint's
features (log-mel, or the waveform itself for waveform models) and cut into windows exactly as evaluation cuts a
whole clip, so a clip shorter than a block is scored identically by ``envsound evaluate`` and
``envsound predict``. (Across block edges of longer files the first STFT frame of a block sees zero padding instead
of the previous block's samples: a negligible difference, once a minute; waveform windows are exact.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from envsound.audio.load import AUDIO_EXTENSIONS, iter_audio_blocks, waveform_from_array
from envsound.config import Config
from envsound.errors import EnvsoundError
from envsound.events import Decoding, FrameTrack, Timeline, decode
from envsound.events.context import ContextStream, context_seconds
from envsound.features.edges import EdgeStream
from envsound.features.windows import eval_hop_length, samples_per_step
from envsound.inference.class_filter import ClassNames, ClassSubset, kept_columns
from envsound.inference.listing import iter_inputs
from envsound.inference.onnx_model import OnnxModel
from envsound.models.files import CLASSIFIER, FROZEN, HEAD_EXPORT, ONNX, RELEASE, ModelFile, open_model_file
from envsound.models.litert import FrozenModel, is_learned  # LiteRT itself is imported when a network opens
from envsound.models.open_set import admitted, closed_set
from envsound.task import Task

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """The result for one input file; ``error`` is a one-line reason when the file could not be used."""

    file: str
    # [{"label", "score"}], best first; empty when a model with an open-set gate heard none of its classes
    top: list[dict] = field(default_factory=list)
    segments: list[dict] | None = None  # [{"start", "end", "label", "score"}] in seconds
    error: str | None = None
    duration: float | None = None
    labels: list[dict] | None = None  # multi-label models: [{"label", "score"}] at or above the threshold, best first
    events: list[dict] | None = None  # [{"label", "onset", "offset", "score"}] in seconds (envsound.events)
    # {(hour of the file, class index): windows of that hour decided as that class} (the scan's counts table)
    counts: dict[tuple[int, int], int] | None = None
    # {(hour of the file its onset is in, class index): events}, where events were decoded (``events=True``, or any
    # learned detector: :attr:`FileScores.decodes`), else None
    event_counts: dict[tuple[int, int], int] | None = None
    # True: the open-set gate ruled out every class in every window (``top`` is empty)
    rejected: bool = False
    # a rejected file's top-k as the network ranks them without the gate ([{"label", "score"}]), so such files can
    # still be ranked; None when not rejected, or when the model does not say (an ONNX export of format 7)
    closed: list[dict] | None = None

    def to_dict(self) -> dict:
        out = {"file": self.file, "top": self.top, "error": self.error}
        if self.rejected:
            out["rejected"] = True
        if self.closed is not None:
            out["closed"] = self.closed
        if self.labels is not None:
            out["labels"] = self.labels
        if self.segments is not None:
            out["segments"] = self.segments
        if self.events is not None:
            out["events"] = self.events
        return out


class WindowScorer(Protocol):
    """What a Predictor needs of a model: :class:`~envsound.models.clip.ClipModel` or
    :class:`~envsound.inference.onnx_model.OnnxModel`."""

    config: Config
    labels: list[str]
    task: Task
    meta: dict[str, Any]
    runtime: Any  # has describe() and to_dict()
    # True: also scores feature windows cut elsewhere (``scored_windows``; a scan's workers cut them), False: takes
    # only the waveform (``waveform_probs``)
    scores_windows: bool

    @property
    def n_classes(self) -> int: ...

    @property
    def has_frames(self) -> bool: ...  # a frame model: its events come from its frames

    @property
    def frame_seconds(self) -> float: ...  # a frame model's frame step

    def waveform_probs(self, samples: np.ndarray, *, before: int | None = None, frames: bool = False) -> tuple:
        """(window probabilities, window starts[, with ``frames`` the windows' frame probabilities])."""


class Predictor:
    """A checkpoint (or an exported ``.onnx`` model) ready to classify files.

    ``threshold`` (``--threshold``): one decision threshold for every class, for a multi-label model's labels and any
    model's events, over the checkpoint's own (tuned or per class); the model itself is left as loaded.
    :attr:`task` and :attr:`decoding` are what this predictor decides with. ``classes``: report only these of the
    model's classes (names, or the path of a species-list file: :mod:`~envsound.inference.class_filter`), in the
    model's label order; the others never appear (``None``: all).

    >>> predictor = Predictor.from_checkpoint("runs/esc10/model.ckpt")
    >>> predictor.predict_file("dog.wav", top_k=3).top

    Raises:
        ConfigError: ``classes`` names a class the model does not have (the message gives the nearest), or none.
    """

    def __init__(self, model: WindowScorer, *, block_seconds: float = 60.0, threshold: float | None = None,
                 classes: ClassNames | None = None) -> None:
        if classes is not None:
            model = ClassSubset(model, kept_columns(classes, model.labels, model=repr(model.config.model.name)))
        self.model = model
        self.threshold = threshold
        self.task: Task = model.task if threshold is None else model.task.with_threshold(threshold, name="threshold")
        decoding = Decoding.of(model.config.events)
        decoding = decoding if threshold is None else decoding.with_threshold(self.task.threshold)
        self.decoding: Decoding = decoding.resolved(self.task, model.n_classes)
        self.source: ModelFile | None = None  # the file from_checkpoint loaded (path, kind, digest), else None
        self.block_seconds = block_seconds
        self.features = model.config.features
        self.step = samples_per_step(self.features)  # samples per window-start unit (STFT hop, or 1 for waveforms)
        hop_samples = eval_hop_length(self.features) * self.step
        # Blocks start on window starts, so a block's windows line up with the whole file's.
        self.block_step = max(1, int(block_seconds * self.features.sample_rate) // hop_samples) * hop_samples

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "auto", precision: str = "auto",
                        timed: bool = True, **kwargs) -> "Predictor":
        """Load ``path`` onto ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``) at ``precision`` (``auto``: chosen for
        the machine, ``32``: fp32); see :func:`~envsound.models.clip.inference_runtime`. ``path``: any model file
        :func:`~envsound.models.files.open_model_file` recognises but an autoencoder: an envsound ``model.ckpt``, an
        AudioSet release ``.pt`` or installed name (``efficientat-mn04``), a ``model.onnx`` made by
        ``envsound export``, run by onnxruntime in float32 without importing torch, a frozen TFLite network
        (``birdnet-v2.4``, ``yamnet``: :class:`~envsound.models.litert.FrozenModel`, LiteRT on the CPU), or a head
        learned over one, as its ``model.ckpt`` or the folder ``envsound export`` makes of it (LiteRT and numpy).
        ``timed=False``: a torch network's memory format is not timed first (a caller that scores no audio).
        ``kwargs``: as the constructor takes them (``block_seconds``, ``threshold``, ``classes``).

        >>> Predictor.from_checkpoint("birdnet-v2.4", classes=["Erithacus rubecula_European Robin"])

        Raises:
            CheckpointError: ``path`` is not a model file this can run (the message says what it is).
            ConfigError: ``device`` is not on this machine, or a precision or device an ONNX model cannot run at;
                ``classes`` names a class the model does not have.
        """
        source = open_model_file(path).require(CLASSIFIER, RELEASE, ONNX, FROZEN, HEAD_EXPORT, purpose="prediction")
        if source.kind == ONNX:
            predictor = cls(OnnxModel.load(source.path, device=device, precision=precision), **kwargs)
        elif source.kind == FROZEN:  # a TFLite network (BirdNET, YAMNet): LiteRT, no torch
            predictor = cls(FrozenModel.load(source.path, device=device, precision=precision), **kwargs)
        elif source.kind == HEAD_EXPORT:  # an exported head over BirdNET or YAMNet: LiteRT and numpy, no torch
            predictor = cls(FrozenModel.from_export(source.path, device=device, precision=precision), **kwargs)
        elif source.kind == CLASSIFIER and is_learned(source.checkpoint):  # a head learned over BirdNET or YAMNet
            predictor = cls(FrozenModel.from_checkpoint(source.checkpoint, path=source.path, device=device,
                                                        precision=precision), **kwargs)
        else:
            from envsound.models.clip import ClipModel  # torch: imported only for a checkpoint

            predictor = cls(ClipModel.from_checkpoint(source.checkpoint, source=str(path), device=device,
                                                      precision=precision, timed=timed), **kwargs)
        predictor.source = replace(source, checkpoint=None)  # the file, not its tensors: the model holds those
        return predictor

    def only(self, classes: ClassNames) -> "Predictor":
        """This predictor reporting only ``classes`` of its classes (as the constructor's ``classes``), at the same
        threshold, block and source; the model is shared, not copied.

        Raises:
            ConfigError: a name that is not one of :attr:`labels`, or none.
        """
        narrowed = type(self)(self.model, block_seconds=self.block_seconds, threshold=self.threshold, classes=classes)
        narrowed.source = self.source
        return narrowed

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def expected_precision(self) -> list[dict | None]:
        """Per class, the precision its decision threshold was calibrated to give (``envsound learn``:
        ``{"precision", "low", "high"}``, a 95 % interval), or ``None``: not calibrated, or decided at another
        threshold than the calibrated one (``threshold=``)."""
        learned = (getattr(self.model, "meta", None) or {}).get("learned", {}).get("labels", {})
        stored = self.model.task.thresholds(self.model.n_classes)
        used = self.task.thresholds(self.model.n_classes)
        out: list[dict | None] = []
        for k, name in enumerate(self.labels):
            known = learned.get(name)
            if not known or not known.get("calibrated") or abs(float(used[k]) - float(stored[k])) > 1e-9:
                out.append(None)
                continue
            low, high = known.get("precision_interval") or (None, None)
            out.append({"precision": known["precision"], "low": low, "high": high})
        return out

    @property
    def learned(self) -> bool:
        """True for a detector ``envsound learn`` made (its ``meta["learned"]``): a file holds a label when it has an
        event of it or its best window passes the threshold (:meth:`FileScores.finish`), and its events are decoded
        for the scan's counts even without ``events``."""
        return isinstance((getattr(self.model, "meta", None) or {}).get("learned"), dict)

    @property
    def context_seconds(self) -> float:
        """A learned detector's context (:func:`envsound.events.context.context_seconds`): each window's logit is
        averaged with those of its file's windows starting within this many seconds of it (0: each window alone)."""
        return context_seconds(getattr(self.model, "meta", None))

    @property
    def rejects(self) -> bool:
        """True when the model has an open-set gate: a probability at most 0 is a class ruled out (not shown), a
        window or file with none left is none of the classes (:mod:`envsound.models.open_set`)."""
        return getattr(self.model, "open_set", None) is not None

    def predict_file(self, path: str | Path, *, top_k: int = 3, segments: bool = False,
                     events: bool = False) -> Prediction:
        """Classify one file: the ``top_k`` labels by clip probability and, for a multi-label model, every label at
        or above the task's threshold (``labels``); ``segments``: each window's top label; ``events``: when each class
        sounds (:func:`~envsound.events.detect.detect_events` at :attr:`decoding`).
        Raises :class:`EnvsoundError` subclasses for unusable audio."""
        feats = self.features
        blocks = iter_audio_blocks(path, sample_rate=feats.sample_rate, block_seconds=self.block_seconds,
                                   min_seconds=feats.min_seconds)
        return self._predict(blocks, name=str(path), top_k=top_k, segments=segments, events=events)

    def predict_waveform(self, samples: np.ndarray, *, sample_rate: int, top_k: int = 3, segments: bool = False,
                         events: bool = False, name: str = "waveform") -> Prediction:
        """Classify an in-memory waveform (``(frames,)`` or ``(frames, channels)`` at ``sample_rate``, see
        :func:`waveform_from_array`) exactly as the same audio in a file; ``name`` becomes ``Prediction.file``."""
        feats = self.features
        wave = waveform_from_array(samples, sample_rate=sample_rate, target_rate=feats.sample_rate,
                                   min_seconds=feats.min_seconds, name=name)
        return self._predict(iter([wave]), name=name, top_k=top_k, segments=segments, events=events)

    def _predict(self, blocks: Iterator[np.ndarray], *, name: str, top_k: int, segments: bool,
                 events: bool = False) -> Prediction:
        scores = FileScores(self, segments=segments, events=events)
        stream = EdgeStream(blocks, self.features)  # the clip's edges as the model was trained on them
        for offset, *scored in self._windows(stream, frames=scores.frames is not None):
            scores.add(offset, stream.shift, *scored)
        return scores.finish(name, stream.read, top_k=top_k)

    @property
    def has_frames(self) -> bool:
        """True when the model scores frames (``model.options.frame_head``): its events come from them."""
        return self.model.has_frames

    def timeline_events(self, timeline: Timeline) -> list:
        """The events of a :class:`~envsound.events.detect.Timeline` at :attr:`decoding`."""
        return decode(timeline, self.labels, self.decoding)

    def predict_paths(self, inputs: str | Path | Iterable[str | Path], *, top_k: int = 3, segments: bool = False,
                      events: bool = False) -> Iterator[Prediction]:
        """Classify every file ``inputs`` name (one path or a list; folders searched recursively for audio, globs
        expanded: :func:`~envsound.inference.listing.iter_inputs`); a bad file yields a Prediction with
        ``error`` set and the others go on."""
        for path in expand_inputs(inputs):
            if path.is_dir():  # a folder named on the command line that holds no audio
                yield Prediction(file=str(path), error=f"{path}: no audio files in this folder (looked for "
                                                       f"{', '.join(sorted(AUDIO_EXTENSIONS))}, at any depth)")
                continue
            try:
                yield self.predict_file(path, top_k=top_k, segments=segments, events=events)
            except EnvsoundError as exc:
                log.debug("cannot classify %s", path, exc_info=True)
                yield Prediction(file=str(path), error=str(exc))

    def _windows(self, blocks: Iterator[np.ndarray], *, frames: bool = False) -> Iterator[tuple]:
        """Yield (block start sample, window probabilities ``(n, K)``, window starts within the block in frames or
        samples, see :func:`samples_per_step`[, with ``frames`` the windows' frame probabilities]) for consecutive
        pieces of one waveform."""
        windows = self.window_buffer(frames=frames)
        for block in blocks:
            yield from windows.push(block)
        yield from windows.finish()

    def window_buffer(self, *, block_step: int | None = None, overlap: int | None = None,
                      frames: bool = False) -> "WindowBuffer":
        """A :class:`WindowBuffer` scoring with this model: ``block_step`` samples a chunk (default: the block) plus
        ``overlap`` (default: one window); ``frames``: each window's frame probabilities too (a frame model)."""
        overlap = self.features.window_samples if overlap is None else overlap
        score = partial(self.model.waveform_probs, frames=True) if frames else self.model.waveform_probs
        return WindowBuffer(score, block_step=block_step or self.block_step, overlap=overlap, step=self.step)


class FileScores:
    """One file's window probabilities, added chunk by chunk in order -> its :class:`Prediction`: the mean over
    windows ranks the labels (a learned detector's: its best window, :meth:`finish`); ``segments`` keeps each window's
    top label (``window_scores``: and every class's probability, for :mod:`envsound.inference.scan`), ``events`` the
    track the events are decoded from (a frame model's frames, else the windows'). Used by :class:`Predictor` file by
    file and by the archive scan, which scores the windows of many files in one batch."""

    def __init__(self, predictor: Predictor, *, segments: bool = False, events: bool = False,
                 window_scores: bool = False) -> None:
        self.predictor, self.features = predictor, predictor.features
        self.segments, self.events, self.window_scores = segments or window_scores, events, window_scores
        self.total = np.zeros(predictor.model.n_classes, dtype=np.float64)
        self.closed = np.zeros(predictor.model.n_classes, dtype=np.float64)  # the gated model's closed-set sums
        self.n_windows = 0
        self.timeline: list[dict] = []
        self.probs: list[np.ndarray] = []  # window_scores: each chunk's window probabilities
        self.begins: list[float] = []  # events: every window's start (s) and probabilities, float32 (K floats a hop)
        self.tracks: list[np.ndarray] = []
        self.counts: dict[tuple[int, int], int] = {}  # (hour of the file, class) -> windows decided as that class
        model = predictor.model
        self.rejects = predictor.rejects
        self.learned = predictor.learned
        self.best = np.full(model.n_classes, -np.inf, dtype=np.float64)  # each class's best window
        # a learned detector's events are decoded always (its file-level rule and the counts' events need them; a
        # few labels: K floats a window); a frame model's only when asked (its workers send frames only then)
        self.decodes = events or (self.learned and not predictor.has_frames)
        self.frames = FrameTrack(window_seconds=self.features.window_seconds, step_seconds=model.frame_seconds,
                                 n_classes=model.n_classes) if events and predictor.has_frames else None
        # a learned detector's context: each window waits for its neighbours, then counts with their mean logit
        seconds = predictor.context_seconds
        self.context = ContextStream(seconds) if seconds and not predictor.has_frames else None

    def add(self, offset: int, shift: int, window_probs: np.ndarray, starts: list[int],
            framed: np.ndarray | None = None) -> None:
        """The windows of one chunk: ``offset``, the chunk's first sample in the edge-shaped stream, ``shift`` the
        stream's :attr:`~envsound.features.edges.EdgeStream.shift`, ``starts`` within the chunk (frames or samples);
        ``framed``, a frame model's frame probabilities of those windows (when ``events``)."""
        rate, step = self.features.sample_rate, self.predictor.step
        self.add_at([(offset + start * step + shift) / rate for start in starts], window_probs, framed)

    def add_at(self, here: list[float], window_probs: np.ndarray, framed: np.ndarray | None = None) -> None:
        """As :meth:`add`, the windows given by their starts ``here`` in seconds of the file (an embeddings store's
        ``start``). With a learned detector's context a window counts once its neighbours are in (:meth:`finish`
        takes the last ones), with its context's probabilities. A gated model's ruled-out classes count as 0 (the
        closed-set probabilities are summed aside, for a file the gate rejects)."""
        if self.rejects:
            self.closed += closed_set(window_probs).sum(axis=0)
            window_probs = admitted(window_probs)
        if self.context is not None:
            done, window_probs = self.context.push(np.zeros(len(here)), here, window_probs, np.asarray(here, float))
            if len(done):
                self._add(done.tolist(), window_probs)
            return
        self._add(here, window_probs, framed)

    def _add(self, here: list[float], window_probs: np.ndarray, framed: np.ndarray | None = None) -> None:
        self.total += window_probs.sum(axis=0)
        self.n_windows += len(window_probs)
        if len(window_probs):
            self.best = np.maximum(self.best, np.asarray(window_probs, dtype=np.float64).max(axis=0))
        self._count(here, window_probs)
        if not (self.segments or self.decodes):
            return
        if self.frames is not None:
            for begin, window_frames in zip(here, framed):
                self.frames.push(begin, window_frames)
        elif self.decodes:
            self.begins += here
            self.tracks.append(np.asarray(window_probs, dtype=np.float32))
        if self.window_scores:
            self.probs.append(np.asarray(window_probs, dtype=np.float32))
        if self.segments:
            labels, length = self.predictor.labels, self.features.window_seconds
            # a multi-label model's window is the best of the classes at or above their thresholds, or none of them
            passed = self.predictor.task.decide(window_probs) if self.predictor.task.multi_label else None
            for at, (begin, probs) in enumerate(zip(here, window_probs)):
                # none past its threshold: the best class's score, not class 0's, beside no label
                some = passed is not None and passed[at].any()
                best = int(np.where(passed[at], probs, -1.0).argmax() if some else probs.argmax())
                # the open-set gate, or no class past its threshold: none of the classes
                none = (self.rejects and probs[best] <= 0) or (passed is not None and not passed[at, best])
                self.timeline.append({"start": round(max(begin, 0.0), 3), "end": round(begin + length, 3),
                                      "label": None if none else labels[best], "score": round(float(probs[best]), 4)})

    def _count(self, here: list[float], window_probs: np.ndarray) -> None:
        """Count each window under the classes it is decided as (a multi-label model's: every class at or above its
        threshold; a single-label model's: its best class, unless the open-set gate ruled that out), by the hour of
        the file it starts in."""
        if not len(window_probs):
            return
        task = self.predictor.task
        if task.multi_label:
            decided = task.decide(window_probs)
        else:
            best = window_probs.argmax(axis=1)
            decided = np.zeros(window_probs.shape, dtype=bool)
            decided[np.arange(len(best)), best] = True
            if self.rejects:
                decided &= window_probs > 0
        hours = np.floor(np.maximum(np.asarray(here, dtype=np.float64), 0.0) / 3600.0).astype(np.int64)
        rows, classes = np.nonzero(decided)
        for (hour, k), n in zip(*np.unique(np.stack([hours[rows], classes], axis=1), axis=0, return_counts=True)):
            self.counts[(int(hour), int(k))] = self.counts.get((int(hour), int(k)), 0) + int(n)

    def finish(self, name: str, read: int, *, top_k: int) -> Prediction:
        """The file's :class:`Prediction`; ``read``: the samples the file held (its length).

        The file-level rule: a file's score for a class is the mean of its windows' probabilities, and a multi-label
        model's file holds the classes whose mean passes their threshold. A learned detector's (:attr:`Predictor.
        learned`) score is its best window's, its file holds a class when it has at least one event of it or its
        best window passes the class's threshold (a 50-s file with two 5-s calls has a low mean): ``labels``; its
        ``top`` ranks every class by that score (the scan's ``files/`` names only those the file holds)."""
        predictor, feats = self.predictor, self.features
        if self.context is not None:  # the windows held back for neighbours that never came: the file ended
            here, probs = self.context.finish()
            if len(here):
                self._add(here.tolist(), probs)
        labels = predictor.labels
        length = read / feats.sample_rate
        for segment in self.timeline:  # no window shown past the file's end (edge padding, a short clip, rounding)
            segment["end"] = round(max(min(segment["end"], length), segment["start"]), 3)
        found = self._events(length) if self.decodes else None
        score = self.total / max(self.n_windows, 1)
        if self.learned and self.n_windows:
            score = self.best
        ranked = np.argsort(-score, kind="stable")
        # with an open-set gate, a class no window was close enough to is not ranked: none at all is "none of these"
        top = [{"label": labels[i], "score": round(float(score[i]), 4)} for i in ranked[:max(1, top_k)]
               if not (self.rejects and score[i] <= 0)]
        rejected, closed = bool(self.rejects and not top and self.n_windows), None
        if rejected and self.closed.any():  # ranked as the network would without its gate
            mean = self.closed / self.n_windows
            closed = [{"label": labels[i], "score": round(float(mean[i]), 4)}
                      for i in np.argsort(-mean, kind="stable")[:max(1, top_k)]]
        chosen_labels = None
        task = predictor.task
        if task.multi_label:
            chosen = task.decide(score[None, :])[0]
            if self.learned:  # the file holds what it has an event of too
                chosen |= np.isin(np.arange(len(labels)), [labels.index(e["label"]) for e in found or []])
            chosen_labels = [{"label": labels[i], "score": round(float(score[i]), 4)} for i in ranked if chosen[i]]
        return Prediction(file=name, top=top, segments=self.timeline if self.segments else None,
                          labels=chosen_labels, events=found if self.events else None, duration=length,
                          counts=dict(self.counts), event_counts=None if found is None else _by_hour(found, labels),
                          rejected=rejected, closed=closed)

    def _events(self, length: float) -> list[dict]:
        """The file's events (:attr:`Predictor.decoding`), from a frame model's frames or the windows' track."""
        predictor, feats = self.predictor, self.features
        if self.frames is not None:
            return [e.to_dict() for e in predictor.timeline_events(self.frames.finish(length))]
        probs = np.concatenate(self.tracks) if self.tracks else np.zeros((0, len(predictor.labels)), np.float32)
        return [e.to_dict() for e in predictor.timeline_events(
            Timeline(np.asarray(self.begins), probs, length, feats.window_seconds, feats.eval_hop_seconds))]

    def window_probs(self) -> np.ndarray:
        """``(n_windows, K)``: every window's probabilities in the order of the timeline (``window_scores``)."""
        n = len(self.predictor.labels)
        return np.concatenate(self.probs) if self.probs else np.zeros((0, n), np.float32)


def _by_hour(events: list[dict], labels: list[str]) -> dict[tuple[int, int], int]:
    """``{(hour of the file the onset is in, class index): events}`` (the scan's ``counts/`` table)."""
    index = {label: k for k, label in enumerate(labels)}
    out: dict[tuple[int, int], int] = {}
    for event in events:
        key = (int(max(event["onset"], 0.0) // 3600.0), index[event["label"]])
        out[key] = out.get(key, 0) + 1
    return out


class WindowBuffer:
    """A waveform pushed in pieces of any size -> the evaluation windows of the whole waveform, scored as soon as the
    samples they need are in: whenever ``block_step`` samples plus one window (``overlap``) are held, that chunk is
    scored and the windows starting in its first ``block_step`` samples are given out; :meth:`finish` scores the
    rest. Blocks start on window starts (``block_step`` is a whole number of hops), so the windows are the whole
    waveform's. Memory: one chunk plus the last piece pushed. Files (:class:`Predictor`, a minute a chunk) and live
    streams (:class:`~envsound.inference.live.LiveListener`, a hop a chunk) are cut by this one buffer."""

    def __init__(self, score, *, block_step: int, overlap: int, step: int) -> None:
        self.score = score  # WindowScorer.waveform_probs
        self.block_step, self.overlap, self.step = block_step, overlap, step
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0  # the buffer's first sample in the waveform

    def push(self, block: np.ndarray) -> Iterator[tuple[int, np.ndarray, list[int]]]:
        """Yield (chunk start sample, window probabilities ``(n, K)``, window starts within the chunk in frames or
        samples, see :func:`samples_per_step`) for every chunk ``block`` completes."""
        self.buffer = np.concatenate([self.buffer, np.asarray(block, dtype=np.float32)])
        while len(self.buffer) >= self.block_step + self.overlap:
            chunk = self.buffer[:self.block_step + self.overlap]
            # windows starting at or after block_step belong to the next chunk
            yield self.offset, *self.score(chunk, before=self.block_step // self.step)
            self.buffer = self.buffer[self.block_step:]
            self.offset += self.block_step

    def finish(self) -> Iterator[tuple[int, np.ndarray, list[int]]]:
        """The windows of what is left (at least one window, as a whole clip shorter than a window gets)."""
        yield self.offset, *self.score(self.buffer, before=None)
        self.buffer = np.zeros(0, dtype=np.float32)


def expand_inputs(inputs: str | Path | Iterable[str | Path]) -> Iterator[Path]:
    """:func:`~envsound.inference.listing.iter_inputs` as paths: one path or a list of them; folders expanded to
    their audio at any depth, globs to their matches. A missing path, or a folder without audio, is yielded as is,
    so the caller reports it like any other bad input."""
    return (Path(name) for name in iter_inputs(inputs))

