"""The multi-stage schedule for curated + noisy multi-label sets (fsdkaggle2019, 'envsound mix' output),
leave-one-fold-out: a curated-only baseline with the same epochs, a warm-up on the noisy clips, a fine-tune on the
curated ones, a filter that keeps the noisy clips the model agrees with, a final stage on curated + kept (config
section 'stages'); writes OUT/stages.json and each stage's model.ckpt (--resume goes on stage by stage)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.dataset_flags import manifest_of, report_skipped
from envsound.cli.options import add_config_options, add_dataset_options, build_config, run_context


def register(command) -> None:
    p = command("stages", __doc__)
    add_dataset_options(p, folds_help="folds to rotate over (default: all the dataset has)")
    add_config_options(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.set_defaults(run=stages)


def stages(args: argparse.Namespace) -> int:
    from envsound.data.registry import dataset_root
    from envsound.recipes.stages import read_mixture_truth, run_stages

    config = build_config(args)
    args.subset = args.subset or "all"  # the stages use both origins
    manifest = manifest_of(args)
    summary = run_stages(manifest, config, folds=args.folds, out_dir=args.out, context=run_context(args),
                         truth=read_mixture_truth(dataset_root(args.dataset, args.root)))
    for row in summary["stages"]:
        print(f"{row['title']:<34} lwlrap {row['lwlrap']:.4f} ± {row['std_lwlrap']:.4f}  mAP {row['mAP']:.4f}")
    for row in summary["filter"]:
        precision = "" if row["label_precision"] is None else f", {row['label_precision']:.1%} of their labels right"
        print(f"fold {row['fold']}: kept {row['kept']} of {row['noisy']} noisy clips{precision}")
    print(f"{summary['seconds']:.0f} s -> {args.out / 'stages.json'}")
    return report_skipped(args, manifest.skipped)
