"""Score a checkpoint on held-out folds: accuracy, per-class P/R/F1, confusion matrix (multi-label: lwlrap, mAP,
micro/macro F1, per-class AP)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envsound.cli.dataset_flags import data_of, report_skipped
from envsound.cli.options import (add_dataset_options, add_device_option, add_json_option, add_model_argument,
                                  add_threshold_option, check_threshold, run_options)


def register(command) -> None:
    p = command("evaluate", __doc__)
    add_model_argument(p, onnx=False, frozen=True, note=" (with --label-map: zero-shot)")
    add_dataset_options(p, folds_help="folds to evaluate on (default: all)")
    p.add_argument("--label-map", type=Path, metavar="FILE.csv",
                   help="zero-shot: score the model's classes paired with the dataset's by this CSV (source,target "
                        "rows, e.g. Dog,dog, BirdNET's Dog_Dog,dog; quote a name holding a comma; the logits of "
                        "several sources of one target are averaged), or audioset-esc10: the ESC-10 map shipped with "
                        "envsound; every dataset class needs one")
    add_json_option(p, "print the report as JSON")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="also write report.json, report.txt, predictions.csv and report_confusion.png (multi-label: "
                        "report_per_class_ap.png) here")
    add_threshold_option(p)
    add_device_option(p, precision=True)
    p.set_defaults(run=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    from envsound.evaluation.metrics import format_report_text
    from envsound.recipes import api

    check_threshold(args)
    run = api.evaluate(args.checkpoint, data_of(args), out=args.out, label_map=args.label_map, threshold=args.threshold,
                       device=args.device, precision=args.precision, options=run_options(args))
    print(json.dumps(run.metrics) if args.json else format_report_text(run.metrics))
    return report_skipped(args, run.skipped)
