"""A threshold with support (issue 77): the threshold kept for a precision has at least MIN_SUPPORT reviewed yes
windows above it, never one window's score, and the calibration says which precision is reachable at which recall."""

import json

import numpy as np
import pytest

from envsound.agile.calibrate import (MIN_SUPPORT, calibrate, choose_threshold, precision_curve, reachable,
                                      supported, wilson)

IDENTITY = lambda x, t: (lambda held: held[:, 0])  # noqa: E731  (out-of-fold scores: the only feature)


def dog_like():
    """50 reviewed windows (26 yes, 24 no), scores descending: one yes alone at the top, then a no, then yes and no
    mixed about 4 to 3: precision 1.0 only above the top window, about 0.6 below it."""
    truth = np.array([1, 0] + [1, 0, 1, 1, 0, 1, 0] * 6 + [1, 0, 0, 0, 0, 0], bool)
    scores = np.linspace(0.999928, 0.01, len(truth))
    return scores, truth, np.array([f"f{i % 6}" for i in range(len(truth))])


def test_min_support_is_the_fewest_yes_whose_interval_lies_above_one_half():
    assert float(wilson(MIN_SUPPORT - 1, MIN_SUPPORT - 1)[0]) < 0.5 < float(wilson(MIN_SUPPORT, MIN_SUPPORT)[0])


def test_a_threshold_one_window_stands_above_is_not_kept():
    scores, truth, files = dog_like()
    assert (truth.sum(), (~truth).sum()) == (26, 24)
    curve = precision_curve(scores, truth)
    # the old rule: the lowest threshold whose precision reaches 0.9, with any support: the top window alone
    old = int(np.flatnonzero(curve.precision >= 0.9)[0])
    assert curve.n_above[old] == 1 and curve.threshold[old] == pytest.approx(0.999928)
    row, reached = choose_threshold(curve, 0.9)
    assert not reached and supported(curve)[row] and round(curve.recall[row] * 26) >= MIN_SUPPORT
    calibration = calibrate("dog", scores[:, None], truth, files, IDENTITY, target=0.9)
    assert calibration.calibrated and not calibration.reached and calibration.support >= MIN_SUPPORT
    assert calibration.threshold < 0.99 and calibration.recall > 1 / 26  # windows are labelled, its recall said
    # the most precise threshold with support: no supported row is more precise
    assert calibration.precision == pytest.approx(curve.precision[supported(curve)].max())
    line = calibration.line()
    assert "was not reached with 4 yes or more above a threshold" in line and "reachable: precision" in line
    assert "\n" not in line
    said = json.loads(json.dumps(calibration.to_dict()))
    assert said["support"] == calibration.support and said["min_support"] == MIN_SUPPORT
    assert [point["recall"] for point in said["reachable"]] == sorted(point["recall"] for point in said["reachable"])
    assert all(point["recall"] >= 0.25 for point in said["reachable"])


def test_reachable_says_the_best_supported_precision_at_each_recall():
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    truth = np.array([1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0], bool)  # 7 yes
    points = reachable(precision_curve(scores, truth), (0.25, 0.5, 0.75, 1.0))
    # recall >= 0.25 and >= 0.5: 4 of 4 above 0.8 (recall 4/7), said once; >= 0.75: 6 of 7 above 0.5; all: 7 of 10
    assert points == ((pytest.approx(4 / 7), 1.0, 0.8), (pytest.approx(6 / 7), pytest.approx(6 / 7), 0.5),
                      (1.0, pytest.approx(0.7), 0.2))


def test_a_target_reached_with_support_is_kept_as_before():
    scores, truth, files = dog_like()
    truth[:6] = True  # six yes at the top: precision 1.0 above 6 windows
    row, reached = choose_threshold(precision_curve(scores, truth), 0.9)
    assert reached and precision_curve(scores, truth).n_above[row] >= 6
