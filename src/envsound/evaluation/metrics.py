"""Metrics on predicted class probabilities, as JSON-ready dicts (plain ``int``/``float``/``list``, no numpy types).

Single-label: :func:`classification_report` for one test set, :func:`summarize_folds` across cross-validation folds,
:func:`paired_comparison` between two systems evaluated on the same folds, :func:`format_report_text` for a terminal.
Multi-label: :func:`multilabel_report` (lwlrap, mAP, micro / macro F1). :func:`task_report` picks by task.

Shape mistakes (a caller's bug) raise ``ValueError``; non-finite probabilities, which a diverged model produces, raise
:class:`~envsound.errors.EnvsoundError` with a hint.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from envsound.errors import EnvsoundError
from envsound.task import Task, lwlrap_score

logger = logging.getLogger(__name__)

__all__ = [
    "classification_report",
    "summarize_folds",
    "paired_comparison",
    "format_report_text",
    "multilabel_report",
    "lwlrap",
    "task_report",
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


def summarize_folds(fold_results: list[dict[str, Any]], *, key: str = "accuracy") -> dict[str, Any]:
    """Mean and spread of a score over cross-validation folds.

    ``std_<key>`` is the *sample* standard deviation (``ddof=1``) when there are at least two folds, and 0.0
    (``ddof=0``) for a single fold; ``std_<key>_ddof`` records which. The other scores every fold has
    (``balanced_accuracy``, ``macro_f1``, ``top3_accuracy``, ``mAP``, ``micro_f1``, the event metrics ``segment_f1``,
    ``event_f1``, ``psds``, ``psds2``, and ``accuracy`` / ``lwlrap`` when not ``key``) get ``mean_<name>`` and
    ``std_<name>`` too; when every fold has a ``confusion_matrix`` of one
    size, their sum is added as ``pooled_confusion_matrix``.

    Args:
        fold_results: one dict per fold, each with at least ``"fold"`` and ``key``; typically a report plus its fold
            number. Kept unchanged under ``"folds"``.
        key: the headline score: ``"accuracy"`` (single-label, in [0, 1]) or ``"lwlrap"`` (multi-label).

    Returns:
        ``{"folds", "n_folds", "score", "mean_<key>", "std_<key>", "std_<key>_ddof", ...}``; ``score`` names ``key``.

    Raises:
        ValueError: on an empty list or a fold missing ``"fold"`` / ``key``.

    >>> summarize_folds([{"fold": 1, "accuracy": 0.8}, {"fold": 2, "accuracy": 0.6}])["mean_accuracy"]
    0.7
    """
    if not fold_results:
        raise ValueError("summarize_folds: no fold results given")
    for i, res in enumerate(fold_results):
        missing = [k for k in ("fold", key) if k not in res]
        if missing:
            raise ValueError(f"summarize_folds: fold result #{i} lacks {missing}; keys are {sorted(res)}")
    ddof = 1 if len(fold_results) >= 2 else 0
    summary: dict[str, Any] = {"folds": list(fold_results), "n_folds": len(fold_results), "score": key}
    for name in (key, "accuracy", "lwlrap", "balanced_accuracy", "macro_f1", "top3_accuracy", "mAP", "micro_f1",
                 "segment_f1", "event_f1", "psds", "psds2"):
        if f"mean_{name}" in summary or not all(r.get(name) is not None for r in fold_results):
            continue
        values = np.array([float(r[name]) for r in fold_results], dtype=np.float64)
        summary[f"mean_{name}"] = float(values.mean())
        summary[f"std_{name}"] = float(values.std(ddof=ddof))
        if name == key:
            summary[f"std_{name}_ddof"] = ddof
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
    leak = (report.get("leakage") or {}).get("note")  # first, where no one reads past the headline without it
    if leak:
        return f"{leak}\n\n" + format_report_text({**report, "leakage": None}, max_matrix_classes=max_matrix_classes,
                                                   top_confusions=top_confusions)
    if report.get("task") == "multi_label":
        return _format_multilabel_text(report)
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


def _format_multilabel_text(report: dict[str, Any]) -> str:
    """A :func:`multilabel_report` for a terminal: headline scores, then one row per class (AP, P, R, F1, clips)."""
    threshold = report["threshold"]
    shown = f"{threshold:.2f}" if isinstance(threshold, float) else "per class"
    lines = [f"lwlrap {report['lwlrap']:.4f}  mAP {report['mAP']:.4f}  micro F1 {report['micro_f1']:.4f}  "
             f"macro F1 {report['macro_f1']:.4f}  (threshold {shown})  {report['n_clips']} clips", ""]
    label_w = min(max([len(str(r["label"])) for r in report["per_class"]] + [5]), 40)
    idx_w = len(str(max(len(report["per_class"]) - 1, 0)))
    lines.append(f"{'#':>{idx_w}}  {'label':<{label_w}}  {'AP':>6}  {'precision':>9}  {'recall':>6}  {'f1':>6}  "
                 f"{'support':>7}")
    for i, row in enumerate(report["per_class"]):
        ap = "     -" if row["average_precision"] is None else f"{row['average_precision']:>6.3f}"
        lines.append(f"{i:>{idx_w}}  {_abbrev(str(row['label']), label_w):<{label_w}}  {ap}  {row['precision']:>9.3f}  "
                     f"{row['recall']:>6.3f}  {row['f1']:>6.3f}  {row['support']:>7d}")
    if "event_f1" in report:  # strong labels: evaluation/sed.py
        sed = report["sed"]
        lines += ["", f"events: segment F1 {report['segment_f1']:.4f}  event F1 {report['event_f1']:.4f}  PSDS "
                      f"{report['psds']:.4f} (scenario 2: {report['psds2']:.4f})  {sed['reference_events']} reference "
                      f"and {sed['system_events']} detected events; the --segments baseline: segment F1 "
                      f"{sed['baseline']['segment_f1']:.4f}, event F1 {sed['baseline']['event_f1']:.4f}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- multi-label


def lwlrap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (see :func:`envsound.task.lwlrap_score`); ``y_true`` must
    hold only 0 and 1.

    Raises:
        ValueError: on shape mismatch, non-binary ``y_true``, or no positive labels at all.
    """
    if not np.isin(np.asarray(y_true), (0, 1)).all():
        raise ValueError("lwlrap: y_true must hold only 0 and 1")
    return lwlrap_score(y_true, y_score)


def multilabel_report(
    y_true: np.ndarray, y_prob: np.ndarray, *, labels: Sequence[str], threshold: float | Sequence[float] = 0.5
) -> dict[str, Any]:
    """lwlrap, mAP, and micro / macro F1 at a threshold of multi-label predictions.

    Args:
        y_true: ``(n, C)`` multi-hot in {0, 1}.
        y_prob: ``(n, C)`` per-class probabilities in [0, 1] (sigmoid outputs), finite.
        labels: ``C`` class names.
        threshold: decision threshold in (0, 1) for F1, one for all classes or one per class.

    Returns:
        ``{"task": "multi_label", "lwlrap", "mAP", "micro_f1", "macro_f1", "threshold", "n_clips",
        "n_classes_scored", "per_class": [{"label", "average_precision" (None when the class has no positive clip),
        "precision", "recall", "f1", "support"}], "labels"}``. ``mAP`` and ``macro_f1`` average only over classes
        with at least one positive clip (``n_classes_scored`` of them); ``threshold`` is a float or a list.

    Raises:
        ValueError: on inconsistent shapes, a threshold outside (0, 1), non-binary ``y_true`` or no positive labels.
        EnvsoundError: on an empty test set or non-finite scores.

    >>> multilabel_report(np.array([[1, 0], [1, 1]]), np.array([[0.9, 0.2], [0.6, 0.7]]), labels=["a", "b"])["lwlrap"]
    1.0
    """
    from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support

    labels = [str(x) for x in labels]
    y_true = np.asarray(y_true)
    if y_true.ndim != 2:
        raise ValueError(f"multilabel_report: y_true must be 2-D (n_clips, n_classes), got shape {y_true.shape}")
    y_prob = _check_probs(y_prob, labels, y_true.shape[0], "multilabel_report")
    if y_true.shape != y_prob.shape:
        raise ValueError(f"multilabel_report: y_true {y_true.shape} and y_prob {y_prob.shape} differ")
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(labels),))
    if not ((thresholds > 0) & (thresholds < 1)).all():
        raise ValueError(f"multilabel_report: threshold must be in (0, 1), got {threshold}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("multilabel_report: y_true must hold only 0 and 1")
    y_true = y_true.astype(np.int64)
    y_pred = (y_prob >= thresholds[None, :]).astype(np.int64)
    support = y_true.sum(axis=0)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_class, aps = [], []
    for c, lab in enumerate(labels):
        ap = None
        if support[c] > 0:
            ap = float(average_precision_score(y_true[:, c], y_prob[:, c]))
            aps.append(ap)
        per_class.append({"label": lab, "average_precision": ap, "precision": float(precision[c]),
                          "recall": float(recall[c]), "f1": float(f1[c]), "support": int(support[c])})
    scored = support > 0
    return {
        "task": "multi_label",
        "lwlrap": lwlrap(y_true, y_prob),
        "mAP": float(np.mean(aps)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(np.mean(f1[scored])),
        "threshold": float(thresholds[0]) if np.ndim(threshold) == 0 else thresholds.tolist(),
        "n_clips": int(y_true.shape[0]),
        "n_classes_scored": len(aps),
        "per_class": per_class,
        "labels": labels,
    }


def task_report(task: Task, targets: np.ndarray, y_prob: np.ndarray, *, labels: Sequence[str]) -> dict[str, Any]:
    """The report of ``task``: :func:`classification_report` (single-label; ``targets`` one-hot rows) or
    :func:`multilabel_report` at the task's thresholds (``targets`` multi-hot rows).

    >>> report = task_report(model.task, targets, model.predict_clips(features), labels=model.labels)
    """
    targets = np.asarray(targets)
    if task.multi_label:
        return multilabel_report(targets, y_prob, labels=labels, threshold=task.thresholds(len(labels)).tolist()
                                 if task.class_thresholds is not None else task.threshold)
    return {"task": "single_label", **classification_report(targets.argmax(axis=1), y_prob, labels=labels)}


Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def wilson(successes, trials, *, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a proportion ``successes / trials`` (arrays or numbers, trials >= 0; 0 trials
    give ``(0, 1)``), at the normal quantile ``z`` (95 %: 1.96).

    >>> wilson(9, 10)        # (array(0.596), array(0.982))
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    p = k / safe
    centre = (p + z * z / (2 * safe)) / (1 + z * z / safe)
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / (1 + z * z / safe)
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high
