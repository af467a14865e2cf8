"""Augmentation cost on this machine: on-the-fly batch augmentation, offline copies, and their cache size.

    .venv/bin/python benchmarks/bench_augment.py [--clips 40] [--workers 2] [--root ESC50_ROOT] [--json out.json]

(a) Training throughput, clips/s: the real ``ClassifierModule.training_step`` (default ``cnn``, default features, batch
    ``--batch`` of random (1, 128, 216) log-mel windows) + backward + AdamW step under bf16 autocast + channels_last
    (what ``runtime.precision=bf16-mixed`` runs), with all on-the-fly augmentation on (time roll, SpecAugment,
    mixup 0.2) vs off, timed alternately; best of ``--repeats`` timed runs of 5 steps.
(b) Offline augmentation throughput, clips/s (= copies/s, 1 copy per clip): ``make_copies`` with pitch shift and time
    stretch always applied (``augment.pitch_shift=1 augment.time_stretch=1``, the other transforms off), decoding,
    transforms and log-mel included, on ``--workers`` processes (spawn start-up included, as a real run pays it) and
    in one process. Clips: ``--clips`` synthetic 5-s 44.1 kHz WAV files (ESC-50's format), or the first ``--clips``
    clips of ESC-50 with ``--root``.
(c) Cache size on disk per 1,000 copies, MB (10^6 bytes), measured as the bytes of the ``.npy`` entries (b) wrote,
    for ``features.kind`` = ``--kind`` (``logmel``: the default ``cnn``'s features; ``waveform``: ``envnet2``'s,
    22.05 kHz).
(d) Between-class mixing (EnvNet-v2's ``augment.between_class``) of a batch of 64 random 66,650-sample crops at
    44.1 kHz (the ``envnet2-bc2018`` preset's), ms per batch, with ``augment.bc_gain`` rms and a_weighting (the
    loudness each sound is measured by).
The load average is recorded: other processes on the machine slow everything down.

    .venv/bin/python benchmarks/bench_augment.py --skip-train --skip-offline      # (d) alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from envsound.augment.offline import make_copies
from envsound.config import OFFLINE_TRANSFORMS
from envsound.data.records import ClipRecord
from envsound.features.cache import FeatureCache
from envsound.recipes.config import resolve
from envsound.training.loop.module import ClassifierModule


def training_clips_per_s(*, batch: int, repeats: int) -> dict[str, float]:
    """(a): clips/s of the real training step with the on-the-fly augmentation on and off, timed alternately (so a
    burst of load from other processes hits both), best of ``repeats`` runs of 5 steps each."""
    steps = {}
    off = ["augment.time_roll=false", "augment.spec_augment=false", "augment.mixup_alpha=0"]
    for name, overrides in (("augment_on", []), ("augment_off", off)):
        config = resolve(overrides=overrides)
        torch.manual_seed(0)
        module = ClassifierModule.from_config(config, 10).train()
        opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
        x = torch.randn(batch, 1, config.features.n_mels, config.features.window_frames)
        y = torch.nn.functional.one_hot(torch.randint(0, 10, (batch,)), 10).float()

        def step(module=module, opt=opt, x=x, y=y) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = module.training_step((x, y), 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        steps[name] = step
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(5):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / 5)
    return {name: batch / seconds for name, seconds in best.items()}


def synthetic_clips(folder: Path, n: int) -> list[ClipRecord]:
    """``n`` 5-s 44.1 kHz mono WAV files of tones in noise with a few bursts (ESC-50's format)."""
    import soundfile as sf

    rng, sr, records = np.random.default_rng(0), 44100, []
    t = np.arange(5 * sr) / sr
    for i in range(n):
        wave = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(len(t))
        wave *= 0.5 + 0.5 * (np.sin(2 * np.pi * rng.uniform(0.5, 4) * t) > 0)
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, wave.astype(np.float32), sr)
        records.append(ClipRecord(path=path, labels=("x",), fold=1, source_id=path.stem, clip_id=path.stem))
    return records


def esc50_clips(root: str, n: int) -> list[ClipRecord]:
    from envsound.data.registry import load_dataset

    return load_dataset("esc50", root).records[:n]


def offline(records: list[ClipRecord], *, workers: int, kind: str, cache_root: Path) -> dict:
    """(b) and (c) for one worker count: clips/s and the bytes of the cache entries written."""
    only_the_slow_two = [*(f"augment.{name}=0" for name in OFFLINE_TRANSFORMS), "augment.pitch_shift=1",
                         "augment.time_stretch=1"]
    model = "envnet2" if kind == "waveform" else "cnn"  # cnn takes log-mels only
    config = resolve(model=model, overrides=["augment.copies=1", f"augment.workers={workers}", *only_the_slow_two])
    from envsound.augment import offline as offline_augment

    saved = offline_augment.MIN_PARALLEL_JOBS
    offline_augment.MIN_PARALLEL_JOBS = 2  # time the process pool even for a small --clips
    try:
        start = time.perf_counter()
        copies = make_copies(records, config.augment, config.features, seed=0, cache=FeatureCache(cache_root),
                             progress=False)
        seconds = time.perf_counter() - start
    finally:
        offline_augment.MIN_PARALLEL_JOBS = saved
    entries = list(cache_root.rglob("*.npy"))
    size = sum(p.stat().st_size for p in entries)
    return {"workers": workers, "clips": len(records), "made": copies.made, "seconds": round(seconds, 2),
            "clips_per_s": round(len(records) / seconds, 2), "s_per_clip_per_core": round(seconds * workers
                                                                                            / len(records), 3),
            "cache_entries": len(entries), "cache_mb_per_1000": round(size / len(entries) * 1000 / 1e6, 1)}


def between_class_ms(*, repeats: int) -> dict[str, float]:
    """(d): best-of-``repeats`` ms of :func:`~envsound.augment.between_class.between_class` per batch, per gain."""
    from envsound.augment.between_class import between_class

    x, y = torch.randn(64, 1, 66650), torch.eye(10)[torch.randint(0, 10, (64,))]
    timings = {}
    for gain in ("rms", "a_weighting"):
        between_class(x, y, sample_rate=44100, gain=gain)  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            between_class(x, y, sample_rate=44100, gain=gain)
            runs.append(time.perf_counter() - start)
        timings[gain] = round(min(runs) * 1000, 1)
    return timings


def offline_parts(args, results: dict) -> None:
    """(b) and (c): copies made in 1 and ``args.workers`` processes, and their cache size."""
    with tempfile.TemporaryDirectory(prefix="bench_augment_") as tmp:
        tmp = Path(tmp)
        if args.root:
            records = esc50_clips(args.root, args.clips)
        else:
            (tmp / "audio").mkdir()
            records = synthetic_clips(tmp / "audio", args.clips)
        results["offline"] = []
        for workers in sorted({1, args.workers}):
            row = offline(records, workers=workers, kind=args.kind, cache_root=tmp / f"cache{workers}")
            results["offline"].append(row)
            print(f"(b) offline pitch shift + time stretch + {args.kind}, {workers} process(es): "
                  f"{row['clips_per_s']:.2f} clips/s ({row['seconds']:.1f} s for {row['clips']} clips; "
                  f"{row['s_per_clip_per_core']:.3f} s per clip per core)", flush=True)
        print(f"(c) cache: {results['offline'][-1]['cache_mb_per_1000']:.1f} MB per 1,000 copies ({args.kind})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--clips", type=int, default=40, help="clips for (b) and (c) (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="processes for (b) (default 2; 1 is also timed)")
    parser.add_argument("--root", help="ESC-50 root: time real clips instead of synthetic ones")
    parser.add_argument("--kind", default="logmel", choices=["logmel", "waveform"], help="features.kind for (b), (c)")
    parser.add_argument("--batch", type=int, default=32, help="batch size for (a) (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs for (a) and (d), best kept (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for (a) and (d) (default 2)")
    parser.add_argument("--skip-train", action="store_true", help="skip (a)")
    parser.add_argument("--skip-offline", action="store_true", help="skip (b) and (c)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; no Trainer is attached here
    results: dict = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "date": time.strftime("%Y-%m-%d"), "load_avg_1min_at_start": os.getloadavg()[0]}
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    if not args.skip_train:
        speeds = training_clips_per_s(batch=args.batch, repeats=args.repeats)
        on, off = speeds["augment_on"], speeds["augment_off"]
        results["train_clips_per_s"] = {"augment_on": round(on, 1), "augment_off": round(off, 1)}
        print(f"(a) training step, batch {args.batch}: {on:.1f} clips/s with on-the-fly augmentation, "
              f"{off:.1f} without ({100 * (off - on) / off:+.1f} % cost)", flush=True)
    results["between_class_ms_per_batch"] = bc = between_class_ms(repeats=args.repeats)
    print(f"(d) between-class mixing, 64 crops of 66,650 samples: {bc['rms']:.1f} ms (rms gain), "
          f"{bc['a_weighting']:.1f} ms (A-weighted gain)", flush=True)
    if not args.skip_offline:
        offline_parts(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
