"""50-class sanity check: cross-validation *inside* ESC-50 fold 4 (8 clips of every class).

Fold 4 alone holds all 50 classes, so it is split into ``--splits`` sub-folds, stratified by class and grouped by
source recording (``src_file``: takes of one recording stay on one side), and cross-validated with the default
configuration (or ``--set`` overrides). With 4 sub-folds a model trains on 6 clips per class (one held out for
validation where the class allows it) and is tested on 2, so this is a check that the 50-class path learns at all,
not a benchmark comparable to published 5-fold ESC-50 numbers.

    .venv/bin/python experiments/esc50_fold4.py --root ../shared/data/esc50 --out experiments/out/esc50-fold4
    # the same from the AudioSet network (its fine-tuning recipe; --transfer probe for the frozen trunk)
    .venv/bin/python experiments/esc50_fold4.py --root ../shared/data/esc50 --out experiments/out/esc50-fold4-mn04 \
        --init ../shared/pretrained/efficientat/mn04_as_mAP_432.pt --set transfer.mode=full
    # a frozen network's probe (installed under $ENVSOUND_MODELS), with every class's accuracy in OUT/per_class.csv
    ENVSOUND_MODELS=/tmp/models .venv/bin/python experiments/esc50_fold4.py --root ../shared/data/esc50 \
        --out experiments/out/esc50-fold4-yamnet --init yamnet --per-class

    # which network for which sound: runs' predictions.csv compared class by class (any single-label cv run)
    .venv/bin/python experiments/esc50_fold4.py --compare mn04=experiments/out/esc50-fold4-mn04-probe \
        yamnet=experiments/out/esc50-fold4-yamnet birdnet=experiments/out/esc50-fold4-birdnet

``--compare`` prints markdown: each class's clips right per run (grouped by ESC-50's categories, the best bold), then
each category's accuracy per run and the exact McNemar p of each run against the first on that category's clips.
``--per-class`` writes ``OUT/per_class.csv`` from the run's ``predictions.csv``: per class its ESC-50 category
(:data:`ESC50_CATEGORIES`), the clips right in each sub-fold and in all (8 a class: one clip is 12.5 points).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.data.registry import load_dataset
from envsound.data.splits import stratified_group_folds
from envsound.features.cache import FeatureCache, default_cache_root
from envsound.fileio import write_text_atomic
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv

# ESC-50's five major categories (its README), ten classes each; the first two of each are ESC-10's where it has them
ESC50_CATEGORIES = {
    "animals": ["dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow"],
    "natural soundscapes & water": ["rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds",
                                    "water_drops", "wind", "pouring_water", "toilet_flush", "thunderstorm"],
    "human, non-speech": ["crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
                          "brushing_teeth", "snoring", "drinking_sipping"],
    "interior/domestic": ["clock_tick", "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
                          "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "glass_breaking"],
    "exterior/urban": ["helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
                       "fireworks", "hand_saw"],
}
CATEGORY_OF = {name: category for category, names in ESC50_CATEGORIES.items() for name in names}
ESC10_CLASSES = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
                 "helicopter", "chainsaw"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="ESC-50 root (meta/esc50.csv, audio/); needed but with --compare")
    parser.add_argument("--out", type=Path, help="run folder (cv.json, confusion.png, fold_k/); needed but with "
                                                 "--compare")
    parser.add_argument("--fold", type=int, default=4, help="the official fold to split")
    parser.add_argument("--splits", type=int, default=4, help="sub-folds inside it")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--init", help="a checkpoint or an AudioSet weight file to start from (as train --init)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--per-class", action="store_true", help="also write OUT/per_class.csv (see above)")
    parser.add_argument("--compare", nargs="+", metavar="NAME=DIR", help="no run: compare these runs (see above)")
    args = parser.parse_args()
    if args.compare:
        print(compare_runs(dict(item.split("=", 1) for item in args.compare)))
        return
    if args.root is None or args.out is None:
        parser.error("--root and --out are required (but with --compare)")

    config = resolve(model=None if args.init else args.model, init=args.init, overrides=args.overrides)
    manifest = load_dataset("esc50", args.root).select_folds([args.fold])
    sub_folds = stratified_group_folds(manifest.records, n_folds=args.splits, seed=config.train.seed)
    manifest = manifest.subset([dataclasses.replace(r, fold=k) for r, k in zip(manifest.records, sub_folds)])
    manifest.name = f"esc50-fold{args.fold}"
    summary = run_cv(manifest, config, out_dir=args.out,
                     context=RunContext(cache=FeatureCache(default_cache_root()), resume=True, progress=False),
                     init=args.init)
    folds = " / ".join(f"{f['accuracy'] * 100:.1f}" for f in summary["folds"])
    print(json.dumps({"mean_accuracy": summary["mean_accuracy"], "std_accuracy": summary["std_accuracy"],
                      "folds": folds, "minutes": round(summary["seconds"] / 60, 1)}))
    if args.per_class:
        write_text_atomic(args.out / "per_class.csv", per_class_csv(args.out / "predictions.csv"))


def per_class_correct(predictions: Path) -> dict[str, dict[int, tuple[int, int]]]:
    """A cross-validation's ``predictions.csv`` (single-label) -> {class: {fold: (clips right, clips)}}."""
    counts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    with open(predictions, newline="") as f:
        for row in csv.DictReader(f):
            cell = counts[row["label"]][int(row["fold"])]
            cell[0] += row["predicted"] == row["label"]
            cell[1] += 1
    return {label: {fold: (c[0], c[1]) for fold, c in sorted(folds.items())} for label, folds in counts.items()}


def read_predictions(predictions: Path) -> dict[str, tuple[str, bool]]:
    """A cross-validation's ``predictions.csv`` (single-label) -> {clip file: (its label, predicted right)}."""
    with open(predictions, newline="") as f:
        return {row["file"]: (row["label"], row["predicted"] == row["label"]) for row in csv.DictReader(f)}


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """Exact two-sided McNemar p of two classifiers scored on the same clips (a binomial test on the clips only one
    of them gets right); 1 when they agree on every clip."""
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    return 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b).pvalue)


def compare_runs(runs: dict[str, str]) -> str:
    """Markdown of the runs ``{name: run folder}`` (their ``predictions.csv``, the same clips): per class the clips
    right of each run, per ESC-50 category the accuracy of each and the McNemar p against the first run."""
    found = {name: read_predictions(Path(folder) / "predictions.csv") for name, folder in runs.items()}
    names, files = list(found), sorted(next(iter(found.values())))
    for name, rows in found.items():
        if sorted(rows) != files:
            raise SystemExit(f"{runs[name]}/predictions.csv: other clips than {runs[names[0]]}'s")
    labels = np.array([found[names[0]][f][0] for f in files])
    right = {name: np.array([found[name][f][1] for f in files]) for name in names}
    lines = [f"| category | class | {' | '.join(names)} |", "|---|---|" + "---|" * len(names)]
    for category, classes in ESC50_CATEGORIES.items():
        for label in (c for c in classes if c in labels):
            member = labels == label
            cells = [int(right[n][member].sum()) for n in names]
            shown = [f"**{v}**" if v == max(cells) and cells.count(v) < len(cells) else str(v) for v in cells]
            tag = " (ESC-10)" if label in ESC10_CLASSES else ""
            lines.append(f"| {category} | {label}{tag} | {' | '.join(f'{v}/{member.sum()}' for v in shown)} |")
    lines += ["", f"| category | clips | {' | '.join(names)} | McNemar p vs {names[0]} |",
              "|---|---|" + "---|" * (len(names) + 1)]
    for category, classes in [*ESC50_CATEGORIES.items(), ("all", list(CATEGORY_OF))]:
        member = np.isin(labels, classes)
        if member.any():
            p = ", ".join(f"{n} {mcnemar(right[n][member], right[names[0]][member]):.3f}" for n in names[1:])
            accuracies = " | ".join(f"{100 * right[n][member].mean():.1f} %" for n in names)
            lines.append(f"| {category} | {member.sum()} | {accuracies} | {p} |")
    return "\n".join(lines)


def per_class_csv(predictions: Path) -> str:
    """``per_class.csv`` of :func:`per_class_correct`, classes in :data:`ESC50_CATEGORIES`' order (others last):
    class, category, right/clips of each fold, right, clips, accuracy (%)."""
    counts = per_class_correct(predictions)
    folds = sorted({fold for by_fold in counts.values() for fold in by_fold})
    order = [name for names in ESC50_CATEGORIES.values() for name in names if name in counts]
    order += sorted(set(counts) - set(order))
    lines = [",".join(["class", "category", *(f"fold_{k}" for k in folds), "right", "clips", "accuracy"])]
    for name in order:
        cells = [counts[name].get(k, (0, 0)) for k in folds]
        right, clips = sum(c[0] for c in cells), sum(c[1] for c in cells)
        lines.append(",".join([name, f'"{CATEGORY_OF.get(name, "")}"', *(f"{r}/{n}" for r, n in cells), str(right),
                               str(clips), f"{100 * right / clips:.1f}"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
