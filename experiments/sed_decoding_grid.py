"""A diagnosis, never a choice: how far the decoding that ``events.tune`` chose on a run's validation mixtures is
from the best decoding for fold 4's unseen clips (issue 54, docs/results.md "A validation split by source clip").

    .venv/bin/python experiments/sed_decoding_grid.py --mix experiments/out/sed-unseen/mix60 \\
        experiments/out/sed-unseen/mix60/sed-s0 experiments/out/sed-unseen/mix60/sed-s1 ...

For each run (a ``train --preset sed`` folder trained on folds 1-3 with ``train.val_fraction`` 0.2): its validation
split is drawn again as ``train`` drew it (same seed), both it and fold 4 are decoded at every point of the tuning grid
(``evaluation/sed.py``) and of a wider one (median filters to 4 s, shortest events to 1.5 s), and it prints, per grid,
the validation's choice with its event F1 on validation and on fold 4, and fold 4's own best point.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from envsound.data.registry import load_dataset
from envsound.data.splits import train_val_split
from envsound.evaluation import sed
from envsound.events import Decoding
from envsound.features.extract import extract_features
from envsound.models.clip import ClipModel
from envsound.models.files import open_model_file

GRIDS = {"tuning grid": (sed.TUNE_MEDIANS, sed.TUNE_MIN_SECONDS),
         "wider grid": ((0.0, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5))}


def decoded(model: ClipModel, manifest, strong):
    records, features, _ = extract_features(manifest.records, model.config.features, cache=None, progress=False)
    timelines = {r.clip_id: sed.clip_timeline(model, r, f)[0] for r, f in zip(records, features)}
    return timelines, sed.reference_events(strong, timelines)


def decoded_runs(description: str):
    """The command line these diagnoses share (``--mix``, ``--subset``, runs) -> for each run ``(run, model, sets)``,
    ``sets`` ``{"validation": (timelines, reference), "fold 4": ...}``: the run's validation split drawn again as
    ``train`` drew it (same seed), and fold 4's curated mixtures, as experiments/sed_unseen.py tests."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mix", type=Path, required=True, help="the mixture set the runs trained on")
    parser.add_argument("--subset", default=None, help="the subset the runs trained on (all: curated and noisy)")
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    manifest = load_dataset("fsdkaggle2019", args.mix)
    trained = load_dataset("fsdkaggle2019", args.mix, **({"subset": args.subset} if args.subset else {}))
    for run in args.runs:
        checkpoint = open_model_file(run / "model.ckpt").checkpoint
        model = ClipModel.from_checkpoint(checkpoint, device="cpu")
        _, val = train_val_split(trained.select_folds([1, 2, 3]), val_fraction=checkpoint.config.train.val_fraction,
                                 seed=checkpoint.config.train.seed)
        yield run, model, {"validation": decoded(model, val, trained.strong),
                           "fold 4": decoded(model, manifest.select_folds([4]), manifest.strong)}


def print_choice(title: str, point_names: str, table: dict, points: list) -> None:
    """The point of ``points`` the validation chose (the first of equal ones) with its event F1 there and on fold 4,
    and fold 4's own best point (``table[point]`` is ``{"validation": f1, "fold 4": f1}``)."""
    chosen = max(points, key=lambda p: table[p]["validation"])
    best = max(points, key=lambda p: table[p]["fold 4"])
    print(f"{title}: validation chose {point_names} {chosen}: event F1 {table[chosen]['validation']:.3f} there, "
          f"{table[chosen]['fold 4']:.3f} on fold 4; fold 4's best {best}: {table[best]['fold 4']:.3f}", flush=True)


def main() -> None:
    for run, model, sets in decoded_runs(__doc__.split("\n\n")[0]):
        for grid, (medians, shortest) in GRIDS.items():
            # (median, shortest, threshold): tune_decoding's order, so a tie goes to the same first point
            table = {point: {name: sed.decoded_event_f1(*sets[name], model.labels, Decoding(
                                 threshold=point[2], median_seconds=point[0], min_seconds=point[1]))
                             for name in sets}
                     for point in itertools.product(medians, shortest, sed.TUNE_THRESHOLDS)}
            print_choice(f"{run} {grid}", "(median, shortest, threshold)", table, list(table))


if __name__ == "__main__":
    main()
