"""End-to-end prediction: `envsound predict` on one file, cold (a fresh process), and peak memory on a 1-hour file.

    .venv/bin/python benchmarks/bench_predict.py [--checkpoint runs/x/model.ckpt] [--hours 1.0] [--json]

Without --checkpoint a default-config `cnn` is trained for one epoch on a small synthetic set first (the weights do
not matter for speed or memory). The long file is 44.1 kHz 16-bit mono WAV (303 MiB per hour), written in blocks.
Peak memory is the child process's maximum resident set size (ru_maxrss), imports and model included.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf


def make_checkpoint(work: Path) -> Path:
    from envsound.data.synthetic import prepare_synthetic
    from envsound.recipes.config import resolve
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    manifest = prepare_synthetic(work / "data").select_folds([1])
    config = resolve(overrides=["train.max_epochs=1", "train.val_fraction=0"])
    return train_model(manifest, config, out_dir=work / "run", context=RunContext(progress=False)).checkpoint


def write_long_wav(path: Path, *, hours: float, rate: int = 44100) -> Path:
    rng = np.random.default_rng(0)
    block = rate * 60
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        for minute in range(int(round(hours * 60))):
            t = (np.arange(block) + minute * block) / rate
            tone = 0.2 * np.sin(2 * np.pi * (300 + 50 * (minute % 7)) * t)
            out.write((tone + 0.05 * rng.standard_normal(block)).astype(np.float32))
    return path


def run_predict(checkpoint: Path, audio: Path) -> tuple[float, float, str]:
    """Seconds and peak RSS (MB) of `envsound predict` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "envsound.cli.main", "predict", str(checkpoint), str(audio), "--json"],
                         capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("peak RSS not attributable: run each measurement in a fresh benchmark process")
    return seconds, peak / 1024, run.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="model.ckpt to use (default: train a throwaway one)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the long file (default 1.0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or make_checkpoint(work)
        short = work / "clip.wav"
        sf.write(short, (0.1 * np.random.default_rng(1).standard_normal(5 * 44100)).astype(np.float32), 44100)
        cold_seconds, short_peak, _ = run_predict(checkpoint, short)
        long_path = write_long_wav(work / "long.wav", hours=args.hours)
        # ru_maxrss of children is a running maximum over all of them, so the long run goes in a fresh process.
        code = ("import json,sys; sys.path.insert(0, %r); import bench_predict as b; from pathlib import Path; "
                "print(json.dumps(b.run_predict(Path(%r), Path(%r))[:2]))") % (
            str(Path(__file__).parent), str(checkpoint), str(long_path))
        long_seconds, long_peak = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                                            text=True, check=True).stdout)
        result = {
            "date": date.today().isoformat(), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "cold_predict_5s_clip_seconds": round(cold_seconds, 2), "cold_predict_peak_mb": round(short_peak),
            "long_file_hours": args.hours, "long_file_mb_on_disk": round(long_path.stat().st_size / 2**20),
            "long_predict_seconds": round(long_seconds, 1), "long_predict_peak_mb": round(long_peak)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
