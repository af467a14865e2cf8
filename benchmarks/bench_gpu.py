"""Latency per 5-s clip at batch 1 on each device and precision this machine offers, through `Predictor`.

    python benchmarks/bench_gpu.py MODEL [MODEL ...] [--rounds 5] [--calls 20] [--json FILE]

MODEL is a checkpoint, an AudioSet release file or an installed name (`efficientat-mn04`). Each (model, device,
precision) is warmed with 5 calls, then timed in `--rounds` interleaved rounds of `--calls` calls on the same random
5-s clip at the model's rate; the median and 90th percentile call are printed. Devices: cpu, and cuda when present;
precisions: `32` and `auto` (bf16 or 16-mixed where the runtime picks it). The figure is what one request costs a
server: frontend, windows, network, averaging, and the copy to and from the device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from envsound.inference.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    predictors = {}
    for model in args.models:
        for device in devices:
            for precision in ("32", "auto"):
                predictors[(model, device, precision)] = Predictor.from_checkpoint(model, device=device,
                                                                                   precision=precision)
    rng = np.random.default_rng(0)
    clips = {key: (0.1 * rng.standard_normal(5 * p.features.sample_rate)).astype(np.float32)
             for key, p in predictors.items()}
    times: dict = {key: [] for key in predictors}
    for key, predictor in predictors.items():
        for _ in range(5):
            predictor.predict_waveform(clips[key], sample_rate=predictor.features.sample_rate)
    for _ in range(args.rounds):
        for key, predictor in predictors.items():
            for _ in range(args.calls):
                start = time.perf_counter()
                predictor.predict_waveform(clips[key], sample_rate=predictor.features.sample_rate)
                times[key].append(time.perf_counter() - start)
    rows = [{"model": model, "device": device, "precision": precision,
             "median_ms": round(1000 * statistics.median(t), 2), "p90_ms": round(1000 * float(np.percentile(t, 90)), 2)}
            for (model, device, precision), t in times.items()]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {name}")
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "gpu": name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
