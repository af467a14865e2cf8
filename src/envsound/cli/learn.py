"""``envsound learn DB --label NAME --out DIR`` and ``envsound check MODEL DB``: thin calls of
:func:`envsound.agile.learn.learn` and :func:`envsound.agile.check.check`."""

from __future__ import annotations

import argparse
import json
import sys

from envsound.cli.options import show_progress


def learn(args: argparse.Namespace) -> int:
    from envsound.agile.learn import learn as learn_labels

    result = learn_labels(args.db, args.label, out=args.out, store=args.store, suggest=args.suggest,
                          precision=args.precision, negatives=args.negatives, progress=show_progress(args))
    summary = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the suggestions and nothing else
    for line in result.lines():
        print(line, file=summary)
    if args.json:
        for suggestion in result.suggestions:
            print(json.dumps(suggestion.to_dict()))
    elif result.suggestions:
        width = max([len(s.file) for s in result.suggestions] + [4])
        print(f"{'window':>8}  {'file':<{width}}  {'start':>8}  {'end':>8}  {'score':>6}  label")
        for s in result.suggestions:
            print(f"{s.window:>8}  {s.file:<{width}}  {s.start:>8.2f}  {s.end:>8.2f}  {s.score:>6.3f}  {s.label}")
    return 0


def add_learn_command(command) -> None:
    """The ``learn`` sub-command."""
    p = command("learn", "Learn a detector from the windows of an embeddings store reviewed for some labels (envsound "
                         "label DB): per label a logistic regression on the stored embeddings (no audio decoded), "
                         "written as an ordinary model (DIR/model.ckpt: the store's network with the learned head) "
                         "whose thresholds hold a target precision, cross-validated on the reviewed windows "
                         "(DIR/LABEL.curve.csv and .png); optionally the windows to review next.")
    p.add_argument("db", metavar="DB", help="the store folder (envsound embed MODEL INPUTS --out DB)")
    p.add_argument("--label", action="append", required=True, metavar="NAME",
                   help="a label to learn (repeat for several: the model's labels, in this order)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write model.ckpt and the curves to")
    p.add_argument("--suggest", type=int, default=0, metavar="K",
                   help="also list the K windows to review next (least certain, spread over files)")
    p.add_argument("--precision", type=float, default=0.9, metavar="P",
                   help="the target precision each label's threshold holds on its reviewed windows")
    p.add_argument("--negatives", choices=("weak", "none"), default="weak",
                   help="weak: unreviewed windows count as negatives of a tenth of a review's weight; none: only the "
                        "reviewed windows")
    p.add_argument("--store", metavar="URL",
                   help="the labels store: a SQLite path or a PostgreSQL URL (default DB/review.sqlite)")
    p.add_argument("--json", action="store_true",
                   help='the suggestions as JSON, one a line: {"window", "file", "start", "end", "label", "score"} '
                        "(the summary goes to stderr)")
    p.set_defaults(run=learn)


def check(args: argparse.Namespace) -> int:
    from envsound.agile.check import check as check_model

    result = check_model(args.model, args.db, labels=args.label, sample=args.sample, seed=args.seed,
                         store=args.store)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        for line in result.lines():
            print(line)
    return 0


def add_check_command(command) -> None:
    """The ``check`` sub-command."""
    p = command("check", "Check a learned detector's precision over a whole embeddings store: per label, draw windows "
                         "at random from those at or above its threshold into a sheet beside the model "
                         "(DIR/LABEL.check.csv, kept while the threshold is the same), and once they are reviewed "
                         "(envsound label DB --from the sheet) say the precision they show, with its "
                         "interval, and how many of the label's windows the store holds.")
    p.add_argument("model", metavar="MODEL", help="the learned model (envsound learn's DIR/model.ckpt)")
    p.add_argument("db", metavar="DB", help="the store folder it was learned from (envsound embed ... --out DB)")
    p.add_argument("--label", action="append", metavar="NAME",
                   help="a label to check (repeat for several; default: all the model's)")
    p.add_argument("--sample", type=int, default=50, metavar="K", help="windows drawn a label (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seeds the draw (default 0)")
    p.add_argument("--store", metavar="URL",
                   help="the labels store: a SQLite path or a PostgreSQL URL (default DB/review.sqlite)")
    p.add_argument("--json", action="store_true", help="the checks as one JSON object")
    p.set_defaults(run=check)
