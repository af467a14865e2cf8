"""Segment- and event-based F1 against hand-worked cases and against sed_eval itself (when it imports: the `sed`
extra needs setuptools < 81 for its dcase_util); PSDS through psds_eval at its extremes and against sed_scores_eval
on a frozen example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from envsound.evaluation.sed_metrics import event_f1, psds, segment_f1

LABELS = ["cat", "dog"]
REFERENCE = {"a.wav": [("dog", 1.0, 3.0), ("cat", 4.0, 6.0)]}
SYSTEM = {"a.wav": [("dog", 1.1, 3.2), ("cat", 5.0, 6.0)]}


def test_a_hand_worked_file():
    # segments of 1 s: dog 1-3 vs 1-4 (2 TP, 1 FP), cat 4-6 vs 5-6 (1 TP, 1 FN): F1 = 2*3 / (4 + 4) = 0.75
    assert segment_f1(REFERENCE, SYSTEM, LABELS, durations={"a.wav": 6.0})["f1"] == 0.75
    # dog is within the collars (onset 0.1 s, offset 0.2 s); cat's onset is 1 s late: F1 = 2*1 / (2 + 2)
    scores = event_f1(REFERENCE, SYSTEM, LABELS)
    assert scores["f1"] == 0.5 and scores["per_class"]["dog"]["f1"] == 1.0 and scores["per_class"]["cat"]["f1"] == 0
    assert event_f1(REFERENCE, {}, LABELS)["precision"] is None  # nothing detected: no precision, as sed_eval's NaN
    # a long event's offset may be off by 20 % of its length (10-s event: 2 s), a short one's by the 200-ms collar
    long_ref, long_sys = {"b": [("dog", 0.0, 10.0)]}, {"b": [("dog", 0.15, 11.9)]}
    assert event_f1(long_ref, long_sys, LABELS)["f1"] == 1.0
    assert event_f1({"c": [("dog", 0.0, 0.5)]}, {"c": [("dog", 0.0, 0.75)]}, LABELS)["f1"] == 0.0


def test_matching_is_one_to_one_and_the_best_there_is():
    # two system events could both match the first reference event; only a one-to-one pairing counts both refs
    reference = {"f": [("dog", 1.0, 2.0), ("dog", 1.3, 2.2)]}
    system = {"f": [("dog", 1.15, 2.1), ("dog", 1.45, 2.25)]}
    assert event_f1(reference, system, LABELS)["f1"] == 1.0
    assert event_f1(reference, {"f": [("dog", 1.15, 2.1)]}, LABELS)["f1"] == pytest.approx(2 / 3)


def random_events(rng, n_files: int) -> dict:
    events = {}
    for f in range(n_files):
        found = []
        for _ in range(rng.integers(0, 5)):
            onset = round(float(rng.uniform(0, 9)), 2)
            found.append((str(rng.choice(LABELS + ["bird"])), onset, round(onset + float(rng.uniform(0.1, 3)), 2)))
        events[f"{f}.wav"] = found
    return events


def jitter(rng, events: dict) -> dict:
    def moved(on: float, off: float) -> tuple[float, float]:
        return round(max(0.0, on + float(rng.normal(0, 0.2))), 2), round(off + float(rng.normal(0, 0.4)), 2)

    return {name: [(label, *moved(on, off)) for label, on, off in found if rng.random() < 0.8 and off > on + 0.05]
            for name, found in events.items()}


def test_both_f1s_equal_sed_evals_on_random_files():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util's pkg_resources deprecation
        sed_eval = pytest.importorskip("sed_eval", reason="sed_eval does not import (pip install 'envsound[sed]')")
    labels = LABELS + ["bird"]
    rng = np.random.default_rng(0)
    for trial in range(30):
        reference = random_events(rng, 4)
        system = jitter(rng, reference)
        system["0.wav"] = system["0.wav"] + random_events(rng, 1)["0.wav"]  # some false alarms
        durations = {name: 12.0 for name in reference}
        segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, time_resolution=1.0)
        event = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, t_collar=0.2,
                                                       percentage_of_length=0.2)
        for name in reference:
            as_dicts = [[{"filename": name, "event_label": l, "onset": a, "offset": b} for l, a, b in found]
                        for found in (reference[name], system.get(name, []))]
            segment.evaluate(*as_dicts, evaluated_length_seconds=durations[name])
            event.evaluate(*as_dicts)
        ours_segment = segment_f1(reference, system, labels, durations=durations)
        ours_event = event_f1(reference, system, labels)
        assert ours_segment["f1"] == pytest.approx(segment.results_overall_metrics()["f_measure"]["f_measure"])
        assert ours_event["f1"] == pytest.approx(event.results_overall_metrics()["f_measure"]["f_measure"])
        for label in labels:
            theirs = event.results_class_wise_metrics()[label]["f_measure"]["f_measure"]
            ours = ours_event["per_class"][label]["f1"]
            # sed_eval's 2PR / (P + R) is NaN when nothing is correct; ours is 0 then (None: no event at all)
            assert ours in (None, 0.0) if np.isnan(theirs) else ours == pytest.approx(theirs), (trial, label)


def test_psds_is_one_for_a_perfect_system_and_zero_for_a_silent_one():
    pytest.importorskip("psds_eval", reason="psds_eval is not installed (pip install 'envsound[sed]')")
    reference = {"a.wav": [("dog", 1.0, 3.0), ("cat", 4.0, 6.0)], "b.wav": [("cat", 0.5, 2.0)]}
    durations = {"a.wav": 10.0, "b.wav": 10.0}
    assert psds(reference, [reference, reference], durations=durations) == pytest.approx(1.0)
    silent = {"a.wav": [], "b.wav": []}
    assert psds(reference, [silent], durations=durations) == 0.0
    half = {"a.wav": [("dog", 1.0, 3.0)], "b.wav": []}
    assert 0.0 < psds(reference, [half, reference], durations=durations) <= 1.0


def test_our_psds_step_curve_equals_psds_evals_own():
    """psds_eval's step_curve forward-fills with fillna(method=), gone in pandas 3: ours is numpy, and equal."""
    psds_eval = pytest.importorskip("psds_eval", reason="psds_eval is not installed (pip install 'envsound[sed]')")
    from envsound.evaluation.sed_metrics import _step_curve

    rng = np.random.default_rng(0)
    for _ in range(30):
        xp = rng.choice(np.linspace(0, 50, 11), size=rng.integers(1, 9))  # repeated x values too
        yp = rng.uniform(0, 1, xp.size)
        x = np.unique(np.concatenate([rng.uniform(0, 60, 9), rng.choice(xp, 2)]))  # some of xp's points, not all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            expected = psds_eval.PSDSEval.step_curve(x, xp, yp)
        assert _step_curve(x, xp, yp) == pytest.approx(expected)


def frozen_example():
    """Eight 500-s files of three classes, two events a class each, and frame scores (every 0.5 s) that are 0.6
    inside an event and 0.05 outside plus noise, rounded to the PSDS thresholds: every system the thresholds make is
    one a score-based evaluator makes too."""
    from envsound.evaluation.sed import PSDS_THRESHOLDS

    rng, labels, step, n = np.random.default_rng(0), ["a", "b", "c"], 0.5, 1000
    levels = np.array(PSDS_THRESHOLDS)
    scores, reference, durations = {}, {}, {}
    for f in range(8):
        clean, events = np.full((n, 3), 0.05), []
        for k, label in enumerate(labels):
            for first in (int(rng.integers(0, 400)), int(rng.integers(500, 900))):
                last = first + int(rng.integers(5, 40))
                events.append((label, first * step, last * step))
                clean[first:last, k] = 0.6
        noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0.05, 0.95)
        scores[f"f{f}"] = levels[np.abs(noisy[..., None] - levels).argmin(-1)]
        reference[f"f{f}"], durations[f"f{f}"] = events, n * step
    return labels, step, scores, reference, durations


@pytest.mark.parametrize("scenario", [dict(dtc=0.7, gtc=0.7, alpha_ct=0.0), dict(dtc=0.1, gtc=0.1, alpha_ct=0.5)])
def test_psds_equals_sed_scores_evals_on_a_frozen_example(scenario):
    """DCASE's two scenarios as `evaluate` computes them (psds_eval over the thresholds' outputs of our decoding)
    against sed_scores_eval's PSDS of the frame scores themselves (another reference implementation, reading no
    decoding of ours): 0.106 and 0.961 here."""
    pytest.importorskip("psds_eval", reason="psds_eval is not installed (pip install 'envsound[sed]')")
    with warnings.catch_warnings():  # its dcase_util imports pkg_resources
        warnings.simplefilter("ignore")
        sed_scores_eval = pytest.importorskip("sed_scores_eval", reason="sed_scores_eval does not import")
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    from envsound.events import Decoding, detect_events
    from envsound.evaluation.sed import PSDS_THRESHOLDS

    labels, step, scores, reference, durations = frozen_example()
    points = [{name: [(e.label, e.onset, e.offset) for e in detect_events(
        np.arange(len(track)) * step, track, labels, window_seconds=step, hop_seconds=step, duration=durations[name],
        decoding=Decoding(threshold=threshold, median_seconds=0.0))] for name, track in scores.items()}
        for threshold in PSDS_THRESHOLDS]
    ours = psds(reference, points, durations=durations, cttc=0.3, **scenario)
    theirs = sed_scores_eval.intersection_based.psds(
        scores={name: create_score_dataframe(track, np.arange(len(track) + 1) * step, labels)
                for name, track in scores.items()},
        ground_truth={name: [(on, off, label) for label, on, off in events] for name, events in reference.items()},
        audio_durations=durations, dtc_threshold=scenario["dtc"], gtc_threshold=scenario["gtc"],
        cttc_threshold=0.3 if scenario["alpha_ct"] else None, alpha_ct=scenario["alpha_ct"], alpha_st=1.0,
        max_efpr=100.0)[0]
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert ours == pytest.approx(0.105663 if scenario["dtc"] == 0.7 else 0.960690, abs=1e-6)
