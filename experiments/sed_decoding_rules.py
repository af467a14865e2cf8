"""Two decoding rules beside ``events.tune``'s threshold, median filter and shortest event (issue 54), chosen on each
run's validation mixtures and scored on fold 4's unseen clips:

- **hysteresis** (double thresholding, as DCASE systems decode): an event is a run at or above a low threshold
  that reaches the high one somewhere (low = high x ``factor``);
- **gap filling**: two events of one class closer than ``gap`` seconds become one (ESC-10's events are whole clips,
  pauses included: a dog's barks, a clock's ticks).

    .venv/bin/python experiments/sed_decoding_rules.py --mix experiments/out/sed-unseen/mix60 [--subset all] RUN ...

Prints, per run and per rule set, the validation's choice with its event F1 on validation and on fold 4, and fold
4's own best point (a diagnosis, never a choice).
"""

from __future__ import annotations

import itertools

import numpy as np

from envsound.evaluation import sed
from envsound.evaluation.events import _lowest, _stretches, median_smooth
from envsound.evaluation.sed_metrics import event_f1
from sed_decoding_grid import decoded_runs  # experiments/ is the script's folder: on sys.path

FACTORS = (1.0, 0.75, 0.5)
GAPS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
RULES = {"events.tune's grid": ((1.0,), (0.0,)), "+ hysteresis": (FACTORS, (0.0,)), "+ gap filling": ((1.0,), GAPS),
         "+ both": (FACTORS, GAPS)}


def smoothed_values(t, median: float):
    """The per-stretch values :func:`detect_events` thresholds, for one median filter: ``(a, b, values)``."""
    width = max(1, int(round(median / t.hop_seconds)))
    width += 1 - width % 2
    probs = np.asarray(t.probs, dtype=np.float64)
    smoothed = np.stack([median_smooth(probs[:, k], width) for k in range(probs.shape[1])], axis=1)
    a, b, lo, hi = _stretches(np.asarray(t.begins, dtype=np.float64), t.window_seconds, 0.0, t.duration)
    return a, b, _lowest(smoothed, lo, hi)


def events_of(a, b, values, labels, *, high: float, low: float, gap: float, shortest: float):
    events = []
    for k, label in enumerate(labels):
        active = np.concatenate([[False], values[:, k] >= low, [False]])
        edges = np.flatnonzero(np.diff(active.astype(np.int8)))
        runs = [(float(a[first]), float(b[stop - 1])) for first, stop in zip(edges[::2], edges[1::2])
                if values[first:stop, k].max() >= high]
        joined: list[list[float]] = []
        for onset, offset in runs:
            if joined and onset - joined[-1][1] <= gap:
                joined[-1][1] = offset
            else:
                joined.append([onset, offset])
        events += [(label, onset, offset) for onset, offset in joined if offset - onset >= max(shortest, 1e-9)]
    return events


def scores(sets, labels, factors, gaps) -> dict:
    table: dict = {}
    for median in sed.TUNE_MEDIANS:
        values = {name: {clip: smoothed_values(t, median) for clip, t in timelines.items()}
                  for name, (timelines, _) in sets.items()}
        for shortest, threshold, factor, gap in itertools.product(sed.TUNE_MIN_SECONDS, sed.TUNE_THRESHOLDS,
                                                                  factors, gaps):
            point = (median, shortest, threshold, factor, gap)
            table[point] = {}
            for name, (_, reference) in sets.items():
                system = {clip: events_of(*v, labels, high=threshold, low=threshold * factor, gap=gap,
                                          shortest=shortest) for clip, v in values[name].items()}
                table[point][name] = float(event_f1(reference, system, labels)["f1"] or 0.0)
    return table


def main() -> None:
    for run, model, sets in decoded_runs(__doc__.split("\n\n")[0]):
        table = scores(sets, model.labels, FACTORS, GAPS)
        for rule, (factors, gaps) in RULES.items():
            points = [p for p in table if p[3] in factors and p[4] in gaps]
            chosen = max(points, key=lambda p: table[p]["validation"])  # ties: the first (the plainest) point
            best = max(points, key=lambda p: table[p]["fold 4"])
            print(f"{run} {rule}: validation chose (median, shortest, threshold, low factor, gap) {chosen}: event F1 "
                  f"{table[chosen]['validation']:.3f} there, {table[chosen]['fold 4']:.3f} on fold 4; fold 4's best "
                  f"{best}: {table[best]['fold 4']:.3f}", flush=True)


if __name__ == "__main__":
    main()
