"""Noisy multi-label tagging on ESC-10 mixtures: curated only, curated + noisy naively, stage 0 -> 1, the whole
pipeline, per model; leave-one-fold-out over the source folds.

    .venv/bin/python experiments/noisy_stages.py --root ../shared/data/esc50 --out experiments/out/noisy \
        [--models cnn crnn resnet] [--folds 1 2 3 4] [--test-folds 1] [--curated 60] [--noisy-factor 2] [--seed 0] \
        [--epochs warmup=30 finetune=30 final=30] [--set key=value ...]

The table in docs/results.md (about 8 min a fold for cnn on 2 cores):

    .venv/bin/python experiments/noisy_stages.py --root ../shared/data/esc50 --out experiments/out/noisy \
        --models cnn --epochs warmup=18 finetune=3 final=3 --set stages.warmup_on=all stages.tune_lr_scale=0.2

1. ``OUT/mix``: ``envsound mix`` of the ESC-10 clips of ``--folds`` (defaults: 60 curated and 120 noisy mixtures a
   fold, 4-12 s, 1-3 events; noisy labels at the mixer's default rates, about FSDKaggle2019's: 20 % of true labels
   dropped, 15 % swapped, 15 % of clips with an extra wrong label).
2. For each model, ``run_stages`` over ``--folds`` -> ``OUT/<model>/stages.json`` (a finished stage is reused).
3. ``OUT/results.md`` / ``results.json``: per model and row, lwlrap and mAP mean ± std over the folds, the paired
   difference of lwlrap to "curated only" (mean ± std, paired t-test p), the filter's kept clips and label precision.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from envsound.config import Config
from envsound.data.mixtures import MixSettings, build_mixtures
from envsound.data.registry import load_dataset
from envsound.evaluation.metrics import paired_comparison
from envsound.features.cache import FeatureCache
from envsound.fileio import write_json_atomic, write_text_atomic
from envsound.hardware import describe_machine
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.stages import read_mixture_truth, run_stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root")
    parser.add_argument("--out", type=Path, default=Path("experiments/out/noisy"))
    parser.add_argument("--models", nargs="+", default=["cnn", "crnn", "resnet"])
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--test-folds", nargs="+", type=int, default=None, help="folds held out (default: all)")
    parser.add_argument("--curated", type=int, default=60)
    parser.add_argument("--noisy-factor", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", nargs="*", default=[], metavar="STAGE=N")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    mix_root = args.out / "mix"
    if not (mix_root / "mix.json").exists():
        esc10 = load_dataset("esc10", args.root).select_folds(args.folds)
        build_mixtures(esc10, mix_root, settings=MixSettings(seed=args.seed, n_curated=args.curated,
                                                             noisy_factor=args.noisy_factor))
    manifest = load_dataset("fsdkaggle2019", mix_root, subset="all")
    truth = read_mixture_truth(mix_root)
    context = RunContext(cache=FeatureCache(args.out / "cache"), resume=True, progress=False)
    results = {"machine": describe_machine(), "mix": json.loads((mix_root / "mix.json").read_text()), "models": {}}
    for model in args.models:
        config = stage_config(model, args.epochs, args.overrides)
        summary = run_stages(manifest, config, folds=args.folds, test_folds=args.test_folds, out_dir=args.out / model,
                             context=context, truth=truth)
        results["models"][model] = summary
        write_json_atomic(args.out / "results.json", results)
    write_text_atomic(args.out / "results.md", table(results))
    print(table(results))


def stage_config(model: str, epochs: list[str], overrides: list[str]) -> Config:
    """The config of one model's runs, as ``envsound stages --model MODEL --set ...`` makes it (the model's own
    preset included); ``epochs``: ``["warmup=30", ...]``, each ``stages.<stage>_epochs``, before ``overrides``."""
    stage_epochs = [f"stages.{k}_epochs={v}" for k, v in (item.split("=", 1) for item in epochs)]
    return resolve(model=model, overrides=[*stage_epochs, *overrides])


def table(results: dict) -> str:
    lines = ["| model | row | lwlrap | mAP | Δ lwlrap vs curated only (paired) | p |", "|---|---|---|---|---|---|"]
    for model, summary in results["models"].items():
        base = [f["lwlrap"] for f in summary["stages"][0]["folds"]]
        for row in summary["stages"]:
            scores = [f["lwlrap"] for f in row["folds"]]
            diff, p = "", ""
            if row["name"] != "baseline" and len(scores) == 1:  # one held-out fold: a difference, no test
                diff = f"{scores[0] - base[0]:+.3f}"
            elif row["name"] != "baseline":
                cmp = paired_comparison(scores, base)
                diff = f"{cmp['mean_difference']:+.3f} ± {cmp['std_difference']:.3f}"
                p = "" if cmp["t_pvalue"] is None else f"{cmp['t_pvalue']:.3f}"
            lines.append(f"| {model} | {row['title']} | {row['lwlrap']:.3f} ± {row['std_lwlrap']:.3f} | "
                         f"{row['mAP']:.3f} ± {row['std_mAP']:.3f} | {diff} | {p} |")
        kept = [f for f in summary["filter"]]
        precision = [f["label_precision"] for f in kept if f["label_precision"] is not None]
        lines.append(f"| {model} | filter | kept {sum(f['kept'] for f in kept)} of {sum(f['noisy'] for f in kept)} "
                     f"noisy clips | label precision {np.mean(precision):.3f} | | |" if precision else
                     f"| {model} | filter | kept 0 | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
