"""Peak memory of `envsound pretrain` over N and 10 N clips: features stream from the on-disk store, so the 10x run
must stay within 1.25x of the 1x run's peak resident memory.

    .venv/bin/python benchmarks/bench_pretrain_memory.py [--clips 2000] [--factor 10] [--json OUT.json]

The corpus is ESC-US style: a folder of 5-s mono WAV files at 22.05 kHz (a CSV and a README beside them, which
pretrain ignores). ``--distinct`` synthetic clips are written once and hard-linked under new names up to the clip count
(each name is its own store entry, so every clip is decoded and extracted: "repeated clips"). Each run is
`envsound pretrain --dataset unlabelled --model cnn --decoder upsample` for one epoch on 1-s windows, in a fresh
process; peak memory is that process's maximum resident set size (ru_maxrss, children included), imports and
model included. Throughput is training windows per second of the Lightning loop (pretrain.json), and clips per
second of the whole command (listing, extraction over 2 processes, training, held-out validation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

from envsound.hardware import describe_machine

RATE = 22050
# Runs the command and prints the largest resident set size (kB) of its process tree: a fresh parent per measurement.
PEAK_OF = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def write_corpus(folder: Path, *, clips: int, distinct: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(5 * RATE) / RATE
    originals = []
    for i in range(min(distinct, clips)):
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) * (1 + np.sin(2 * np.pi * rng.uniform(0.2, 3) * t))
        path = folder / "part0" / f"clip{i:06d}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (0.3 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32), RATE, subtype="PCM_16")
        originals.append(path)
    for i in range(len(originals), clips):
        part = folder / f"part{i // 5000}"
        part.mkdir(exist_ok=True)
        os.link(originals[i % len(originals)], part / f"clip{i:06d}.wav")
    (folder / "meta.csv").write_text("file,source\n")
    (folder / "README").write_text("a corpus of recordings\n")
    return folder


def run_pretrain(corpus: Path, work: Path) -> dict:
    args = [sys.executable, "-m", "envsound.cli.main", "pretrain", "--dataset", "unlabelled", "--root", str(corpus),
            "--model", "cnn", "--decoder", "upsample", "--out", str(work / "run"), "--cache-dir", str(work / "store"),
            "-q", "--set", "train.max_epochs=1", "--set", "features.window_seconds=1.0",
            "--set", "features.eval_hop_seconds=1.0", "--set", "train.batch_size=64"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_OF, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    peak = int(done.stderr.strip().splitlines()[-1])
    summary = json.loads((work / "run" / "pretrain.json").read_text())
    store_bytes = sum(p.stat().st_size for p in (work / "store").rglob("*.npy"))
    return {"peak_rss_mb": round(peak / 1024), "seconds": round(seconds, 1), "fit_seconds": summary["fit_seconds"],
            "train_windows_per_second": summary["train_clips_per_second"], "n_train": summary["n_train"],
            "n_val": summary["n_val"], "clips_per_second_whole_command": round(
                (summary["n_train"] + summary["n_val"]) / seconds, 1),
            "store_kb_per_clip": round(store_bytes / 1024 / (summary["n_train"] + summary["n_val"]), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=500, help="distinct clips written; the rest are hard links")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"machine": {**describe_machine(), "date": date.today().isoformat()}}
    print(json.dumps(results["machine"]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.clips, args.clips * args.factor):
            work = Path(tmp) / f"n{n}"
            corpus = write_corpus(work / "corpus", clips=n, distinct=args.distinct)
            results[str(n)] = run_pretrain(corpus, work)
            print(json.dumps({n: results[str(n)]}), flush=True)
    small, large = (results[str(n)]["peak_rss_mb"] for n in (args.clips, args.clips * args.factor))
    results["peak_ratio"] = round(large / small, 3)
    print(json.dumps({"peak_ratio": results["peak_ratio"]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
