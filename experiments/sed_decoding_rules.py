"""Two decoding rules beside ``events.tune``'s threshold, median filter and shortest event (issue 54), chosen on each
run's validation mixtures and scored on fold 4's unseen clips:

- **hysteresis** (double thresholding, as DCASE systems decode): an event is a run at or above a low threshold
  that reaches the high one somewhere (low = high x ``factor``);
- **gap filling**: two events of one class at most ``gap`` seconds apart become one (ESC-10's events are whole
  clips, pauses included: a dog's barks, a clock's ticks).

The product's own decoding (``events/detect.py``: ``events.gap_seconds``, ``events.hysteresis``) on a finer gap
grid than ``events.tune``'s.

    .venv/bin/python experiments/sed_decoding_rules.py --mix experiments/out/sed-unseen/mix60 [--subset all] RUN ...

Prints, per run and per rule set, the validation's choice with its event F1 on validation and on fold 4, and fold
4's own best point (a diagnosis, never a choice).
"""

from __future__ import annotations

import itertools

import numpy as np

from envsound.evaluation import sed
from envsound.events import Decoding
from envsound.events.detect import smoothed_stretches, stretch_events
from envsound.evaluation.sed_metrics import event_f1
from sed_decoding_grid import decoded_runs, print_choice  # experiments/ is the script's folder: on sys.path

FACTORS = (1.0, 0.75, 0.5)
GAPS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
RULES = {"events.tune's grid": ((1.0,), (0.0,)), "+ hysteresis": (FACTORS, (0.0,)), "+ gap filling": ((1.0,), GAPS),
         "+ both": (FACTORS, GAPS)}


def scores(sets, labels, factors, gaps) -> dict:
    table: dict = {}
    for median in sed.TUNE_MEDIANS:
        values = {name: {clip: smoothed_stretches(np.asarray(t.begins, dtype=np.float64),
                                                  np.asarray(t.probs, dtype=np.float64),
                                                  window_seconds=t.window_seconds, hop_seconds=t.hop_seconds,
                                                  duration=t.duration, median_seconds=median)
                         for clip, t in timelines.items()}
                  for name, (timelines, _) in sets.items()}
        for shortest, threshold, factor, gap in itertools.product(sed.TUNE_MIN_SECONDS, sed.TUNE_THRESHOLDS,
                                                                  factors, gaps):
            point = (median, shortest, threshold, factor, gap)
            table[point] = {}
            for name, (_, reference) in sets.items():
                system = {clip: [(e.label, e.onset, e.offset) for e in stretch_events(
                    v, labels, Decoding(threshold=threshold, median_seconds=median, min_seconds=shortest,
                                        gap_seconds=gap, hysteresis=factor))]
                    for clip, v in values[name].items()}
                table[point][name] = float(event_f1(reference, system, labels)["f1"] or 0.0)
    return table


def main() -> None:
    for run, model, sets in decoded_runs(__doc__.split("\n\n")[0]):
        table = scores(sets, model.labels, FACTORS, GAPS)
        for rule, (factors, gaps) in RULES.items():
            points = [p for p in table if p[3] in factors and p[4] in gaps]
            print_choice(f"{run} {rule}", "(median, shortest, threshold, low factor, gap)", table, points)


if __name__ == "__main__":
    main()
