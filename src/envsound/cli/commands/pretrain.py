"""Pre-train a convolutional autoencoder on audio (labels ignored) for --init; writes OUT/autoencoder.ckpt and
OUT/reconstructions.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.dataset_flags import manifest_of, report_skipped
from envsound.cli.options import add_config_options, add_dataset_options, build_config, parse_folds, run_context


def register(command) -> None:
    p = command("pretrain", __doc__)
    add_dataset_options(p, folds_help="folds to pre-train on (default: all); 'unlabelled' reads any folder of audio")
    p.add_argument("--exclude-folds", type=parse_folds, metavar="4,5",
                   help="leave these folds out, e.g. the test fold of the evaluation the encoder is meant for")
    add_config_options(p)
    p.add_argument("--decoder", required=True, choices=["unpool", "upsample"],
                   help="unpool: max-unpooling at the encoder's switch positions (dtu only); upsample: each value "
                        "repeated over its pooling window")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.set_defaults(run=pretrain)


def pretrain(args: argparse.Namespace) -> int:
    from envsound.evaluation.reconstructions import plot_reconstructions
    from envsound.recipes.pretrain import pretrain_autoencoder

    config = build_config(args)
    manifest = manifest_of(args)
    if args.folds:
        manifest = manifest.select_folds(args.folds)
    if args.exclude_folds:
        manifest.select_folds(args.exclude_folds)  # a fold the dataset does not have is an error
        manifest = manifest.subset([r for r in manifest.records if r.fold not in set(args.exclude_folds)])
    result = pretrain_autoencoder(manifest, config, decoder=args.decoder, out_dir=args.out,
                                  context=run_context(args))
    if result.examples is None:  # another process of a multi-process run: process 0 reports
        return 0
    figure = plot_reconstructions(result.checkpoint, result.examples, path=args.out / "reconstructions.png")
    best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    print(f"pre-trained the {config.model.name} autoencoder ({args.decoder}) on {result.n_train} clips "
          f"({result.n_val} held out, reconstruction error {best}), {result.epochs} epochs, {result.seconds:.0f} s "
          f"-> {result.checkpoint}, {figure}")
    return report_skipped(args, manifest.skipped + result.skipped)
