"""Check a detector envsound learn made for its precision over a whole embeddings store: per label, draw windows at
random from those at or above its threshold into a sheet beside the model (DIR/LABEL.check.csv, kept while the
threshold is the same), and once they are reviewed (envsound label DB --from the sheet) say the precision they show,
with its interval, and about how many of those windows hold the label. --density: the call density instead, a
sample stratified over score bins below the threshold too (DIR/LABEL.density.csv), then the share of windows and of
recording time that hold the label and the detector's recall at its threshold, each with its 95-percent interval."""

from __future__ import annotations

import argparse
import json

from envsound.cli.options import add_json_option, add_store_option


def register(command) -> None:
    p = command("check", __doc__)
    p.add_argument("model", metavar="MODEL", help="the learned model (envsound learn's DIR/model.ckpt; no other model)")
    p.add_argument("db", metavar="DB", help="the store folder it was learned from (envsound embed ... --out DB)")
    p.add_argument("--label", action="append", metavar="NAME",
                   help="a label to check (repeat for several; default: all the model's)")
    p.add_argument("--sample", type=int, default=50, metavar="K", help="windows drawn a label (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seeds the draw (default 0)")
    p.add_argument("--density", action="store_true",
                   help="the call density: draw over score bins (below the threshold too) into DIR/LABEL.density.csv, "
                        "and say the share of windows and of time holding the label and the recall, with intervals")
    add_store_option(p)
    add_json_option(p, "the checks as one JSON object")
    p.set_defaults(run=check)


def check(args: argparse.Namespace) -> int:
    from envsound.agile.check import check as check_model

    result = check_model(args.model, args.db, labels=args.label, sample=args.sample, seed=args.seed,
                         store=args.store, density=args.density)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        for line in result.lines():
            print(line)
    return 0
