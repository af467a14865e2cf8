"""Sound events from a clip model's window timeline: *when* each class sounds, as ``{label, onset, offset, score}``.

A model trained on clip labels scores overlapping windows (``features.window_seconds`` long, one every
``features.eval_hop_seconds``). Each class's probability track over those windows is smoothed by a median filter
(``events.median_seconds``), compared with its threshold (``events.threshold``, unset: the task's decision threshold,
per class where the checkpoint fitted them), and every run of windows above it becomes one event. A window's decision
is placed on the hop-long stretch at its centre, so consecutive windows tile the file; an event is then from the
centre stretch of its first window to that of its last, clipped to the file, and its score is the highest smoothed
probability inside it. The time resolution is the hop (1 s by default); events shorter than ``events.min_seconds``
are dropped. numpy only: the exported ONNX model's predictions get events too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


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
