"""The next windows to review for a learned label: those whose score lies nearest 0.5 (where the head is least sure
of its own probability; the two sides are weighted to equal totals, :mod:`envsound.agile.learn`), whatever the
calibrated threshold, spread out so that a round is not ten seconds of one recording, and never a window that
overlaps one already reviewed for the label in its file (22-27 s after 23-28 s was answered: mostly the same sound,
a review that teaches little).

Nearest 0.5 by measurement (docs/results.md, "From one example to a detector (issue 67)",
experiments/agile_review_tune.py ``--settings C=0.1 C=0.1,rule=half``): mean AP after 50 reviews 0.912 against 0.892
nearest the calibrated threshold on 4 ESC-50 classes outside ESC-10. The calibrated threshold is a poor target: on a
few reviews it can collapse (1e-6 for chainsaw with C=1), and the windows nearest it are ones the head is sure of.

Scoring every stored window reads the memory-mapped parts a chunk at a time
(:func:`~envsound.agile.head.store_scores`: the store's
:meth:`~envsound.inference.embeddings.store.EmbeddingsStore.chunks` through a head's ``predict_proba``, the one loop
``check`` scores with too) and keeps only a pool of the most uncertain ones (as search keeps its best), so ten million
windows need no more memory than a chunk.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from envsound.agile.head import LinearHead, store_scores
from envsound.errors import ConfigError
from envsound.inference.embeddings.store import EmbeddingsStore, StoredWindow

UNCERTAIN = 0.5  # the score the head is least sure of: its boundary between the two equally weighted sides
MAX_POOL = 262_144  # uncertain windows looked at, at most, to find one a file: 2 MB of ids and scores, and their rows
NEIGHBOURS = 8  # windows a reviewed one overlaps, for the first pool (5-s windows a second apart): more are looked for
OVERLAP = 1e-6  # seconds: windows that only touch (one ends where the other starts) do not overlap


@dataclass(frozen=True)
class Suggestion(StoredWindow):
    """A window to review: ``window`` (the store's id), ``file``, ``start``, ``end`` (seconds), the ``label`` asked
    about and the learned head's ``score`` (probability in [0, 1]) of it."""

    label: str
    score: float


def suggest(store: EmbeddingsStore, weights: np.ndarray, bias: np.ndarray, labels: Sequence[str], *,
            labelled: Mapping[str, np.ndarray], top: int,
            thresholds: Sequence[float] | None = None) -> list[Suggestion]:
    """``top`` windows of ``store`` to review next, shared among ``labels`` in turn (the first label gets the odd
    ones), each label's most uncertain first.

    ``weights`` ``(n_labels, d)`` and ``bias`` ``(n_labels,)``: the learned head (score = sigmoid(w . x + b));
    uncertainty is ``|score - 0.5|`` (:data:`UNCERTAIN`), or ``|score - threshold|`` with ``thresholds``
    ``(n_labels,)`` given (the experiments compare the two); ``labelled[label]``: window ids already reviewed for that
    label, never suggested for it, nor any window of their file overlapping one of them in time. Diversity, loosened
    only as far as needed to give ``top``: at most one window a file per label in a round and none within one window
    length of another suggestion of the same file; then several a file (when the store has fewer files than asked),
    still a window length apart; then any unreviewed window. Fewer than ``top`` only when fewer windows are
    unreviewed and overlap no reviewed one.

    >>> suggest(store, w, b, ["chainsaw"], labelled={"chainsaw": ids}, top=10)[0].file

    Raises:
        ConfigError: ``top`` < 0, or the head's width is not the store's.
    """
    if top < 0:
        raise ConfigError(f"suggest must be >= 0 (got {top})")
    thresholds = [UNCERTAIN] * len(labels) if thresholds is None else list(thresholds)
    shares = [top // len(labels) + (i < top % len(labels)) for i in range(len(labels))]
    out: list[Suggestion] = []
    window = float(store.settings.get("window_seconds") or 0.0)
    for i, (label, share) in enumerate(zip(labels, shares)):
        if not share:
            continue
        reviewed = np.unique(np.asarray(labelled.get(label, ()), dtype=np.int64))
        spans = _spans(store, reviewed)
        pool = min(store.windows, share * 8 + 64 + NEIGHBOURS * len(reviewed))
        while True:
            ids, scores = _uncertain(store, weights[i], float(bias[i]), float(thresholds[i]), reviewed, pool)
            exhausted = len(ids) < pool
            rows = store.rows(ids)
            free = np.flatnonzero(~_overlapping(rows, spans))
            ids, scores, rows = ids[free], scores[free], [rows[j] for j in free.tolist()]
            spread = len(_diverse(rows, share, window, strict=True)) >= share
            if spread or pool >= min(store.windows, MAX_POOL) or exhausted:
                chosen = _diverse(rows, share, window)
                break
            pool = min(store.windows, MAX_POOL, pool * 4)  # too few files in the pool for one a file: a larger one
        out += [Suggestion(rows[j]["window"], rows[j]["file"], rows[j]["start"], rows[j]["end"], label,
                           round(float(scores[j]), 6)) for j in chosen]
    return out


def score_chunks(store: EmbeddingsStore, weights: np.ndarray, bias: np.ndarray):
    """Deprecated: :func:`envsound.agile.head.store_scores` of ``LinearHead(weights, bias)``, which yields the window
    ids. Yields ``(first window id, (rows, n_labels) probabilities)`` over the whole store, a chunk at a time."""
    warnings.warn("envsound.agile.suggest.score_chunks is deprecated and goes in a later release; use "
                  "envsound.agile.head.store_scores(store, LinearHead(weights, bias))", DeprecationWarning,
                  stacklevel=2)
    for ids, probs in store_scores(store, LinearHead(weights, bias)):
        yield int(ids[0]), probs


def _uncertain(store: EmbeddingsStore, weight: np.ndarray, bias: float, threshold: float, reviewed: np.ndarray,
               pool: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``pool`` unreviewed window ids whose score is nearest ``threshold``, most uncertain first, and scores."""
    best_ids, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for ids, probs in store_scores(store, LinearHead(weight[None, :], np.array([bias]))):
        keep = ~np.isin(ids, reviewed)
        ids, scores = ids[keep], probs[keep, 0]
        best_ids, best_scores = np.concatenate([best_ids, ids]), np.concatenate([best_scores, scores])
        if len(best_ids) > pool:
            nearest = np.argpartition(np.abs(best_scores - threshold), pool - 1)[:pool]
            best_ids, best_scores = best_ids[nearest], best_scores[nearest]
    order = np.lexsort((best_ids, np.abs(best_scores - threshold)))  # ties by window id: a stable order
    return best_ids[order], best_scores[order]


def _spans(store: EmbeddingsStore, reviewed: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The reviewed windows' times by file: ``{file: (starts (n,), ends (n,))}`` in seconds."""
    inside = reviewed[(reviewed >= 0) & (reviewed < store.windows)]
    by_file: dict[str, list[tuple[float, float]]] = {}
    for row in store.rows(inside) if len(inside) else []:
        by_file.setdefault(row["file"], []).append((float(row["start"]), float(row["end"])))
    return {file: (np.array([a for a, _ in times]), np.array([b for _, b in times])) for file, times in by_file.items()}


def _overlapping(rows: list[dict], spans: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``(len(rows),)`` bool: each window overlaps in time a reviewed window of its file (``spans``, :func:`_spans`)."""
    out = np.zeros(len(rows), dtype=bool)
    for j, row in enumerate(rows):
        if row["file"] in spans:
            starts, ends = spans[row["file"]]
            out[j] = bool(np.any((row["start"] < ends - OVERLAP) & (row["end"] > starts + OVERLAP)))
    return out


def _diverse(rows: list[dict], share: int, window: float, *, strict: bool = False) -> list[int]:
    """Indices into ``rows`` (most uncertain first) of up to ``share`` windows, as spread out as the rows allow
    (``strict``: one a file, a window length apart, or fewer)."""
    chosen: list[int] = []
    for one_a_file, apart in ((True, True),) if strict else ((True, True), (False, True), (False, False)):
        for j, row in enumerate(rows):
            if len(chosen) >= share:
                return chosen
            if j in chosen:
                continue
            same = [rows[k] for k in chosen if rows[k]["file"] == row["file"]]
            if (one_a_file and same) or (apart and any(abs(row["start"] - o["start"]) < window for o in same)):
                continue
            chosen.append(j)
    return chosen
