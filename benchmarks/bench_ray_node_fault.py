"""A Ray worker node lost mid-run (issue 68): `--engine ray` on a two-node local cluster whose second node is killed
while the scan runs; the job should complete with the local engine's rows.

    .venv/bin/python benchmarks/bench_ray_node_fault.py --checkpoint runs/demo/model/model.ckpt \
        --audio ../shared/data/esc50/audio [--clips 300] [--cpus 2] [--kill-after-parts 1]

The cluster is Ray's own `ray.cluster_utils.Cluster` on 127.0.0.1: a head and a second node of ``--cpus`` logical
CPUs each (the same processes `ray start --head` and `ray start --address` run: a raylet, an object store, workers).
Once the scan's journal lists ``--kill-after-parts`` committed parts, the second node is removed without grace
(`Cluster.remove_node(node, allow_graceful=False)`: its raylet and workers are killed, with the decoding tasks and
any model actor on it). Figures: whether the scan ended, its time against the local engine's, rows lost and twice
against the local engine's folder (files and windows), and the largest score difference (lines starting RESULT;
Ray's own logs of the lost node come between them).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

import envsound
from envsound.inference.archive.journal import JOURNAL_NAME


def parts(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / JOURNAL_NAME}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM parts").fetchone()[0]
    except sqlite3.Error:
        return 0


def table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name).sort_values(["file"] + (["start"] if name == "windows" else []),
                                                  kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--kill-after-parts", type=int, default=1)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="envsound-raynode-"))
    archive = work / "archive"
    archive.mkdir()
    for clip in sorted(p for p in Path(args.audio).iterdir() if p.suffix in {".wav", ".flac"})[:args.clips]:
        os.link(clip, archive / clip.name)
    options = envsound.ScanOptions(precision="32", progress=False, part_files=20)
    began = time.monotonic()
    local = envsound.scan(args.checkpoint, [archive], out=work / "local", options=options)
    local_s = time.monotonic() - began
    print(f"RESULT local: {local.files} files in {local_s:.1f} s", flush=True)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus,
                                                            "object_store_memory": 300 * 2**20})
    second = cluster.add_node(num_cpus=args.cpus, object_store_memory=300 * 2**20)
    cluster.wait_for_nodes()
    out = work / "ray"
    killed: dict = {}

    def kill_second_node() -> None:
        while not killed and parts(out) < args.kill_after_parts:
            time.sleep(0.05)
        killed["at"] = time.monotonic() - began
        cluster.remove_node(second, allow_graceful=False)
        killed["removed"] = time.monotonic() - began

    killer = threading.Thread(target=kill_second_node, daemon=True)
    began = time.monotonic()
    killer.start()
    from dataclasses import replace

    summary = envsound.scan(args.checkpoint, [archive], out=out,
                            options=replace(options, engine="ray", address=cluster.address))
    ray_s = time.monotonic() - began
    print(f"RESULT ray: {summary.files} files in {ray_s:.1f} s; second node killed at "
          f"{killed.get('at', float('nan')):.1f} s (after {args.kill_after_parts} part(s))", flush=True)
    for name, key in (("files", ["file"]), ("windows", ["file", "start"])):
        ours, theirs = table(out, name), table(work / "local", name)
        have = set(map(tuple, ours[key].astype(str).values))
        lost = sum(tuple(row) not in have for row in theirs[key].astype(str).values)
        twice = int(ours.duplicated(key).sum())
        same = len(ours) == len(theirs)
        diff = float(np.nanmax(np.abs(ours.score.to_numpy() - theirs.score.to_numpy()))) if same else float("nan")
        labels = same and bool((ours.label.fillna("") == theirs.label.fillna("")).all())  # None: no label passed
        print(f"RESULT {name}: {len(ours)} rows against {len(theirs)}; lost {lost}, twice {twice}, largest score "
              f"difference {diff:.2g}; labels identical: {labels}", flush=True)
    import ray

    ray.shutdown()
    cluster.shutdown()
    sys.exit(0 if killed else 1)


if __name__ == "__main__":
    main()
