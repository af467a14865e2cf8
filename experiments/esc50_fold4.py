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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from envsound.data.registry import load_dataset
from envsound.data.splits import stratified_group_folds
from envsound.features.cache import FeatureCache, default_cache_root
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (cv.json, confusion.png, fold_k/)")
    parser.add_argument("--fold", type=int, default=4, help="the official fold to split")
    parser.add_argument("--splits", type=int, default=4, help="sub-folds inside it")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--init", help="a checkpoint or an AudioSet weight file to start from (as train --init)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
