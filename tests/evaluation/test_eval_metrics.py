"""Metrics against hand-computed numbers."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from envsound.errors import EnvsoundError
from envsound.evaluation.metrics import (
    classification_report,
    format_report_text,
    lwlrap,
    multilabel_report,
    paired_comparison,
    summarize_folds,
)

LABELS5 = ["dog", "rain", "siren", "cat", "absent_class"]
# true / predicted / full score ranking of each clip (first = arg-max); class 4 never occurs in y_true
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
RANKINGS = [
    [0, 1, 2, 3, 4],
    [0, 2, 1, 3, 4],
    [1, 2, 3, 0, 4],  # true 0 at rank 4: top-3 miss
    [1, 0, 2, 3, 4],
    [2, 1, 0, 3, 4],  # top-3 hit at rank 2
    [2, 0, 1, 3, 4],
    [2, 1, 0, 3, 4],
    [2, 3, 4, 1, 0],
    [0, 1, 3, 2, 4],  # true 2 at rank 4: top-3 miss
    [4, 0, 3, 1, 2],  # true 3 at rank 3: top-3 hit
]


def _probs_from_rankings(rankings):
    scores = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    prob = np.zeros((len(rankings), len(rankings[0])))
    for i, ranking in enumerate(rankings):
        prob[i, ranking] = scores
    return prob


@pytest.fixture
def crafted_report():
    return classification_report(np.array(Y_TRUE), _probs_from_rankings(RANKINGS), labels=LABELS5)


def test_classification_report_exact_numbers(crafted_report):
    r = crafted_report
    assert r["n_clips"] == 10
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["top3_accuracy"] == pytest.approx(0.8)
    assert r["confusion_matrix"] == [
        [2, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [1, 0, 3, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    per = {row["label"]: row for row in r["per_class"]}
    assert [row["label"] for row in r["per_class"]] == LABELS5
    assert per["dog"]["precision"] == pytest.approx(2 / 3) and per["dog"]["recall"] == pytest.approx(2 / 3)
    assert per["rain"]["precision"] == pytest.approx(0.5) and per["rain"]["recall"] == pytest.approx(0.5)
    assert per["siren"]["precision"] == pytest.approx(0.75) and per["siren"]["f1"] == pytest.approx(0.75)
    assert [per[k]["support"] for k in LABELS5] == [3, 2, 4, 1, 0]
    # cat: never predicted -> precision 0 (zero_division=0), absent_class: predicted once, wrongly
    assert per["cat"] == {"label": "cat", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per["absent_class"] == {"label": "absent_class", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.75) / 5)
    # mean recall over the 4 classes present in y_true
    assert r["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 0.75 + 0.0) / 4)


def test_balanced_accuracy_matches_sklearn(crafted_report):
    from sklearn.metrics import balanced_accuracy_score

    y_pred = _probs_from_rankings(RANKINGS).argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(Y_TRUE, y_pred)
    assert crafted_report["balanced_accuracy"] == pytest.approx(expected)


def test_report_is_json_ready_and_keeps_all_classes(crafted_report):
    text = json.dumps(crafted_report)
    back = json.loads(text)
    assert back == crafted_report
    assert len(back["confusion_matrix"]) == 5 and all(len(row) == 5 for row in back["confusion_matrix"])
    assert back["labels"] == LABELS5


def test_no_top3_for_three_classes():
    r = classification_report(np.array([0, 1, 2]), np.eye(3), labels=["a", "b", "c"])
    assert "top3_accuracy" not in r
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0


def test_report_rejects_bad_input():
    probs = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="2 rows but y_true has 3"):
        classification_report(np.array([0, 1, 2]), probs, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="3 columns but 2 labels"):
        classification_report(np.array([0, 1]), probs, labels=["a", "b"])
    with pytest.raises(ValueError, match="outside 0..2"):
        classification_report(np.array([0, 3]), probs, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="integers"):
        classification_report(np.array([0.0, 1.0]), probs, labels=["a", "b", "c"])
    nan_probs = probs.copy()
    nan_probs[1, 2] = np.nan
    with pytest.raises(EnvsoundError, match="1 non-finite"):
        classification_report(np.array([0, 1]), nan_probs, labels=["a", "b", "c"])
    with pytest.raises(EnvsoundError, match="no clips"):
        classification_report(np.array([], dtype=int), np.zeros((0, 3)), labels=["a", "b", "c"])


def test_summarize_folds_mean_and_sample_std():
    folds = [{"fold": k + 1, "accuracy": a} for k, a in enumerate([0.6, 0.8, 0.7, 0.9])]
    s = summarize_folds(folds)
    assert s["n_folds"] == 4
    assert s["folds"] == folds
    assert s["mean_accuracy"] == pytest.approx(0.75)
    assert s["std_accuracy"] == pytest.approx(math.sqrt(0.05 / 3))  # ddof=1
    assert s["std_accuracy_ddof"] == 1


def test_summarize_single_fold_and_pooled_matrix():
    s = summarize_folds([{"fold": 3, "accuracy": 0.5, "macro_f1": 0.4, "confusion_matrix": [[1, 1], [0, 0]]}])
    assert s["std_accuracy"] == 0.0 and s["std_accuracy_ddof"] == 0
    assert s["mean_macro_f1"] == pytest.approx(0.4)
    two = summarize_folds([
        {"fold": 1, "accuracy": 0.5, "confusion_matrix": [[1, 1], [0, 0]]},
        {"fold": 2, "accuracy": 1.0, "confusion_matrix": [[0, 0], [0, 2]]},
    ])
    assert two["pooled_confusion_matrix"] == [[1, 1], [0, 2]]
    assert "mean_macro_f1" not in two


def test_summarize_folds_rejects_bad_input():
    with pytest.raises(ValueError, match="no fold results"):
        summarize_folds([])
    with pytest.raises(ValueError, match="#1 lacks \\['accuracy'\\]"):
        summarize_folds([{"fold": 1, "accuracy": 0.5}, {"fold": 2}])


def test_paired_comparison_t_test_by_hand():
    r = paired_comparison([0.8, 0.7, 0.9], [0.7, 0.7, 0.8])
    # differences 0.1, 0, 0.1: mean 1/15, sd sqrt(1/300), t = mean / (sd / sqrt 3) = 2, df = 2
    assert r["mean_difference"] == pytest.approx(1 / 15)
    assert r["std_difference"] == pytest.approx(math.sqrt(1 / 300))
    assert r["t_statistic"] == pytest.approx(2.0)
    assert r["t_pvalue"] == pytest.approx(1 - 2 / math.sqrt(6))  # two-sided Student t, df=2, closed form
    assert (r["wins_a"], r["wins_b"], r["ties"]) == (2, 0, 1)
    assert r["wilcoxon_pvalue"] is None  # n < 6


def test_paired_comparison_wilcoxon_and_degenerate_cases():
    b = np.array([0.70, 0.72, 0.68, 0.75, 0.71, 0.69])
    r = paired_comparison(b + [0.1, 0.2, 0.05, 0.15, 0.12, 0.3], b)
    assert r["wilcoxon_statistic"] == 0.0
    assert r["wilcoxon_pvalue"] == pytest.approx(2 / 2**6)  # exact: all 6 signs positive, two-sided
    same = paired_comparison(b, b)
    assert same["t_pvalue"] == 1.0 and same["wilcoxon_pvalue"] == 1.0 and same["t_statistic"] is None
    json.dumps(same)
    with pytest.raises(ValueError, match="a has 2 scores but b has 3"):
        paired_comparison([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2"):
        paired_comparison([0.1], [0.2])


def test_format_report_text_10_classes(crafted_report):
    text = format_report_text(crafted_report)
    assert text.startswith("accuracy 0.6000")
    assert "top-3 0.8000" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    rows = lines[header + 2: header + 7]
    assert [list(map(int, row.split()[2:])) for row in rows] == crafted_report["confusion_matrix"]
    assert "dog -> rain: 1" in text
    assert max(len(line) for line in lines) <= 100


def test_format_report_text_50_classes_fits_100_columns():
    rng = np.random.default_rng(0)
    labels = [f"a_rather_long_class_name_number_{k:02d}" for k in range(50)]
    y = np.repeat(np.arange(50), 8)
    r = classification_report(y, rng.random((400, 50)), labels=labels)
    text = format_report_text(r)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "confusion matrix not printed (50 classes > 20)" in text
    assert sum(1 for line in text.splitlines() if "a_rather_long" in line and line.rstrip().endswith("8")) == 50


def test_lwlrap_hand_computed():
    y_true = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    y_score = np.array([[0.9, 0.8, 0.1, 0.5], [0.3, 0.2, 0.6, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    # clip 0: label 0 at rank 1 -> 1/1, label 2 at rank 4 with 2 positives at or above -> 2/4
    # clip 1: label 1 at rank 3 -> 1/3; clip 2: no positives; clip 3: three positives on top -> 1, 1, 1
    assert lwlrap(y_true, y_score) == pytest.approx((1 + 0.5 + 1 / 3 + 3) / 6)


def test_lwlrap_ties_and_sklearn_equivalence():
    assert lwlrap(np.array([[1, 0]]), np.array([[0.5, 0.5]])) == pytest.approx(0.5)
    from sklearn.metrics import label_ranking_average_precision_score

    rng = np.random.default_rng(3)
    y_true = (rng.random((40, 7)) < 0.3).astype(int)
    y_true[y_true.sum(axis=1) == 0, 0] = 1
    y_score = np.round(rng.random((40, 7)), 1)  # rounding creates ties
    expected = label_ranking_average_precision_score(y_true, y_score, sample_weight=y_true.sum(axis=1))
    assert lwlrap(y_true, y_score) == pytest.approx(expected)


def test_multilabel_report_hand_computed():
    y_true = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    y_prob = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.3], [0.7, 0.1, 0.2]])
    r = multilabel_report(y_true, y_prob, labels=["a", "b", "c"])
    ap = [row["average_precision"] for row in r["per_class"]]
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2) and ap[1] == pytest.approx(1.0) and ap[2] is None
    assert r["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert r["n_classes_scored"] == 2
    assert r["micro_f1"] == pytest.approx(6 / 7)  # TP 3, FP 1, FN 0
    # clip 0 and 2: positive ranked first -> 1; clip 1: label b ranked second -> 1/2
    assert r["lwlrap"] == pytest.approx((1 + 0.5 + 1) / 3)
    json.dumps(r)
    with pytest.raises(ValueError, match="only 0 and 1"):
        multilabel_report(y_true * 2, y_prob, labels=["a", "b", "c"])
