"""Throughput of the torch log-mel frontend against librosa (one clip at a time, as users call it).

Both sides turn the same 5-second clips at 22.05 kHz into 128-band log-mel spectrograms (n_fft 1024, hop 512, dB with
ref 1.0 and no top_db). ``LogMel`` is timed twice: on batches of ``--batch`` clips (training, evaluation) and on one
clip per call (feature extraction, ``compute_features``). The clips are ESC-50 recordings (44.1 kHz FLAC, resampled by
envsound's loader) when the data set is found, else seeded synthetic noise + tones. Each side runs ``--repeats`` times,
the sides alternating; the best time counts (the machine is shared). Also reports, for each way of calling
``LogMel``, the largest absolute dB difference to librosa: over all cells, over cells above -60 dB, and over those
also within 60 dB of their frame's loudest band (float32 FFT round-off scales with a frame's energy).

    python benchmarks/bench_frontend.py               # prints a Markdown table
    python benchmarks/bench_frontend.py --json        # prints one JSON object
    python benchmarks/bench_frontend.py --data /path/to/esc50 --clips 64 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from envsound.config import FeatureConfig
from envsound.features.mel import DB_FLOOR, LogMel

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"


def load_clips(data: Path, n: int, cfg: FeatureConfig) -> tuple[np.ndarray, str]:
    """``(n, samples)`` float32 clips at ``cfg.sample_rate`` and a description of where they came from."""
    files = sorted((data / "audio").glob("*.flac"))[:n] if (data / "audio").is_dir() else []
    if files:
        from envsound.audio.load import load_audio

        samples = int(round(5.0 * cfg.sample_rate))
        clips = []
        for path in files:
            wave = load_audio(path, sample_rate=cfg.sample_rate)[:samples]
            clips.append(np.pad(wave, (0, samples - len(wave))))
        return np.stack(clips), f"ESC-50 ({len(files)} clips from {data})"
    rng = np.random.default_rng(0)
    t = np.arange(int(5.0 * cfg.sample_rate)) / cfg.sample_rate
    clips = [0.05 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 5000) * t)
             for _ in range(n)]
    return np.stack(clips).astype(np.float32), f"synthetic ({n} clips of noise + a tone)"


def best_times(fns, repeats: int) -> tuple[list[float], list[float]]:
    """Best wall time and best process CPU time (all threads) of each function over ``repeats`` rounds.

    The functions alternate within a round so a burst of load from other processes hits both sides alike. CPU time
    is the figure that other processes disturb least (it still counts OpenMP threads spinning at barriers).
    """
    for fn in fns:
        fn()  # warm-up (allocations, FFT plans)
    wall = [float("inf")] * len(fns)
    cpu = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[i] = min(wall[i], time.perf_counter() - start)
            cpu[i] = min(cpu[i], time.process_time() - start_cpu)
    return wall, cpu


def db_differences(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Largest ``|ours - ref|`` (dB; arrays ``(clips, n_mels, frames)``) over all cells, cells above -60 dB, and those
    also within 60 dB of their frame's peak."""
    diff = np.abs(ours - ref)
    above = ref > DB_FLOOR + 40  # cells above -60 dB
    near_peak = above & (ref > ref.max(axis=1, keepdims=True) - 60)  # ... and within 60 dB of their frame's peak
    return {"max_abs_db_diff": float(diff.max()), "max_abs_db_diff_above_-60db": float(diff[above].max()),
            "max_abs_db_diff_near_frame_peak": float(diff[near_peak].max())}


def run(data: Path, n_clips: int, batch: int, threads: int, repeats: int) -> dict:
    import librosa

    torch.set_num_threads(threads)
    cfg = FeatureConfig()  # 22050 Hz, n_fft 1024, hop 512, 128 mels
    clips, source = load_clips(data, n_clips, cfg)
    frontend = LogMel.from_config(cfg).eval()
    tensor = torch.from_numpy(clips)

    def ours(size: int):
        def fn() -> np.ndarray:
            with torch.inference_mode():
                return torch.cat([frontend(tensor[i:i + size]) for i in range(0, len(tensor), size)])[:, 0].numpy()
        return fn

    def reference() -> np.ndarray:
        return np.stack([
            librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                                               hop_length=cfg.hop_length, n_mels=cfg.n_mels),
                                ref=1.0, top_db=None)
            for y in clips])

    sizes = sorted({batch, 1}, reverse=True)  # the batched figure first, then one clip per call
    wall, cpu = best_times([ours(size) for size in sizes] + [reference], repeats)
    ref = reference()
    n = len(clips)
    result = {
        "benchmark": "frontend",
        "source": source,
        "clips": n,
        "threads": threads,
        "repeats": repeats,
        "librosa_clips_per_s": round(n / wall[-1], 1),
        "librosa_cpu_ms_per_clip": round(1000 * cpu[-1] / n, 3),
        "logmel": [],
    }
    for size, t_wall, t_cpu in zip(sizes, wall, cpu):
        result["logmel"].append({
            "batch": size,
            "clips_per_s": round(n / t_wall, 1),
            "speedup": round(wall[-1] / t_wall, 2),
            "cpu_ms_per_clip": round(1000 * t_cpu / n, 3),
            "cpu_speedup": round(cpu[-1] / t_cpu, 2),
            **db_differences(ours(size)(), ref),
        })
    result.update({
        "torch": torch.__version__,
        "librosa": librosa.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="ESC-50 root (with audio/); synthetic clips if absent")
    parser.add_argument("--clips", type=int, default=64, help="number of 5 s clips (default 64)")
    parser.add_argument("--batch", type=int, default=32,
                        help="LogMel batch size (default 32); one clip per call is always timed too")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side; the best counts (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a Markdown table")
    args = parser.parse_args(argv)
    result = run(args.data, args.clips, args.batch, args.threads, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['source']}, {result['threads']} torch threads, best of {result['repeats']}, "
              f"{result['date']}\n")
        print("| LogMel batch | LogMel clips/s | librosa clips/s | speed-up (wall / CPU) "
              "| CPU ms per clip LogMel / librosa "
              "| max abs dB diff (all / > -60 dB / also within 60 dB of frame peak) |")
        print("|---|---|---|---|---|---|")
        for row in result["logmel"]:
            print(f"| {row['batch']} | {row['clips_per_s']} | {result['librosa_clips_per_s']} | "
                  f"{row['speedup']}x / {row['cpu_speedup']}x | {row['cpu_ms_per_clip']} / "
                  f"{result['librosa_cpu_ms_per_clip']} | {row['max_abs_db_diff']:.2e} / "
                  f"{row['max_abs_db_diff_above_-60db']:.2e} / {row['max_abs_db_diff_near_frame_peak']:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
