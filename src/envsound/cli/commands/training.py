"""``envsound train``, ``cv`` and ``grid``: they share their options (data, config, --out, --init, semi-supervised);
thin calls of :mod:`envsound.recipes.api` and :func:`envsound.recipes.grid.grid_search`."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from envsound.cli.dataset_flags import data_of, manifest_of, report_skipped
from envsound.cli.options import (add_config_options, add_dataset_options, add_init_options, add_semi_options,
                                  build_config, run_context, run_options, unlabelled_manifest)

ROTATE_HELP = "official folds to rotate over (default: all the dataset has)"


def register(command) -> None:
    _training_command(command, "train", "Train a model on the given folds; writes OUT/model.ckpt and config.yaml, and "
                                        "for a network trained over epochs logs/ and curves.png (not for a baseline "
                                        "or a transfer.mode=probe run, which fit no epochs).",
                      folds_help="folds to train on (default: all); every clip trains unless train.val_fraction > 0 "
                                 "takes a validation split from inside them",
                      out_help="run folder", run=train)
    _training_command(command, "cv", "Leave-one-fold-out cross-validation; writes OUT/cv.json, predictions.csv, "
                                     "confusion.png.",
                      folds_help=ROTATE_HELP, out_help="run folder", run=cv)
    _training_command(command, "grid", "Grid search: cross-validate every combination of the comma-separated --set "
                                       "values (e.g. --set model.filters=16,32,64 --set train.batch_size=16,32); "
                                       "writes OUT/grid.md, OUT/grid.json and one cv run per point (a point with a "
                                       "cv.json is not rerun).",
                      folds_help=ROTATE_HELP, out_help="grid folder", run=grid)


def _training_command(command, name: str, help_text: str, *, folds_help: str, out_help: str, run) -> None:
    p = command(name, help_text)
    add_dataset_options(p, folds_help=folds_help)
    add_config_options(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help=out_help)
    add_init_options(p)
    add_semi_options(p)
    p.set_defaults(run=run)


def train(args: argparse.Namespace) -> int:
    from envsound.recipes import api

    config = build_config(args)
    unlabelled = unlabelled_manifest(args)
    run = api.train(data_of(args), out=args.out, init=args.init, config=config, options=run_options(args),
                    unlabelled=unlabelled)
    if run.model_path is None:  # another process of a multi-process run: process 0 reports
        return 0
    metrics = run.metrics
    semi = f" and {metrics['n_unlabelled']} unlabelled ({config.semi.method})" if metrics["n_unlabelled"] else ""
    print(f"trained {config.model.name} on {metrics['n_train']} clips ({metrics['n_val']} for validation){semi}, "
          f"{metrics['epochs']} epochs, {metrics['seconds']:.0f} s -> {run.model_path}")
    print(_score_line(args, config, run))
    return report_skipped(args, run.skipped)


def _score_line(args: argparse.Namespace, config, run) -> str:
    """The run's validation score when it took a validation split, else how to get an honest one."""
    metrics = run.metrics
    if metrics["n_val"] and metrics["best_score"] is not None:
        return (f"validation {config.train.monitor} {metrics['best_score']:.4f} on {metrics['n_val']} held-out clips "
                "of the training folds (the epoch kept); a test score needs folds the model never saw")
    tuned = metrics.get("events_tuned")
    if tuned:  # a frame model's validation clips chose how its frames become events, not an epoch
        return (f"validation event F1 {tuned['event_f1']:.4f} on {tuned['clips']} held-out clips of the training "
                "folds, which chose the events' decoding (so it flatters); a test score needs folds the model never "
                "saw" + (f": {_evaluate_command(args, run)}" if metrics["held_out_folds"] else ""))
    if metrics["held_out_folds"]:
        kept = "the validation clips chose no epoch" if metrics["n_val"] else "nothing was held out for validation"
        return f"no accuracy yet: {kept}; score it on the folds it never saw: {_evaluate_command(args, run)}"
    return (f"no accuracy: every clip was used for training; for an honest estimate run 'envsound cv --dataset "
            f"{args.dataset} --root {shlex.quote(str(args.root))} ...' (cross-validation), or take a validation "
            "split: --set train.val_fraction=0.1")


def _evaluate_command(args: argparse.Namespace, run) -> str:
    folds = ",".join(str(f) for f in run.metrics["held_out_folds"])
    return (f"envsound evaluate {shlex.quote(str(run.model_path))} --dataset {args.dataset} --root "
            f"{shlex.quote(str(args.root))} --folds {folds}")


def cv(args: argparse.Namespace) -> int:
    from envsound.recipes import api

    config = build_config(args)
    unlabelled = unlabelled_manifest(args)
    data = data_of(args, rotate=True)

    def show(fold: dict, score: str) -> None:  # each fold's result once, on stdout, as it finishes
        print(f"fold {fold['fold']}: {score} {fold[score]:.4f} ({fold['n_test']} clips){_event_scores(fold)}",
              flush=True)

    run = api.cross_validate(data, out=args.out, init=args.init, config=config, options=run_options(args),
                             unlabelled=unlabelled, on_fold=show)
    summary = run.metrics
    score = summary["score"]
    print(f"mean {score} {summary[f'mean_{score}']:.4f} ± {summary[f'std_{score}']:.4f} over "
          f"{summary['n_folds']} folds ({summary['seconds']:.0f} s) -> {args.out / 'cv.json'}")
    if "mean_event_f1" in summary:
        print("mean " + ", ".join(f"{name} {summary[f'mean_{name}']:.4f} ± {summary[f'std_{name}']:.4f}"
                                  for name in ("segment_f1", "event_f1", "psds")))
    return report_skipped(args, run.skipped)


def _event_scores(fold: dict) -> str:
    """A fold's event metrics, when its set has strong labels."""
    if "event_f1" not in fold:
        return ""
    return (f"; segment F1 {fold['segment_f1']:.4f}, event F1 {fold['event_f1']:.4f}, PSDS {fold['psds']:.4f} "
            f"(--segments baseline: event F1 {fold['sed']['baseline']['event_f1']:.4f})")


def grid(args: argparse.Namespace) -> int:
    from envsound.recipes.grid import grid_search, split_grid_overrides

    fixed, axes = split_grid_overrides(args.overrides)
    config = build_config(args, overrides=fixed)
    unlabelled = unlabelled_manifest(args)
    manifest = manifest_of(args, rotate=True)
    result = grid_search(manifest, config, axes, folds=args.folds, out_dir=args.out, context=run_context(args),
                         init=args.init, unlabelled=unlabelled)
    print(result.markdown, end="")
    print(f"{len(result.points)} point(s) ({result.n_run} run now, {len(result.points) - result.n_run} reused) -> "
          f"{args.out / 'grid.md'}, {args.out / 'grid.json'}")
    skipped = list(manifest.skipped)
    for point in result.points:  # each point's cv.json lists what its folds left out (decoding happens there)
        summary = json.loads((Path(point["dir"]) / "cv.json").read_text(encoding="utf-8"))
        skipped += [(s["file"], s["reason"]) for s in summary.get("skipped", [])]
    return report_skipped(args, skipped)
