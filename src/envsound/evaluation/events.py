"""Sound events from a clip model's window timeline: *when* each class sounds, as ``{label, onset, offset, score}``.

A model trained on clip labels scores overlapping windows (``features.window_seconds`` long, one every
``features.eval_hop_seconds``). Each class's probability track over those windows is smoothed by a median filter
(``events.median_seconds``), compared with its threshold (``events.threshold``, unset: the task's decision threshold,
per class where the checkpoint fitted them), and every run of windows above it becomes one event. A window's decision
is placed on the hop-long stretch at its centre, so consecutive windows tile the file; an event is then from the
centre stretch of its first window to that of its last, clipped to the file, and its score is the highest smoothed
probability inside it. The time resolution is the hop (1 s by default); events shorter than ``events.min_seconds``
are dropped. numpy only: the exported ONNX model's predictions get events too.

A model with frame output (``model.options.frame_head``, ``--preset sed``) scores a frame every few tens of
milliseconds inside each window instead: :class:`FrameTrack` joins the windows' frames into one :class:`Timeline`
whose "windows" are the frames, decoded the same way at the frames' resolution.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class Timeline:
    """What a file's events are decoded from: the starts of its windows in the file's seconds ``(n,)``, their
    probabilities ``(n, K)``, the file's length, and how long each window is and how far apart they are."""

    begins: np.ndarray
    probs: np.ndarray
    duration: float
    window_seconds: float
    hop_seconds: float


class FrameTrack:
    """Overlapping windows' frame probabilities -> one track of frames. Each window's frames are kept between the
    midpoints of its centre and its neighbours' (the first window's from the file's start, the last's to its end),
    so every frame comes from the window that sees most around it. Windows are pushed in order; each push gives
    the frames it made final: the previous window's, or with ``hop_seconds`` (windows that far apart, as a live
    stream's are) the pushed window's own up to half a hop past its centre, a hop sooner. :meth:`finish` gives the
    whole :class:`Timeline`, frames outside the file dropped. ``collect=False`` keeps nothing (a stream of any
    length): memory one window.

    >>> track = FrameTrack(window_seconds=10.0, step_seconds=0.08, n_classes=10)
    >>> track.push(0.0, frames)           # (steps, K), frame m centred at m x 0.08 s
    >>> timeline = track.finish(duration=12.0)
    """

    def __init__(self, *, window_seconds: float, step_seconds: float, n_classes: int, collect: bool = True,
                 hop_seconds: float | None = None) -> None:
        self.window_seconds, self.step, self.n_classes, self.collect = window_seconds, step_seconds, n_classes, collect
        self.hop = hop_seconds
        self.centres: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.pending: tuple[float, np.ndarray, float] | None = None  # (begin, frames, first centre not given yet)

    def push(self, begin: float, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window starting at ``begin`` seconds, its frames ``(steps, K)`` -> the frames now final: their
        centres in seconds ``(n,)`` and probabilities ``(n, K)``."""
        frames = np.asarray(frames, dtype=np.float32)
        low, final = -np.inf, (np.zeros(0), np.zeros((0, self.n_classes), np.float32))
        if self.pending is not None:
            last_begin, last_frames, last_low = self.pending
            if self.hop is None:
                low = (last_begin + begin) / 2 + self.window_seconds / 2
                final = self._keep(last_begin, last_frames, last_low, high=low)
            else:  # the previous window gave its frames up to where this window's begin
                low = last_low
        if self.hop is not None:
            high = begin + (self.window_seconds + self.hop) / 2
            final, low = self._keep(begin, frames, low, high=high), high
        self.pending = (begin, frames, low)
        return final

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The last window's frames (the stream ended): centres ``(n,)`` and probabilities ``(n, K)``."""
        final = (np.zeros(0), np.zeros((0, self.n_classes), np.float32))
        if self.pending is not None:
            final = self._keep(*self.pending, high=np.inf)
            self.pending = None
        return final

    def finish(self, duration: float) -> Timeline:
        """The track of a file ``duration`` seconds long (every frame pushed: ``collect``)."""
        self.flush()
        centres = np.concatenate(self.centres) if self.centres else np.zeros(0)
        probs = np.concatenate(self.rows) if self.rows else np.zeros((0, self.n_classes), np.float32)
        inside = (centres >= 0) & (centres < duration)
        return Timeline(centres[inside] - self.step / 2, probs[inside], duration, self.step, self.step)

    def _keep(self, begin: float, frames: np.ndarray, low: float, *, high: float) -> tuple[np.ndarray, np.ndarray]:
        centres = begin + np.arange(len(frames)) * self.step
        kept = (centres >= low) & (centres < high)
        if self.collect:
            self.centres.append(centres[kept])
            self.rows.append(frames[kept])
        return centres[kept], frames[kept]


@dataclass(frozen=True)
class Event:
    label: str
    onset: float  # seconds from the file's start
    offset: float
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "onset": self.onset, "offset": self.offset, "score": self.score}


def median_smooth(track: np.ndarray, width: int) -> np.ndarray:
    """Running median of ``track`` over ``width`` windows (odd; the edges repeat the end values)."""
    if width <= 1 or len(track) < 2:
        return track
    half = width // 2
    padded = np.pad(track, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=-1)


def detect_events(begins: Sequence[float], probs: np.ndarray, labels: Sequence[str], *, window_seconds: float,
                  hop_seconds: float, duration: float, thresholds: np.ndarray | float, median_seconds: float = 0.0,
                  min_seconds: float = 0.0) -> list[Event]:
    """The events of one file, sorted by onset (then label).

    Args:
        begins: start of each window in seconds, increasing; ``probs`` ``(windows, classes)`` its probabilities.
        window_seconds, hop_seconds: the windows' length and spacing; ``duration``: the file's length in seconds.
        thresholds: one per class (or one for all); a class is active in a window at or above it.
        median_seconds: the median filter's length (rounded to an odd number of windows; 0 or one window: none).
        min_seconds: shorter events are dropped.
    """
    probs = np.asarray(probs, dtype=np.float64)
    begins = np.asarray(begins, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(begins) or probs.shape[1] != len(labels):
        raise ValueError(f"probs {probs.shape} does not fit {len(begins)} windows of {len(labels)} classes")
    if not len(begins):
        return []
    limits = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(labels),))
    width = max(1, int(round(median_seconds / hop_seconds)))
    width += 1 - width % 2  # odd: centred
    centre = begins + window_seconds / 2
    starts = np.clip(centre - hop_seconds / 2, 0.0, duration)
    ends = np.clip(centre + hop_seconds / 2, 0.0, duration)
    events = []
    for k, label in enumerate(labels):
        track = median_smooth(probs[:, k], width)
        active = np.concatenate([[False], track >= limits[k], [False]])
        edges = np.flatnonzero(np.diff(active.astype(np.int8)))
        for first, stop in zip(edges[::2], edges[1::2]):  # windows first .. stop - 1 are active
            onset, offset = float(starts[first]), float(ends[stop - 1])
            if offset - onset >= max(min_seconds, 1e-9):
                events.append(Event(label, round(onset, 3), round(offset, 3),
                                    round(float(track[first:stop].max()), 4)))
    return sorted(events, key=lambda e: (e.onset, e.label))


def timeline_events(timeline: Timeline, labels: Sequence[str], config, *, thresholds: np.ndarray | float
                    ) -> list[Event]:
    """:func:`detect_events` of a :class:`Timeline` with a checkpoint's ``events.*`` settings (median filter, minimum
    length), at ``thresholds``."""
    settings = config.events
    return detect_events(timeline.begins, timeline.probs, labels, window_seconds=timeline.window_seconds,
                         hop_seconds=timeline.hop_seconds, duration=timeline.duration, thresholds=thresholds,
                         median_seconds=settings.median_seconds, min_seconds=settings.min_seconds)


def event_thresholds(config, task, n_classes: int) -> np.ndarray | float:
    """``events.threshold``, or unset, the task's decision thresholds (per class where the checkpoint fitted them)."""
    return config.events.threshold if config.events.threshold is not None else task.thresholds(n_classes)


class EventTracker:
    """:func:`detect_events` one window at a time, for a live stream: the same events, each given out as soon as it
    is known. A window's smoothed value needs the median filter's half-width of windows after it, so an event shows
    in :meth:`active` and is given out ended that many hops after the windows that decide it. Memory: one median
    filter's windows, whatever the stream's length.

    >>> tracker = EventTracker(["dog"], window_seconds=1.0, hop_seconds=1.0, thresholds=0.5)
    >>> [tracker.push(t, np.array([p])) for t, p in [(0.0, 0.9), (1.0, 0.8), (2.0, 0.1)]][-1]
    [Event(label='dog', onset=0.0, offset=2.0, score=0.9)]
    """

    def __init__(self, labels: Sequence[str], *, window_seconds: float, hop_seconds: float,
                 thresholds: np.ndarray | float, median_seconds: float = 0.0, min_seconds: float = 0.0) -> None:
        self.labels = list(labels)
        self.window_seconds, self.hop_seconds, self.min_seconds = window_seconds, hop_seconds, min_seconds
        self.limits = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(self.labels),))
        width = max(1, int(round(median_seconds / hop_seconds)))
        self.half = (width + 1 - width % 2) // 2
        self.recent: deque[tuple[float, np.ndarray]] = deque(maxlen=2 * self.half + 1)  # (begin, probs)
        self.pushed = 0  # windows pushed
        self.decided = 0  # windows whose smoothed value is known
        self.open: dict[int, tuple[float, float]] = {}  # class -> (onset, highest smoothed value so far)
        self.last_end = 0.0

    def push(self, begin: float, probs: np.ndarray) -> list[Event]:
        """Window ``begin`` (seconds) with its probabilities ``(K,)`` -> the events that ended with the window now
        decided."""
        self.recent.append((begin, np.asarray(probs, dtype=np.float64)))
        self.pushed += 1
        if self.pushed <= self.half:
            return []
        return self._decide(self.pushed - 1 - self.half, last=self.pushed - 1)

    def active(self) -> list[Event]:
        """The events under way, by label, each with its ``offset`` so far (the last decided window's end)."""
        return [Event(self.labels[k], round(onset, 3), round(self.last_end, 3), round(score, 4))
                for k, (onset, score) in sorted(self.open.items())]

    def finish(self, duration: float) -> list[Event]:
        """Decide the windows still waiting for their right-hand neighbours and close every open event at the
        stream's end (``duration`` seconds), as :func:`detect_events` clips to the file."""
        ended = []
        while self.decided < self.pushed:
            ended += self._decide(self.decided, last=self.pushed - 1, duration=duration)
        for k in sorted(self.open):
            ended += self._close(k, min(self.last_end, duration))
        return ended

    def _decide(self, index: int, *, last: int, duration: float = float("inf")) -> list[Event]:
        first_kept = self.pushed - len(self.recent)  # the window index of recent[0]
        rows = [self.recent[min(max(i, 0), last) - first_kept][1] for i in range(index - self.half,
                                                                                  index + self.half + 1)]
        smoothed = np.median(np.stack(rows), axis=0) if len(rows) > 1 else rows[0]
        begin = self.recent[index - first_kept][0]
        centre = begin + self.window_seconds / 2
        start = min(max(centre - self.hop_seconds / 2, 0.0), duration)
        end = min(max(centre + self.hop_seconds / 2, 0.0), duration)
        ended = []
        for k, value in enumerate(smoothed):
            if value >= self.limits[k]:
                onset, score = self.open.get(k, (start, float(value)))
                self.open[k] = (onset, max(score, float(value)))
            elif k in self.open:
                ended += self._close(k, self.last_end)
        self.decided = index + 1
        self.last_end = end
        return ended

    def _close(self, k: int, offset: float) -> list[Event]:
        onset, score = self.open.pop(k)
        if offset - onset < max(self.min_seconds, 1e-9):
            return []
        return [Event(self.labels[k], round(onset, 3), round(offset, 3), round(score, 4))]
