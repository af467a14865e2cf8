"""Sound event detection metrics: segment-based and event-based F1 (as ``sed_eval`` computes them) and PSDS.

The field's packages were the first choice. ``sed_eval`` 0.2.1 installs, but its ``dcase_util`` imports
``pkg_resources``, which setuptools removed in version 81, and pulls ``python-magic`` (libmagic), ``pydot-ng`` and
``validators``: every envsound install would have to pin an old setuptools for two F-scores. So the two F1s are
computed here, exactly as ``sed_eval.sound_event`` defines them, and tests/evaluation/test_sed_metrics.py checks them
against ``sed_eval`` itself on random cases (the ``dev`` extra installs it, with setuptools < 81) and against
hand-worked cases. PSDS comes from ``psds_eval`` 0.5.3, the reference implementation of Bilen et al. (2020), with
pandas < 3 (it calls ``fillna(method=)``) and its area function replaced (it fails on numpy >= 2.3).

- **Segment-based** (Mesaros et al. 2016): each file is cut into ``resolution``-long segments (1 s); a class is
  active in a segment when any of its events overlaps it, in the reference and in the system's output; over all
  segments and classes, F1 = 2 TP / (2 TP + FP + FN).
- **Event-based**: a system event is correct when a reference event of its class has its onset within ``collar``
  (200 ms) and its offset within the larger of ``collar`` and ``offset_share`` (20 %) of the reference event's length;
  the pairs are matched one to one so that the most events are correct (``sed_eval``'s "optimal" matching);
  F1 = 2 TP / (N_reference + N_system).
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np

Events = Mapping[str, Sequence[tuple[str, float, float]]]  # {file: [(label, onset, offset), ...]}


def segment_f1(reference: Events, system: Events, labels: Sequence[str], *, durations: Mapping[str, float],
               resolution: float = 1.0) -> dict:
    """Segment-based scores over every file of ``durations``: ``{"f1", "precision", "recall", "per_class":
    {label: {"f1", "precision", "recall", "n_reference"}}}`` (``n_reference``: active reference segments)."""
    index = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(labels), 3), dtype=np.int64)  # per class: TP, system active, reference active
    for name, seconds in durations.items():
        n = math.ceil(seconds / resolution)
        ref, sys = _roll(reference.get(name, ()), index, n, resolution), _roll(system.get(name, ()), index, n,
                                                                               resolution)
        counts += np.stack([(ref & sys).sum(0), sys.sum(0), ref.sum(0)], axis=1)
    return _scores(counts, labels)


def event_f1(reference: Events, system: Events, labels: Sequence[str], *, collar: float = 0.2,
             offset_share: float = 0.2) -> dict:
    """Event-based scores (onset and offset): the same keys as :func:`segment_f1`, ``n_reference`` in events."""
    from scipy.optimize import linear_sum_assignment

    index = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(labels), 3), dtype=np.int64)  # per class: TP, system events, reference events
    for name in set(reference) | set(system):
        ref, sys = list(reference.get(name, ())), list(system.get(name, ()))
        for label, *_ in ref:
            counts[index[label], 2] += 1
        for label, *_ in sys:
            counts[index[label], 1] += 1
        if not ref or not sys:
            continue
        hits = np.array([[r[0] == s[0] and abs(r[1] - s[1]) <= collar
                          and abs(r[2] - s[2]) <= max(collar, offset_share * (r[2] - r[1])) for s in sys] for r in ref])
        rows, cols = linear_sum_assignment(hits, maximize=True)  # the most pairs: a maximum bipartite matching
        for row, col in zip(rows, cols):
            if hits[row, col]:
                counts[index[ref[row][0]], 0] += 1
    return _scores(counts, labels)


def psds(reference: Events, operating_points: Sequence[Events], *, durations: Mapping[str, float],
         dtc: float = 0.7, gtc: float = 0.7, cttc: float = 0.3, alpha_ct: float = 0.0, alpha_st: float = 1.0,
         max_efpr: float = 100.0) -> float:
    """The polyphonic sound detection score of the system's outputs at several thresholds (``operating_points``,
    each ``{file: events}``) by ``psds_eval``; the defaults are DCASE 2021's scenario 1 (scenario 2: ``dtc=gtc=0.1,
    cttc=0.3, alpha_ct=0.5``)."""
    import pandas as pd
    from psds_eval import PSDSEval

    class Evaluator(PSDSEval):
        _auc = staticmethod(_step_area)  # psds_eval 0.5.3's own fails on numpy >= 2.3 (int() of a 2-D array)
        step_curve = staticmethod(_step_curve)  # its own calls fillna(method=), gone in pandas 3

    def table(events: Events) -> "pd.DataFrame":
        rows = [(name, onset, offset, label) for name, found in events.items() for label, onset, offset in found]
        return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])

    metadata = pd.DataFrame(list(durations.items()), columns=["filename", "duration"])
    with warnings.catch_warnings():  # pandas' notice of fillna(method=), which psds_eval uses (pandas < 3)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "A similar operating point exists")  # equal outputs at two thresholds
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)  # its NaN cross-trigger diagonal
        evaluator = Evaluator(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc,
                              ground_truth=table(reference), metadata=metadata)
        for events in operating_points:
            evaluator.add_operating_point(table(events))
        return float(evaluator.psds(alpha_ct=alpha_ct, alpha_st=alpha_st, max_efpr=max_efpr).value)


def _step_curve(x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """psds_eval's ``PSDSEval.step_curve`` in numpy: the ROC ``(xp, yp)`` (the highest ``y`` of each ``x``, made
    non-decreasing) read at the sorted union of ``x`` and ``xp``, each value held until the next point of the ROC
    and 0 before its first (its own: an outer pandas merge, forward-filled)."""
    xs = np.unique(xp)
    if x.size < xs.size:
        raise ValueError(f"x: {x.size}, xp: {xp.size}")
    highest = np.full(xs.size, -np.inf)
    np.maximum.at(highest, np.searchsorted(xs, xp), yp)
    highest = np.maximum.accumulate(highest)
    keys = np.sort(np.concatenate([x, np.setdiff1d(xs, x)]), kind="stable")
    below = np.searchsorted(xs, keys, side="right") - 1
    return np.where(below >= 0, highest[np.maximum(below, 0)], 0.0)


def _step_area(x: np.ndarray, y: np.ndarray, max_x: float | None = None, decreasing_y: bool = False) -> float:
    """The area under the staircase through ``(x, y)`` (x sorted) up to ``max_x``, each ``y`` held until the next
    ``x``: what psds_eval's ``PSDSEval._auc`` computes (without its input checks; ``decreasing_y`` is only checked
    there)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    max_x = x.max() if max_x is None else max_x
    if max_x not in x:  # the curve is cut at max_x, the step before it held there
        at = int(np.searchsorted(x, max_x))
        x, y = np.insert(x, at, max_x), np.insert(y, at, y[at - 1])
    keep = x <= max_x
    return float(np.sum(np.diff(x[keep]) * y[keep][:-1]))


def _roll(events, index: Mapping[str, int], n: int, resolution: float) -> np.ndarray:
    roll = np.zeros((n, len(index)), dtype=bool)
    for label, onset, offset in events:
        roll[int(math.floor(onset / resolution)):int(math.ceil(offset / resolution)), index[label]] = True
    return roll


def _scores(counts: np.ndarray, labels: Sequence[str]) -> dict:
    # None where nothing divides (no system event: no precision); F1 is 0 when no event is correct, where
    # sed_eval's 2PR / (P + R) gives NaN
    def score(tp: int, n_sys: int, n_ref: int) -> dict:
        return {"f1": 2 * tp / (n_sys + n_ref) if n_sys + n_ref else None,
                "precision": tp / n_sys if n_sys else None, "recall": tp / n_ref if n_ref else None}

    total = counts.sum(axis=0)
    return {**score(*total), "per_class": {label: {**score(*row), "n_reference": int(row[2])}
                                           for label, row in zip(labels, counts)}}
