"""Learn a detector from the windows of an embeddings store reviewed for some labels (envsound label DB): per label a
logistic regression on the stored embeddings (no audio decoded), written as an ordinary model (DIR/model.ckpt: the
store's network with the learned head) whose thresholds hold a target precision, cross-validated on the reviewed
windows (DIR/LABEL.curve.csv and .png); optionally the windows to review next."""

from __future__ import annotations

import argparse
import json
import sys

from envsound.cli.options import add_json_option, add_store_option, show_progress


def register(command) -> None:
    p = command("learn", __doc__)
    p.add_argument("db", metavar="DB", help="the store folder (envsound embed MODEL INPUTS --out DB)")
    p.add_argument("--label", action="append", required=True, metavar="NAME",
                   help="a label to learn (repeat for several: the model's labels, in this order)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write model.ckpt and the curves to")
    p.add_argument("--suggest", type=int, default=0, metavar="K",
                   help="also list the K windows to review next (least certain, spread over files)")
    p.add_argument("--disagreements", type=int, default=0, metavar="K",
                   help="also list, per label, the K reviewed windows whose out-of-fold score is farthest from their "
                        "verdict (a no scoring high, a yes low): answers to look at again")
    p.add_argument("--precision", type=float, default=0.9, metavar="P",
                   help="the target precision each label's threshold holds on its reviewed windows")
    p.add_argument("--context", type=float, default=1.0, metavar="SECONDS",
                   help="the model scores each window with its file's windows starting within this many seconds of "
                        "it (their mean logit: +-1 window at mn04's 1-s hop), learned on their mean embedding; a "
                        "live sensor reports each window once those are heard (mn04: one hop later); 0: each window "
                        "alone")
    p.add_argument("--negatives", choices=("weak", "none"), default="weak",
                   help="weak: unreviewed windows count as negatives of a tenth of a review's weight; none: only the "
                        "reviewed windows")
    add_store_option(p)
    add_json_option(p, 'the suggestions and disagreements as JSON, one a line: {"kind", "window", "file", "start", '
                       '"end", "label", "score"} (a disagreement adds "verdict", "disagrees"; the summary goes to '
                       "stderr)")
    p.set_defaults(run=learn)


def learn(args: argparse.Namespace) -> int:
    from envsound.agile.learn import learn as learn_labels

    result = learn_labels(args.db, args.label, out=args.out, store=args.store, suggest=args.suggest,
                          precision=args.precision, negatives=args.negatives, progress=show_progress(args),
                          disagreements=args.disagreements, context=args.context)
    summary = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the suggestions and nothing else
    for line in result.lines():
        print(line, file=summary)
    listed = [d for r in result.labels for d in r.disagreements]
    if args.json:
        for kind, rows in (("suggestion", result.suggestions), ("disagreement", listed)):
            for row in rows:
                print(json.dumps({"kind": kind, **row.to_dict()}))
        return 0
    if result.suggestions:
        _table("", result.suggestions, lambda s: f"{s.score:>6.3f}  {s.label}")
    if listed:
        _table("reviewed, farthest from their verdicts (out of fold)", listed,
               lambda d: f"{d.score:>6.3f}  {d.label}  {d.verdict}{'  disagrees' if d.disagrees else ''}")
    return 0


def _table(title: str, rows: list, tail) -> None:
    """A table of windows (under ``title`` when given): id, file, start, end, then ``tail(row)`` (score, label ...)."""
    width = max([len(row.file) for row in rows] + [4])
    if title:
        print(f"{title}:")
    print(f"{'window':>8}  {'file':<{width}}  {'start':>8}  {'end':>8}  {'score':>6}  label")
    for row in rows:
        print(f"{row.window:>8}  {row.file:<{width}}  {row.start:>8.2f}  {row.end:>8.2f}  {tail(row)}")
