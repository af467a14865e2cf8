"""A fleet rolled out under load (issue 78, "Measured"): N sensors hearing a known signal, one `envsound serve --auth`,
a canary, a rollout to all, a corrupt version every sensor must refuse, a rollback; nothing lost, nothing heard twice.

    .venv/bin/python benchmarks/bench_fleet.py [--checkpoint runs/x/model.ckpt] [--seconds 600] [--sensors 100]
        [--store sqlite|postgresql] [--follow-seconds 10] [--offline-seconds 300] [--drivers 4]

**The sensors** are simulated many in one process (so that 100 fit 2 cores), each with the real sensor code of
`listen --report URL --snippets --follow` (cli/commands/listen.py's `_reporting`: an `Outbox` + `Reporting` with a
`Snipper`; a `deploy.follow.Follower` whose `swap` hands the model to its own `LiveListener.replace`, as listen's
does). What they share is the loaded model: `load` keeps one `Predictor` per file digest, so 100 sensors on a
version hold one copy. Every sensor runs ONNX, as a real sensor does: the checkpoint exported once
(`export_onnx`), and each published version that same network with one more `metadata_props` entry (its name), so
the versions are different files (different digests) that hear alike. A few driver threads push each sensor's stream
a second at a time at the pace it plays (the lag behind real time is measured: if it grows, the sensors do not keep
up and the figures say so).

**The known signal** (the model's rate): a period of ``--period`` seconds, the event's sound (two synthetic clips of
``--label``, 6 s) then background (clips of other classes); each sensor starts at its own phase. So each sensor's
windows are known: one every hop from its stream's start, none skipped nor doubled across its swaps; and its events
should come once a period.

**The server** is bench_deploy's (`serve --auth` in its own process) on a SQLite file or, with --store postgresql, a
database of a real PostgreSQL server (support/pgcluster.py); its fleet folder is the default one (beside the SQLite
file; for PostgreSQL under ``$XDG_DATA_HOME``, which this script points into its work folder).

**The timeline**, at fractions of the run (the issue's minutes of ten): 0.3 `envsound fleet publish V1 --share 0.1`
(a subprocess, as an admin runs it); 0.5 `envsound fleet assign V1` (to all); 0.7 a corrupt version: V2 added
through `deploy.versions.Fleet`, its file then damaged in the fleet folder (one byte flipped, same size) before it
is assigned to all; every sensor must refuse it and keep V1; 0.8 `envsound fleet rollback` (to V1: nothing to swap);
0.9 `envsound fleet assign 0` (back to the model each sensor was started with: a third swap).

**With --offline-seconds S** one more sensor (`offline`, snippets on, not following, a snippet budget of
``--offline-budget-mb``) reaches the server through a relay that drops every connection from 0.1 of the run for S
seconds (its network gone): its events and snippets wait in its outbox (the oldest snippets dropped beyond the
budget) and are delivered when the relay opens again.

Figures (one JSON line at the end): per step, the seconds from the assignment (its time in the store) until every
sensor runs the intended version, by the server's view (`GET /v1/fleet/status`: `running`, `since`) and by each
sensor's own (its first hop of that version); events emitted (keys queued by the sensors) vs stored: lost, twice
(by (sensor, key)); windows: gaps and repeats in each sensor's hop starts against the grid; events whose stored
version is not the one the sensor ran at the event's onset; refusals of the corrupt version (sensors' and the
server's view) and hops heard by it (must be 0); the known signal's events found; snippet bytes per event (mean,
max), the fleet folder's size; the server's VmRSS at the first and last minute, its store's size; the drivers' lag
behind real time; the offline sensor's figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_deploy import Server, _cpu, finish, store_spec  # noqa: E402

ENVSOUND = [sys.executable, "-m", "envsound.cli.main"]
SOUND_SECONDS = 6.0  # the known signal's event: two 3-s synthetic clips


def train_checkpoint(work: Path, data: Path, epochs: int) -> Path:
    """A default-config `cnn` on four folds of the synthetic set at ``data``, trained long enough to detect its
    classes (the one epoch of bench_predict.make_checkpoint scores every window alike)."""
    from envsound.data.synthetic import prepare_synthetic
    from envsound.recipes.config import resolve
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    manifest = prepare_synthetic(data).select_folds([1, 2, 3, 4])
    config = resolve(overrides=[f"train.max_epochs={epochs}", "train.val_fraction=0"])
    return train_model(manifest, config, out_dir=work / "run", context=RunContext(progress=False)).checkpoint


def sensor_files(checkpoint: Path, work: Path) -> dict[str, Path]:
    """The ONNX file the sensors start with (``own``) and the versions ``v1``, ``v2``: the same network, each
    version with a ``fleet_variant`` metadata entry (so a different file and digest)."""
    import onnx

    from envsound.inference.onnx_export import export_onnx

    own = export_onnx(checkpoint, work / "own.onnx")
    files = {"own": own}
    for name in ("v1", "v2"):
        proto = onnx.load(str(own))
        proto.metadata_props.add(key="fleet_variant", value=name)
        onnx.save(proto, str(work / f"{name}.onnx"))
        files[name] = work / f"{name}.onnx"
    return files


def known_signal(data: Path, label: str, period: float, rate: int) -> np.ndarray:
    """``period`` seconds at ``rate`` Hz: two clips of ``label`` (the event), then clips of the other classes."""
    import soundfile as sf
    import soxr

    clips = sorted((data / "audio").glob("1-*.wav"))

    def clip(path: Path) -> np.ndarray:
        samples, clip_rate = sf.read(path, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        return samples if clip_rate == rate else soxr.resample(samples, clip_rate, rate).astype(np.float32)

    event = [clip(p) for p in clips if p.stem.split("-", 1)[1].rsplit("-", 1)[0] == label][:2]
    others = [clip(p) for p in clips if not p.stem.split("-", 1)[1].startswith(label) and p.stem.endswith("-000")]
    background = np.concatenate(others * 4)
    head = np.concatenate(event)
    return np.concatenate([head, background[:int(period * rate) - len(head)]]).astype(np.float32)


def one_thread(predictor, path: Path):
    """``predictor`` (an ONNX model's) with its session on one thread that does not spin: a real sensor has its
    cores to itself, here a hundred share two, and onnxruntime's default pool (a thread a core, spinning between
    runs) spends them waiting (measured: 179 -> 316 sensor-seconds a second of LiveListener alone)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    predictor.model.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return predictor


class ModelCache:
    """``load`` for every sensor's Follower: one Predictor per file digest (``None``: the model each started with)."""

    def __init__(self, own) -> None:
        self.own, self.models, self.lock = own, {}, threading.Lock()

    def load(self, path: Path | None):
        from envsound.fileio import file_digest
        from envsound.inference.predictor import Predictor

        if path is None:
            return self.own
        digest = file_digest(path)
        with self.lock:
            if digest not in self.models:
                self.models[digest] = one_thread(Predictor.from_checkpoint(path, device="cpu", precision="32",
                                                                           timed=False), path)
            return self.models[digest]


class Sensor:
    """One simulated sensor: `listen --report URL --snippets [--follow]`'s objects, fed by a driver thread."""

    def __init__(self, name: str, secret: str, url: str, work: Path, cache: ModelCache, *, rate: int,
                 follow_seconds: float | None, budget_mb: float = 100.0) -> None:
        from envsound.cli.commands.listen import _reporting
        from envsound.deploy.follow import Follower, models_folder
        from envsound.inference.live import LiveListener

        self.name, self.rate = name, rate
        queue = work / "sensors" / f"queue-{name}.sqlite"
        args = argparse.Namespace(sensor=name, queue=queue, report=url, token=secret, heartbeat_seconds=30.0,
                                  snippets="", snippets_except=None, snippet_budget_mb=budget_mb)
        self.reporting = _reporting(args, cache.own, rate)
        self.keys: list[str] = []  # every event key this sensor queued
        put = self.reporting.outbox.put_events

        def put_events(events: list[dict]) -> list[str]:
            keys = put(events)
            self.keys += keys
            return keys

        self.reporting.outbox.put_events = put_events
        self.listener = LiveListener(cache.own, sample_rate=rate)
        self.hops: list[tuple[float, int | None]] = []  # (window start in the stream, version)
        self.changes: list[tuple[float, int | None]] = []  # (wall time.time(), version now heard with)
        self.version: int | None = None
        self.follower = None
        if follow_seconds:
            def swap(model, version: dict | None) -> None:  # as listen's _follower
                self.listener.replace(model, version=None if version is None else version["id"])
                self.reporting.delivery.model = model.model.config.model.name
                self.reporting.delivery.fingerprint = model.source.short_digest

            self.follower = Follower(url, sensor=name, token=secret, folder=models_folder(queue), load=cache.load,
                                     swap=swap, every=follow_seconds)
            self.reporting.refusal = lambda: self.follower.refused
            self.follower.check_once()
            self.follower.start()

    @property
    def clock_start(self) -> datetime:
        return self.reporting.clock.start

    def push(self, block: np.ndarray) -> None:
        self.reporting.hear(block)
        for hop in self.listener.push(block):
            self._hop(hop)

    def _hop(self, hop) -> None:
        self.reporting.hop(hop.to_dict())
        if hop.top:
            self.hops.append((hop.start, hop.version))
            if hop.version != self.version:
                self.changes.append((time.time(), hop.version))
                self.version = hop.version

    def finish(self, deliver_seconds: float):
        if self.follower:
            self.follower.stop()
        for hop in self.listener.finish():
            self._hop(hop)
        return self.reporting.finish(deliver_seconds)


def drive(sensors: list[Sensor], signal: np.ndarray, phases: dict[str, int], began: float, seconds: float,
          lag: list) -> None:
    """Push each of ``sensors`` its stream, a second at a time, when that second has been played; ``lag``: how
    late each round finished (seconds behind real time)."""
    rate = sensors[0].rate
    for k in range(int(seconds)):
        time.sleep(max(0.0, began + k + 1 - time.monotonic()))
        for sensor in sensors:
            at = phases[sensor.name] + k * rate
            sensor.push(np.take(signal, np.arange(at, at + rate), mode="wrap"))
        lag.append((k + 1, time.monotonic() - (began + k + 1)))


class Gate(threading.Thread):
    """A TCP relay to ``port`` on 127.0.0.1 that, while :attr:`closed`, drops every connection it is offered: a
    sensor's network gone and back."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.target, self.closed = port, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.closed:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def fleet_cli(*args: str, spec: str) -> str:
    """``envsound fleet ARGS --store SPEC`` (a subprocess, as an admin runs it) -> its output."""
    done = subprocess.run(ENVSOUND + ["fleet", *args, "--store", spec, "--who", "bench"], capture_output=True,
                          text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"fleet {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def last_batch_time(store) -> datetime:
    import sqlalchemy as sa

    from envsound.deploy import schema
    from envsound.deploy.times import as_utc

    with store.engine.connect() as connection:
        return as_utc(connection.execute(sa.select(sa.func.max(schema.assignments.c.assigned))).scalar_one())


def fleet_status(url: str, token: str) -> dict[str, dict]:
    import httpx

    answer = httpx.get(f"{url}/v1/fleet/status", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    answer.raise_for_status()
    return {row["sensor"]: row for row in answer.json()["sensors"]}


def step_figures(step: dict, sensors: list[Sensor], status: dict[str, dict]) -> dict:
    """How long after ``step["at"]`` (the assignment's time) every sensor ran its intended version, by the server's
    view (``status``) and each sensor's (its first hop of that version)."""
    from envsound.deploy.times import as_utc, parse_time

    at, intended = step["at"], step["intended"]
    server, own, off = [], [], []
    for sensor in sensors:
        want, row = intended[sensor.name], status.get(sensor.name, {})
        if row.get("running") != want:
            off.append(sensor.name)
        elif row.get("since"):
            server.append(max(0.0, (as_utc(parse_time(row["since"])) - at).total_seconds()))
        before = [v for t, v in sensor.changes if t < at.timestamp()]
        if before and before[-1] == want or (not before and want is None):
            own.append(0.0)  # already on it when the step came
        else:
            took = [t for t, v in sensor.changes if t >= at.timestamp() and v == want]
            own.append(took[0] - at.timestamp() if took else float("inf"))
    return {"step": step["name"], "at": at.isoformat(), "at_s": step["elapsed"], "streams_behind_s": step["lag"],
            "sensors_on_intended_server": len(sensors) - len(off),
            "off_intended": off[:10], "server_s_max": round(max(server), 1) if server else None,
            "sensor_s_max": round(max(own), 1) if own else None,
            "sensor_s_p50": round(float(np.median(own)), 1) if own else None}


def window_figures(sensor: Sensor, hop: float) -> tuple[int, int]:
    """(gaps, repeats) of ``sensor``'s window starts against the grid 0, hop, 2 hop, ... up to its last (a start off
    the grid by more than 2 ms, as hops give it to the millisecond, counts as a gap)."""
    starts = [round(start / hop) for start, _ in sensor.hops]
    off_grid = sum(abs(start - round(start / hop) * hop) > 0.002 for start, _ in sensor.hops)
    seen = Counter(starts)
    gaps = sum(1 for k in range(max(starts) + 1) if k not in seen) if starts else 0
    return gaps + off_grid, sum(n - 1 for n in seen.values())


def expected_events(phase: float, heard: float, period: float, sound: float) -> tuple[int, int]:
    """How many of the known signal's events (``sound`` seconds at the start of each ``period``) a stream starting
    ``phase`` seconds into it hears in its ``heard`` seconds: (whole, whole or in part): a sliver of one at the
    stream's start or end may or may not be found."""
    overlaps = [min(n * period + sound, phase + heard) - max(n * period, phase)
                for n in range(int((phase + heard) // period) + 2)]
    return sum(o >= sound - 1e-6 for o in overlaps), sum(o > 0 for o in overlaps)


def version_at(sensor: Sensor, seconds: float) -> int | None:
    """The version ``sensor`` heard its stream's second ``seconds`` with (the last window start at or before it)."""
    version = None
    for start, heard_by in sensor.hops:
        if start > seconds + 1e-3:
            break
        version = heard_by
    return version


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: a synthetic cnn trained for --epochs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--follow-seconds", type=float, default=10.0)
    parser.add_argument("--drivers", type=int, default=4, help="threads pushing the sensors' streams")
    parser.add_argument("--label", default="siren", help="the known signal's event (a synthetic class)")
    parser.add_argument("--period", type=float, default=15.0, help="seconds between the signal's events")
    parser.add_argument("--offline-seconds", type=float, default=0.0, help="one more sensor offline this long")
    parser.add_argument("--offline-budget-mb", type=float, default=0.2)
    parser.add_argument("--deliver-seconds", type=float, default=180.0)
    parser.add_argument("--work", type=Path, help="keep everything here (default: a new temporary folder)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="envsound-fleet-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_DATA_HOME"] = str(work / "xdg")  # PostgreSQL's default fleet folder: this run's (CLI, server)
    from envsound.deploy.fleet_files import fleet_dir
    from envsound.deploy.store import Store
    from envsound.deploy.versions import Fleet
    from envsound.data.synthetic import prepare_synthetic
    from envsound.inference.predictor import Predictor

    data = work / "data"
    prepare_synthetic(data)  # the known signal's sounds (and the default model's training set)
    checkpoint = args.checkpoint or train_checkpoint(work / "model", data, args.epochs)
    files = sensor_files(checkpoint, work)
    own = one_thread(Predictor.from_checkpoint(files["own"], device="cpu", precision="32", timed=False),
                     files["own"])
    from envsound.features.windows import eval_hop_length

    rate = own.features.sample_rate
    hop = eval_hop_length(own.features) * own.step / rate  # the listener's hop: a whole number of STFT hops
    signal = known_signal(data, args.label, args.period, rate)

    spec, postgres = store_spec(args.store, work, "fleet")
    store = Store.open(spec)
    folder = fleet_dir(spec)
    names = [f"s{i:03d}" for i in range(args.sensors)]
    secrets = {name: store.create_token(name, "sensor")[1] for name in names}
    admin = store.create_token("bench-admin", "admin")[1]
    offline = "offline" if args.offline_seconds > 0 else None
    if offline:
        secrets[offline] = store.create_token(offline, "sensor")[1]
    server = Server(checkpoint, spec)
    cache = ModelCache(own)
    sensors = [Sensor(n, secrets[n], server.url, work, cache, rate=rate, follow_seconds=args.follow_seconds)
               for n in names]
    gate = lone = None
    if offline:
        gate = Gate(server.port)
        gate.start()
        lone = Sensor(offline, secrets[offline], f"http://127.0.0.1:{gate.port}", work, cache, rate=rate,
                      follow_seconds=None, budget_mb=args.offline_budget_mb)
    everyone = sensors + ([lone] if lone else [])
    period = len(signal)
    phases = {s.name: (i * 7919 * 37) % period for i, s in enumerate(everyone)}
    began = time.monotonic()
    lags = [[] for _ in range(args.drivers)]
    drivers = [threading.Thread(target=drive, args=(everyone[d::args.drivers], signal, phases, began, args.seconds,
                                                    lags[d]), daemon=True) for d in range(args.drivers)]
    for thread in drivers:
        thread.start()

    fleet = Fleet(store, folder)
    timeline = [(0.3, "canary"), (0.5, "all"), (0.7, "corrupt"), (0.8, "rollback"), (0.9, "own")]
    steps, memory, offline_disk, versions = [], [], [], {}
    refused_corrupt = {}

    def intended_now(corrupt: int | None) -> dict[str, int | None]:
        assigned = {row["sensor"]: row["assigned"] for row in fleet.status()}
        previous = steps[-1]["intended"] if steps else {n: None for n in names}
        return {n: previous[n] if corrupt and assigned.get(n) == corrupt else assigned.get(n) for n in names}

    def close_step() -> None:
        if steps and "figures" not in steps[-1]:
            steps[-1]["figures"] = step_figures(steps[-1], sensors, fleet_status(server.url, admin))

    last_sample = 0.0
    while any(t.is_alive() for t in drivers):
        elapsed = time.monotonic() - began
        if timeline and elapsed >= timeline[0][0] * args.seconds:
            _, name = timeline.pop(0)
            close_step()
            if name == "rollback":
                refused_corrupt = {"sensors": sum(bool(s.follower.refused and s.follower.refused.startswith(
                    f"version {versions['v2']} refused")) for s in sensors),
                    "server_view": sum(bool((row.get("refused") or {}))
                                       for row in fleet_status(server.url, admin).values())}
            corrupt = None
            if name == "canary":
                out = fleet_cli("publish", str(files["v1"]), "--share", "0.1", "--note", "canary", spec=spec)
                versions["v1"] = int(out.split(":", 1)[0].split()[-1])
            elif name == "all":
                fleet_cli("assign", str(versions["v1"]), spec=spec)
            elif name == "corrupt":
                version, _ = fleet.add_version(files["v2"], name=own.model.config.model.name, note="corrupt",
                                               who="bench")
                versions["v2"] = corrupt = version.id
                damaged = fleet.path(version)
                body = bytearray(damaged.read_bytes())
                body[len(body) // 2] ^= 0xFF
                damaged.write_bytes(bytes(body))
                fleet.assign(version.id, who="bench")
            elif name == "rollback":
                fleet_cli("rollback", spec=spec)
            elif name == "own":
                fleet_cli("assign", "0", spec=spec)
            behind = max((per[-1][1] for per in lags if per), default=0.0)
            steps.append({"name": name, "at": last_batch_time(store), "intended": intended_now(corrupt),
                          "elapsed": round(elapsed, 1), "lag": round(behind, 1)})
        if elapsed - last_sample >= 5:
            last_sample = elapsed
            memory.append((elapsed, server.rss_mib()))
            if lone:
                with lone.reporting.outbox.lock:
                    queued = lone.reporting.outbox.db.execute(
                        "SELECT coalesce(sum(length(body)), 0), count(*) FROM snippets").fetchone()
                size = sum(p.stat().st_size for p in lone.reporting.outbox.path.parent.glob(
                    f"{lone.reporting.outbox.path.name}*"))
                offline_disk.append((elapsed, queued[0], queued[1], size))
        if gate:
            gate.closed = 0.1 * args.seconds <= elapsed < 0.1 * args.seconds + args.offline_seconds
        time.sleep(0.5)
    close_step()
    if gate:
        gate.closed = False
    ran = time.monotonic() - began
    summaries = {}
    finishers = []
    for sensor in everyone:  # in parallel: each waits for its outbox to empty
        thread = threading.Thread(target=lambda s=sensor: summaries.__setitem__(s.name, s.finish(
            args.deliver_seconds)), daemon=True)
        thread.start()
        finishers.append(thread)
    for thread in finishers:
        thread.join()
    drained = time.monotonic() - began - ran
    memory.append((time.monotonic() - began, server.rss_mib()))
    server_cpu = cpu_seconds(server.process.pid)
    server.process.terminate()
    server.process.wait(timeout=60)

    import sqlalchemy as sa

    from envsound.deploy import schema
    from envsound.deploy.times import as_utc

    table = schema.events
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.sensor, table.c.key, table.c.label, table.c.onset, table.c.offset,
                                            table.c.version, table.c.snippet_bytes)).all()
        if postgres:
            store_bytes = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
        else:
            store_bytes = sum(p.stat().st_size for p in Path(spec).parent.glob(Path(spec).name + "*"))
    stored = Counter((r.sensor, r.key) for r in rows)
    by_sensor = {s.name: s for s in everyone}
    emitted = {(s.name, k) for s in everyone for k in s.keys}
    lost = [key for key in emitted if key not in stored]
    twice = sum(n - 1 for n in stored.values() if n > 1)
    strangers = [key for key in stored if key not in emitted]
    wrong_version = 0
    for row in rows:
        sensor = by_sensor.get(row.sensor)
        if sensor is not None and sensor.follower is not None:
            seconds = (as_utc(row.onset) - sensor.clock_start).total_seconds()
            wrong_version += version_at(sensor, seconds) != row.version
    windows = [window_figures(s, hop) for s in everyone]
    heard_v2 = sum(1 for s in sensors for _, v in s.hops if v is not None and v == versions.get("v2"))
    swaps = [sum(1 for i in range(1, len(s.hops)) if s.hops[i][1] != s.hops[i - 1][1]) for s in sensors]
    found = Counter(r.sensor for r in rows if r.label == args.label)
    # an event open at a swap is closed there by the old version and the new one opens its own at the boundary: two
    # stored events, the second's onset the first's offset, of different versions (counted, then merged)
    ends = {(r.sensor, r.label, r.offset): r.version for r in rows}
    split = Counter(r.sensor for r in rows if r.label == args.label and (r.sensor, r.label, r.onset) in ends
                    and ends[(r.sensor, r.label, r.onset)] != r.version)
    expected = {s.name: expected_events(phases[s.name] / rate, len(s.hops) * hop + own.features.window_seconds - hop,
                                        args.period, SOUND_SECONDS) for s in sensors}
    snippet_sizes = np.array([r.snippet_bytes for r in rows if r.snippet_bytes])
    all_lags = [lag for per in lags for _, lag in per]
    first = [m for t, m in memory if t <= 60]
    last = [m for t, m in memory if t >= memory[-1][0] - 60]
    result = {
        "store": args.store, "seconds": args.seconds, "sensors": args.sensors, "follow_seconds": args.follow_seconds,
        "model": f"{own.model.config.model.name} ONNX ({own.source.short_digest}), {rate} Hz, window "
                 f"{own.features.window_seconds} s, hop {hop} s", "versions": versions,
        "steps": [step["figures"] for step in steps],
        "canary_sensors": sum(1 for v in steps[0]["intended"].values() if v is not None) if steps else None,
        "events_emitted": len(emitted), "events_stored": len(rows), "events_lost": len(lost), "events_twice": twice,
        "events_not_emitted": len(strangers), "events_queued_at_end": sum(s.queued for s in summaries.values()),
        "windows_total": sum(len(s.hops) for s in everyone), "window_gaps": sum(g for g, _ in windows),
        "window_repeats": sum(r for _, r in windows), "swaps_per_sensor": dict(Counter(swaps)),
        "events_wrong_version": wrong_version, "events_by_version": dict(Counter(str(r.version) for r in rows)),
        "corrupt_refused": refused_corrupt, "windows_heard_by_corrupt": heard_v2,
        "signal_events_per_sensor": {
        "expected_whole_median": float(np.median([e[0] for e in expected.values()])),
        "found_median": float(np.median([found[s.name] for s in sensors])),
        "split_at_a_swap": sum(split.values()),
        # found, splits merged, between the events heard whole and those heard at all (slivers at the edges)
        "sensors_as_expected": sum(lo <= found[n] - split[n] <= hi for n, (lo, hi) in expected.items()),
        "sensors_fewer": sum(found[n] - split[n] < lo for n, (lo, hi) in expected.items()),
        "sensors_more": sum(found[n] - split[n] > hi for n, (lo, hi) in expected.items()),
        "other_labels": sum(1 for r in rows if r.label != args.label)},
        "snippets_stored": int(len(snippet_sizes)),
        "snippet_bytes_mean": round(float(snippet_sizes.mean())) if len(snippet_sizes) else None,
        "snippet_bytes_max": int(snippet_sizes.max()) if len(snippet_sizes) else None,
        "snippets_dropped": sum((s.snippets or (0, 0, 0))[2] for n, s in summaries.items() if n != offline),
        "fleet_folder_bytes": folder_bytes(folder), "fleet_snippets_bytes": folder_bytes(folder / "snippets"),
        "store_bytes": store_bytes,
        "rss_first_minute_mib": round(max(first), 1) if first else None,
        "rss_last_minute_mib": round(max(last), 1) if last else None,
        "lag_behind_real_time_s": {"max": round(max(all_lags), 2) if all_lags else None,
                                   "last": round(max(per[-1][1] for per in lags if per), 2) if all_lags else None},
        "ran_s": round(ran, 1), "drained_s": round(drained, 1),
        "cpu_s": {"sensors_process": round(sum(os.times()[:2]), 1), "server": server_cpu},
        "cpu": _cpu(), "date": str(date.today()),
    }
    if lone:
        mine = {key for key in emitted if key[0] == offline}
        summary = summaries[offline]
        result["offline"] = {
            "seconds": args.offline_seconds, "budget_bytes": int(args.offline_budget_mb * 1e6),
            "events_emitted": len(mine), "events_stored": sum(1 for key in stored if key[0] == offline),
            "lost": sum(1 for key in mine if key not in stored), "twice": sum(stored[key] - 1 for key in mine
                                                                             if stored.get(key, 0) > 1),
            "snippets": {"sent": summary.snippets[0], "queued_at_end": summary.snippets[1],
                         "dropped": summary.snippets[2],
                         "stored": sum(1 for r in rows if r.sensor == offline and r.snippet_bytes)},
            "queued_snippet_bytes_max": max((d[1] for d in offline_disk), default=0),
            "queued_snippets_max": max((d[2] for d in offline_disk), default=0),
            "queue_file_bytes_max": max((d[3] for d in offline_disk), default=0),  # its write-ahead log included
            "queue_file_bytes_end": sum(p.stat().st_size for p in lone.reporting.outbox.path.parent.glob(
                f"{lone.reporting.outbox.path.name}*")),
        }
    finish(result, store, postgres)


if __name__ == "__main__":
    main()
