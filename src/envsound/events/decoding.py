"""How a track of class probabilities becomes events: one frozen :class:`Decoding` value.

A checkpoint's ``events`` section holds the settings (:meth:`Decoding.of` reads them), ``events.tune`` enumerates
them (:func:`~envsound.evaluation.sed.tune_decoding`), and ``predict``, the scan, ``listen`` and
:class:`~envsound.events.detect.EventTracker` take the value whole, resolved against the model's task once
(:meth:`Decoding.resolved`): a ``--threshold`` makes a new value (:meth:`Decoding.with_threshold`), never a change to
the loaded model. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Decoding:
    """The decoding rules of :func:`~envsound.events.detect.detect_events` (the module docstring there says what
    each does).

    Args:
        threshold: a class is active at or above it: one for every class, one per class (a tuple), or ``None``: the
            task's decision thresholds (:meth:`resolved` fills them in), ``0 < t <= 1``.
        median_seconds: the median filter's length over the track, seconds (0: none).
        min_seconds: shorter events are dropped (after joining), seconds.
        gap_seconds: two events of one class at most this far apart are one, seconds (0: none).
        hysteresis: an event is a run at or above ``threshold x hysteresis`` that reaches the threshold, ``(0, 1]``.

    >>> Decoding(threshold=0.6, median_seconds=1.0).with_threshold(0.8).threshold
    0.8
    """

    threshold: float | tuple[float, ...] | None = None
    median_seconds: float = 3.0
    min_seconds: float = 0.0
    gap_seconds: float = 0.0
    hysteresis: float = 1.0

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The settings' names: the keys of a config's ``events`` section that decode, what ``events.tune`` sets."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, settings: Any) -> "Decoding":
        """The decoding of a config's ``events`` section (any object with the :meth:`keys` as attributes)."""
        return cls(**{key: getattr(settings, key) for key in cls.keys()})

    def resolved(self, task, n_classes: int) -> "Decoding":
        """This decoding with its thresholds made explicit, one per class: its own, or unset, ``task``'s (per class
        where the checkpoint fitted them)."""
        own = task.thresholds(n_classes) if self.threshold is None else self.threshold
        return replace(self, threshold=tuple(float(t) for t in np.broadcast_to(np.asarray(own, float), (n_classes,))))

    def with_threshold(self, value: float) -> "Decoding":
        """One threshold for every class (``--threshold``), over any tuned or per-class one."""
        return replace(self, threshold=float(value))

    def limits(self, n_classes: int) -> np.ndarray:
        """``(n_classes,)`` the thresholds as an array (raises ValueError while unresolved: :meth:`resolved`)."""
        if self.threshold is None:
            raise ValueError("Decoding.threshold is unset: resolve it against the model's task first (resolved())")
        return np.broadcast_to(np.asarray(self.threshold, dtype=np.float64), (n_classes,))

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in ((key, getattr(self, key)) for key in self.keys())}

    def describe(self, labels: Sequence[str] = ()) -> str:
        """``threshold 0.50, median filter 3.0 s, ...`` (per-class thresholds named by ``labels``)."""
        t = self.threshold
        if isinstance(t, tuple) and len(set(t)) > 1:
            thresholds = ", ".join(f"{label} {v:.2f}" for label, v in zip(labels or range(len(t)), t))
        else:
            thresholds = "the task's" if t is None else f"{(t[0] if isinstance(t, tuple) else t):.2f}"
        return (f"threshold {thresholds}, median filter {self.median_seconds:g} s, shortest {self.min_seconds:g} s, "
                f"gaps up to {self.gap_seconds:g} s joined, hysteresis {self.hysteresis:g}")
