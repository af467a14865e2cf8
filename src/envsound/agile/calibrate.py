"""Thresholds that mean something: precision and recall of a learned label against the decision threshold, from
out-of-fold scores of the reviewed windows, and the threshold that holds a target precision.

The reviewed windows (``yes`` = 1, ``no`` = 0) are split into :data:`FOLDS` folds grouped by file
(:class:`sklearn.model_selection.StratifiedGroupKFold`: windows of one recording never straddle a training and a
held-out fold, as clips of one source never do in envsound's splits). Each fold is scored by a classifier fitted on
the others (and on the weak negatives, which are never scored), so every reviewed window gets one score from a model
that did not see it. At each threshold ``t`` (each distinct out-of-fold score), the windows scoring ``>= t`` give the
precision and recall; their 95 % intervals are Wilson score intervals of those counts (a binomial interval: it
treats the windows as independent, which windows of one recording are not, so it is a lower bound on the
uncertainty). The threshold kept is the lowest whose precision reaches the target (the most recall at that
precision); when none does, the one of highest precision, and the result says the target was not reached.

Only a threshold with support is kept: at least :data:`MIN_SUPPORT` reviewed ``yes`` windows at or above it. Above the
top score or two, precision is 1 or 0 by the luck of one window, and the most precise threshold was once a single
window's score (issue 77: ``dog``, 26 yes and 24 no reviewed, kept 0.999928 and labelled no window of the archive).
:data:`MIN_SUPPORT` is 4, the fewest ``yes`` whose precision, were all the windows above them ``yes``, has a Wilson 95 %
interval above one half (1 of 1: 0.21-1; 3 of 3: 0.44-1; 4 of 4: 0.51-1): a threshold with fewer could be no better
than a coin. A target reached only above fewer windows is not reached; the calibration then says which precision is
reachable at which recall (:attr:`Calibration.reachable`), so a user sees what a higher precision would cost.
"""

from __future__ import annotations

import csv
import logging
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from envsound.agile.names import file_name
from envsound.errors import ConfigError
from envsound.evaluation.metrics import Z95, wilson  # noqa: F401 (Z95: the module's too)
from envsound.fileio import atomic_path

log = logging.getLogger(__name__)

FOLDS = 5  # at most: fewer when fewer files hold reviewed windows
MIN_REVIEWED = 5  # yes and no windows each, below which no cross-validation is tried
UNCALIBRATED = 0.5  # the threshold of a label too few reviewed windows calibrate
MIN_SUPPORT = 4  # reviewed yes at or above a threshold kept: 4 of 4's Wilson 95 % interval lies above 0.5 (the module)
RECALLS = (0.25, 0.5, 0.75, 0.9)  # the recalls at which the precision reachable is said
CURVE_COLUMNS = ("threshold", "precision", "precision_low", "precision_high", "recall", "n_above")


@dataclass(frozen=True)
class Curve:
    """Precision and recall against the threshold: one row per distinct out-of-fold score, thresholds ascending;
    each array ``(n,)``. ``precision_low``/``precision_high``: its 95 % Wilson interval; ``n_above``: the reviewed
    windows scoring at or above the threshold."""

    threshold: np.ndarray
    precision: np.ndarray
    precision_low: np.ndarray
    precision_high: np.ndarray
    recall: np.ndarray
    n_above: np.ndarray
    positives: int  # reviewed yes windows (the recall's denominator)


@dataclass(frozen=True)
class Calibration:
    """A label's decision threshold and what is expected of it on windows like the reviewed ones.

    ``calibrated``: False when too few windows were reviewed (then ``threshold`` is 0.5 and the expectations are
    None); ``reached``: whether the out-of-fold precision reached ``target``. ``precision``/``recall`` and their
    ``(low, high)`` 95 % intervals are at ``threshold``.
    """

    label: str
    threshold: float
    target: float
    positives: int
    negatives: int
    calibrated: bool
    reached: bool = False
    precision: float | None = None
    precision_interval: tuple[float, float] | None = None
    recall: float | None = None
    recall_interval: tuple[float, float] | None = None
    folds: int = 0
    support: int = 0  # reviewed yes windows at or above the threshold
    reachable: tuple[tuple[float, float, float], ...] = ()  # (recall, precision, threshold): see reachable()
    curve: Curve | None = None
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)  # out of fold, in x's order

    def line(self) -> str:
        """One line: the threshold and its expected precision and recall, or why there are none and the command
        that gets the reviews still wanted."""
        if not self.calibrated:
            return (f"{self.label}: threshold {self.threshold:g}, not calibrated ({self.why()}); next: review "
                    f"{self.wanted()} from envsound learn DB --label {shlex.quote(self.label)} --out DIR --suggest 10,"
                    " or on the Review page (envsound serve DB)")
        low, high = self.precision_interval
        text = (f"{self.label}: threshold {self.threshold:.3f}, precision {self.precision:.2f} ({low:.2f}-{high:.2f}), "
                f"recall {self.recall:.2f} ({self.recall_interval[0]:.2f}-{self.recall_interval[1]:.2f}) over "
                f"{self.positives} yes and {self.negatives} no reviewed, {self.folds}-fold")
        if not self.reached:
            text += (f"; the target precision {self.target:g} was not reached with {MIN_SUPPORT} yes or more above a "
                     "threshold: this is the highest found")
            if self.reachable:
                text += "; reachable: " + ", ".join(f"precision {precision:.2f} at recall {recall:.2f}"
                                                    for recall, precision, _ in self.reachable)
        return text

    def why(self) -> str:
        """Why a label is not calibrated: its reviewed counts and what calibrates it, e.g. ``"19 yes, 1 no reviewed;
        5 of each calibrate it"`` ("" when it is calibrated)."""
        if self.calibrated:
            return ""
        enough = min(self.positives, self.negatives) >= MIN_REVIEWED
        needs = "all in one file; windows of two files or more calibrate it" if enough else \
            f"{MIN_REVIEWED} of each calibrate it"
        return f"{self.positives} yes, {self.negatives} no reviewed; {needs}"

    def wanted(self) -> str:
        """The reviews that would calibrate a label that is not: ``"4 more no"``, ``"5 more yes and 5 more no"``,
        or windows of another file ("" when it is calibrated)."""
        if self.calibrated:
            return ""
        more = [f"{MIN_REVIEWED - count} more {verdict}" for verdict, count in (("yes", self.positives),
                                                                             ("no", self.negatives))
                if count < MIN_REVIEWED]
        return " and ".join(more) if more else "windows of another file"

    def to_dict(self) -> dict:
        """The plain values (no curve), for ``meta["learned"]`` and ``--json``."""
        return {"threshold": self.threshold, "target": self.target, "positives": self.positives,
                "negatives": self.negatives, "calibrated": self.calibrated, "reached": self.reached,
                "precision": self.precision, "precision_interval": _listed(self.precision_interval),
                "recall": self.recall, "recall_interval": _listed(self.recall_interval), "folds": self.folds,
                "interval": "wilson 95%", "support": self.support, "min_support": MIN_SUPPORT,
                "reachable": [{"recall": recall, "precision": precision, "threshold": threshold}
                              for recall, precision, threshold in self.reachable]}


def precision_curve(scores: np.ndarray, truth: np.ndarray) -> Curve:
    """Precision (with its Wilson interval) and recall of ``scores >= t`` against ``truth`` at every distinct score
    ``t``, thresholds ascending. ``scores`` ``(n,)`` in [0, 1], ``truth`` ``(n,)`` bool (True: a yes).

    >>> curve = precision_curve(np.array([0.9, 0.8, 0.3]), np.array([True, False, True]))
    >>> curve.threshold, curve.precision     # [0.3, 0.8, 0.9], [0.667, 0.5, 1.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order]
    true_above = np.cumsum(hits)
    n_above = np.arange(1, len(ranked) + 1)
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last of a run of tied scores: all ties are above together
    thresholds, tp, n = ranked[last][::-1], true_above[last][::-1], n_above[last][::-1]
    low, high = wilson(tp, n)
    positives = int(truth.sum())
    return Curve(threshold=thresholds, precision=tp / n, precision_low=low, precision_high=high,
                 recall=tp / max(positives, 1), n_above=n, positives=positives)


def supported(curve: Curve) -> np.ndarray:
    """Which rows of ``curve`` have support, ``(n,)`` bool: at least :data:`MIN_SUPPORT` yes windows at or above the
    threshold (all the yes, when fewer were reviewed). The yes above fall as the threshold rises: a prefix."""
    need = min(MIN_SUPPORT, curve.positives)
    return np.rint(curve.recall * curve.positives) >= need


def choose_threshold(curve: Curve, target: float) -> tuple[int, bool]:
    """The row of ``curve`` whose threshold is kept for precision ``target`` in (0, 1), among the rows with support
    (:func:`supported`): the lowest threshold whose precision reaches it (``(row, True)``), else the lowest of the
    highest precision (``(row, False)``). A target reached only above fewer than :data:`MIN_SUPPORT` yes windows is
    not reached (issue 77: one window's score was kept).

    >>> choose_threshold(precision_curve(scores, truth), 0.9)   # (3, True)
    """
    if not len(curve.threshold):
        raise ConfigError("a precision curve needs at least one scored window")
    precision = np.where(supported(curve), curve.precision, -1.0)
    reaching = np.flatnonzero(precision >= target - 1e-12)
    if len(reaching):
        return int(reaching[0]), True
    return int(np.flatnonzero(precision == precision.max())[0]), False


def reachable(curve: Curve, recalls: tuple[float, ...] = RECALLS) -> tuple[tuple[float, float, float], ...]:
    """The precision reachable at each recall of ``recalls``: ``(recall, precision, threshold)`` of the most precise
    row with support whose recall is at least that (the highest such threshold among ties), one a recall; a recall no
    row reaches is left out.

    >>> reachable(curve)   # ((0.25, 1.0, 0.91), (0.5, 0.93, 0.62), (0.75, 0.81, 0.40), (0.9, 0.7, 0.21))
    """
    found = []
    support = supported(curve)
    for wanted in recalls:
        rows = np.flatnonzero(support & (curve.recall >= wanted - 1e-12))
        if len(rows):
            best = rows[curve.precision[rows] == curve.precision[rows].max()][-1]
            point = (float(curve.recall[best]), float(curve.precision[best]), float(curve.threshold[best]))
            if not found or found[-1] != point:  # two recalls met by one threshold: said once
                found.append(point)
    return tuple(found)


def out_of_fold_scores(x: np.ndarray, truth: np.ndarray, files: np.ndarray,
                       fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]], *,
                       seed: int = 0) -> tuple[np.ndarray, int]:
    """Each reviewed window's score from a classifier that did not see it, and the number of folds.

    ``x`` ``(n, d)`` the reviewed windows' embeddings, ``truth`` ``(n,)`` bool, ``files`` ``(n,)`` the file of each
    (the groups); ``fit(x_train, truth_train)`` returns a scorer ``x -> (m,)`` probabilities (it adds its own weak
    negatives). Folds: :data:`FOLDS`, or fewer when fewer files hold reviewed windows (at least 2). Returns
    ``(scores (n,), folds)``; ``folds`` 0 when fewer than 2 files hold reviewed windows (scores all NaN).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.unique(files, return_inverse=True)[1]
    folds = min(FOLDS, int(groups.max()) + 1 if len(groups) else 0)
    scores = np.full(len(truth), np.nan)
    if folds < 2:
        return scores, 0
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held in splitter.split(x, truth, groups):
        scores[held] = fit(x[train], truth[train])(x[held])
    return scores, folds


def calibrate(label: str, x: np.ndarray, truth: np.ndarray, files: np.ndarray,
              fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]], *, target: float = 0.9,
              seed: int = 0) -> Calibration:
    """The decision threshold of ``label`` for precision ``target`` (0 < target < 1), from the out-of-fold scores of
    its reviewed windows (:func:`out_of_fold_scores`: ``x``, ``truth``, ``files``, ``fit``); 0.5, not calibrated,
    when fewer than :data:`MIN_REVIEWED` yes or no windows were reviewed or they lie in one file.

    >>> calibration = calibrate("chainsaw", x, truth, files, fit, target=0.9)
    >>> calibration.threshold, calibration.precision_interval
    """
    if not 0.0 < target < 1.0:
        raise ConfigError(f"precision={target!r} is out of range; valid: 0 < precision < 1")
    truth = np.asarray(truth, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    plain = Calibration(label=label, threshold=UNCALIBRATED, target=target, positives=positives,
                        negatives=negatives, calibrated=False)
    if positives < MIN_REVIEWED or negatives < MIN_REVIEWED:
        return plain
    scores, folds = out_of_fold_scores(x, truth, files, fit, seed=seed)
    if not folds:
        return plain
    curve = precision_curve(scores, truth)
    row, reached = choose_threshold(curve, target)
    found = int(round(curve.recall[row] * positives))
    recall_low, recall_high = wilson(found, positives)
    if not reached:
        log.warning("%s: no threshold with %d yes or more above it reaches precision %g on the reviewed windows (the "
                    "highest is %.2f at %.3f, recall %.2f)", label, MIN_SUPPORT, target, curve.precision[row],
                    curve.threshold[row], curve.recall[row])
    # a probability of exactly 0 or 1 is no threshold a Task holds (0 < threshold < 1)
    threshold = float(np.clip(curve.threshold[row], 1e-6, 1 - 1e-6))
    return Calibration(label=label, threshold=threshold, target=target, positives=positives, negatives=negatives,
                       calibrated=True, reached=reached, precision=float(curve.precision[row]),
                       precision_interval=(float(curve.precision_low[row]), float(curve.precision_high[row])),
                       recall=float(curve.recall[row]), recall_interval=(float(recall_low), float(recall_high)),
                       folds=folds, support=found, reachable=reachable(curve), curve=curve, scores=scores)


def write_curve(calibration: Calibration, out: str | os.PathLike) -> list[Path]:
    """``out/<label>.curve.csv`` (:data:`CURVE_COLUMNS`, thresholds ascending) and ``out/<label>.curve.png``
    (precision with its interval and recall against the threshold, the chosen threshold marked); nothing for a
    label that is not calibrated. ``<label>`` is :func:`~envsound.agile.names.file_name`'s: never a path. Returns
    the paths written.

    >>> write_curve(calibration, "chainsaw.model")   # [.../chainsaw.curve.csv, .../chainsaw.curve.png]
    """
    curve = calibration.curve
    if curve is None:
        return []
    out = Path(out)
    name = file_name(calibration.label)  # a label is what a reviewer typed: never a path
    csv_path, png_path = out / f"{name}.curve.csv", out / f"{name}.curve.png"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        for row in zip(curve.threshold, curve.precision, curve.precision_low, curve.precision_high, curve.recall,
                       curve.n_above):
            writer.writerow([f"{value:.6g}" for value in row[:-1]] + [int(row[-1])])
    _plot(calibration, png_path)
    return [csv_path, png_path]


def _plot(calibration: Calibration, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curve = calibration.curve
    fig = Figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.fill_between(curve.threshold, curve.precision_low, curve.precision_high, step="post", alpha=0.25,
                    color="tab:blue", label="precision, 95 % interval")
    ax.step(curve.threshold, curve.precision, where="post", color="tab:blue", label="precision")
    ax.step(curve.threshold, curve.recall, where="post", color="tab:orange", label="recall")
    ax.axhline(calibration.target, color="grey", linestyle=":", label=f"target {calibration.target:g}")
    ax.axvline(calibration.threshold, color="black", linestyle="--",
               label=f"threshold {calibration.threshold:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold (score >= t)", ylabel="share",
           title=f"{calibration.label}: out-of-fold, {calibration.positives} yes / {calibration.negatives} no, "
                 f"{calibration.folds}-fold")
    ax.legend(loc="lower left", fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _listed(pair) -> list[float] | None:
    return None if pair is None else [float(value) for value in pair]
