"""Label windows of an embeddings store (made by embed MODEL INPUTS --out DB) from a CSV, or export its labels. The
CSV's header is file,start,end,label,verdict (a row whose start and end are a window's within 0.01 s labels that
window; any other row every window of the file whose centre lies in [start, end)) or window,label,verdict; a verdict
is yes, no or unsure. Every verdict is kept with who gave it and when; the latest is the current one. Exit status 1
when a row was refused (each named on stderr; the others are stored)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envsound.cli.options import add_store_option
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("label", __doc__)
    p.add_argument("db", metavar="DB", help="the store folder")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--from", dest="source", type=Path, metavar="CSV", help="store the verdicts of this CSV")
    action.add_argument("--export", type=Path, metavar="OUT",
                        help="write the current verdicts to OUT: a CSV (window,file,start,end,label,verdict,reviewer,"
                             "given), or with --raven a folder of Raven selection tables, one per audio file")
    p.add_argument("--raven", action="store_true", help="--export Raven selection tables (with a Verdict column)")
    p.add_argument("--history", action="store_true",
                   help="--export every verdict ever given, oldest first, not only the current ones")
    add_store_option(p)
    p.add_argument("--reviewer", metavar="NAME", help="who gives these labels (default: the system's user name)")
    p.set_defaults(run=label)


def label(args: argparse.Namespace) -> int:
    from envsound.agile.labels import export_labels
    from envsound.agile.labels import label as label_windows

    if args.export is not None:
        if args.reviewer is not None:
            raise ConfigError("--reviewer names who gives labels (with --from); an export writes the ones given")
        out = export_labels(args.db, args.export, format="raven" if args.raven else "csv", history=args.history,
                            store=args.store)
        print(f"labels of {args.db} -> {out}")
        return 0
    if args.raven or args.history:
        raise ConfigError("--raven and --history are for --export OUT")
    summary = label_windows(args.db, args.source, store=args.store, reviewer=args.reviewer)
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    print(summary.line())
    return 1 if summary.problems else 0
