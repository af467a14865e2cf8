"""Exact search by example in an embeddings store: latency over N stored windows, and the store's bytes a window.

    .venv/bin/python benchmarks/bench_search.py [--windows 200000] [--dim 512] [--repeats 7] [--json]
    .venv/bin/python benchmarks/bench_search.py --store DB --index [--repeats 50] [--recall-queries N] [--json]

The store is written by the store's own part writer and journal (parts of 50,000 windows, float16), its vectors
random (standard normal, seeded) of ``--dim`` dimensions (512: mn04's embedding width); each query is a stored window
(`envsound.search(db, windows=[id])`: no model, no audio), so the figure is the store's scan alone: every part
memory-mapped, scored in chunks, the top rows looked up, near-duplicates collapsed. Peak memory is this process's
maximum resident set size (ru_maxrss) after the searches, numpy and pyarrow included.

``--store DB``: an existing store (e.g. real embeddings) instead of random vectors. ``--index``: also build the
store's index (:func:`envsound.inference.embeddings.index.update_index`, whatever the store's size; needs faiss) and
search through it: its build time and file's bytes a window, its search times, and recall@top of its hits against
the exact ones (collapse off, the queries' own windows included). The index is built in a child process (forked
before any search), so ``index_build_peak_rss_mib`` is the build's own peak; ``index_load_s`` is this process's
reading of the file before the timed searches. ``--recall-queries N``: exact search (its times and the recall) for
the first N queries only (at 10 million windows each takes ~9 s), the index's for all ``--repeats``.
``--reuse-index``: search an index already in the store folder instead of building it. ``load_*``: the 1-minute
load average at the start and end of each phase (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def build(out: Path, windows: int, dim: int) -> None:
    from envsound.inference.archive.journal import Journal
    from envsound.inference.embeddings.archive import PART_WINDOWS, _Part
    from envsound.inference.embeddings.store import STORE_KIND, TABLES

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


def build_index(out: Path) -> None:
    """Build the store's index anew (in a child process: its peak RSS is the build's)."""
    from envsound.inference.embeddings import EmbeddingsStore
    from envsound.inference.embeddings import index as index_module

    (out / index_module.INDEX_NAME).unlink(missing_ok=True)
    index_module.update_index(EmbeddingsStore(out))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--store", type=Path, help="search this store folder instead of a random one")
    parser.add_argument("--index", action="store_true", help="also build the store's index and search through it")
    parser.add_argument("--recall-queries", type=int, help="exact search for the first N queries only")
    parser.add_argument("--reuse-index", action="store_true", help="search the store's index as it is")
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
        result = {"windows": store.windows, "dim": int(store.vectors([0]).shape[1]), "top": args.top,
                  "build_s": round(built, 2), "bytes_per_window": round(size / store.windows, 1)}
        if args.index:
            from envsound.inference.embeddings import index as index_module

            index_module.INDEX_MIN_WINDOWS = 0  # through the index whatever the store's size
            if not args.reuse_index:
                result["load_index_build"] = [load()]
                started = time.perf_counter()
                child = multiprocessing.get_context("fork").Process(target=build_index, args=(out,))
                child.start()
                child.join()
                if child.exitcode:
                    raise SystemExit(f"building the index failed (exit code {child.exitcode})")
                result["index_build_s"] = round(time.perf_counter() - started, 1)
                result["load_index_build"].append(load())
                result["index_build_peak_rss_mib"] = round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
            result["index_bytes_per_window"] = round((out / index_module.INDEX_NAME).stat().st_size / store.windows, 1)
            result["index_bytes"] = (out / index_module.INDEX_NAME).stat().st_size
        result["load_exact"] = [load()]
        times, exact = [], []
        for query in queries[:args.recall_queries]:
            started = time.perf_counter()
            hits = search(out, windows=[int(query)], top=args.top, exact=True, collapse=not args.index)
            times.append(time.perf_counter() - started)
            exact.append({hit.window for hit in hits})
        result["load_exact"].append(load())
        result.update({"exact_queries": len(times), "search_p50_s": round(float(np.percentile(times, 50)), 3),
                       "search_p95_s": round(float(np.percentile(times, 95)), 3),
                       "search_max_s": round(max(times), 3), "search_min_s": round(min(times), 3)})
        if args.index:
            started = time.perf_counter()
            index_module.update_index(store)  # read once, as a server's first search would
            result["index_load_s"] = round(time.perf_counter() - started, 2)
            result["load_index_search"] = [load()]
            times, recalls = [], []
            for at, query in enumerate(queries):
                started = time.perf_counter()
                hits = search(out, windows=[int(query)], top=args.top, collapse=False)
                times.append(time.perf_counter() - started)
                if at < len(exact):
                    recalls.append(len(exact[at] & {hit.window for hit in hits}) / args.top)
            result["load_index_search"].append(load())
            result.update({"index_queries": len(times), "index_search_p50_s": round(float(np.percentile(times, 50)), 4),
                           "index_search_p95_s": round(float(np.percentile(times, 95)), 4),
                           f"index_recall_at_{args.top}": round(float(np.mean(recalls)), 4)})
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
