"""Ranking an embeddings store with a learned head (``envsound predict MODEL DB --out R``): windows a second and peak
memory.

    python benchmarks/bench_rank_store.py [--windows 1000000] [--dim 960] [--file-windows 600] [--labels 3]
                                          [--window-scores] [--precision 32] [--keep DIR] [--json]

The store is written directly in its layout (:mod:`envsound.inference.embeddings.store`), not by ``embed``: standard
normal vectors (seeded) stored float16, ``--file-windows`` windows a file (5-s windows at a 1-s hop: 600 is a 10-min
recording), parts of whole files up to 50,000 windows as ``embed`` commits them, and a journal whose settings name a
network by a made-up digest. It is written by a child process, so the peak resident memory reported (``ru_maxrss``
of this process) is the ranking's: the model loaded, the parts memory-mapped one at a time, the results' parts.

The model is learned-like: an EfficientAT network as wide as ``--dim`` (its embedding: width ``dim / 1280``), random
weights (only its head runs), ``--labels`` labels, multi-label with per-label thresholds, and ``meta["trunk"]``
naming the store's network, as ``envsound learn`` writes it. Ranking runs ``envsound.scan`` on the store (files,
windows; with ``--window-scores`` a ``p:LABEL`` column per label) into a new results folder.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

PART_WINDOWS = 50_000  # as envsound.inference.embeddings.archive commits them
TRUNK = "ab" * 32  # the made-up digest of the network the store was embedded with


def build_store_apart(out: Path, **sizes) -> None:
    """:func:`build_store` in a forked child process, so that the peak memory this process measures is not the
    build's."""
    child = multiprocessing.get_context("fork").Process(target=build_store, args=(out,), kwargs=sizes)
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"building the store failed (exit code {child.exitcode})")


def build_store(out: Path, *, windows: int, dim: int, file_windows: int) -> None:
    """A store of ``windows`` random float16 vectors of width ``dim``, ``file_windows`` windows a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from envsound.inference.archive.journal import Journal
    from envsound.inference.embeddings.store import STORE_KIND, TABLES

    settings = {"store": STORE_KIND, "model": TRUNK, "model_file": "trunk.pt", "precision": "auto", "layer": "embed",
                "window_seconds": 5.0}
    journal = Journal.open(out, settings, tables=TABLES)
    (out / "windows").mkdir(exist_ok=True)
    (out / "embeddings").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    per_part = max(1, PART_WINDOWS // file_windows) * file_windows
    first, number, file = 0, 1, 0
    while first < windows:
        rows = min(per_part, windows - first)
        counts = [min(file_windows, rows - at) for at in range(0, rows, file_windows)]
        names = [f"site{(file + i) % 10}/rec{file + i:07d}.flac" for i in range(len(counts))]
        starts = np.concatenate([np.arange(count, dtype=np.float64) for count in counts])
        np.save(out / "embeddings" / f"part-{number:06d}.npy",
                rng.standard_normal((rows, dim), dtype=np.float32).astype(np.float16))
        table = pa.table({"window": pa.array(np.arange(first, first + rows), pa.int64()),
                          "file": pa.array(np.repeat(names, counts).tolist(), pa.string()),
                          "start": pa.array(starts, pa.float64()), "end": pa.array(starts + 5.0, pa.float64())})
        pq.write_table(table, out / "windows" / f"part-{number:06d}.parquet")
        journal.commit(number, [(name, True, count + 4.0) for name, count in zip(names, counts)])
        first, number, file = first + rows, number + 1, file + len(counts)
    journal.close()


def learned_model(path: Path, *, dim: int, labels: int) -> Path:
    """A learned-like checkpoint (see the module's docstring)."""
    import torch

    from envsound.models.checkpoint import Checkpoint, save_checkpoint
    from envsound.recipes.config import resolve
    from envsound.models.clip import build_network
    from envsound.task import Task

    torch.manual_seed(0)
    config = resolve(overrides=["model.name=efficientat", f"model.options.width={dim / 1280}",
                                    "features.n_mels=128", "features.window_seconds=5.0",
                                    "features.eval_hop_seconds=1.0"])
    names = [f"sound{k}" for k in range(labels)]
    network = build_network(config, len(names))
    if network.embed_dim != dim:
        raise SystemExit(f"an EfficientAT network of width {dim / 1280} embeds in {network.embed_dim} dimensions, "
                         f"not {dim}: give a --dim that is a multiple of 8")
    task = Task(kind="multi_label", threshold=0.5, class_thresholds=tuple(0.3 + 0.1 * k for k in range(labels)))
    return save_checkpoint(path, Checkpoint(config=config, labels=names, task=task, state_dict=network.state_dict(),
                                            meta={"trunk": {"digest": TRUNK, "layer": "embed"}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=960)
    parser.add_argument("--file-windows", type=int, default=600)
    parser.add_argument("--labels", type=int, default=3)
    parser.add_argument("--window-scores", action="store_true")
    parser.add_argument("--precision", default="32")
    parser.add_argument("--keep", type=Path, help="write the store, model and results here (default: a temporary "
                                                  "folder, removed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rank-") as temporary:
        root = args.keep or Path(temporary)
        db = root / "store.db"
        started = time.perf_counter()
        build_store_apart(db, windows=args.windows, dim=args.dim, file_windows=args.file_windows)
        build = time.perf_counter() - started
        import envsound

        model = learned_model(root / "learned" / "model.ckpt", dim=args.dim, labels=args.labels)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        summary = envsound.scan(model, db, out=root / "ranked",
                                tables=envsound.Tables(window_scores=args.window_scores),
                                options=envsound.ScanOptions(precision=args.precision, progress=False))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ranking = summary.wall_seconds - summary.startup_seconds
        result = {"windows": args.windows, "dim": args.dim, "files": summary.files, "labels": args.labels,
                  "window_scores": args.window_scores, "precision": args.precision,
                  "store_bytes": sum(p.stat().st_size for p in db.rglob("*") if p.is_file()),
                  "build_s": round(build, 1), "startup_s": round(summary.startup_seconds, 2),
                  "rank_s": round(ranking, 1), "windows_per_s": round(args.windows / ranking),
                  "peak_rss_mb_before": round(before), "peak_rss_mb": round(peak),
                  "results_bytes": sum(p.stat().st_size for p in (root / "ranked").rglob("*") if p.is_file())}
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
