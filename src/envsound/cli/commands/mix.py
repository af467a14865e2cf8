"""Build a multi-label set in the FSDKaggle2019 layout from a single-label dataset with folds: clips of 1-3 events
over a background, each made only of clips of one fold, a curated part with the true labels and a noisy part with
corrupted ones (OUT/train_curated.csv, train_noisy.csv, strong_labels.csv, mix.json). Train on it with --dataset
fsdkaggle2019."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.dataset_flags import manifest_of, report_skipped
from envsound.cli.options import add_dataset_options, add_mix_options, show_progress


def register(command) -> None:
    p = command("mix", __doc__)
    add_dataset_options(p, folds_help="folds to build from (default: all); each mixture stays in its fold")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="the new set's folder")
    add_mix_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a mixture set already in --out")
    p.set_defaults(run=mix)


def mix(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from envsound.data.mixtures import MixSettings, build_mixtures

    manifest = manifest_of(args)
    if args.folds:
        manifest = manifest.select_folds(args.folds)
    given = {f.name: getattr(args, f.name) for f in fields(MixSettings)
             if getattr(args, f.name, None) is not None}
    summary = build_mixtures(manifest, args.out, settings=MixSettings(**given), overwrite=args.overwrite,
                             progress=show_progress(args))
    print("\n".join(summary.lines()))
    return report_skipped(args, manifest.skipped)
