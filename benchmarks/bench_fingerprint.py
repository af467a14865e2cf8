"""Recall of the robust fingerprint on altered copies of real clips, false matches among distinct clips, and cost.

    .venv/bin/python benchmarks/bench_fingerprint.py [--data ../shared/data/esc50] [--clips 686]

Each clip of the data set (ESC-50 FLAC, 44.1 kHz, 5 s) is fingerprinted, then altered six ways and fingerprinted
again: MP3 at 128 kbit/s, Ogg Vorbis (libsndfile's default quality), resampled to 16 kHz, +6 dB (clipped at full
scale) and -6 dB, delayed by 0.1 s, and Gaussian noise at 10 dB SNR. A copy is found when its bit error rate to its
original is below the match threshold (`leakage.match_ber`, 0.30) or its exact hash equals the original's.
Then every pair of distinct clips is compared: each pair below the threshold is listed with its file names.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from envsound.features.fingerprint import MATCH_BER, ber_matrix, fingerprint_waveform
from envsound.hardware import describe_machine

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50"


def through(audio: np.ndarray, rate: int, **format_args) -> tuple[np.ndarray, int]:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, **format_args)
    buffer.seek(0)
    decoded, rate = sf.read(buffer, dtype="float32")
    return decoded, rate


def noisy(audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    power = float(np.mean(audio ** 2)) or 1e-12
    return (audio + rng.standard_normal(len(audio)).astype(np.float32) * np.sqrt(power / 10)), rate


ALTERATIONS = {
    "MP3, 128 kbit/s": lambda a, r, g: through(a, r, format="MP3", subtype="MPEG_LAYER_III",
                                               compression_level=0.5, bitrate_mode="CONSTANT"),
    "Ogg Vorbis": lambda a, r, g: through(a, r, format="OGG", subtype="VORBIS"),
    "resampled to 16 kHz": lambda a, r, g: (soxr.resample(a, r, 16000), 16000),
    "+6 dB (clipped)": lambda a, r, g: (np.clip(a * 2, -1, 1), r),
    "-6 dB": lambda a, r, g: (a * 0.5, r),
    "delayed 0.1 s": lambda a, r, g: (np.concatenate([np.zeros(int(0.1 * r), np.float32), a])[:len(a)], r),
    "noise at 10 dB SNR": noisy,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=686)
    args = parser.parse_args()
    files = sorted((args.data / "audio").glob("*.flac"))[:args.clips]
    if not files:
        raise SystemExit(f"no FLAC clips under {args.data / 'audio'}")
    print(json.dumps({**describe_machine(), "date": date.today().isoformat(), "clips": len(files),
                      "threshold": MATCH_BER}), flush=True)
    audio = [sf.read(f, dtype="float32") for f in files]
    start = time.perf_counter()
    prints = [fingerprint_waveform(a, r) for a, r in audio]
    speed = round(len(files) / (time.perf_counter() - start), 1)
    print(json.dumps({"fingerprint_clips_per_s_one_process_decoded": speed}), flush=True)
    rng = np.random.default_rng(0)
    for name, alter in ALTERATIONS.items():
        found, worst = 0, 0.0
        for (a, r), (exact, words) in zip(audio, prints):
            copy_exact, copy_words = fingerprint_waveform(*alter(a, r, rng))
            ber = float(ber_matrix([copy_words], [words])[0, 0])
            found += copy_exact == exact or ber < MATCH_BER
            worst = max(worst, ber)
        print(json.dumps({"alteration": name, "recall": round(found / len(files), 4), "found": found,
                          "worst_ber": round(worst, 3)}), flush=True)
    start = time.perf_counter()
    words = [w for _, w in prints]
    rates = ber_matrix(words, words)
    pairs = [(float(rates[i, j]), files[i].name, files[j].name) for i in range(len(files))
             for j in range(i + 1, len(files)) if rates[i, j] < MATCH_BER or prints[i][0] == prints[j][0]]
    upper = rates[np.triu_indices(len(files), 1)]
    print(json.dumps({"distinct_pairs": int(len(upper)), "false_matches": sorted(pairs),
                      "lowest_distinct_ber": sorted(upper.tolist())[:5],
                      "all_pairs_seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
