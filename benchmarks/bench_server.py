"""`envsound serve` under load, and its peak memory while a 1-hour upload is classified.

    .venv/bin/python benchmarks/bench_server.py [--checkpoint runs/x/model.ckpt] [--requests 1000] [--clients 8]

The server runs in its own process (`envsound serve --port 0`, one prediction worker unless --workers). Load: the
5-s clip (44.1 kHz 16-bit WAV) is posted --requests times by --clients threads at once, each with its own keep-alive
connection; an error is any answer other than 200 or a failed connection. Memory: a fresh server, then one 1-hour
WAV (303 MiB) posted as the page posts it (segments and overview), and the server's peak resident set (VmHWM).
Without --checkpoint a default-config `cnn` is trained for one epoch on a small synthetic set (weights do not matter).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import make_checkpoint, write_long_wav  # noqa: E402


@contextmanager
def server(checkpoint: Path, *, workers: int):
    command = [sys.executable, "-m", "envsound.cli.main", "serve", str(checkpoint), "--port", "0", "-q",
               "--store", str(Path(tempfile.mkdtemp(prefix="envsound-bench-")) / "events.sqlite"),
               "--workers", str(workers), "--max-upload-mb", "400", "--max-seconds", "4000"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stderr:  # the store's line, then where it serves
            lines.append(line)
            if "serving at" in line:
                break
        address = re.search(r"serving at (\S+)/", lines[-1] if lines else "")
        if not address:
            raise SystemExit(f"the server did not start: {''.join(lines)}")
        yield address.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(url: str, clip: bytes, *, requests: int, clients: int) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                try:
                    answer = http.post(f"{url}/v1/predict", files={"file": ("clip.wav", clip, "audio/wav")})
                    ok = answer.status_code == 200
                except httpx.HTTPError as exc:
                    ok, answer = False, exc
                with lock:
                    latencies.append(time.perf_counter() - start)
                    if not ok:
                        errors.append(str(answer))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"requests": requests, "clients": clients, "errors": len(errors), "first_errors": errors[:3],
            "requests_per_s": round(requests / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "wall_s": round(wall, 1)}


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or make_checkpoint(work)
        rng = np.random.default_rng(0)
        sf.write(work / "clip.wav", (0.1 * rng.standard_normal(5 * 44100)).astype(np.float32), 44100,
                 subtype="PCM_16")
        clip = (work / "clip.wav").read_bytes()
        result = {"date": str(date.today()), "cpu": platform.processor() or platform.machine(),
                  "workers": args.workers}
        with server(checkpoint, workers=args.workers) as (url, _):
            load(url, clip, requests=10, clients=1)  # warm-up
            result["load"] = load(url, clip, requests=args.requests, clients=args.clients)
        long_wav = write_long_wav(work / "long.wav", hours=args.hours)
        with server(checkpoint, workers=args.workers) as (url, pid):
            idle = peak_rss_mb(pid)
            start = time.perf_counter()
            with open(long_wav, "rb") as handle:
                answer = httpx.post(f"{url}/v1/predict", params={"segments": "true", "overview": "true"},
                                    files={"file": ("long.wav", handle, "audio/wav")}, timeout=3600)
            result["long_upload"] = {"hours": args.hours, "status": answer.status_code,
                                     "seconds": round(time.perf_counter() - start, 1),
                                     "segments": len(answer.json().get("segments") or []),
                                     "server_peak_rss_mb": round(peak_rss_mb(pid)), "server_idle_rss_mb": round(idle)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
