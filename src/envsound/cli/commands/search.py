"""Search an embeddings store (made by embed MODEL INPUTS --out DB) by example: the windows most like one or more
example sounds, by cosine similarity, best first: every stored window scored (exact), or from 200,000 windows on, the
candidates of the store's index."""

from __future__ import annotations

import argparse
import json
import sys

from envsound.cli.options import add_device_option, add_json_option


def register(command) -> None:
    p = command("search", __doc__)
    p.add_argument("db", metavar="DB", help="the store folder")
    p.add_argument("--example", action="append", metavar="FILE",
                   help="an example audio file (repeat for several: their windows are averaged)")
    p.add_argument("--window", action="append", type=int, metavar="ID",
                   help="a window of the store as an example, by its id (repeat for several; with --example too)")
    p.add_argument("--start", type=float, metavar="S",
                   help="only the example's windows whose centre lies at or after S seconds")
    p.add_argument("--end", type=float, metavar="E", help="only the example's windows whose centre lies before E s")
    p.add_argument("--top", type=int, default=10, metavar="K", help="windows to list (default 10)")
    p.add_argument("--no-collapse", action="store_true",
                   help="keep windows within one window length of a better window of the same file")
    p.add_argument("--model", metavar="MODEL",
                   help="the store's model file, when it has moved (checked against the digest the store records)")
    p.add_argument("--exact", action="store_true",
                   help="score every stored window, not through the store's index (a store of 200,000 windows or "
                        "more has one): to check the index's recall")
    add_json_option(p, 'one JSON object a line: {"window", "file", "start", "end", "score"}')
    add_device_option(p)
    p.set_defaults(run=search)


def search(args: argparse.Namespace) -> int:
    from envsound.inference.embeddings import search as search_store

    hits = search_store(args.db, args.example or (), top=args.top, start=args.start, end=args.end,
                        windows=args.window or (), collapse=not args.no_collapse, device=args.device,
                        model=args.model, exact=args.exact)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.to_dict()))
        return 0
    width = max([len(hit.file) for hit in hits] + [4])
    print(f"{'window':>8}  {'file':<{width}}  {'start':>8}  {'end':>8}  score")
    for hit in hits:
        print(f"{hit.window:>8}  {hit.file:<{width}}  {hit.start:>8.2f}  {hit.end:>8.2f}  {hit.score:.4f}")
    if not hits:
        print(f"{args.db}: the store holds no windows", file=sys.stderr)
    return 0
