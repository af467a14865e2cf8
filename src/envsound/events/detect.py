"""Sound events from a clip model's window timeline: *when* each class sounds, as ``{label, onset, offset, score}``.

A model trained on clip labels scores overlapping windows (``features.window_seconds`` long, one every
``features.eval_hop_seconds``). The rules are one :class:`~envsound.events.decoding.Decoding` value (a checkpoint's
``events.*`` settings). Each class's probability track over those windows is smoothed by a median filter
(``median_seconds``) and compared with its threshold (``threshold``, unset: the task's decision threshold, per
class where the checkpoint fitted them); with ``hysteresis`` below 1 (double thresholding, as
DCASE systems decode) an event is a run at or above the threshold x that factor that reaches the threshold
somewhere.

What a window's score says is "the sound is somewhere in these seconds", not where: a window holding one second of
a dog is a dog window. So a moment is placed in an event only when *every* window holding it is at or above the
threshold (its value is the lowest of those windows' smoothed probabilities: no window can say more about that
moment than the least sure window around it). A window below the threshold clears all of its seconds; a window
above it claims none alone. The time axis is cut at every window's start and end (hop-long stretches for the usual
windows), each stretch takes that lowest value, and every run of stretches at or above the threshold is one event,
its score the highest value inside it. So a sound at 0-5 s, held at the file's start by the first window alone, is
an event from 0 s; one at the end runs to the file's end; a silence of a hop or more between two sounds clears the
windows that hold only it and stays a gap. Boundaries land within about a hop of the sound's (more when the model
needs much of a window filled before it answers); a window that dips below the threshold inside a long sound cuts
a window-long hole, which the median filter is there to prevent. Two events of one class at most
``gap_seconds`` apart are then one (a dog's barks with their pauses, a clock's ticks: a sound that stops and
starts again; the median filter bridges such pauses too, but also blurs the edges and erases short sounds), and
events shorter than ``min_seconds`` are dropped. numpy only: the exported ONNX model's predictions get events
too.

A model with frame output (``model.options.frame_head``, ``--preset sed``) scores a frame every few tens of
milliseconds inside each window instead: :class:`FrameTrack` joins the windows' frames into one :class:`Timeline`
whose "windows" are the frames (each holding only its own step), decoded the same way at the frames' resolution.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envsound.events.decoding import Decoding


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


# Window edges closer than this (seconds) are one point: starts are sums of sample counts, frames float multiples.
EDGE_TOLERANCE = 1e-6


def _stretches(begins: np.ndarray, window_seconds: float, start: float, stop: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``[start, stop)`` cut at every window's start and end: ``(a, b, lo, hi)``, stretch ``i`` being ``[a[i],
    b[i])`` and held whole by windows ``lo[i] .. hi[i] - 1`` (none where ``lo >= hi``). ``begins`` increasing."""
    tol = EDGE_TOLERANCE
    edges = np.concatenate([begins, begins + window_seconds])
    edges = np.sort(edges[(edges > start + tol) & (edges < stop - tol)])
    if len(edges):
        edges = edges[np.concatenate([[True], np.diff(edges) > tol])]
    points = np.concatenate([[start], edges, [max(stop, start)]])
    a, b = points[:-1], points[1:]
    lo = np.searchsorted(begins + window_seconds, b - tol)  # windows ending at or after the stretch's end ...
    hi = np.searchsorted(begins, a + tol, side="right")  # ... and starting at or before its start
    return a, b, lo, hi


def _lowest(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(stretches, K)``: each stretch's lowest value over the windows ``lo .. hi - 1`` holding it (rows of
    ``values``); ``-inf`` where no window holds it (never part of an event)."""
    count = hi - lo
    out = np.full((len(lo), values.shape[1]), np.inf)
    out[count <= 0] = -np.inf
    for j in range(int(count.max(initial=0))):  # a few windows hold each stretch (window / hop)
        has = count > j
        out[has] = np.minimum(out[has], values[(lo + j)[has]])
    return out


def detect_events(begins: Sequence[float], probs: np.ndarray, labels: Sequence[str], *, window_seconds: float,
                  hop_seconds: float, duration: float, decoding: Decoding) -> list[Event]:
    """The events of one file, sorted by onset (then label): each a run of time where every window holding it is
    at or above its class's threshold (see the module docstring), or with ``decoding.hysteresis`` < 1 at or above
    that threshold x ``hysteresis`` and somewhere at or above the threshold.

    Args:
        begins: start of each window in seconds, increasing; ``probs`` ``(windows, classes)`` its probabilities.
        window_seconds: the windows' length in seconds.
        hop_seconds: their spacing in seconds; ``duration``: the file's length in seconds (events lie in
            ``[0, duration]``).
        decoding: the rules, its thresholds set (one for every class, or one per class:
            :meth:`Decoding.resolved <envsound.events.decoding.Decoding.resolved>`).

    >>> detect_events([0.0, 1.0, 2.0], [[0.9], [0.8], [0.1]], ["dog"], window_seconds=1.0, hop_seconds=1.0,
    ...               duration=3.0, decoding=Decoding(threshold=0.5, median_seconds=0.0))
    [Event(label='dog', onset=0.0, offset=2.0, score=0.9)]
    """
    probs = np.asarray(probs, dtype=np.float64)
    begins = np.asarray(begins, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(begins) or probs.shape[1] != len(labels):
        raise ValueError(f"probs {probs.shape} does not fit {len(begins)} windows of {len(labels)} classes")
    if not len(begins):
        return []
    stretches = smoothed_stretches(begins, probs, window_seconds=window_seconds, hop_seconds=hop_seconds,
                                   duration=duration, median_seconds=decoding.median_seconds)
    return stretch_events(stretches, labels, decoding)


def median_width(median_seconds: float, hop_seconds: float) -> int:
    """The median filter's length in windows: ``median_seconds`` rounded to an odd number (1: none)."""
    width = max(1, int(round(median_seconds / hop_seconds)))
    return width + 1 - width % 2  # odd: centred


def smoothed_stretches(begins: np.ndarray, probs: np.ndarray, *, window_seconds: float, hop_seconds: float,
                       duration: float, median_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`detect_events`' first half, what does not depend on the thresholds: ``(a, b, values)``, stretch ``i``
    being ``[a[i], b[i])`` and ``values[i]`` ``(K,)`` the lowest median-filtered probability of the windows holding
    it (``begins``, ``probs`` ``(windows, K)`` float64, at least one window)."""
    width = median_width(median_seconds, hop_seconds)
    smoothed = np.stack([median_smooth(probs[:, k], width) for k in range(probs.shape[1])], axis=1)
    a, b, lo, hi = _stretches(begins, window_seconds, 0.0, duration)
    return a, b, _lowest(smoothed, lo, hi)


def stretch_events(stretches: tuple[np.ndarray, np.ndarray, np.ndarray], labels: Sequence[str],
                   decoding: Decoding) -> list[Event]:
    """:func:`detect_events`' second half: the events of :func:`smoothed_stretches`' ``(a, b, values)`` (the median
    filter of ``decoding`` already applied there)."""
    a, b, values = stretches
    limits = decoding.limits(len(labels))
    gap_seconds, hysteresis, min_seconds = decoding.gap_seconds, decoding.hysteresis, decoding.min_seconds
    events = []
    for k, label in enumerate(labels):
        active = np.concatenate([[False], values[:, k] >= limits[k] * hysteresis, [False]])
        edges = np.flatnonzero(np.diff(active.astype(np.int8)))
        runs: list[list[float]] = []  # [onset, offset, score], joined across gaps of at most gap_seconds
        for first, stop in zip(edges[::2], edges[1::2]):  # stretches first .. stop - 1 are active
            onset, offset, score = float(a[first]), float(b[stop - 1]), float(values[first:stop, k].max())
            if score < limits[k]:
                continue  # held above the low threshold only: never reached the threshold
            if runs and onset - runs[-1][1] <= gap_seconds:
                runs[-1][1:] = [offset, max(runs[-1][2], score)]
            else:
                runs.append([onset, offset, score])
        events += [Event(label, round(onset, 3), round(offset, 3), round(score, 4)) for onset, offset, score in runs
                   if offset - onset >= max(min_seconds, 1e-9)]
    return sorted(events, key=lambda e: (e.onset, e.label))


def decode(timeline: Timeline, labels: Sequence[str], decoding: Decoding) -> list[Event]:
    """:func:`detect_events` of a :class:`Timeline`."""
    return detect_events(timeline.begins, timeline.probs, labels, window_seconds=timeline.window_seconds,
                         hop_seconds=timeline.hop_seconds, duration=timeline.duration, decoding=decoding)


class EventTracker:
    """:func:`detect_events` one window at a time, for a live stream: the same events, each given out as soon as it
    is known. A moment is decided once every window holding it is decided, i.e. once the next window has started
    after it; a window's smoothed value needs the median filter's half-width of windows after it. So a moment shows
    in :meth:`active` (and an event is given out ended) about one window plus half the median filter after it
    sounds; with ``decoding.gap_seconds``, an event is given out once that much more has passed without its class
    coming back (else the two are one), and with ``decoding.hysteresis`` not while a run of its class above the lower threshold that
    began within the gap is under way (it may still reach the threshold and join it). Memory: one median filter's
    windows and the few windows holding the undecided moments, whatever the stream's length.

    >>> tracker = EventTracker(["dog"], window_seconds=1.0, hop_seconds=1.0,
    ...                        decoding=Decoding(threshold=0.5, median_seconds=0.0))
    >>> [tracker.push(t, np.array([p])) for t, p in [(0.0, 0.9), (1.0, 0.8), (2.0, 0.1), (3.0, 0.1)]][-1]
    [Event(label='dog', onset=0.0, offset=2.0, score=0.9)]
    """

    def __init__(self, labels: Sequence[str], *, window_seconds: float, hop_seconds: float,
                 decoding: Decoding) -> None:
        self.labels = list(labels)
        self.window_seconds, self.hop_seconds, self.min_seconds = window_seconds, hop_seconds, decoding.min_seconds
        self.gap_seconds = decoding.gap_seconds
        self.limits = decoding.limits(len(self.labels))
        self.lows = self.limits * decoding.hysteresis
        self.half = median_width(decoding.median_seconds, hop_seconds) // 2
        self.recent: deque[tuple[float, np.ndarray]] = deque(maxlen=2 * self.half + 1)  # (begin, probs)
        self.held: deque[tuple[float, np.ndarray]] = deque()  # decided windows reaching past the frontier
        self.pushed = 0  # windows pushed
        self.decided = 0  # windows whose smoothed value is known
        self.frontier = 0.0  # every moment before it is decided
        # class -> (onset, highest value so far, whether it reached the threshold): a run at or above the low one
        self.open: dict[int, tuple[float, float, bool]] = {}
        self.ended: dict[int, tuple[float, float, float]] = {}  # class -> (onset, offset, score): its gap not yet over

    def push(self, begin: float, probs: np.ndarray) -> list[Event]:
        """Window ``begin`` (seconds) with its probabilities ``(K,)`` -> the events that ended with the moments now
        decided."""
        self.recent.append((begin, np.asarray(probs, dtype=np.float64)))
        self.pushed += 1
        if self.pushed <= self.half:
            return []
        return self._decide(self.pushed - 1 - self.half, last=self.pushed - 1)

    def active(self) -> list[Event]:
        """The events under way, by label, each with its ``offset`` so far (the last decided moment). An event waiting
        out its gap is not among them; if its class comes back within the gap it shows again, from its onset."""
        return [Event(self.labels[k], round(onset, 3), round(self.frontier, 3), round(score, 4))
                for k, (onset, score, confirmed) in sorted(self.open.items()) if confirmed]

    def finish(self, duration: float) -> list[Event]:
        """Decide the windows still waiting for their right-hand neighbours and the moments up to the stream's end
        (``duration`` seconds), and close every open event there, as :func:`detect_events` clips to the file."""
        ended = []
        while self.decided < self.pushed:
            ended += self._decide(self.decided, last=self.pushed - 1, duration=duration)
        ended += self._advance(duration)
        for k in sorted(self.open):
            self._close(k, min(self.frontier, duration))
        return ended + self._give_out(float("inf"))

    def _decide(self, index: int, *, last: int, duration: float = float("inf")) -> list[Event]:
        first_kept = self.pushed - len(self.recent)  # the window index of recent[0]
        rows = [self.recent[min(max(i, 0), last) - first_kept][1] for i in range(index - self.half,
                                                                                  index + self.half + 1)]
        smoothed = np.median(np.stack(rows), axis=0) if len(rows) > 1 else rows[0]
        begin = self.recent[index - first_kept][0]
        self.held.append((begin, smoothed))
        self.decided = index + 1
        # a moment before the next window's start is held only by decided windows (starts only increase)
        upto = self.recent[index + 1 - first_kept][0] if index + 1 < self.pushed else begin
        return self._advance(min(upto, duration))

    def _advance(self, upto: float) -> list[Event]:
        """Decide the moments from the frontier to ``upto``: the stretches :func:`detect_events` cuts there."""
        if upto <= self.frontier or not self.held:
            return []
        begins = np.array([begin for begin, _ in self.held])
        a, _, lo, hi = _stretches(begins, self.window_seconds, self.frontier, upto)
        values = _lowest(np.stack([value for _, value in self.held]), lo, hi)
        ended = []
        for start, row in zip(a, values):
            for k, value in enumerate(row):
                value, start = float(value), float(start)
                if value >= self.lows[k]:
                    if k not in self.open:
                        ended += self._give_out(start, {k})  # its last event, unless this run may join it
                        self.open[k] = (start, value, False)
                    onset, score, confirmed = self.open[k]
                    if not confirmed and value >= self.limits[k]:  # the run counts; back within the gap: one event
                        confirmed = True
                        onset, _, last = self.ended.pop(k, (onset, 0.0, score))
                        score = max(score, last)
                    self.open[k] = (onset, max(score, value), confirmed)
                elif k in self.open:
                    self._close(k, start)
        self.frontier = upto
        while self.held and self.held[0][0] + self.window_seconds <= upto + EDGE_TOLERANCE:
            self.held.popleft()  # holds nothing after the frontier
        return ended + self._give_out(upto)

    def _close(self, k: int, offset: float) -> None:
        onset, score, confirmed = self.open.pop(k)
        if confirmed:  # a run that never reached the threshold is no event
            self.ended[k] = (onset, offset, score)

    def _give_out(self, now: float, classes: set[int] | None = None) -> list[Event]:
        """The ended events (of ``classes``, else all) that nothing can join any more at ``now`` (their gap over, no
        run of their class under way), those long enough as events."""
        out = []
        for k in sorted(k for k in self.ended if classes is None or k in classes):
            onset, offset, score = self.ended[k]
            if now - offset > self.gap_seconds and k not in self.open:
                del self.ended[k]
                if offset - onset >= max(self.min_seconds, 1e-9):
                    out.append(Event(self.labels[k], round(onset, 3), round(offset, 3), round(score, 4)))
        return out
