"""The whole feature-extraction stage (decode, resample, log-mel) over 2 processes, against librosa in 2 processes.

    .venv/bin/python benchmarks/bench_extract.py [--data ../shared/data/esc50] [--clips 400] [--repeats 3]

envsound: `extract_features(records, cfg, cache=<fresh store>, workers=2)`: one single-threaded process per core,
each decoding (soundfile), resampling (soxr) and computing the log-mel (`LogMel`), writing each clip to the store.
librosa: the same clips, `librosa.load(path, sr=22050)` (soxr_hq), `melspectrogram` (n_fft 1024, hop 512, 128 mels)
and `power_to_db(ref=1, top_db=None)`, spread over a 2-process pool of fresh (spawned) processes with one BLAS/OpenMP
thread each (forked ones inherit this process's thread pools and ran 2.7x slower), every worker warmed up by one clip
first (librosa's first call costs over a second of imports and JIT). Default features
(22.05 kHz, 128 mels). Clips are ESC-50 FLAC files (44.1 kHz, 5 s) when the data is found, else seeded synthetic
WAVs; ``--wav`` converts them to 16-bit WAV first (ESC-50's official format: decoding FLAC costs ~3.7 ms of a clip,
the same on both sides, a WAV ~0.3 ms). Each side runs ``--repeats`` times on a fresh store; the best wall time
counts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

from envsound.config import FeatureConfig
from envsound.data.records import ClipRecord
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.hardware import describe_machine

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"


def clip_paths(data: Path, n: int, work: Path) -> tuple[list[Path], str]:
    files = sorted((data / "audio").glob("*.flac"))[:n] if (data / "audio").is_dir() else []
    if files:
        return files, f"{len(files)} ESC-50 FLAC clips (44.1 kHz, 5 s)"
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = work / f"c{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(5 * 44100)).astype(np.float32), 44100, subtype="PCM_16")
        paths.append(path)
    return paths, f"{n} synthetic WAV clips (44.1 kHz, 5 s)"


def librosa_one(path: str) -> tuple:
    import librosa

    y, sr = librosa.load(path, sr=22050)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=128)
    return librosa.power_to_db(mel, ref=1.0, top_db=None).shape


def _warm_worker(path: str) -> None:
    import torch

    torch.set_num_threads(1)
    librosa_one(path)


def as_wav(paths: list[Path], folder: Path) -> list[Path]:
    folder.mkdir()
    out = []
    for path in paths:
        audio, rate = sf.read(path, dtype="int16")
        out.append(folder / (path.stem + ".wav"))
        sf.write(out[-1], audio, rate, subtype="PCM_16")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=686)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wav", action="store_true", help="convert the clips to 16-bit WAV first")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"  # librosa's workers: one thread each, as envsound's
    cfg = FeatureConfig()
    with tempfile.TemporaryDirectory() as tmp:
        paths, source = clip_paths(args.data, args.clips, Path(tmp))
        if args.wav:
            paths, source = as_wav(paths, Path(tmp) / "wav"), source + ", converted to 16-bit WAV"
        records = [ClipRecord(path=p, labels=(), fold=None, source_id=str(p), clip_id=str(p)) for p in paths]
        ours, theirs = [], []
        for repeat in range(args.repeats):
            store = FeatureCache(Path(tmp) / f"store{repeat}")
            start = time.perf_counter()
            kept, _, _ = extract_features(records, cfg, cache=store, progress=False, workers=args.workers)
            ours.append(time.perf_counter() - start)
            assert len(kept) == len(records)
            with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_warm_worker, initargs=(str(paths[0]),)) as pool:
                list(pool.map(time.sleep, [1.0] * args.workers))  # every worker started (and warmed up)
                start = time.perf_counter()
                list(pool.map(librosa_one, [str(p) for p in paths], chunksize=8))
                theirs.append(time.perf_counter() - start)
    result = {**describe_machine(), "date": date.today().isoformat(), "clips": source, "processes": args.workers,
              "envsound_clips_per_s": round(len(paths) / min(ours), 1),
              "librosa_clips_per_s": round(len(paths) / min(theirs), 1),
              "speed_up": round(min(theirs) / min(ours), 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
