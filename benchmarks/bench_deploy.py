"""A deployment under load: reporting sensors and audio-streaming sensors against one `envsound serve --auth`.

    .venv/bin/python benchmarks/bench_deploy.py [--checkpoint runs/x/model.ckpt] [--seconds 600] [--reporters 8]
        [--streamers 8] [--store sqlite|postgresql] [--kill-at SECONDS]

The server runs in its own process with tokens required and the store chosen (a SQLite file, or a database on a
PostgreSQL server this script starts: support/pgcluster.py, Debian's binaries). Each **reporting sensor** is the real
sensor code (`deploy.outbox.Outbox` + `deploy.reporter.Delivery`, as `listen --report` runs it) queueing 1-3 events
every 0.5-2 s (an event's offset is the moment it was queued); each **streaming sensor** sends 16 kHz float32 PCM at
the pace it plays (tone and noise, 2 s each, in turn) to `/v1/listen` as its sensor and counts the ended events the
server sends back. With --kill-at the server is killed (SIGKILL) at that second and started again 3 s later on the
same port: reporters keep their events queued and deliver them; streamers reconnect.

Figures: events emitted and stored per kind (lost = emitted not stored; a duplicate is impossible by the store's key,
so "stored twice" counts keys seen more than once by the sensors); report-to-stored latency (the server's `received`
minus the event's queued time, same machine clock) p50/p95/max; the server's resident memory (VmRSS) at the first
and the last minute. Without --checkpoint a default-config `cnn` is trained for one epoch on a small synthetic set.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_predict import make_checkpoint  # noqa: E402

RATE = 16000


class Server:
    def __init__(self, checkpoint: Path, store: str, port: int = 0) -> None:
        command = [sys.executable, "-m", "envsound.cli.main", "serve", str(checkpoint), "--auth", "--store", store,
                   "--port", str(port), "-q", "--max-streams", "64", "--rate-limit", "1000", "--workers", "2"]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        for line in self.process.stderr:
            if "serving at" in line:
                self.url = re.search(r"serving at (\S+)/", line).group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                threading.Thread(target=self.process.stderr.read, daemon=True).start()  # drain
                return
        raise SystemExit("the server did not start")

    def rss_mib(self) -> float:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def reporter(name: str, secret: str, url: str, folder: Path, until: float, emitted: list) -> int:
    """A sensor reporting 1-3 events every 0.5-2 s until ``until`` through the real outbox and delivery thread
    (``emitted``: the count of each report); -> the events still queued at the end (a revoked sensor keeps its own)."""
    from envsound.deploy.outbox import Outbox
    from envsound.deploy.reporter import Delivery
    from envsound.deploy.times import iso

    outbox = Outbox(folder / f"queue-{name}.sqlite")
    delivery = Delivery(outbox, url, sensor=name, token=secret, model="bench")
    delivery.start()
    rng = random.Random(name)
    while time.monotonic() < until:
        now = datetime.now(timezone.utc)
        events = [{"label": f"label{rng.randrange(10)}", "onset": iso(now), "offset": iso(now),
                   "score": round(rng.random(), 3)} for _ in range(rng.randint(1, 3))]
        outbox.put_events(events)
        emitted.append(len(events))
        delivery.wake.set()
        time.sleep(rng.uniform(0.5, 2.0))
    deadline = time.monotonic() + 120
    while outbox.queued() and time.monotonic() < deadline and delivery.is_alive():
        time.sleep(0.2)
    delivery.stop()
    left = outbox.queued()
    outbox.close()
    return left


def streamer(name: str, secret: str, server: dict, until: float, heard: list, ws_errors: list) -> None:
    from support.audiofactory import noise, tone

    sound = np.concatenate([tone(seconds=2, sample_rate=RATE, freq=660)[:, 0],
                            noise(seconds=2, sample_rate=RATE)[:, 0]]).astype("<f4")
    step = RATE // 10
    while time.monotonic() < until:
        url = server["url"].replace("http://", "ws://") + f"/v1/listen?rate={RATE}&encoding=float32"
        try:
            with connect(url) as socket:
                socket.send(json.dumps({"token": secret, "sensor": name,
                                        "start": datetime.now(timezone.utc).isoformat()}))
                receiver = threading.Thread(target=_receive, args=(socket, heard), daemon=True)
                receiver.start()
                at, began = 0, time.monotonic()
                while time.monotonic() < until:
                    piece = sound[at % len(sound): at % len(sound) + step]
                    socket.send(piece.tobytes())
                    at += len(piece)
                    time.sleep(max(0.0, began + at / RATE - time.monotonic()))
                socket.send("end")
                receiver.join(timeout=60)
        except (ConnectionClosed, OSError) as exc:
            ws_errors.append(f"{name}: {exc}")
            time.sleep(1.0)


def _receive(socket, heard: list) -> None:
    try:
        while True:
            hop = json.loads(socket.recv(timeout=60))
            heard.append(len(hop.get("events", [])))
    except (ConnectionClosed, TimeoutError):
        pass


def store_spec(kind: str, work: Path, name: str):
    """(the ``--store`` of a ``sqlite`` file in ``work`` or of a ``postgresql`` database ``name`` on a server this
    starts (support/pgcluster.py), that server or None: the caller ends it with ``__exit__``)."""
    if kind != "postgresql":
        return str(work / "events.sqlite"), None
    from support.pgcluster import PostgresServer

    postgres = PostgresServer().__enter__()
    return postgres.create_database(name), postgres


def finish(result: dict, store, postgres) -> None:
    """Print the run's JSON line, then close its store and stop the PostgreSQL server :func:`store_spec` started."""
    print(json.dumps(result))
    store.close()
    if postgres is not None:
        postgres.__exit__(None, None, None)


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"model name\s*:\s*(.+)", info)
    flags = set(re.search(r"flags\s*:\s*(.+)", info).group(1).split()) if "flags" in info else set()
    bf16 = "+".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) or "no bf16"
    return f"{name.group(1).strip() if name else platform.machine()} ({bf16})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--reporters", type=int, default=8)
    parser.add_argument("--streamers", type=int, default=8)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kill-at", type=float, help="kill -9 the server at this second, restart it 3 s later")
    args = parser.parse_args()

    from envsound.deploy.store import Store

    work = Path(tempfile.mkdtemp(prefix="envsound-deploy-"))
    checkpoint = args.checkpoint or make_checkpoint(work)
    spec, postgres = store_spec(args.store, work, "bench")
    store = Store.open(spec)
    names = [f"r{i}" for i in range(args.reporters)] + [f"s{i}" for i in range(args.streamers)]
    secrets = {name: store.create_token(name, "sensor")[1] for name in names}
    server = Server(checkpoint, spec)
    shared = {"url": server.url}
    until = time.monotonic() + args.seconds
    emitted, heard, ws_errors, memory = [], [], [], []
    threads = [threading.Thread(target=reporter, args=(n, secrets[n], server.url, work, until, emitted))
               for n in names if n.startswith("r")]
    threads += [threading.Thread(target=streamer, args=(n, secrets[n], shared, until, heard, ws_errors))
                for n in names if n.startswith("s")]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    killed = False
    while any(t.is_alive() for t in threads):
        elapsed = time.monotonic() - began
        if args.kill_at is not None and not killed and elapsed >= args.kill_at:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            time.sleep(3)
            server = Server(checkpoint, spec, port=server.port)
            killed = True
        if server.process.poll() is None:
            memory.append((elapsed, server.rss_mib()))
        time.sleep(5)
    server.process.terminate()
    server.process.wait(timeout=30)

    import sqlalchemy as sa

    from envsound.deploy import schema

    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(schema.events.c.sensor, schema.events.c.offset,
                                            schema.events.c.received)).all()
    from envsound.deploy.times import as_utc

    reported = [r for r in rows if r.sensor.startswith("r")]
    latency = np.array([(as_utc(r.received) - as_utc(r.offset)).total_seconds() for r in reported])
    first = [m for t, m in memory if t <= 60]
    last = [m for t, m in memory if t >= memory[-1][0] - 60]
    result = {
        "store": args.store, "seconds": args.seconds, "reporters": args.reporters, "streamers": args.streamers,
        "kill_at": args.kill_at,
        "reported_emitted": sum(emitted), "reported_stored": len(reported),
        "streamed_heard": sum(heard), "streamed_stored": len(rows) - len(reported),
        "latency_p50_ms": round(float(np.percentile(latency, 50)) * 1000, 1) if len(latency) else None,
        "latency_p95_ms": round(float(np.percentile(latency, 95)) * 1000, 1) if len(latency) else None,
        "latency_max_s": round(float(latency.max()), 2) if len(latency) else None,
        "rss_first_minute_mib": round(max(first), 1) if first else None,
        "rss_last_minute_mib": round(max(last), 1) if last else None,
        "stream_reconnects": len(ws_errors),
        "cpu": _cpu(), "date": str(date.today()),
    }
    finish(result, store, postgres)


if __name__ == "__main__":
    main()
