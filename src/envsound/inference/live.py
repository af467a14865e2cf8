"""Classify a stream as it arrives: audio pushed in pieces of any size, one result a hop.

A :class:`LiveListener` resamples what it is given to the model's rate (soxr's streaming resampler), and as soon as
one window (``features.window_seconds``) of new audio is in, scores it and moves on by the model's evaluation hop
(``features.eval_hop_seconds``). So a result describes the last ``window_seconds`` heard and comes ``hop + model
time`` after the sound: the latency of a live reading. Events are :class:`~envsound.events.detect.EventTracker`'s,
decoded as ``predict --events`` decodes a recording's windows: a moment is decided once every window holding it
is, so an event's edges are reported about a window, a hop and half a median filter (``events.median_seconds / 2``)
after they sound, and an ended event once ``events.gap_seconds`` more have passed without its class (nor a run of
it above threshold x ``events.hysteresis`` under way).

A frame model (``--preset sed``) decodes its frames instead, as ``predict --events`` does
(:class:`~envsound.events.detect.FrameTrack`): a window's frames up to half a hop past its centre are final
when it is scored, so a frame is decided ``window_seconds / 2`` +- ``hop / 2`` (plus half the median filter) after
it sounds, at the frames' resolution (80 ms) rather than the hop's.

Every window is scored alone, so its last STFT frames see zero padding where ``predict`` on the whole recording sees
the next samples (one frame of ``window_frames`` differs a little; waveform models are exact), and a stream has no
clip edges: ``features.trim_zeros`` and ``edge_pad`` do not apply. The tail shorter than a hop when the stream ends
is not scored unless no window was (a stream shorter than a window is scored padded, as a short clip is). Memory:
one window plus the last piece pushed, however long the stream.

**A learned detector's context** (:mod:`envsound.events.context`, ``envsound learn --context``, 1 s by default):
each window's scores are the mean logit of its neighbours (the windows starting within ``context_seconds`` of it), as
``predict`` scores the recording, so a window is reported once its last neighbour has been scored: ``floor(context /
hop)`` hops later (one for mn04's 1-s hop, two for YAMNet's 0.48 s, none for BirdNET's 3 s), its ``time`` that much
later too. The stream's first and last windows, and those before a model swap, average over the neighbours heard
(``predict`` also has a last window ending with the recording, a neighbour of its last ones).

**A model swapped mid-stream** (:meth:`LiveListener.replace`, from any thread) takes over at the next window
boundary: the start of the next window the old model would have scored. The old model scores every window starting
before it, the new one every window from it on (on the same grid when rate and window are the same, else on the new
model's grid from the boundary), and the samples from the boundary on pass to the new model, none dropped or given
twice (resampled to its rate when that differs). Events are decided by the old model up to the boundary (one open
there is closed there, by the old model) and by the new one from it. Each hop and event says the ``version`` of the
model that heard it, when the listener was given one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from envsound.audio.stream import PcmFormat, decode_pcm
from envsound.errors import AudioLoadError
from envsound.events import EventTracker, FrameTrack
from envsound.events.context import TOLERANCE, ContextStream
from envsound.features.windows import eval_hop_length
from envsound.inference.predictor import Predictor
from envsound.models.open_set import admitted


@dataclass
class Hop:
    """One scored window of a stream."""

    time: float  # seconds from the stream's start to the window's end: what has been heard when this is known
    start: float  # the window's start (seconds)
    top: list[dict]  # [{"label", "score"}], best first
    model_ms: float  # the model's time for this window (features included)
    active: list[dict] = field(default_factory=list)  # events under way: [{"label", "onset", "score"}]
    ended: list[dict] = field(default_factory=list)  # events that ended: [{"label", "onset", "offset", "score"}]
    end: bool = False  # the stream's end: no window (``top`` empty), the events still open closed in ``ended``
    labels: list[dict] | None = None  # multi-label models: every label at or above its threshold, best first
    version: int | None = None  # the version of the model that scored this window (None: not given)

    def to_dict(self) -> dict:
        out = {"time": self.time, "start": self.start, "top": self.top, "active": self.active,
               "events": self.ended, "model_ms": self.model_ms, "end": self.end}
        if self.labels is not None:
            out["labels"] = self.labels
        if self.version is not None:
            out["version"] = self.version
        return out


class LiveListener:
    """Push audio as it arrives (:meth:`push`), get a :class:`Hop` per evaluation hop; :meth:`finish` at the end.

    >>> listener = LiveListener(Predictor.from_checkpoint("model.ckpt"), sample_rate=16000)
    >>> for hop in listener.push(samples):  # float32 (frames,) or (frames, channels), any number of frames
    ...     print(hop.time, hop.top[0])
    """

    def __init__(self, predictor: Predictor, *, sample_rate: int, top_k: int = 3, version: int | None = None) -> None:
        if not 1 <= sample_rate <= 768_000:
            raise AudioLoadError(f"sample rate {sample_rate} Hz is out of range (1 .. 768000)")
        self.input_rate, self.top_k = sample_rate, max(1, top_k)
        self.scored = 0  # windows
        self.closed: list[dict] = []  # events the last model closed at a swap, given out with the next hop
        self.pending: tuple[Predictor, int | None] | None = None
        self.released: list[Hop] = []  # the old model's windows held for context, given out at a swap
        self.model_ms = 0.0  # the model's time a window, of the last windows scored
        self.lock = threading.Lock()
        self._use(predictor, version, origin=0.0)

    def replace(self, predictor: Predictor, *, version: int | None = None) -> None:
        """Hand the stream to ``predictor`` (of ``version``) at the next window boundary (see the module's
        docstring); safe to call from another thread. A second call before the boundary replaces the first."""
        with self.lock:
            self.pending = (predictor, version)

    def _use(self, predictor: Predictor, version: int | None, *, origin: float) -> None:
        """Score with ``predictor`` from ``origin`` seconds of the stream on."""
        import soxr

        feats = predictor.features
        self.predictor, self.version, self.rate, self.origin = predictor, version, feats.sample_rate, origin
        self.resampler = (soxr.ResampleStream(self.input_rate, self.rate, 1, dtype="float32", quality="HQ")
                          if self.input_rate != self.rate else None)
        hop = eval_hop_length(feats) * predictor.step
        # a chunk is exactly one window, and the next starts one hop later
        self.windows = predictor.window_buffer(block_step=hop, overlap=max(feats.window_samples - hop, 0),
                                               frames=predictor.has_frames)
        # events from each window, or a frame model's from its frames: each "window" of the events one frame
        window, spacing = feats.window_seconds, hop / self.rate
        self.frames = None
        if predictor.has_frames:
            window = spacing = predictor.model.frame_seconds
            self.frames = FrameTrack(window_seconds=feats.window_seconds, step_seconds=window,
                                     n_classes=predictor.model.n_classes, collect=False, hop_seconds=hop / self.rate)
        self.events = EventTracker(predictor.labels, window_seconds=window, hop_seconds=spacing,
                                   decoding=predictor.decoding)
        self.events.frontier = origin  # nothing before the boundary is this model's to decide
        # a learned detector's context: a window waits until its neighbours within context_seconds are heard, one
        # hop for mn04 (1-s hop, 1 s), two for YAMNet (0.48 s), none for BirdNET (3 s), then reports their mean logit
        seconds = 0.0 if predictor.has_frames else predictor.context_seconds
        self.context = ContextStream(seconds, hop=spacing) if seconds else None
        self.delay = spacing * int((seconds + TOLERANCE) // spacing) if seconds else 0.0
        self.heard = 0  # samples at the model's rate, from origin

    @property
    def seconds(self) -> float:
        """Seconds of audio heard so far."""
        return self.origin + self.heard / self.rate

    def _swap(self) -> np.ndarray:
        """Apply a pending :meth:`replace` at the next window boundary: the old model's events closed there, and the
        samples from there on, at the new model's rate, to push to it (empty without a swap)."""
        with self.lock:
            pending, self.pending = self.pending, None
        if pending is None:
            return np.zeros(0, np.float32)
        import soxr

        rest, old_rate = self.windows.buffer, self.rate  # samples from the next window's start on
        boundary = self.origin + self.windows.offset / old_rate
        if self.resampler is not None:  # what the resampler still holds of what was pushed
            rest = np.concatenate([rest, self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)])
        self.released += self._held()  # the old model's windows held for context: their neighbours never come
        ended = [] if self.frames is None else self._frame_events(*self.frames.flush(), upto=boundary)
        self.closed += [self._tagged(e) for e in ended + self.events.finish(boundary)]
        self._use(*pending, origin=boundary)
        if old_rate != self.rate and len(rest):
            rest = soxr.resample(rest, old_rate, self.rate, quality="HQ").astype(np.float32)
        return rest

    def _tagged(self, event) -> dict:
        out = event.to_dict()
        if self.version is not None:
            out["version"] = self.version
        return out

    def push(self, samples: np.ndarray) -> list[Hop]:
        """``samples`` at the stream's rate (float, -1..1; several channels are averaged) -> the hops they complete."""
        mono = np.asarray(samples, dtype=np.float32)
        if mono.ndim == 2:
            mono = mono.mean(axis=1, dtype=np.float32)
        return self._take(mono, last=False)

    def finish(self) -> list[Hop]:
        """The end of the stream: the hops of the resampler's tail (a padded window when none was scored), then one
        ``end`` record that closes every open event."""
        hops = self._take(np.zeros(0, np.float32), last=True)
        if not self.scored and self.heard:
            hops += self._hops(self.windows.finish())
        hops += self._held()
        ended = [] if self.frames is None else self._frame_events(*self.frames.flush())
        ended = self.closed + [self._tagged(e) for e in ended + self.events.finish(self.seconds)]
        self.closed = []
        now = round(self.seconds, 3)
        return hops + [Hop(time=now, start=now, top=[], model_ms=0.0, ended=ended, end=True, version=self.version)]

    def _take(self, mono: np.ndarray, *, last: bool) -> list[Hop]:
        lead = self._swap()
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=last)
        if len(lead):
            mono = np.concatenate([lead, mono])
        self.heard += len(mono)
        released, self.released = self.released, []
        return released + self._hops(self.windows.push(mono))

    def _hops(self, pieces) -> list[Hop]:
        began = time.perf_counter()
        scored = list(pieces)  # (chunk offset, probabilities, starts[, frames]): a push's worth, bounded by its size
        n_windows = sum(len(piece[2]) for piece in scored)
        model_ms = round((time.perf_counter() - began) * 1000 / max(n_windows, 1), 2)
        if n_windows:
            self.model_ms = model_ms
        hops = []
        for offset, probs, starts, *framed in scored:
            if self.predictor.rejects:  # a ruled-out class is 0 here (a file's closed-set ranking is predict's)
                probs = admitted(probs)
            if self.context is not None:  # the windows whose neighbours are all heard, with their context
                begins = [self.origin + (offset + start * self.predictor.step) / self.rate for start in starts]
                self.scored += len(begins)
                begins, probs = self.context.push(np.zeros(len(begins)), begins, probs, np.asarray(begins, float))
                hops += [self._hop(float(begin), row, model_ms) for begin, row in zip(begins, probs)]
                continue
            for i, (start, row) in enumerate(zip(starts, probs)):
                frames = framed[0][i] if framed else None
                hops.append(self._hop(self.origin + (offset + start * self.predictor.step) / self.rate, row, model_ms,
                                      frames))
                self.scored += 1
        return hops

    def _held(self) -> list[Hop]:
        """The windows held back for context, given out now (the stream ends, or its model is swapped)."""
        if self.context is None:
            return []
        begins, probs = self.context.finish()
        return [self._hop(float(begin), row, self.model_ms) for begin, row in zip(begins, probs)]

    def _frame_events(self, centres: np.ndarray, rows: np.ndarray, upto: float | None = None) -> list:
        """Frames made final -> the events they end; frames past the stream's end (or ``upto``) are not pushed (as
        ``predict`` drops them), nor frames before its start (or the model's first window)."""
        step, ended, upto = self.frames.step, [], self.seconds if upto is None else upto
        for centre, row in zip(centres, rows):
            if self.origin <= centre < upto:
                ended += self.events.push(float(centre) - step / 2, row)
        return ended

    def _hop(self, begin: float, row: np.ndarray, model_ms: float, frames: np.ndarray | None = None) -> Hop:
        """The result of the window starting at ``begin`` seconds with probabilities ``row`` (and a frame model's
        frames ``(steps, K)``)."""
        labels, task = self.predictor.labels, self.predictor.task
        ranked = np.argsort(-row, kind="stable")
        rejects = self.predictor.rejects
        scores = [{"label": labels[i], "score": round(float(row[i]), 4)} for i in ranked
                  if not (rejects and row[i] <= 0)]
        chosen = task.decide(row[None, :])[0][ranked] if task.multi_label else None
        if frames is None:
            ended = self.events.push(begin, row)
        else:
            ended = self._frame_events(*self.frames.push(begin, frames))
        closed, self.closed = self.closed, []
        heard = begin + self.predictor.features.window_seconds + self.delay  # its last neighbour's end
        return Hop(time=round(min(heard, self.seconds), 3),
                   start=round(begin, 3), top=scores[:self.top_k], model_ms=model_ms, version=self.version,
                   labels=None if chosen is None else [s for s, on in zip(scores, chosen) if on],
                   ended=closed + [self._tagged(e) for e in ended],
                   active=[{"label": e.label, "onset": e.onset, "score": e.score} for e in self.events.active()])


__all__ = ["Hop", "LiveListener", "PcmFormat", "decode_pcm"]  # the last two: for the server's stream
