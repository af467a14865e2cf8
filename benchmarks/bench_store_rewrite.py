"""What a changed file costs an embeddings store's commit (issue 68): the committed parts from the first that held the
file's older windows on, written again under new numbers with their window ids renumbered
(the store's sink, ``envsound.inference.embeddings.archive._StoreSink.rewrite``, called part after part as the archive
driver calls it before the commit's transaction).

    python benchmarks/bench_store_rewrite.py [--parts 40] [--dim 512] [--keep DIR] [--json]

The store is written by the store's own part writer and journal, as ``embed`` commits it: ``--parts`` parts of
50,000 windows (50 files of 1,000 windows each; standard normal vectors, seeded, stored float16). The changed file
is the first file of the first part, so every part is written again: the worst case, a file listed first. The first
part's embeddings are masked and written again; the others' are linked (no row dropped), their windows Parquet
rewritten for the new ids.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PART_WINDOWS = 50_000  # as envsound.inference.embeddings.archive commits them
FILE_WINDOWS = 1_000


def build_store(out: Path, *, parts: int, dim: int) -> None:
    """``parts`` committed parts of random float16 vectors of width ``dim``."""
    from envsound.inference.archive.journal import Journal
    from envsound.inference.embeddings.archive import _Part
    from envsound.inference.embeddings.store import STORE_KIND, TABLES

    journal = Journal.open(out, {"store": STORE_KIND, "model": "bench"}, tables=TABLES)
    rng = np.random.default_rng(0)
    try:
        for number in range(1, parts + 1):
            part = _Part()
            for file in range(PART_WINDOWS // FILE_WINDOWS):
                name = f"/archive/site{number:04d}/rec{file:03d}.wav"
                part.files += [name] * FILE_WINDOWS
                part.starts += (np.arange(FILE_WINDOWS) * 0.5).tolist()
                part.ends += (np.arange(FILE_WINDOWS) * 0.5 + 1.0).tolist()
                part.finished.append((name, True, FILE_WINDOWS * 0.5))
            part.vectors.append(rng.standard_normal((PART_WINDOWS, dim)).astype(np.float16))
            part.write(out, number, (number - 1) * PART_WINDOWS)
            journal.commit(number, part.finished)
    finally:
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=40, help="parts of 50,000 windows (default 40: 2M windows)")
    parser.add_argument("--dim", type=int, default=512, help="embedding width (default 512)")
    parser.add_argument("--keep", type=Path, help="build the store here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args()
    from envsound.inference.embeddings.archive import _StoreSink

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "store.db"
        started = time.monotonic()
        build_store(out, parts=args.parts, dim=args.dim)
        built = time.monotonic() - started
        started = time.monotonic()
        sink = _StoreSink(out)
        sink.next = FILE_WINDOWS  # the changed file's new windows, in the part being committed, come first
        rewritten, new = 0, args.parts + 2
        for old in range(1, args.parts + 1):  # as envsound.inference.archive.driver._commit does
            if sink.rewrite(old, new, {"/archive/site0001/rec000.wav"}):
                rewritten, new = rewritten + 1, new + 1
        seconds, end = time.monotonic() - started, sink.next
    result = {"windows": args.parts * PART_WINDOWS, "dim": args.dim, "parts": rewritten,
              "kept": end - FILE_WINDOWS, "build_s": round(built, 1), "rewrite_s": round(seconds, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['windows']:,} windows of {args.dim} dims in {result['parts']} parts: written again for one "
              f"changed file in {seconds:.2f} s ({result['kept']:,} windows kept; the store built in {built:.1f} s)")


if __name__ == "__main__":
    main()
