"""Exact search by example in an embeddings store: latency over N stored windows, and the store's bytes a window.

    .venv/bin/python benchmarks/bench_search.py [--windows 200000] [--dim 512] [--repeats 7] [--json]
    .venv/bin/python benchmarks/bench_search.py --store DB --index [--repeats 50] [--json]

The store is written by the store's own part writer and journal (parts of 50,000 windows, float16), its vectors
random (standard normal, seeded) of ``--dim`` dimensions (512: mn04's embedding width); each query is a stored window
(`envsound.search(db, windows=[id])`: no model, no audio), so the figure is the store's scan alone: every part
memory-mapped, scored in chunks, the top rows looked up, near-duplicates collapsed. Peak memory is this process's
maximum resident set size (ru_maxrss) after the searches, numpy and pyarrow included.

``--store DB``: an existing store (e.g. real embeddings) instead of random vectors. ``--index``: also build the
store's index (:func:`envsound.inference.embeddings.index.update_index`, whatever the store's size; needs faiss) and
search through it: its build time and file's bytes a window, its search times, and recall@top of its hits against
the exact ones (collapse off, the queries' own windows included).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def build(out: Path, windows: int, dim: int) -> None:
    from envsound.inference.embeddings.archive import PART_WINDOWS, _Part
    from envsound.inference.embeddings.store import STORE_KIND, TABLES
    from envsound.inference.scan.journal import Journal

    rng = np.random.default_rng(0)
    journal = Journal.open(out, {"store": STORE_KIND, "model": "0" * 64, "model_file": "random", "precision": "32",
                                 "layer": "embed", "window_seconds": 1.0}, tables=TABLES)
    first, number = 0, 1
    while first < windows:
        rows = min(PART_WINDOWS, windows - first)
        part = _Part()
        files = first // 10 + np.arange(rows) // 10  # 10 windows a file, 0.5 s apart
        part.files = [f"file{f:07d}.wav" for f in files]
        part.starts = list((np.arange(rows) % 10) * 0.5)
        part.ends = [start + 1.0 for start in part.starts]
        part.vectors = [rng.standard_normal((rows, dim), dtype=np.float32).astype(np.float16)]
        part.finished = [(name, True, 5.5) for name in dict.fromkeys(part.files)]
        part.write(out, number, first)
        journal.commit(number, part.finished)
        first, number = first + rows, number + 1
    journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--store", type=Path, help="search this store folder instead of a random one")
    parser.add_argument("--index", action="store_true", help="also build the store's index and search through it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from envsound.inference.embeddings import EmbeddingsStore, search

    with tempfile.TemporaryDirectory() as tmp:
        out = args.store or Path(tmp) / "store.db"
        started = time.perf_counter()
        if args.store is None:
            build(out, args.windows, args.dim)
        built = time.perf_counter() - started
        store = EmbeddingsStore(out)
        size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file() and path.name != "index.npz")
        queries = np.random.default_rng(1).integers(0, store.windows, size=args.repeats)
        times, exact = [], []
        for query in queries:
            started = time.perf_counter()
            hits = search(out, windows=[int(query)], top=args.top, exact=True, collapse=not args.index)
            times.append(time.perf_counter() - started)
            exact.append({hit.window for hit in hits})
        result = {"windows": store.windows, "dim": int(store.vectors([0]).shape[1]), "top": args.top,
                  "build_s": round(built, 2), "bytes_per_window": round(size / store.windows, 1),
                  "search_p50_s": round(float(np.percentile(times, 50)), 3),
                  "search_p95_s": round(float(np.percentile(times, 95)), 3),
                  "search_max_s": round(max(times), 3), "search_min_s": round(min(times), 3)}
        if args.index:
            from envsound.inference.embeddings import index as index_module

            index_module.INDEX_MIN_WINDOWS = 0  # through the index whatever the store's size
            (out / index_module.INDEX_NAME).unlink(missing_ok=True)
            started = time.perf_counter()
            index_module.update_index(store)
            result["index_build_s"] = round(time.perf_counter() - started, 1)
            result["index_bytes_per_window"] = round((out / index_module.INDEX_NAME).stat().st_size / store.windows, 1)
            times, recalls = [], []
            for query, truth in zip(queries, exact):
                started = time.perf_counter()
                hits = search(out, windows=[int(query)], top=args.top, collapse=False)
                times.append(time.perf_counter() - started)
                recalls.append(len(truth & {hit.window for hit in hits}) / args.top)
            result.update({"index_search_p50_s": round(float(np.percentile(times, 50)), 4),
                           "index_search_p95_s": round(float(np.percentile(times, 95)), 4),
                           f"index_recall_at_{args.top}": round(float(np.mean(recalls)), 4)})
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
