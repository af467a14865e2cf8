"""lwlrap: envsound's loop (``envsound.task.lwlrap_score``) against scikit-learn's label-ranking average precision
weighted by each clip's label count (the same number), on random multi-label scores.

    .venv/bin/python benchmarks/bench_lwlrap.py [--clips 4000] [--classes 80] [--repeats 3]

FSDKaggle2019's test set is 4,481 clips x 80 classes; a validation set of a fold is a few hundred clips.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

import numpy as np
from sklearn.metrics import label_ranking_average_precision_score

from envsound.hardware import describe_machine
from envsound.task import lwlrap_score


def timed(fn, repeats: int) -> tuple[float, float]:
    value = fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return value, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y_true = rng.random((args.clips, args.classes)) < 1.2 / args.classes  # about 1.2 labels a clip, as FSDKaggle2019
    y_true[y_true.sum(axis=1) == 0, 0] = True
    y_score = rng.random((args.clips, args.classes))
    ours, ours_s = timed(lambda: lwlrap_score(y_true, y_score), args.repeats)
    theirs, theirs_s = timed(lambda: label_ranking_average_precision_score(y_true, y_score,
                                                                           sample_weight=y_true.sum(axis=1)),
                             args.repeats)
    assert abs(ours - theirs) < 1e-9, (ours, theirs)
    print(json.dumps({"date": str(date.today()), "machine": describe_machine(), "clips": args.clips,
                      "classes": args.classes, "lwlrap": round(ours, 6), "envsound_s": round(ours_s, 4),
                      "sklearn_s": round(theirs_s, 4), "speedup": round(theirs_s / ours_s, 1)}))


if __name__ == "__main__":
    main()
