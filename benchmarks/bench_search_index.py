"""Approximate indexes against exact search, on a real embeddings store or on random vectors: build time, bytes a
window, query latency p50/p95 and recall@K against exact search.

    python benchmarks/bench_search_index.py --store DB --queries QDB [--top 100] [--json]
    python benchmarks/bench_search_index.py --windows 1000000 [--dim 512] [--queries-n 50] [--json]

Needs the candidates installed beside numpy (``pip install numpy faiss-cpu usearch``); a candidate whose library is
missing is left out with a line on stderr. ``--candidates`` picks them (comma-separated, default all):

- ``exact``: numpy, float16 -> float32, cosine, in chunks of 65,536 (as ``envsound search``);
- ``usearch-hnsw``: USearch ``Index(ndim, metric="cos", dtype="f16")``, its defaults (connectivity 16,
  expansion_add 128), searched at ``expansion_search`` 64 and 512;
- ``faiss-hnsw``: FAISS ``IndexHNSWFlat(d, 32, METRIC_INNER_PRODUCT)`` on unit float32 vectors, efSearch 64 and 256;
- ``faiss-ivf-flat``: FAISS ``IndexIVFScalarQuantizer(QT_fp16)`` (IVF-Flat storing float16, as the store does),
  ``nlist`` = 4 sqrt(N) rounded to a power of two, k-means on at most ``--train-per-list`` (64) vectors a list, nprobe 8, 32 and 128;
- ``faiss-ivf-pq``: FAISS ``IndexIVFPQ`` (64 sub-quantisers of 8 bits: 64 bytes a vector), the same lists, nprobe
  8, 32, 128, with the top 4K re-scored exactly from the float16 vectors (``IndexRefineFlat`` would hold a float32
  copy; the store already has them).

Real data (``--store``): the vectors are the store's float16 parts; the queries are the windows of another store of
the same network (``--queries``: e.g. other recordings, so no query is in the index), ``--queries-n`` of them chosen
at random (seeded). Random data: standard normal vectors (seeded) stored float16; each query a stored vector plus
noise (0.5 of its scale). recall@K: the share of the exact top K that the candidate's top K holds, averaged over the
queries. Query times are one query a call, one thread (``--threads``, default 1: what a ``search`` call gets on a
shared machine; FAISS and USearch would use more for a batch of queries).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def store_vectors(folder: Path) -> np.ndarray:
    """Every window's float16 embedding of a store folder, in window order (its committed parts)."""
    parts = sorted((folder / "embeddings").glob("part-*.npy"))
    return np.concatenate([np.load(path) for path in parts])


def unit32(vectors: np.ndarray) -> np.ndarray:
    out = np.empty(vectors.shape, np.float32)
    for at in range(0, len(vectors), 65_536):
        block = vectors[at:at + 65_536].astype(np.float32)
        out[at:at + len(block)] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return out


def exact_top(vectors: np.ndarray, query: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``top`` (ids, scores) by cosine, as ``envsound search`` scores a store."""
    query = query / np.linalg.norm(query)
    scores = np.empty(len(vectors), np.float32)
    for at in range(0, len(vectors), 65_536):
        block = vectors[at:at + 65_536].astype(np.float32)
        scores[at:at + len(block)] = block @ query / np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block)), 1e-12)
    best = np.argpartition(-scores, top - 1)[:top]
    best = best[np.argsort(-scores[best])]
    return best, scores[best]


def rescored(vectors: np.ndarray, query: np.ndarray, ids: np.ndarray, top: int) -> np.ndarray:
    ids = ids[ids >= 0]
    block = vectors[np.sort(ids)].astype(np.float32)
    scores = block @ query / np.maximum(np.linalg.norm(block, axis=1), 1e-12)
    return np.sort(ids)[np.argsort(-scores)[:top]]


def candidates(vectors: np.ndarray, top: int, wanted: set[str], *, per_list: int = 64, threads: int = 1):
    """Yield (name, setting, build seconds, bytes a window, search(query) -> ids) for each candidate; built on all
    cores, searched on ``threads``."""
    n, dim = vectors.shape
    if "exact" in wanted:
        yield "exact numpy (float16 parts)", "-", 0.0, 2 * dim, lambda q: exact_top(vectors, q, top)[0]
    if "usearch-hnsw" in wanted:
        try:
            from usearch.index import Index
        except ImportError:
            print("usearch is not installed: usearch-hnsw left out", file=sys.stderr)
        else:
            index = Index(ndim=dim, metric="cos", dtype="f16")
            started = time.perf_counter()
            index.add(np.arange(n), vectors, threads=0)
            built = time.perf_counter() - started
            for expansion in (64, 512):
                def search(q, expansion=expansion, index=index):
                    index.expansion_search = expansion
                    return np.asarray(index.search(q.astype(np.float16), top, threads=1).keys)
                yield "USearch HNSW f16", f"expansion_search {expansion}", built, index.memory_usage / n, search
    try:
        import faiss
    except ImportError:
        if wanted & {"faiss-hnsw", "faiss-ivf-flat", "faiss-ivf-pq"}:
            print("faiss is not installed: the FAISS candidates left out", file=sys.stderr)
        return
    size = lambda index: len(faiss.serialize_index(index)) / n  # noqa: E731
    cores = faiss.omp_get_max_threads()
    if "faiss-hnsw" in wanted:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        faiss.omp_set_num_threads(cores)
        started = time.perf_counter()
        for at in range(0, n, 65_536):
            index.add(unit32(vectors[at:at + 65_536]))
        built = time.perf_counter() - started
        faiss.omp_set_num_threads(threads)
        bytes_a_window = size(index)
        for ef in (64, 256):
            def search(q, ef=ef, index=index):
                index.hnsw.efSearch = ef
                return index.search(q[None] / np.linalg.norm(q), top)[1][0]
            yield "FAISS HNSW32 (float32)", f"efSearch {ef}", built, bytes_a_window, search
    nlist = 2 ** max(4, round(math.log2(4 * math.sqrt(n))))
    sample = np.random.default_rng(2).choice(n, size=min(n, per_list * nlist), replace=False)
    for name in ("faiss-ivf-flat", "faiss-ivf-pq"):
        if name not in wanted:
            continue
        quantiser = faiss.IndexFlatIP(dim)
        if name == "faiss-ivf-flat":
            index = faiss.IndexIVFScalarQuantizer(quantiser, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                                  faiss.METRIC_INNER_PRODUCT)
            label, refine = f"FAISS IVF{nlist},SQfp16", 0
        else:
            index = faiss.IndexIVFPQ(quantiser, dim, nlist, 64, 8, faiss.METRIC_INNER_PRODUCT)
            label, refine = f"FAISS IVF{nlist},PQ64 + exact re-score of {4 * top}", 4 * top
        faiss.omp_set_num_threads(cores)
        started = time.perf_counter()
        index.train(unit32(vectors[np.sort(sample)]))
        for at in range(0, n, 65_536):
            index.add(unit32(vectors[at:at + 65_536]))
        built = time.perf_counter() - started
        faiss.omp_set_num_threads(threads)
        bytes_a_window = size(index)
        for nprobe in (8, 32, 128):
            def search(q, nprobe=nprobe, index=index, refine=refine):
                index.nprobe = nprobe
                q = q / np.linalg.norm(q)
                ids = index.search(q[None], refine or top)[1][0]
                return rescored(vectors, q, ids, top) if refine else ids
            yield label, f"nprobe {nprobe}", built, bytes_a_window, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a store folder (envsound embed --out DB): its windows")
    parser.add_argument("--queries", type=Path, help="another store of the same network: the queries' windows")
    parser.add_argument("--windows", type=int, default=200_000, help="random vectors (without --store)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries-n", type=int, default=50)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="threads a query (the indexes build on all cores)")
    parser.add_argument("--train-per-list", type=int, default=64, help="IVF k-means: training vectors a list")
    parser.add_argument("--candidates", default="exact,usearch-hnsw,faiss-hnsw,faiss-ivf-flat,faiss-ivf-pq")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.store:
        vectors = store_vectors(args.store)
        pool = store_vectors(args.queries).astype(np.float32)
        queries = pool[np.sort(rng.choice(len(pool), size=min(args.queries_n, len(pool)), replace=False))]
    else:
        vectors = np.empty((args.windows, args.dim), np.float16)
        for at in range(0, args.windows, 65_536):
            rows = min(65_536, args.windows - at)
            vectors[at:at + rows] = rng.standard_normal((rows, args.dim), dtype=np.float32)
        picks = rng.integers(0, args.windows, size=args.queries_n)
        queries = vectors[picks].astype(np.float32) + 0.5 * rng.standard_normal((len(picks), args.dim), np.float32)
    truths = [set(exact_top(vectors, q, args.top)[0].tolist()) for q in queries]
    wanted = set(args.candidates.split(","))
    for name, setting, built, bytes_a_window, search in candidates(vectors, args.top, wanted, threads=args.threads,
                                                                   per_list=args.train_per_list):
        times, recalls = [], []
        for query, truth in zip(queries, truths):
            started = time.perf_counter()
            found = search(query)
            times.append(time.perf_counter() - started)
            recalls.append(len(truth & set(np.asarray(found).tolist())) / args.top)
        result = {"windows": len(vectors), "dim": vectors.shape[1], "queries": len(queries), "candidate": name,
                  "setting": setting, "build_s": round(built, 1), "bytes_per_window": round(bytes_a_window, 1),
                  "p50_ms": round(float(np.median(times)) * 1000, 2),
                  "p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
                  f"recall_at_{args.top}": round(float(np.mean(recalls)), 4)}
        print(json.dumps(result) if args.json else " | ".join(f"{k} {v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
