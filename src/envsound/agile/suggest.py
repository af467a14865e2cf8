"""The next windows to review for a learned label: those whose score lies nearest 0.5 (where the head is least sure of
its own probability; the two sides are weighted to equal totals, :mod:`envsound.agile.learn`), whatever the
calibrated threshold, and, while a label lacks the ``no`` answers its calibration needs, windows drawn from the lower
half of the scores, which bring them (search and the uncertain windows of a rare sound kept offering the sound: 20
``yes`` and no ``no``); spread out so that a round is not ten seconds of one recording, and never a window that
overlaps one already reviewed for the label in its file (22-27 s after 23-28 s was answered: mostly the same sound, a
review that teaches little). An order by maximal marginal relevance and a window from below every round are settings
(:data:`MMR_LAMBDA`, :data:`LOW_EVERY`), off: they were measured to cost mean AP (docs/results.md, "Suggestions that
teach").

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

from envsound.agile.head import LinearHead, context_vectors, store_scores
from envsound.errors import ConfigError
from envsound.inference.embeddings.store import EmbeddingsStore, StoredWindow

UNCERTAIN = 0.5  # the score the head is least sure of: its boundary between the two equally weighted sides
MAX_POOL = 262_144  # uncertain windows looked at, at most, to find one a file: 2 MB of ids and scores, and their rows
NEIGHBOURS = 8  # windows a reviewed one overlaps, for the first pool (5-s windows a second apart): more are looked for
OVERLAP = 1e-6  # seconds: windows that only touch (one ends where the other starts) do not overlap
RULES = ("mix", "half")
# Measured (docs/results.md, "Suggestions that teach"): one window a round from below and MMR at 0.5 cost mean AP at
# 50 reviews (0.836 against 0.855 on ESC-10, 0.808 against 0.826 outside it), the windows from below only while a
# label lacks no cost nothing there and brought 5 no within 20 reviews to every ESC-10 class: the defaults
LOW_EVERY = 0  # windows from below a round of LOW_EVERY (0: only the no a label's calibration lacks)
MMR_LAMBDA = 1.0  # relevance (uncertainty) against novelty (unlike the reviewed and chosen); 1: uncertainty alone
BELOW_SAMPLE = 65_536  # windows scored for the draw from below, at most (a store's chunk)
MMR_POOL = 16  # candidates a suggestion ordered by MMR (the most uncertain); the rest keep their order
MMR_REVIEWED = 256  # reviewed windows a candidate is compared with (the latest)


@dataclass(frozen=True)
class Suggestion(StoredWindow):
    """A window to review: ``window`` (the store's id), ``file``, ``start``, ``end`` (seconds), the ``label`` asked
    about and the learned head's ``score`` (probability in [0, 1]) of it."""

    label: str
    score: float


def suggest(store: EmbeddingsStore, weights: np.ndarray, bias: np.ndarray, labels: Sequence[str], *,
            labelled: Mapping[str, np.ndarray], top: int, thresholds: Sequence[float] | None = None,
            rule: str = "mix", wanted_no: Mapping[str, int] | None = None,
            context: float = 0.0) -> list[Suggestion]:
    """``top`` windows of ``store`` to review next, shared among ``labels`` in turn (the first label gets the odd
    ones).

    ``weights`` ``(n_labels, d)`` and ``bias`` ``(n_labels,)``: the learned head (score = sigmoid(w . x + b));
    uncertainty is ``|score - 0.5|`` (:data:`UNCERTAIN`), or ``|score - threshold|`` with ``thresholds``
    ``(n_labels,)`` given (the experiments compare the two); ``labelled[label]``: window ids already reviewed for that
    label, never suggested for it, nor any window of their file overlapping one of them in time. ``rule``:

    - ``"mix"`` (the default): a label's share mixes the uncertain windows (in the order of maximal marginal
      relevance, :func:`_mmr_order`, when :data:`MMR_LAMBDA` < 1) with windows scoring well below (:func:`_below`:
      the store's lower half): :func:`low_share` of them, as many as the label lacks ``no`` answers for its
      calibration (``wanted_no[label]``), at most half the round;
    - ``"half"``: the most uncertain windows only (the rule before issue 77).

    ``context``: the learned model's context in seconds (:mod:`envsound.events.context`): a window's score is the
    head on its mean embedding over its file's windows within that of it, as the model scores it (0: its own).

    Diversity, loosened only as far as needed to give ``top``: at most one window a file per label in a round and
    none within one window length of another suggestion of the same file; then several a file (when the store has
    fewer files than asked), still a window length apart; then any unreviewed window. Fewer than ``top`` only when
    fewer windows are unreviewed and overlap no reviewed one.

    >>> suggest(store, w, b, ["chainsaw"], labelled={"chainsaw": ids}, top=10)[0].file

    Raises:
        ConfigError: ``top`` < 0, an unknown ``rule``, or the head's width is not the store's.
    """
    if top < 0:
        raise ConfigError(f"suggest must be >= 0 (got {top})")
    if rule not in RULES:
        raise ConfigError(f"rule={rule!r} is not valid; valid: {', '.join(RULES)}")
    thresholds = [UNCERTAIN] * len(labels) if thresholds is None else list(thresholds)
    shares = [top // len(labels) + (i < top % len(labels)) for i in range(len(labels))]
    out: list[Suggestion] = []
    for i, (label, share) in enumerate(zip(labels, shares)):
        if not share:
            continue
        reviewed = np.unique(np.asarray(labelled.get(label, ()), dtype=np.int64))
        low = low_share(share, (wanted_no or {}).get(label, 0)) if rule == "mix" else 0
        head = (weights[i], float(bias[i]))
        picked = _pick(store, head, float(thresholds[i]), reviewed, share - low, mmr=rule == "mix", context=context)
        if low:
            picked += _below(store, head, reviewed, low, avoid=picked, context=context)
        out += [Suggestion(row["window"], row["file"], row["start"], row["end"], label, round(float(score), 6))
                for row, score in picked]
    return out


def low_share(share: int, wanted_no: int) -> int:
    """How many of a round's ``share`` windows come from well below the threshold: as many ``no`` as the label still
    lacks for its calibration (``wanted_no``), or one in :data:`LOW_EVERY` (at least one in a round of 3 or more)
    when that is set, at most half the round."""
    base = max(1, share // LOW_EVERY) if LOW_EVERY and share >= 3 else 0
    return min(share // 2, max(base, wanted_no))


def _pick(store: EmbeddingsStore, head: tuple[np.ndarray, float], target: float, reviewed: np.ndarray, share: int, *,
          mmr: bool, avoid: list | None = None, context: float = 0.0) -> list[tuple[dict, float]]:
    """``share`` unreviewed windows scoring nearest ``target``, spread out (:func:`_diverse`), none overlapping a
    reviewed window (or one in ``avoid``: ``(row, score)`` pairs already picked) in its file; with ``mmr``, the
    candidates in the order of :func:`_mmr_order`. ``(row, score)`` pairs."""
    if share <= 0:
        return []
    window = float(store.settings.get("window_seconds") or 0.0)
    spans = _spans(store, reviewed)
    pool = min(store.windows, share * 8 + 64 + NEIGHBOURS * len(reviewed))
    while True:
        ids, scores = _uncertain(store, head[0], head[1], target, reviewed, pool, context=context)
        exhausted = len(ids) < pool
        rows = store.rows(ids)
        free = np.flatnonzero(~_overlapping(rows, spans))
        ids, scores, rows = ids[free], scores[free], [rows[j] for j in free.tolist()]
        if mmr:
            order = _mmr_order(store, ids, scores, target, reviewed, first=MMR_POOL * share)
            ids, scores, rows = ids[order], scores[order], [rows[j] for j in order.tolist()]
        spread = len(_diverse(rows, share, window, strict=True, taken=avoid)) >= share
        if spread or pool >= min(store.windows, MAX_POOL) or exhausted:
            return [(rows[j], scores[j]) for j in _diverse(rows, share, window, taken=avoid)]
        pool = min(store.windows, MAX_POOL, pool * 4)  # too few files in the pool for one a file: a larger one


def _below(store: EmbeddingsStore, head: tuple[np.ndarray, float], reviewed: np.ndarray, share: int, *,
           avoid: list, context: float = 0.0) -> list[tuple[dict, float]]:
    """``share`` windows drawn at random (seeded by the reviews so far: the same store and reviews give the same
    draw) from the unreviewed windows scoring below the median of the store's scores (of :data:`BELOW_SAMPLE`
    windows drawn at random in a larger store: a chunk's memory whatever its size), spread out as
    :func:`_pick`'s, none overlapping a reviewed window or one in ``avoid``. The lower half, not the lowest: an
    absolute score such as 0.05 was, for a head of ten yes and weak negatives, still the sound's own quieter windows
    (crying baby: no ``no`` in its first 20 reviews), and the very lowest are silence, which teaches nothing."""
    rng = np.random.default_rng(len(reviewed))
    every = store.windows <= BELOW_SAMPLE
    drawn = np.arange(store.windows) if every else np.unique(rng.integers(0, store.windows, BELOW_SAMPLE))
    ids = np.setdiff1d(drawn, reviewed)
    if not len(ids):
        return []
    vectors = context_vectors(store, ids, context)  # with context: the neighbours' mean logit, as the model scores
    scores = LinearHead(head[0][None, :], np.array([head[1]])).predict_proba(vectors)[:, 0]
    lower = np.flatnonzero(scores <= np.median(scores))
    order = lower[rng.permutation(len(lower))]
    spans = _spans(store, reviewed)
    window = float(store.settings.get("window_seconds") or 0.0)
    for size in (share * 16, len(order)):  # a few candidates a pick first; all of them when those do not spread
        rows = store.rows(ids[order[:size]])
        free = np.flatnonzero(~_overlapping(rows, spans))
        rows, chosen_scores = [rows[j] for j in free.tolist()], scores[order[:size]][free]
        chosen = _diverse(rows, share, window, strict=size < len(order), taken=avoid)
        if len(chosen) >= share or size >= len(order):
            return [(rows[j], chosen_scores[j]) for j in chosen]
    return []


def _mmr_order(store: EmbeddingsStore, ids: np.ndarray, scores: np.ndarray, target: float, reviewed: np.ndarray, *,
               first: int) -> np.ndarray:
    """The order of maximal marginal relevance over the ``first`` candidates (the rest after them, as they were):
    each next the one maximising ``MMR_LAMBDA x relevance - (1 - MMR_LAMBDA) x its highest cosine similarity`` to
    the windows reviewed (the last :data:`MMR_REVIEWED`) and those already ordered; relevance is ``1 - |score -
    target| / max(target, 1 - target)``, 1 at the target. Diversity then uncertainty, the rule that won BioDCASE
    2026's active-learning task (0.507 against margin sampling's 0.408 area under the mAP curve)."""
    n = min(len(ids), first)
    if n < 2 or MMR_LAMBDA >= 1.0:  # all relevance: the order they came in (most uncertain first)
        return np.arange(len(ids))
    relevance = 1.0 - np.abs(scores[:n] - target) / max(target, 1.0 - target)
    candidates = _unit(store.vectors(ids[:n]))
    seen = _unit(store.vectors(reviewed[-MMR_REVIEWED:])) if len(reviewed) else np.zeros((0, candidates.shape[1]))
    nearest = (candidates @ seen.T).max(axis=1) if len(seen) else np.zeros(n)
    order: list[int] = []
    left = np.ones(n, dtype=bool)
    for _ in range(n):
        value = np.where(left, MMR_LAMBDA * relevance - (1.0 - MMR_LAMBDA) * nearest, -np.inf)
        j = int(np.argmax(value))
        order.append(j)
        left[j] = False
        nearest = np.maximum(nearest, candidates @ candidates[j])
    return np.r_[np.array(order, dtype=np.int64), np.arange(n, len(ids))]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def score_chunks(store: EmbeddingsStore, weights: np.ndarray, bias: np.ndarray):
    """Deprecated: :func:`envsound.agile.head.store_scores` of ``LinearHead(weights, bias)``, which yields the window
    ids. Yields ``(first window id, (rows, n_labels) probabilities)`` over the whole store, a chunk at a time."""
    warnings.warn("envsound.agile.suggest.score_chunks is deprecated and goes in a later release; use "
                  "envsound.agile.head.store_scores(store, LinearHead(weights, bias))", DeprecationWarning,
                  stacklevel=2)
    for ids, probs in store_scores(store, LinearHead(weights, bias)):
        yield int(ids[0]), probs


def _uncertain(store: EmbeddingsStore, weight: np.ndarray, bias: float, threshold: float, reviewed: np.ndarray,
               pool: int, *, context: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``pool`` unreviewed window ids whose score (with ``context``) is nearest ``threshold``, most uncertain
    first, and scores."""
    best_ids, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for ids, probs in store_scores(store, LinearHead(weight[None, :], np.array([bias])), context=context):
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


def _diverse(rows: list[dict], share: int, window: float, *, strict: bool = False,
             taken: list | None = None) -> list[int]:
    """Indices into ``rows`` (best first) of up to ``share`` windows, as spread out as the rows allow (``strict``:
    one a file, a window length apart, or fewer), counting the ``(row, score)`` pairs ``taken`` already as chosen."""
    before = [row for row, _ in taken or ()]
    picked = {row["window"] for row in before}
    chosen: list[int] = []
    for one_a_file, apart in ((True, True),) if strict else ((True, True), (False, True), (False, False)):
        for j, row in enumerate(rows):
            if len(chosen) >= share:
                return chosen
            if j in chosen or row["window"] in picked:
                continue
            same = [o for o in before + [rows[k] for k in chosen] if o["file"] == row["file"]]
            if (one_a_file and same) or (apart and any(abs(row["start"] - o["start"]) < window for o in same)):
                continue
            chosen.append(j)
    return chosen
