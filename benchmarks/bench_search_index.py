"""An approximate index against exact search: USearch's HNSW over random float16 vectors, recall@K and time.

    python benchmarks/bench_search_index.py [--windows 200000] [--dim 512] [--queries 50] [--top 100] [--json]

Needs ``usearch`` (``pip install usearch``; not an envsound dependency: this measures whether it should become one).
The vectors are standard normal (seeded), stored float16 as the embeddings store keeps them; each query is a stored
vector plus noise (0.5 of its scale), so its neighbours are not just itself. Exact: numpy, float16 -> float32, cosine,
in chunks of 65,536 (as ``envsound search``). Index: USearch ``Index(ndim, metric="cos", dtype="f16")`` with its
defaults (connectivity 16, expansion_add 128), added in one call, then searched at each ``--expansion-search``.
recall@K: the share of the exact top K that the index's top K holds, averaged over the queries. Random vectors in 512
dimensions have no structure, which is the hard case for a graph index: real embeddings cluster.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def exact_top(vectors: np.ndarray, query: np.ndarray, top: int) -> np.ndarray:
    query = query / np.linalg.norm(query)
    scores = np.empty(len(vectors), np.float32)
    for at in range(0, len(vectors), 65_536):
        block = vectors[at:at + 65_536].astype(np.float32)
        scores[at:at + len(block)] = block @ query / np.maximum(np.linalg.norm(block, axis=1), 1e-12)
    best = np.argpartition(-scores, top - 1)[:top]
    return best[np.argsort(-scores[best])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--expansion-search", default="64", metavar="E,E,...",
                        help="USearch's expansion_search values to measure on the one index (default 64, its own)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from usearch.index import Index

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.windows, args.dim), dtype=np.float32).astype(np.float16)
    picks = rng.integers(0, args.windows, size=args.queries)
    queries = vectors[picks].astype(np.float32) + 0.5 * rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    index = Index(ndim=args.dim, metric="cos", dtype="f16")
    started = time.perf_counter()
    index.add(np.arange(args.windows), vectors)
    build = time.perf_counter() - started
    exact_times, truths = [], []
    for query in queries:
        started = time.perf_counter()
        truths.append(set(exact_top(vectors, query, args.top).tolist()))
        exact_times.append(time.perf_counter() - started)
    for expansion in [int(value) for value in args.expansion_search.split(",")]:
        index.expansion_search = expansion
        index_times, recalls = [], []
        for query, truth in zip(queries, truths):
            started = time.perf_counter()
            found = index.search(query.astype(np.float16), args.top).keys
            index_times.append(time.perf_counter() - started)
            recalls.append(len(truth & set(np.asarray(found).tolist())) / args.top)
        result = {"windows": args.windows, "dim": args.dim, "top": args.top, "queries": args.queries,
                  "expansion_search": expansion, "index_build_s": round(build, 1),
                  "index_bytes_per_window": round(index.memory_usage / args.windows, 1),
                  "exact_p50_ms": round(float(np.median(exact_times)) * 1000, 1),
                  "exact_p95_ms": round(float(np.percentile(exact_times, 95)) * 1000, 1),
                  "index_p50_ms": round(float(np.median(index_times)) * 1000, 2),
                  "index_p95_ms": round(float(np.percentile(index_times, 95)) * 1000, 2),
                  f"recall_at_{args.top}": round(float(np.mean(recalls)), 4)}
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
