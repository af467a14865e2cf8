"""Decoding per class against one decoding for all (issue 54): each run's validation mixtures choose, and fold 4's
unseen clips score, (a) one threshold, median filter and shortest event for every class (``events.tune`` as it was
before gaps and hysteresis),
(b) the same threshold but a median filter and shortest event per class, (c) all three per class; plus, as a
diagnosis never a choice, fold 4's own best per-class settings.

    .venv/bin/python experiments/sed_classwise.py --mix experiments/out/sed-unseen/mix60 [--subset all] RUN ...

A run is a ``train --preset sed`` folder trained on folds 1-3 with ``train.val_fraction`` 0.2; its validation split is
drawn again as ``train`` drew it. Classes do not interact in event F1 (a system event matches a reference event of
its own class only), so each class's counts (matches, system events, reference events) are computed once per
setting and the overall F1 of any combination is their sum; per-class settings are chosen by coordinate ascent on the
overall validation F1, from the one-for-all choice.
"""

from __future__ import annotations

import itertools

import numpy as np

from envsound.evaluation import sed
from envsound.events import Decoding, detect_events
from envsound.evaluation.sed_metrics import event_f1
from sed_decoding_grid import decoded_runs  # experiments/ is the script's folder: on sys.path

# (median, shortest, threshold): events.tune's order, so a tie goes to the same first point
SETTINGS = list(itertools.product(sed.TUNE_MEDIANS, sed.TUNE_MIN_SECONDS, sed.TUNE_THRESHOLDS))


def class_counts(timelines, reference, labels) -> np.ndarray:
    """``(classes, settings, 3)``: matches, system events, reference events of each class at each setting."""
    counts = np.zeros((len(labels), len(SETTINGS), 3))
    for k, label in enumerate(labels):
        ref = {clip: [e for e in events if e[0] == label] for clip, events in reference.items()}
        for s, (median, shortest, threshold) in enumerate(SETTINGS):
            system = {clip: [(e.label, e.onset, e.offset) for e in detect_events(
                t.begins, t.probs[:, [k]], [label], window_seconds=t.window_seconds, hop_seconds=t.hop_seconds,
                duration=t.duration, decoding=Decoding(threshold=threshold, median_seconds=median, min_seconds=shortest))]
                for clip, t in timelines.items()}
            scores = event_f1(ref, system, [label])
            n_ref, n_sys = sum(map(len, ref.values())), sum(map(len, system.values()))
            counts[k, s] = (round((scores["recall"] or 0.0) * n_ref), n_sys, n_ref)
    return counts


def f1(counts: np.ndarray, choice) -> float:
    tp, n_sys, n_ref = sum(counts[k, s] for k, s in enumerate(choice))
    return 2 * tp / (n_sys + n_ref) if n_sys + n_ref else 0.0


def per_class(counts: np.ndarray, start: list[int], allowed) -> list[int]:
    """Coordinate ascent on the overall F1 over each class's ``allowed(start index)`` settings."""
    choice = list(start)
    for _ in range(3):
        for k in range(len(choice)):
            choice[k] = max(allowed(start[k]), key=lambda s: (f1(counts, choice[:k] + [s] + choice[k + 1:]),
                                                              s == choice[k]))
    return choice


def main() -> None:
    for run, model, sets in decoded_runs(__doc__.split("\n\n")[0]):
        val_counts = class_counts(*sets["validation"], model.labels)
        test_counts = class_counts(*sets["fold 4"], model.labels)
        n = len(model.labels)
        one = max(range(len(SETTINGS)), key=lambda s: f1(val_counts, [s] * n))  # ties: the first, as events.tune
        same_threshold = per_class(val_counts, [one] * n,
                                   lambda s: [i for i, p in enumerate(SETTINGS) if p[2] == SETTINGS[s][2]])
        everything = per_class(val_counts, [one] * n, lambda s: range(len(SETTINGS)))
        oracle = per_class(test_counts, [one] * n, lambda s: range(len(SETTINGS)))
        for name, choice in (("one for all", [one] * n), ("filter and shortest per class", same_threshold),
                             ("all three per class", everything), ("fold 4's own best (diagnosis)", oracle)):
            print(f"{run} {name}: validation {f1(val_counts, choice):.3f}, fold 4 {f1(test_counts, choice):.3f}; "
                  + ", ".join(f"{label} {SETTINGS[s]}" for label, s in zip(model.labels, choice)), flush=True)


if __name__ == "__main__":
    main()
