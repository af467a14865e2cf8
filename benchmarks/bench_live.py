"""Live classification: per-hop model time, real-time factor and memory over a long stream; many WebSocket streams.

    .venv/bin/python benchmarks/bench_live.py stream [--checkpoint CKPT] [--hours 1]
    .venv/bin/python benchmarks/bench_live.py sockets [--checkpoint CKPT] [--streams 8] [--minutes 10]

``stream``: one :class:`~envsound.inference.live.LiveListener` is fed ``--hours`` of 44.1-kHz audio (a tone that
changes every minute over noise, made on the fly, pushed 0.1 s at a time, as fast as it goes). Reported: the model's
time a window (median, 95th percentile, max), the real-time factor (processing time / audio time), and the process's
resident memory after the first minute and at the end (the goal: flat, within 10 %). A live result comes at most one
hop plus the model's time after the sound it describes (``latency``).

``sockets``: ``envsound serve`` in its own process, and ``--streams`` WebSocket clients sending 16-bit PCM at 44.1 kHz
in real time (0.1 s a message) for ``--minutes``: errors, hops received, the time from sending the message that
completes a window to receiving its hop (median, 95th percentile), and the server's resident memory each minute.

Without ``--checkpoint`` a default-config ``cnn`` is trained for one epoch on a small synthetic set (weights do not
matter for speed). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import make_checkpoint  # noqa: E402

RATE = 44100
PIECE = RATE // 10


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def audio_pieces(seconds: float, *, seed: int = 0):
    """0.1-s float32 pieces of a tone that changes every minute, over noise."""
    rng = np.random.default_rng(seed)
    for i in range(int(seconds * 10)):
        t = (np.arange(PIECE) + i * PIECE) / RATE
        freq = 300 + 150 * ((i // 600) % 7)
        yield (0.2 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(PIECE)).astype(np.float32)


def bench_stream(checkpoint: Path, hours: float) -> dict:
    from envsound.inference.live import LiveListener
    from envsound.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint)
    listener = LiveListener(predictor, sample_rate=RATE)
    model_ms, memory, began = [], {}, time.perf_counter()
    for i, piece in enumerate(audio_pieces(hours * 3600)):
        model_ms += [hop.model_ms for hop in listener.push(piece)]
        if (i + 1) % 600 == 0:  # each minute of audio
            memory[(i + 1) // 600] = round(rss_mb(), 1)
    listener.finish()
    seconds = time.perf_counter() - began
    feats = predictor.features
    first, last = memory[1], memory[max(memory)]
    frames = {}
    if predictor.has_frames:  # a frame is decided when the window whose kept stretch holds it is scored
        half, hop = feats.window_seconds / 2, feats.eval_hop_seconds
        frames = {"frame_seconds": predictor.model.frame_seconds,
                  "event_latency_s": f"{half - hop / 2:.1f} .. {half + hop / 2:.1f} + half the median filter "
                                     f"({predictor.model.config.events.median_seconds / 2}) + model time"}
    return {**frames, "windows": len(model_ms), "hop_seconds": feats.eval_hop_seconds,
            "window_seconds": feats.window_seconds,
            "model_ms": {"median": statistics.median(model_ms), "p95": float(np.percentile(model_ms, 95)),
                         "max": max(model_ms)},
            "latency_s": f"<= hop + model time = {feats.eval_hop_seconds} + {np.percentile(model_ms, 95) / 1000:.3f}"
                         " (95th percentile)",
            "real_time_factor": round(seconds / (hours * 3600), 4), "rss_mb_after_1_min": first,
            "rss_mb_at_end": last, "rss_growth": round(last / first - 1, 3),
            "rss_mb_every_10_min": {m: v for m, v in memory.items() if m % 10 == 0}}


def bench_sockets(checkpoint: Path, streams: int, minutes: float) -> dict:
    from websockets.sync.client import connect

    server = subprocess.Popen([sys.executable, "-m", "envsound", "serve", str(checkpoint), "--port", "8765", "--quiet",
                               "--max-streams", str(streams)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with connect("ws://127.0.0.1:8765/v1/listen?rate=8000", open_timeout=1) as probe:
                probe.send("end")
                probe.recv(timeout=30)
            break
        except (OSError, Exception):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server did not start: {server.stderr.read() if server.poll() else ''}")
            time.sleep(0.5)
    results = [dict(hops=0, errors=[], waits=[]) for _ in range(streams)]

    def client(k: int) -> None:
        result = results[k]
        try:
            with connect(f"ws://127.0.0.1:8765/v1/listen?rate={RATE}&encoding=pcm16") as socket:
                sent_at = {}
                reader = threading.Thread(target=read, args=(socket, result, sent_at), daemon=True)
                reader.start()
                start = time.monotonic()
                for i, piece in enumerate(audio_pieces(minutes * 60, seed=k)):
                    time.sleep(max(0.0, start + i * 0.1 - time.monotonic()))
                    sent_at[round((i + 1) * 0.1, 1)] = time.monotonic()
                    socket.send((piece * 32767).astype("<i2").tobytes())
                socket.send("end")
                reader.join(timeout=120)
        except Exception as exc:  # noqa: BLE001 (a benchmark reports every failure)
            result["errors"].append(repr(exc))

    def read(socket, result, sent_at) -> None:
        for message in socket:
            hop = json.loads(message)
            if "error" in hop:
                result["errors"].append(hop["error"])
            elif not hop["end"]:
                result["hops"] += 1
                sent = sent_at.get(round(np.ceil(hop["time"] * 10) / 10, 1))  # the message that completed the window
                if sent is not None:
                    result["waits"].append(time.monotonic() - sent)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(streams)]
    memory, began = {0: round(rss_mb(server.pid), 1)}, time.monotonic()
    for thread in threads:
        thread.start()
    for minute in range(1, int(minutes) + 1):
        time.sleep(max(0.0, began + 60 * minute - time.monotonic()))
        memory[minute] = round(rss_mb(server.pid), 1)
    for thread in threads:
        thread.join()
    server.terminate()
    server.wait(timeout=30)
    waits = [w for r in results for w in r["waits"]]
    return {"streams": streams, "minutes": minutes, "errors": [e for r in results for e in r["errors"]],
            "hops_per_stream": [r["hops"] for r in results],
            "hop_round_trip_s": {"median": round(statistics.median(waits), 3),
                                 "p95": round(float(np.percentile(waits, 95)), 3)} if waits else None,
            "server_rss_mb_each_minute": memory,
            "rss_growth_after_minute_1": round(memory[max(memory)] / memory[1] - 1, 3) if len(memory) > 1 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["stream", "sockets"])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        checkpoint = args.checkpoint or make_checkpoint(Path(work))
        result = bench_stream(checkpoint, args.hours) if args.part == "stream" else \
            bench_sockets(checkpoint, args.streams, args.minutes)
    info = Path("/proc/cpuinfo").read_text()
    field = lambda name: next((line.split(":", 1)[1].strip() for line in info.splitlines()  # noqa: E731
                               if line.startswith(name)), "?")
    cpu = f"{field('model name') or platform.machine()}, family {field('cpu family')} model {field('model')}; " + (
        ", ".join(flag for flag in ("avx512_bf16", "amx_bf16") if flag in info) or "no avx512_bf16 or AMX")
    print(json.dumps({"date": str(date.today()), "cpu": cpu, "cores": os.cpu_count(),
                      "checkpoint": str(args.checkpoint or "default cnn, 1 epoch on synthetic"), **result}, indent=1))


if __name__ == "__main__":
    main()
