"""The soak (issue 68): 100 reporting sensors and 8 audio streams against one `envsound serve --auth` (SQLite or
PostgreSQL), with faults under that load: the store's disk full (or its server stopped), a sensor's token revoked, an
oversized report.

    .venv/bin/python benchmarks/bench_soak.py --checkpoint runs/demo/model/model.ckpt [--seconds 1800] \
        [--store sqlite|postgresql] [--reporters 100] [--streamers 8] [--full-at 0.4] [--full-seconds 20] \
        [--revoke-at 0.6] [--oversize-at 0.7]

The sensors are bench_deploy.py's (the real `Outbox` + `Delivery` of `listen --report`, 1-3 events every 0.5-2 s;
16 kHz float32 PCM at the pace it plays to `/v1/listen`). The SQLite store is a file on a 512 MB tmpfs mounted for
the run (root; without it the disk-full fault is skipped); the PostgreSQL store is a database of a real server this
script starts (support/pgcluster.py, Debian's binaries, 127.0.0.1), whose fault in place of the full disk is the
database server stopped (``pg_ctl stop -m fast``) for ``--full-seconds`` and started again: what a team's database
restarted for maintenance does. The faults, at fractions of the run:

- full: the store's write-ahead log checkpointed and emptied (``PRAGMA wal_checkpoint(TRUNCATE)``: else SQLite
  writes on into the log's pages already there and meets no full disk for megabytes), then a file fills the tmpfs
  to its last byte for ``--full-seconds`` and is removed: reports answer 503 with
  Retry-After, the sensors keep their events and send them when space returns; a stream whose events cannot be
  stored is closed (1011) and reconnects (PostgreSQL: the same, from the server's stop to its start);
- revoke: one reporting sensor's token is revoked (``Store.revoke``): its next report gets 401, it stops sending and
  keeps what it queued (counted as kept, not lost);
- oversize: a report of 60 MB (over the 50-MB `--max-upload-mb`) with another sensor's token: 413, nothing stored.

Figures: events emitted / stored / still queued per kind (lost = emitted, neither stored nor queued; twice = a
(sensor, key) stored more than once), report-to-stored latency p50/p99/max (the server's `received` minus the
event's queued time), the server's VmRSS over the first and the last fifth of the run (the largest sample of each),
its open file descriptors (first, last, largest), the answers to the faults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_deploy import Server, _cpu, streamer  # noqa: E402
from bench_deploy import reporter as deploy_reporter  # noqa: E402


def reporter(name: str, secret: str, url: str, folder: Path, until: float, emitted: Counter, left: dict) -> None:
    """bench_deploy's reporter, its events counted by sensor and what it still holds at the end kept in ``left`` (a
    revoked one keeps its events queued)."""
    counts: list[int] = []
    left[name] = deploy_reporter(name, secret, url, folder, until, counts)
    emitted[name] += sum(counts)


def fill(path: Path) -> None:
    """Make ``path`` take every free byte of its file system (halving what it asks for when it is refused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        ask = shutil.disk_usage(path.parent).free
        while ask >= 4096:
            try:
                os.posix_fallocate(fd, os.fstat(fd).st_size, ask)
                ask = shutil.disk_usage(path.parent).free
            except OSError:
                ask //= 2
    finally:
        os.close(fd)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--reporters", type=int, default=100)
    parser.add_argument("--streamers", type=int, default=8)
    parser.add_argument("--full-at", type=float, default=0.4)
    parser.add_argument("--full-seconds", type=float, default=20)
    parser.add_argument("--revoke-at", type=float, default=0.6)
    parser.add_argument("--oversize-at", type=float, default=0.7)
    args = parser.parse_args()

    from envsound.deploy.store import Store

    work = Path(tempfile.mkdtemp(prefix="envsound-soak-"))
    disk = work / "disk"
    disk.mkdir()
    postgres = None
    if args.store == "postgresql":
        from support.pgcluster import PostgresServer

        postgres = PostgresServer().__enter__()
        spec, mounted = postgres.create_database("soak"), False
    else:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(disk)],
                                 capture_output=True).returncode == 0
        spec = str(disk / "events.sqlite")
    store = Store.open(spec)
    names = [f"r{i}" for i in range(args.reporters)] + [f"s{i}" for i in range(args.streamers)]
    secrets = {name: store.create_token(name, "sensor")[1] for name in names}
    server = Server(args.checkpoint, spec)
    shared = {"url": server.url}
    until = time.monotonic() + args.seconds
    emitted, left, heard, ws_errors, samples = Counter(), {}, [], [], []
    threads = [threading.Thread(target=reporter, args=(n, secrets[n], server.url, work, until, emitted, left))
               for n in names if n.startswith("r")]
    threads += [threading.Thread(target=streamer, args=(n, secrets[n], shared, until, heard, ws_errors))
                for n in names if n.startswith("s")]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    faults: dict = {}
    filler = disk / "filler"
    revoked = "r0"
    while any(t.is_alive() for t in threads):
        elapsed = time.monotonic() - began
        if server.process.poll() is None:
            samples.append((elapsed, server.rss_mib(), fds(server.process.pid)))
        if (mounted or postgres) and "full" not in faults and elapsed >= args.full_at * args.seconds:
            if postgres:
                postgres.stop("fast")
                faults["full"] = {"at_s": round(elapsed, 1), "fault": "database server stopped"}
            else:
                with store.engine.connect() as connection:  # an empty write-ahead log: the next write must grow it
                    wal = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                fill(filler)
                faults["full"] = {"at_s": round(elapsed, 1), "fault": "disk full", "wal_checkpoint": list(wal),
                                  "free_bytes": shutil.disk_usage(disk).free}
            answer = httpx.post(f"{server.url}/v1/report", headers={"Authorization": f"Bearer {secrets['r1']}"},
                                json={"sensor": "r1", "events": [{"key": "probe", "label": "x",
                                                                  "onset": datetime.now(timezone.utc).isoformat(),
                                                                  "offset": datetime.now(timezone.utc).isoformat(),
                                                                  "score": 0.5}] * 1}, timeout=60)
            faults["full"].update(probe=answer.status_code, retry_after=answer.headers.get("Retry-After"))
            time.sleep(args.full_seconds)
            if postgres:
                postgres.start()
            else:
                filler.unlink()
            faults["full"]["freed_at_s"] = round(time.monotonic() - began, 1)
        if "revoke" not in faults and elapsed >= args.revoke_at * args.seconds:
            store.revoke(revoked)
            faults["revoke"] = {"at_s": round(elapsed, 1), "sensor": revoked}
        if "oversize" not in faults and elapsed >= args.oversize_at * args.seconds:
            body = b'{"sensor": "r2", "events": [' + b" " * 60_000_000 + b"]}"
            answer = httpx.post(f"{server.url}/v1/report", content=body, timeout=120,
                                headers={"Authorization": f"Bearer {secrets['r2']}",
                                         "content-type": "application/json"})
            faults["oversize"] = {"at_s": round(elapsed, 1), "status": answer.status_code,
                                  "error": answer.json().get("error", "")[:80]}
        time.sleep(5)
    server.process.terminate()
    server.process.wait(timeout=30)

    import sqlalchemy as sa

    from envsound.deploy import schema
    from envsound.deploy.times import as_utc

    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(schema.events.c.sensor, schema.events.c.key, schema.events.c.offset,
                                            schema.events.c.received)).all()
    reported = [r for r in rows if r.sensor.startswith("r") and r.key != "probe"]
    stored = Counter(r.sensor for r in reported)
    twice = sum(n - 1 for n in Counter((r.sensor, r.key) for r in rows).values() if n > 1)
    lost = {n: emitted[n] - stored[n] - left.get(n, 0) for n in emitted if emitted[n] != stored[n] + left.get(n, 0)}
    latency = np.array([(as_utc(r.received) - as_utc(r.offset)).total_seconds() for r in reported])
    fifth = args.seconds / 5
    first = [s for s in samples if s[0] <= fifth]
    last = [s for s in samples if s[0] >= samples[-1][0] - fifth]
    result = {
        "seconds": args.seconds, "store": args.store, "reporters": args.reporters, "streamers": args.streamers,
        "store_on_tmpfs": mounted,
        "reported_emitted": sum(emitted.values()), "reported_stored": len(reported),
        "reported_left_queued": sum(left.values()), "revoked_sensor": {"emitted": emitted[revoked],
                                                                       "stored": stored[revoked],
                                                                       "queued": left.get(revoked)},
        "lost": lost, "stored_twice": twice,
        "streamed_heard": sum(heard), "streamed_stored": len([r for r in rows if r.sensor.startswith("s")]),
        "stream_reconnects": len(ws_errors),
        "latency_p50_ms": round(float(np.percentile(latency, 50)) * 1000, 1),
        "latency_p99_ms": round(float(np.percentile(latency, 99)) * 1000, 1),
        "latency_max_s": round(float(latency.max()), 2),
        "rss_first_fifth_mib": round(max(s[1] for s in first), 1),
        "rss_last_fifth_mib": round(max(s[1] for s in last), 1),
        "fds_first": samples[0][2], "fds_last": samples[-1][2], "fds_max": max(s[2] for s in samples),
        "faults": faults, "cpu": _cpu(), "date": str(date.today()),
    }
    print(json.dumps(result))
    store.close()
    if mounted:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)
    if postgres:
        postgres.__exit__(None, None, None)


if __name__ == "__main__":
    main()
