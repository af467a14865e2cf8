"""A learned model's context: each window's logit averaged with those of its file's windows starting within
``context_seconds`` of it, before the sigmoid and the threshold (docs/results.md, "Context as a model setting").

``envsound learn`` records the setting in the model (``meta["learned"]["context_seconds"]``, read only through
:func:`context_seconds`; a model without it, or at 0, scores each window alone) and fits its head on each window's
mean embedding over the same neighbours. For a linear head the mean of the neighbours' logits is the head on their
mean embedding, so every scorer (``predict`` on audio or on a store, ``--events``, ``listen``, ``suggest``,
``check``, the Review page, ``evaluate``) averages the logits it already has, through one function,
:func:`neighbour_mean`: directly on a whole track (:func:`average_probs`) or on windows that arrive in pieces
(:class:`ContextStream`, which holds a window back until the last of its neighbours is in). A window's neighbours
are the windows of the same file (the same ``key``) whose start is within ``seconds`` (+- :data:`TOLERANCE`) of its
own: at mn04's 1-s hop and the default 1 s, itself and the windows one hop before and after (a file's first and last
window average over fewer); at YAMNet's 0.48-s hop, two on each side; at BirdNET's 3-s hop, none (it scores as
without context). Windows of one file come in order of their start, the files one after another.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

DEFAULT_SECONDS = 1.0  # a model envsound learn makes: mn04's +-1 window, YAMNet's +-2 (docs/results.md)
TOLERANCE = 1e-6  # seconds: a window one hop away at a hop of exactly context_seconds is a neighbour
_EDGE = 1e-12  # a probability of exactly 0 or 1 (float32 saturates past a logit of ~17) read as this far inside


def context_seconds(meta: Mapping[str, Any] | None) -> float:
    """The context of a model from its ``meta``: ``meta["learned"]["context_seconds"]`` (seconds, >= 0); 0.0 for a
    model ``envsound learn`` did not make, or learned before the setting existed. The one reader of the key."""
    learned = (meta or {}).get("learned")
    value = learned.get("context_seconds", 0.0) if isinstance(learned, dict) else 0.0
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def neighbour_mean(rows: np.ndarray, keys: np.ndarray, starts: np.ndarray, seconds: float) -> np.ndarray:
    """Each row ``(n, k)`` replaced by the mean of the rows of its neighbours (same ``keys`` ``(n,)``, start within
    ``seconds`` of its ``starts`` ``(n,)``; itself included), in float64. The windows of one key must be consecutive
    and in order of start. ``seconds`` 0: the rows unchanged (as float64)."""
    rows = np.asarray(rows, dtype=np.float64)
    if seconds <= 0 or len(rows) < 2:
        return rows.copy()
    keys, starts = np.asarray(keys), np.asarray(starts, dtype=np.float64)
    lo, hi = neighbour_bounds(keys, starts, seconds)
    total = np.concatenate([np.zeros((1,) + rows.shape[1:]), np.cumsum(rows, axis=0)])
    count = (hi - lo).reshape((-1,) + (1,) * (rows.ndim - 1))
    return (total[hi] - total[lo]) / count


def neighbour_bounds(keys: np.ndarray, starts: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` ``(n,)`` each of each window's neighbours (indices into ``keys`` and ``starts``, as
    :func:`neighbour_mean` takes them; itself included): widened one window at a time on each side
    while the next one is of the same key and within ``seconds`` (a few steps: the neighbours a side)."""
    n, reach = len(starts), seconds + TOLERANCE
    at = np.arange(n)
    lo, hi = at.copy(), at + 1
    growing = np.ones(n, dtype=bool)
    while growing.any():
        j = lo - 1
        growing = (j >= 0) & (keys[np.maximum(j, 0)] == keys) & (starts - starts[np.maximum(j, 0)] <= reach)
        lo[growing] = j[growing]
    growing = np.ones(n, dtype=bool)
    while growing.any():
        j = np.minimum(hi, n - 1)
        growing = (hi < n) & (keys[j] == keys) & (starts[j] - starts <= reach)
        hi[growing] += 1
    return lo, hi


def logits(probs: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` in float64, a probability of 0 or 1 read as :data:`_EDGE` inside."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _EDGE, 1.0 - _EDGE)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def average_probs(probs: np.ndarray, keys: np.ndarray, starts: np.ndarray, seconds: float) -> np.ndarray:
    """Window probabilities ``(n, k)`` -> the same windows' probabilities with context: the sigmoid of the mean of
    their neighbours' logits (:func:`neighbour_mean`), in ``probs``' float dtype. ``seconds`` 0: ``probs`` as given.

    >>> average_probs(track, np.zeros(len(track)), starts, 1.0)
    """
    probs = np.asarray(probs)
    if seconds <= 0:
        return probs
    dtype = probs.dtype if probs.dtype in (np.float32, np.float64) else np.float32
    return sigmoid(neighbour_mean(logits(probs), keys, starts, seconds)).astype(dtype)


class ContextStream:
    """Windows pushed in order, in pieces of any size (:meth:`push`) -> each window's probability with context
    (:func:`average_probs`) as soon as its last neighbour is in; :meth:`finish` gives the rest. A window is complete
    when a window of another key, or one starting more than ``seconds`` after it, has been pushed; with ``hop`` (the
    windows' regular spacing in seconds: a live stream) already when the next window on that grid would be past it,
    so a live window waits ``floor(seconds / hop)`` hops, not one more. Each window carries a payload (its id, its
    start) back to the caller. Memory: the windows held back and the neighbours they need.

    >>> stream = ContextStream(1.0)
    >>> ids, probs = stream.push(keys, starts, chunk_probs, chunk_ids)
    """

    def __init__(self, seconds: float, *, hop: float | None = None) -> None:
        self.seconds, self.hop = float(seconds), hop
        self._reset()

    def _reset(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.starts = np.zeros(0)
        self.rows: np.ndarray | None = None  # logits held: the windows not given out and the neighbours they need
        self.payload: np.ndarray | None = None
        self.given = 0  # how many of the held windows were given out already (they stay as neighbours)

    def push(self, keys: np.ndarray, starts: np.ndarray, probs: np.ndarray,
             payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add windows (``keys``, ``starts`` ``(n,)``, ``probs`` ``(n, k)``, ``payload`` ``(n, ...)``) -> ``(payload,
        probabilities (m, k) float32)`` of the windows now complete, in order."""
        probs = np.asarray(probs)
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        self.keys = np.concatenate([self.keys, keys])
        self.starts = np.concatenate([self.starts, np.asarray(starts, dtype=np.float64).reshape(-1)])
        new = logits(probs).reshape(len(keys), *probs.shape[1:])
        self.rows = new if self.rows is None else np.concatenate([self.rows, new])
        payload = np.asarray(payload)
        self.payload = payload if self.payload is None else np.concatenate([self.payload, payload])
        if not len(self.keys):
            return self._empty()
        last_key, reach = self.keys[-1], self.starts[-1] + (self.hop or 0.0)
        complete = (self.keys != last_key) | (reach > self.starts + self.seconds + TOLERANCE)
        waiting = np.flatnonzero(~complete[self.given:])  # from the first incomplete one on: the last file's latest
        return self._give(self.given + int(waiting[0]) if len(waiting) else len(complete))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window still held back (the stream ended: no more neighbours come)."""
        if self.rows is None:
            return self._empty()
        out = self._give(len(self.keys))
        self._reset()
        return out

    def _give(self, ready: int) -> tuple[np.ndarray, np.ndarray]:
        """The held windows ``given .. ready`` with context; then drop what no window still held back needs."""
        if ready <= self.given:
            return self._empty()
        averaged = sigmoid(neighbour_mean(self.rows, self.keys, self.starts, self.seconds)).astype(np.float32)
        out = (self.payload[self.given:ready], averaged[self.given:ready])
        self.given = ready
        if ready < len(self.keys):  # keep the pending windows' key from their earliest neighbour on
            first = self.starts[ready] - self.seconds - TOLERANCE
            keep = int(np.argmax((self.keys == self.keys[ready]) & (self.starts >= first)))
        else:
            keep = len(self.keys)
        self.keys, self.starts, self.rows = self.keys[keep:], self.starts[keep:], self.rows[keep:]
        self.payload, self.given = self.payload[keep:], self.given - keep
        return out

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        width = 0 if self.rows is None else self.rows.shape[1]
        payload = np.zeros(0) if self.payload is None else self.payload[:0]
        return payload, np.zeros((0, width), np.float32)
