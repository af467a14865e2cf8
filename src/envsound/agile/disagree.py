"""Mistakes caught: the reviewed windows a learned head disagrees with, out of fold.

A reviewer answering ``no`` to a window that holds the sound (or ``yes`` to one that does not) is learned silently:
the head bends to it, and nothing says so. Each reviewed window's out-of-fold score (:func:`~envsound.agile.calibrate.
out_of_fold_scores`: from a head that never saw it, the same scores the threshold was calibrated on) is compared with
its verdict: the farther the score from the verdict (``1 - score`` for a ``yes``, ``score`` for a ``no``), the more
the rest of the reviews contradict it. A window **disagrees** when the head, not having seen it, would decide
otherwise: a ``no`` at or above the label's threshold (it would be labelled), a ``yes`` below both the threshold and
0.5 (the head's own boundary: its two sides are weighted to equal totals). ``learn`` counts those; ``learn
--disagreements K`` lists the K farthest from their verdicts, for a second look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envsound.inference.embeddings.store import EmbeddingsStore, StoredWindow

BOUNDARY = 0.5  # the head's own boundary (balanced sides): a yes below it and below the threshold disagrees


@dataclass(frozen=True)
class Disagreement(StoredWindow):
    """A reviewed window and how far the head, out of fold, is from its ``verdict``: ``label``, ``verdict``
    (``yes``/``no``), ``score`` (its out-of-fold probability), ``disagrees`` (on the other side, see the module)."""

    label: str
    verdict: str
    score: float
    disagrees: bool


def disagreements(store: EmbeddingsStore, label: str, ids: np.ndarray, truth: np.ndarray, scores: np.ndarray | None,
                  threshold: float, *, top: int) -> tuple[int, list[Disagreement]]:
    """How many of a label's reviewed windows disagree with the head out of fold, and the ``top`` farthest from their
    verdicts, farthest first.

    ``ids`` ``(n,)`` the reviewed windows (``yes`` and ``no``), ``truth`` ``(n,)`` bool (``yes``), ``scores`` ``(n,)``
    their out-of-fold scores (``None`` or NaN: not scored, when the label is not calibrated: ``(0, [])``).
    """
    if scores is None or not np.isfinite(scores).any():
        return 0, []
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    scored = np.isfinite(scores)
    disagrees = scored & np.where(truth, scores < min(threshold, BOUNDARY), scores >= threshold)
    distance = np.where(truth, 1.0 - scores, scores)
    order = [i for i in np.argsort(-np.where(scored, distance, -np.inf), kind="stable") if scored[i]][:top]
    rows = store.rows(np.asarray(ids, dtype=np.int64)[order]) if order else []
    listed = [Disagreement(window=int(ids[i]), file=row["file"], start=float(row["start"]), end=float(row["end"]),
                           label=label, verdict="yes" if truth[i] else "no", score=float(scores[i]),
                           disagrees=bool(disagrees[i])) for i, row in zip(order, rows)]
    return int(disagrees.sum()), listed
