"""Audio on a pipe, decoded as it arrives (``envsound listen --input -``): decoding speed and memory of a WAV, FLAC,
Ogg Vorbis and MP3 stream.

    .venv/bin/python benchmarks/bench_stream_decode.py [--minutes 10] [--paced-seconds 20]

Each format: ``--minutes`` of 44.1-kHz stereo audio (a tone over noise) encoded by libsndfile in memory, written to
a real pipe by a thread as fast as the pipe takes it, read by :func:`~envsound.audio.stream.open_stream` as ``listen``
reads stdin. Reported: the seconds to decode it all, the real-time factor (decode time / audio time), the bytes a
second of the stream, and the process's resident memory after the first minute decoded and at the end. Then the
latency decoding adds: ``--paced-seconds`` of the same audio written at the speed it plays (in twentieths of a
second), and for each block decoded how long after its last sample was written it came out (median and largest,
the first and last five blocks left out).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
import time
from datetime import date

import numpy as np
import soundfile as sf

from envsound.audio.stream import open_stream
from envsound.hardware import describe_machine

RATE = 44100


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def encoded(fmt: str, subtype: str | None, minutes: float) -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    with sf.SoundFile(out, "w", RATE, 2, format=fmt, subtype=subtype) as file:
        for _ in range(int(minutes * 6)):  # 10 s at a time
            t = np.arange(10 * RATE) / RATE
            tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None]
            file.write((tone + rng.uniform(-0.1, 0.1, (len(t), 2))).astype(np.float32))
    return out.getvalue()


def decode(data: bytes) -> dict:
    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    threading.Thread(target=write, daemon=True).start()
    began = time.perf_counter()
    rate, blocks = open_stream(io.FileIO(read_end, "rb"), name="bench")
    frames, after_minute = 0, None
    for block in blocks:
        frames += len(block)
        if after_minute is None and frames >= 60 * rate:
            after_minute = resident_mb()
    seconds = time.perf_counter() - began
    return {"audio_seconds": round(frames / rate, 1), "decode_seconds": round(seconds, 2),
            "real_time_factor": round(seconds / (frames / rate), 4),
            "stream_bytes_a_second": round(len(data) / (frames / rate)),
            "resident_mb_after_1_min_and_at_end": [round(after_minute or 0.0, 1), round(resident_mb(), 1)]}


def paced_lag(data: bytes, seconds: float) -> dict:
    """Median and largest time from a sample's arrival (written at the speed it plays) to its decoding."""
    read_end, write_end = os.pipe()
    per_second = len(data) / seconds
    began = time.monotonic()

    def write() -> None:
        piece = max(1, int(per_second / 20))
        with os.fdopen(write_end, "wb") as pipe:
            for at in range(0, len(data), piece):
                pipe.write(data[at:at + piece])
                pipe.flush()
                time.sleep(max(0.0, began + (at + piece) / per_second - time.monotonic()))

    threading.Thread(target=write, daemon=True).start()
    rate, blocks = open_stream(io.FileIO(read_end, "rb"), name="bench")
    decoded, lags = 0, []
    for block in blocks:
        decoded += len(block)
        lags.append(time.monotonic() - began - (decoded / rate - 1 / 20))  # its piece was written 1/20 s early
    lags = np.array(lags[5:-5])
    return {"median_seconds": round(float(np.median(lags)), 2), "max_seconds": round(float(lags.max()), 2),
            "kbit_a_second": round(per_second * 8 / 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    args = parser.parse_args()
    result = {"minutes": args.minutes, "machine": describe_machine(), "date": date.today().isoformat()}
    for name, fmt, subtype in [("WAV", "WAV", "PCM_16"), ("FLAC", "FLAC", "PCM_16"), ("Ogg Vorbis", "OGG", "VORBIS"),
                               ("MP3", "MP3", None)]:
        result[name] = decode(encoded(fmt, subtype, args.minutes))
        result[name]["added_latency"] = paced_lag(encoded(fmt, subtype, args.paced_seconds / 60), args.paced_seconds)
        print(name, result[name], flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
