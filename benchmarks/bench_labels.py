"""Labels against a large embeddings store: ``envsound.label`` (a CSV's rows matched to windows) and
``envsound.agile.labels.labelled`` (the current verdicts read back), wall time and peak memory.

    python benchmarks/bench_labels.py [--windows 10000000] [--rows 1000] [--folder /tmp/bench-labels] [--json]

The store is made without a model (a store's layout, :mod:`envsound.inference.embeddings.store`): ``--windows`` windows,
500 a file (1-s windows at a 0.5-s hop), in parts of 50,000 as ``embed`` writes them, 8-d zero embeddings (labels read
no embedding); it is kept in ``--folder`` and reused by the next run of the same size. The CSV: ``--rows`` rows of
random files (seeded), every other row a window's own times (the 0.01-s rule), the others a 10-s range (the
centre rule: about 20 windows each). Each run labels into a new SQLite store in the folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

PER_FILE = 500
PART_WINDOWS = 50_000


def make_store(out: Path, windows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from envsound.inference.archive.journal import Journal
    from envsound.inference.embeddings.store import STORE_KIND, TABLES

    journal = Journal.open(out, {"store": STORE_KIND, "model": "bench", "model_file": "bench", "precision": "auto",
                                 "layer": "embed", "window_seconds": 1.0}, tables=TABLES)
    for folder in ("windows", "embeddings"):
        (out / folder).mkdir(exist_ok=True)
    for number, first in enumerate(range(0, windows, PART_WINDOWS), start=1):
        ids = np.arange(first, min(first + PART_WINDOWS, windows))
        files = [name(i // PER_FILE) for i in range(ids[0], ids[-1] + 1)]
        starts = (ids % PER_FILE) * 0.5
        pq.write_table(pa.table({"window": ids, "file": files, "start": starts, "end": starts + 1.0}),
                       out / "windows" / f"part-{number:06d}.parquet")
        np.save(out / "embeddings" / f"part-{number:06d}.npy", np.zeros((len(ids), 8), np.float16))
        journal.commit(number, [(file, True, PER_FILE / 2 + 0.5) for file in sorted(set(files))])
    journal.close()


def name(file: int) -> str:
    return f"/archive/site{file // 100:03d}/recording-{file:07d}.wav"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10_000_000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-labels"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from envsound.agile.labels import label, labelled

    db = args.folder / f"store-{args.windows}.db"
    if not db.exists():
        started = time.perf_counter()
        make_store(db, args.windows)
        print(f"made {db} in {time.perf_counter() - started:.1f} s")
    rng = np.random.default_rng(0)
    lines = ["file,start,end,label,verdict"]
    for row in range(args.rows):
        file, start = int(rng.integers(args.windows // PER_FILE)), int(rng.integers(PER_FILE - 20)) * 0.5
        lines.append(f"{name(file)},{start},{start + (1.0 if row % 2 else 10.0)},saw,{'yes' if row % 3 else 'no'}")
    source = args.folder / "labels.csv"
    source.write_text("\n".join(lines) + "\n")
    store = args.folder / f"review-{time.time_ns()}.sqlite"
    started = time.perf_counter()
    summary = label(db, source, store=store, reviewer="bench")
    label_seconds = time.perf_counter() - started
    started = time.perf_counter()
    verdicts = labelled(db, ["saw"], store=store)["saw"]
    labelled_seconds = time.perf_counter() - started
    result = {"windows": args.windows, "rows": args.rows, "stored": summary.stored, "refused": len(summary.problems),
              "label_s": round(label_seconds, 2), "labelled_s": round(labelled_seconds, 2),
              "labelled_windows": len(verdicts.windows),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.windows:,} windows, {args.rows} rows: label {label_seconds:.2f} s ({summary.stored} verdicts, "
              f"{len(summary.problems)} refused), labelled {labelled_seconds:.2f} s ({len(verdicts.windows)} "
              f"windows); peak RSS {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
