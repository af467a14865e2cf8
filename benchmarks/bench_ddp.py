"""`envsound train` on 2 CPU processes (Lightning DDP, gloo) against 1: wall time and accuracy on the same data.

    .venv/bin/python benchmarks/bench_ddp.py [--root ../shared/data/esc50] [--epochs 40] [--seeds 0 1]

ESC-10, trained on folds 1-3 (240 clips, the default 8 offline copies, made once and shared through the store) and
tested on fold 4 (80 clips), default model and settings but ``train.max_epochs``. Each run is a fresh
`envsound train` process with ``--devices 1`` or ``--devices 2`` (each process then gets cores / devices torch
threads); the store is warmed first, so the wall times compare training alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from envsound.hardware import describe_machine

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"


def envsound(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "envsound.cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(json.dumps({**describe_machine(), "date": date.today().isoformat(), "epochs": args.epochs}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = ["--dataset", "esc10", "--root", str(args.root), "--cache-dir", str(Path(tmp) / "store"), "-q"]
        envsound("train", *data, "--folds", "1,2,3", "--out", str(Path(tmp) / "warm"),  # features and copies
                 "--set", "train.max_epochs=1")
        for seed in args.seeds:
            for devices in (1, 2):
                out = Path(tmp) / f"seed{seed}-devices{devices}"
                start = time.perf_counter()
                envsound("train", *data, "--folds", "1,2,3", "--out", str(out), "--devices", str(devices),
                         "--set", f"train.max_epochs={args.epochs}", "--set", f"train.seed={seed}")
                seconds = time.perf_counter() - start
                report = json.loads(envsound("evaluate", str(out / "model.ckpt"), *data, "--folds", "4", "--json"))
                print(json.dumps({"seed": seed, "devices": devices, "seconds": round(seconds, 1),
                                  "fold4_accuracy": report["accuracy"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
