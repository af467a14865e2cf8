"""Metrics on predicted class probabilities, as JSON-ready dicts (plain ``int``/``float``/``list``, no numpy types).

Single-label: :func:`classification_report` for one test set, :func:`summarize_folds` across cross-validation folds,
:func:`paired_comparison` between two systems evaluated on the same folds, :func:`format_report_text` for a terminal.
Multi-label: :func:`multilabel_report` (lwlrap, mAP, micro F1).

Shape mistakes (a caller's bug) raise ``ValueError``; non-finite probabilities, which a diverged model produces, raise
:class:`~envsound.errors.EnvsoundError` with a hint.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from envsound.errors import EnvsoundError

logger = logging.getLogger(__name__)

__all__ = [
    "classification_report",
    "summarize_folds",
    "paired_comparison",
    "format_report_text",
    "multilabel_report",
    "lwlrap",
]


# --------------------------------------------------------------------------------------------------- validation


def _check_probs(y_prob: np.ndarray, labels: Sequence[str], n: int, what: str) -> np.ndarray:
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2:
        raise ValueError(f"{what}: y_prob must be 2-D (n_clips, n_classes), got shape {y_prob.shape}")
    if y_prob.shape[0] != n:
        raise ValueError(f"{what}: y_prob has {y_prob.shape[0]} rows but y_true has {n}")
    if y_prob.shape[1] != len(labels):
        raise ValueError(f"{what}: y_prob has {y_prob.shape[1]} columns but {len(labels)} labels were given")
    if n == 0:
        raise EnvsoundError(f"{what}: no clips to evaluate (y_true is empty); check the test fold selection")
    bad = int(np.count_nonzero(~np.isfinite(y_prob)))
    if bad:
        raise EnvsoundError(
            f"{what}: y_prob has {bad} non-finite value(s) (NaN/inf); the model has probably diverged - "
            "check the training loss and lower the learning rate"
        )
    return y_prob


# --------------------------------------------------------------------------------------------------- single-label


def classification_report(y_true: np.ndarray, y_prob: np.ndarray, *, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of single-label predictions.

    Args:
        y_true: ``(n,)`` integer class indices in ``[0, len(labels))``.
        y_prob: ``(n, n_classes)`` scores (probabilities or logits; only the arg-max and the ranking are used),
            all finite. ``n_classes == len(labels)``.
        labels: class names; ``labels[i]`` is class index ``i``.

    Returns:
        ``{"accuracy", "balanced_accuracy", "n_clips", "top3_accuracy" (only when n_classes > 3), "macro_f1",
        "per_class": [{"label", "precision", "recall", "f1", "support"}], "confusion_matrix", "labels"}``.
        ``confusion_matrix[i][j]`` counts clips of true class ``i`` predicted as ``j``; it has every class, also
        classes absent from ``y_true``. Precision/recall/F1 of a class with no predictions/no support are 0.
        ``macro_f1`` averages over all classes (absent ones count as 0); ``balanced_accuracy`` is the mean recall
        over the classes present in ``y_true`` (as scikit-learn defines it).

    Raises:
        ValueError: on inconsistent shapes or class indices out of range.
        EnvsoundError: on an empty test set or non-finite scores.

    >>> r = classification_report(np.array([0, 1]), np.array([[0.9, 0.1], [0.6, 0.4]]), labels=["dog", "rain"])
    >>> r["accuracy"], r["confusion_matrix"]
    (0.5, [[1, 0], [1, 0]])
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    labels = [str(x) for x in labels]
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise ValueError(f"classification_report: y_true must be 1-D class indices, got shape {y_true.shape}")
    if y_true.size and not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"classification_report: y_true must hold integers, got dtype {y_true.dtype}")
    y_prob = _check_probs(y_prob, labels, len(y_true), "classification_report")
    n_classes = len(labels)
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(
            f"classification_report: y_true holds class indices {int(y_true.min())}..{int(y_true.max())} "
            f"outside 0..{n_classes - 1}"
        )

    class_ids = list(range(n_classes))
    y_pred = y_prob.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, labels=class_ids)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=class_ids, zero_division=0
    )
    present = support > 0
    report: dict[str, Any] = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.mean(recall[present])),
        "n_clips": int(len(y_true)),
    }
    if n_classes > 3:
        report["top3_accuracy"] = float(top_k_accuracy_score(y_true, y_prob, k=3, labels=class_ids))
    report["macro_f1"] = float(np.mean(f1))
    report["per_class"] = [
        {"label": lab, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for lab, p, r, f, s in zip(labels, precision, recall, f1, support)
    ]
    report["confusion_matrix"] = cm.astype(int).tolist()
    report["labels"] = labels
    return report


def summarize_folds(fold_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread of accuracy over cross-validation folds.

    ``std_accuracy`` is the *sample* standard deviation (``ddof=1``) when there are at least two folds, and 0.0
    (``ddof=0``) for a single fold; ``std_accuracy_ddof`` records which. When every fold also has ``macro_f1`` /
    ``balanced_accuracy``, their means are added; when every fold has a ``confusion_matrix`` of one size, their sum
    is added as ``pooled_confusion_matrix``.

    Args:
        fold_results: one dict per fold, each with at least ``"fold"`` and ``"accuracy"`` (in [0, 1]); typically a
            :func:`classification_report` plus its fold number. Kept unchanged under ``"folds"``.

    Returns:
        ``{"folds", "n_folds", "mean_accuracy", "std_accuracy", "std_accuracy_ddof", ...}``.

    Raises:
        ValueError: on an empty list or a fold missing ``"fold"``/``"accuracy"``.

    >>> summarize_folds([{"fold": 1, "accuracy": 0.8}, {"fold": 2, "accuracy": 0.6}])["mean_accuracy"]
    0.7
    """
    if not fold_results:
        raise ValueError("summarize_folds: no fold results given")
    for i, res in enumerate(fold_results):
        missing = [k for k in ("fold", "accuracy") if k not in res]
        if missing:
            raise ValueError(f"summarize_folds: fold result #{i} lacks {missing}; keys are {sorted(res)}")
    acc = np.array([float(r["accuracy"]) for r in fold_results], dtype=np.float64)
    ddof = 1 if len(acc) >= 2 else 0
    summary: dict[str, Any] = {
        "folds": list(fold_results),
        "n_folds": len(fold_results),
        "mean_accuracy": float(acc.mean()),
        "std_accuracy": float(acc.std(ddof=ddof)),
        "std_accuracy_ddof": ddof,
    }
    for key in ("balanced_accuracy", "macro_f1", "top3_accuracy"):
        if all(key in r for r in fold_results):
            summary[f"mean_{key}"] = float(np.mean([float(r[key]) for r in fold_results]))
    cms = [r.get("confusion_matrix") for r in fold_results]
    if all(cm is not None for cm in cms):
        arrays = [np.asarray(cm, dtype=np.int64) for cm in cms]
        if len({a.shape for a in arrays}) == 1:
            summary["pooled_confusion_matrix"] = np.sum(arrays, axis=0).tolist()
    return summary


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Compare two systems scored on the same folds (e.g. semi-supervised vs supervised accuracy per fold).

    Args:
        a, b: per-fold scores of system A and B, same length ``n >= 2``, same fold order.

    Returns:
        ``{"n", "mean_a", "mean_b", "mean_difference" (A - B), "std_difference" (ddof=1), "wins_a", "wins_b", "ties",
        "t_statistic", "t_pvalue", "wilcoxon_statistic", "wilcoxon_pvalue"}``. The t-test is
        ``scipy.stats.ttest_rel`` (two-sided); the Wilcoxon signed-rank test runs only when ``n >= 6`` (with fewer
        pairs it cannot reach p < 0.05) and is ``None`` otherwise. A test that is undefined (all differences equal)
        gives ``None`` statistics and, when all differences are zero, p = 1.0.

    Raises:
        ValueError: on different lengths, fewer than two pairs, or non-finite scores.

    >>> paired_comparison([0.8, 0.7, 0.9], [0.7, 0.7, 0.8])["mean_difference"]
    0.0666...
    """
    from scipy import stats

    a_arr = np.asarray(a, dtype=np.float64).ravel()
    b_arr = np.asarray(b, dtype=np.float64).ravel()
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired_comparison: a has {a_arr.size} scores but b has {b_arr.size}; pair them by fold")
    if a_arr.size < 2:
        raise ValueError(f"paired_comparison: need at least 2 paired scores, got {a_arr.size}")
    if not (np.all(np.isfinite(a_arr)) and np.all(np.isfinite(b_arr))):
        raise ValueError("paired_comparison: scores must be finite")
    diff = a_arr - b_arr
    n = int(diff.size)
    out: dict[str, Any] = {
        "n": n,
        "mean_a": float(a_arr.mean()),
        "mean_b": float(b_arr.mean()),
        "mean_difference": float(diff.mean()),
        "std_difference": float(diff.std(ddof=1)),
        "wins_a": int(np.sum(diff > 0)),
        "wins_b": int(np.sum(diff < 0)),
        "ties": int(np.sum(diff == 0)),
        "t_statistic": None,
        "t_pvalue": None,
        "wilcoxon_statistic": None,
        "wilcoxon_pvalue": None,
    }
    all_zero = bool(np.all(diff == 0))
    if np.ptp(diff) > 0:
        t = stats.ttest_rel(a_arr, b_arr)
        out["t_statistic"], out["t_pvalue"] = float(t.statistic), float(t.pvalue)
    elif all_zero:
        out["t_pvalue"] = 1.0
    if n >= 6:
        if all_zero:
            out["wilcoxon_pvalue"] = 1.0
        else:
            w = stats.wilcoxon(a_arr, b_arr)
            out["wilcoxon_statistic"], out["wilcoxon_pvalue"] = float(w.statistic), float(w.pvalue)
    return out


# --------------------------------------------------------------------------------------------------- text


def _abbrev(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def format_report_text(report: dict[str, Any], *, max_matrix_classes: int = 20, top_confusions: int = 10) -> str:
    """Render a :func:`classification_report` (or a dict with the same keys) for a terminal of 100 columns.

    Prints the headline numbers, an aligned per-class table (index, label, precision, recall, F1, support), the
    most frequent confusions, and the confusion matrix when there are at most ``max_matrix_classes`` classes
    (columns are class indices from the table; with more classes the matrix is left out and a line says so).

    >>> print(format_report_text(classification_report(y_true, y_prob, labels=names)))  # doctest: +SKIP
    """
    labels = list(report["labels"])
    n_classes = len(labels)
    idx_w = len(str(max(n_classes - 1, 0)))
    lines: list[str] = []

    head = [f"accuracy {report['accuracy']:.4f}"]
    for key, name in (("balanced_accuracy", "balanced"), ("top3_accuracy", "top-3"), ("macro_f1", "macro F1")):
        if key in report:
            head.append(f"{name} {report[key]:.4f}")
    if "n_clips" in report:
        head.append(f"{report['n_clips']} clips")
    lines.append("  ".join(head))
    lines.append("")

    label_w = min(max([len(lab) for lab in labels] + [5]), 40)
    lines.append(f"{'#':>{idx_w}}  {'label':<{label_w}}  {'precision':>9}  {'recall':>6}  {'f1':>6}  {'support':>7}")
    for i, row in enumerate(report["per_class"]):
        lines.append(
            f"{i:>{idx_w}}  {_abbrev(str(row['label']), label_w):<{label_w}}  {row['precision']:>9.3f}  "
            f"{row['recall']:>6.3f}  {row['f1']:>6.3f}  {row['support']:>7d}"
        )

    cm = np.asarray(report["confusion_matrix"], dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    if pairs and top_confusions > 0:
        lines.append("")
        lines.append("most frequent confusions (true -> predicted: clips)")
        for count, i, j in pairs[:top_confusions]:
            lines.append(f"  {_abbrev(labels[i], 30)} -> {_abbrev(labels[j], 30)}: {count}")

    lines.append("")
    if n_classes <= max_matrix_classes:
        cell_w = max(len(str(int(cm.max(initial=0)))), idx_w) + 1
        row_label_w = min(max([len(lab) for lab in labels] + [4]), 14)
        lines.append("confusion matrix (rows = true class, columns = predicted class index)")
        prefix = " " * (idx_w + 1 + row_label_w)
        lines.append(prefix + "".join(f"{j:>{cell_w}}" for j in range(n_classes)))
        for i in range(n_classes):
            cells = "".join(f"{int(v):>{cell_w}}" for v in cm[i])
            lines.append(f"{i:>{idx_w}} {_abbrev(labels[i], row_label_w):<{row_label_w}}{cells}")
    else:
        lines.append(
            f"confusion matrix not printed ({n_classes} classes > {max_matrix_classes}); "
            "see the JSON report or the confusion-matrix PNG"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- multi-label


def lwlrap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (the FSDKaggle2019 / DCASE 2019 task 2 metric).

    For every (clip, positive label) pair, take the precision of the clip's ranked label list at that label's rank
    (the fraction of labels ranked at or above it that are positive); lwlrap is the mean over all such pairs, so
    each positive label counts once (equivalently: per-class scores weighted by class frequency). Ties in the scores
    are counted pessimistically: a label's rank is the number of labels scoring at least as high (as scikit-learn's
    label-ranking average precision does). Clips without a positive label contribute nothing.

    Written by hand because scikit-learn only has the per-clip average (LRAP); lwlrap equals sklearn's
    ``label_ranking_average_precision_score`` weighted by each clip's number of positive labels.

    Args:
        y_true: ``(n, C)`` in {0, 1}.
        y_score: ``(n, C)`` finite scores, higher = more likely.

    Returns:
        A float in (0, 1].

    Raises:
        ValueError: on shape mismatch, non-binary ``y_true``, or no positive labels at all.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"lwlrap: y_true {y_true.shape} and y_score {y_score.shape} must both be (n, C)")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("lwlrap: y_true must hold only 0 and 1")
    pos = y_true.astype(bool)
    n_pos_total = int(pos.sum())
    if n_pos_total == 0:
        raise ValueError("lwlrap: y_true has no positive labels")
    total = 0.0
    for truth, score in zip(pos, y_score):
        if not truth.any():
            continue
        pos_scores = score[truth]
        # rank of each positive label = labels scoring >= it; hits = positives scoring >= it
        rank = (score[None, :] >= pos_scores[:, None]).sum(axis=1)
        hits = (pos_scores[None, :] >= pos_scores[:, None]).sum(axis=1)
        total += float(np.sum(hits / rank))
    return total / n_pos_total


def multilabel_report(
    y_true: np.ndarray, y_prob: np.ndarray, *, labels: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """lwlrap, macro average precision and micro F1 of multi-label predictions.

    Args:
        y_true: ``(n, C)`` multi-hot in {0, 1}.
        y_prob: ``(n, C)`` per-class probabilities in [0, 1] (sigmoid outputs), finite.
        labels: ``C`` class names.
        threshold: decision threshold for F1, in (0, 1).

    Returns:
        ``{"lwlrap", "mAP", "micro_f1", "threshold", "n_clips", "n_classes_scored", "per_class":
        [{"label", "average_precision" (None when the class has no positive clip), "support"}], "labels"}``.
        ``mAP`` averages only over classes with at least one positive clip (``n_classes_scored`` of them).

    Raises:
        ValueError: on inconsistent shapes, non-binary ``y_true`` or no positive labels at all.
        EnvsoundError: on an empty test set or non-finite scores.
    """
    from sklearn.metrics import average_precision_score, f1_score

    labels = [str(x) for x in labels]
    y_true = np.asarray(y_true)
    if y_true.ndim != 2:
        raise ValueError(f"multilabel_report: y_true must be 2-D (n_clips, n_classes), got shape {y_true.shape}")
    y_prob = _check_probs(y_prob, labels, y_true.shape[0], "multilabel_report")
    if y_true.shape != y_prob.shape:
        raise ValueError(f"multilabel_report: y_true {y_true.shape} and y_prob {y_prob.shape} differ")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"multilabel_report: threshold must be in (0, 1), got {threshold}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("multilabel_report: y_true must hold only 0 and 1")
    y_true = y_true.astype(np.int64)
    support = y_true.sum(axis=0)
    per_class = []
    aps = []
    for c, lab in enumerate(labels):
        ap = None
        if support[c] > 0:
            ap = float(average_precision_score(y_true[:, c], y_prob[:, c]))
            aps.append(ap)
        per_class.append({"label": lab, "average_precision": ap, "support": int(support[c])})
    micro_f1 = f1_score(y_true, (y_prob >= threshold).astype(np.int64), average="micro", zero_division=0)
    return {
        "lwlrap": lwlrap(y_true, y_prob),
        "mAP": float(np.mean(aps)),
        "micro_f1": float(micro_f1),
        "threshold": float(threshold),
        "n_clips": int(y_true.shape[0]),
        "n_classes_scored": len(aps),
        "per_class": per_class,
        "labels": labels,
    }
