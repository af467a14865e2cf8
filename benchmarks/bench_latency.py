"""Latency per 5-s clip at batch 1: torch eager (`auto` precision), torch compiled, onnxruntime; and `predict` cold.

    .venv/bin/python benchmarks/bench_latency.py [--checkpoint runs/x/model.ckpt] [--rounds 5] [--calls 20]

Warm timings go through the product's own path, `Predictor.predict_waveform` on one 5-s clip already at the model's
rate (log-mel, windows, network, averaging), so they compare what a server or script pays per clip: each
configuration is warmed, then timed in `--rounds` interleaved rounds of `--calls` calls (clocks and caches drift
between rounds, so no configuration always runs first); the table gives the median call over all rounds.
`torch.compile` wraps the network only (the frontend is the same eager code); its compile time is given apart.
Cold: `envsound predict FILE clip.wav` in a fresh process (imports, model load, one prediction), for the checkpoint and
for the exported `.onnx`, and the Python API on the `.onnx` file with torch blocked from import; wall time and peak
resident memory, the median of 3 runs each. Without --checkpoint a default-config `cnn` is trained for one epoch on a
small synthetic set (weights do not matter for speed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import make_checkpoint  # noqa: E402

COLD = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""

NO_TORCH_API = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(name + " is blocked")
sys.meta_path.insert(0, NoTorch())
from envsound import load_model
print(load_model(sys.argv[1]).predict(sys.argv[2]).top)
"""


def cold(command: list[str], runs: int = 3) -> dict:
    """Median wall seconds and peak RSS (MB) of ``command``, each run in a fresh process."""
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", COLD, *command], capture_output=True, text=True, check=True)
        results.append(tuple(float(x) for x in out.stdout.split()))
    return {"seconds": round(statistics.median(r[0] for r in results), 2),
            "peak_mb": round(statistics.median(r[1] for r in results))}


def warm(predictors: dict, clip: np.ndarray, rate: int, *, rounds: int, calls: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        for _ in range(5):
            predictor.predict_waveform(clip, sample_rate=rate)
    for _ in range(rounds):
        for name, predictor in predictors.items():
            for _ in range(calls):
                start = time.perf_counter()
                predictor.predict_waveform(clip, sample_rate=rate)
                times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": round(1000 * statistics.median(t), 2),
                   "p90_ms": round(1000 * float(np.percentile(t, 90)), 2)} for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="model.ckpt to use (default: train a throwaway cnn)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    import torch

    from envsound.hardware import cpu_bf16_supported, cpu_model
    from envsound.inference.onnx_export import export_onnx
    from envsound.inference.predictor import Predictor

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or make_checkpoint(work)
        start = time.perf_counter()
        exported = export_onnx(checkpoint, work / "model.onnx")
        export_seconds = time.perf_counter() - start
        eager = Predictor.from_checkpoint(checkpoint)
        rate = eager.features.sample_rate
        clip = (0.1 * np.random.default_rng(1).standard_normal(5 * rate)).astype(np.float32)
        predictors = {"torch eager (auto: " + eager.model.runtime.precision + ")": eager,
                      "onnxruntime": Predictor.from_checkpoint(exported)}
        compiled = Predictor.from_checkpoint(checkpoint)
        compiled.model.network = torch.compile(compiled.model.network)
        start = time.perf_counter()
        compiled.predict_waveform(clip, sample_rate=rate)
        compile_seconds = time.perf_counter() - start
        predictors["torch compiled (auto)"] = compiled
        warm_ms = warm(predictors, clip, rate, rounds=args.rounds, calls=args.calls)
        wav = work / "clip.wav"
        sf.write(wav, clip, rate)
        envsound = [sys.executable, "-m", "envsound.cli.main", "predict"]
        result = {
            "date": date.today().isoformat(), "cpu": cpu_model(), "cores": __import__("os").cpu_count(),
            "bf16": cpu_bf16_supported(), "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "model": eager.model.config.model.name, "windows_per_clip": len(eager.predict_waveform(
                clip, sample_rate=rate, segments=True).segments),
            "export_seconds": round(export_seconds, 1), "onnx_mb": round(exported.stat().st_size / 2 ** 20, 2),
            "compile_seconds": round(compile_seconds, 1), "warm": warm_ms,
            "cold_predict_checkpoint": cold([*envsound, str(checkpoint), str(wav)]),
            "cold_predict_onnx": cold([*envsound, str(exported), str(wav)]),
            "cold_api_onnx_torch_blocked": cold([sys.executable, "-c", NO_TORCH_API, str(exported), str(wav)]),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
