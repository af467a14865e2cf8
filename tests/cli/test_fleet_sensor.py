"""A rollout end to end on 127.0.0.1: `envsound serve --auth --store` as its own process, `envsound fleet publish`,
and a sensor `envsound listen MODEL --input - --report URL --follow` fed a recording in three parts: it starts on
version 1, swaps to version 2 when it is published (every window of the stream scored once, on one grid), then
refuses a version 3 whose file was corrupted on the server (keeps version 2, says so in its heartbeat). Each event
stored says the version that heard it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from test_sensor import clips_recording

from envsound.deploy.fleet_files import fleet_dir
from envsound.deploy.store import Store
from envsound.deploy.versions import Fleet

ENVSOUND = [sys.executable, "-m", "envsound"]
HOP = 31 * 256 / 16000  # the shared model's evaluation hop (s)


@pytest.fixture(scope="module")
def versions(trained_run, tmp_path_factory) -> list[Path]:
    """The shared model as ONNX, twice: the second with a note in its metadata, so another file (another digest)
    of the same network."""
    import onnx

    from envsound.cli.main import main

    folder = tmp_path_factory.mktemp("versions")
    first = folder / "v1.onnx"
    assert main(["export", "--quiet", str(trained_run.checkpoint), "--out", str(first)]) == 0
    proto = onnx.load(str(first))
    proto.metadata_props.add(key="note", value="version two")
    onnx.save(proto, str(folder / "v2.onnx"))
    return [first, folder / "v2.onnx"]


@pytest.fixture(scope="module")
def recording(synthetic_manifest, tmp_path_factory) -> Path:
    """Clips of each class one after another, three times over: the shared model trained on them."""
    return clips_recording(synthetic_manifest, tmp_path_factory.mktemp("recording") / "recording.wav", repeats=3)


class Lines:
    """A process's stream read line by line in a thread, so a test can wait for a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    def wait_for(self, pattern: str, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if re.search(pattern, line)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no line like {pattern!r} within {seconds} s: {''.join(self.lines)[-3000:]}")


def test_a_sensor_follows_a_rollout_and_refuses_a_corrupt_version(versions, recording, tmp_path):
    store_path = tmp_path / "events.sqlite"
    store = Store.open(store_path)
    sensor, viewer = store.create_token("lab", "sensor")[1], store.create_token("me", "viewer")[1]
    fleet = Fleet(store, fleet_dir(store_path))
    fleet.assign(fleet.add_version(versions[0], name="cnn", who="ann")[0].id)
    server = subprocess.Popen([*ENVSOUND, "serve", str(versions[0]), "--auth", "--store", str(store_path), "--port",
                               "0", "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        served = Lines(server.stderr)
        url = re.search(r"(http://[^/\s]+)/", served.wait_for("serving at", 120)).group(1)
        run = subprocess.Popen([*ENVSOUND, "listen", str(versions[0]), "--input", "-", "--json", "--report", url,
                                "--token", sensor, "--sensor", "lab", "--queue", str(tmp_path / "queue.sqlite"),
                                "--follow", "--follow-seconds", "0.2", "--heartbeat-seconds", "0.2",
                                "--deliver-seconds", "30"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        said = Lines(line.decode() for line in run.stderr)
        heard = Lines(line.decode() for line in run.stdout)
        audio = recording.read_bytes()
        third = len(audio) // 3
        run.stdin.write(audio[:third])  # its header opens the stream; then the first ask, before the first window
        run.stdin.flush()
        said.wait_for(r"version 1 \(cnn, sha256 \w+\) taken", 120)
        assert (tmp_path / "queue-models" / "server-key.pub").read_bytes() == (fleet.folder / "signing-key.pub"
                                                                               ).read_bytes()
        heard.wait_for(r'"version": 1')
        ran = subprocess.run([*ENVSOUND, "fleet", "publish", str(versions[1]), "--store", str(store_path)],
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0 and "version 2 assigned to every sensor" in ran.stdout, ran.stderr
        said.wait_for(r"version 2 \(cnn, sha256 \w+\) taken")
        run.stdin.write(audio[third:2 * third])
        run.stdin.flush()
        heard.wait_for(r'"version": 2')
        corrupt, _ = fleet.add_version(_another(versions[1], tmp_path), name="cnn")
        data = bytearray(fleet.path(corrupt).read_bytes())
        data[len(data) // 2] ^= 0xFF
        fleet.path(corrupt).write_bytes(bytes(data))
        fleet.assign(corrupt.id)
        refused = said.wait_for(r"version 3 refused")
        assert "is not the digest" in refused and "keeps running version 2" in refused
        run.stdin.write(audio[2 * third:])
        run.stdin.close()
        assert run.wait(120) == 0, "".join(said.lines)
        heard.thread.join(10)
        hops = [json.loads(line) for line in heard.lines]
        windows = [hop for hop in hops if not hop["end"]]
        # one grid from 0 across both swaps: no window skipped, none twice
        assert [hop["start"] for hop in windows] == [round(HOP * k, 3) for k in range(len(windows))]
        kinds = [hop["version"] for hop in windows]
        assert kinds == sorted(kinds) and set(kinds) == {1, 2}
        events = httpx.get(f"{url}/v1/events", params={"limit": 1000}, headers={"Authorization": f"Bearer {viewer}"},
                           timeout=30).json()["events"]
        heard_by = {v.id: (v.name, v.digest[:16]) for v in fleet.versions()}  # each event: its version's file
        assert all((e["model"], e["fingerprint"]) == heard_by[e["version"]] for e in events)
        tagged = {e["version"] for e in events}
        assert tagged <= {1, 2} and len(events) == sum(len(hop["events"]) for hop in hops)
        assert all(e["version"] == 1 for e in events if e["onset"] < min(
            (x["onset"] for x in events if x["version"] == 2), default="~"))
        status = httpx.get(f"{url}/v1/fleet/status", headers={"Authorization": f"Bearer {viewer}"}, timeout=30).json()
        lab = next(row for row in status["sensors"] if row["sensor"] == "lab")
        assert (lab["assigned"], lab["running"]) == (3, 2) and "version 3 refused" in lab["refused"]["line"]
    finally:
        server.kill()
        server.wait(10)
        store.close()


def _another(model: Path, tmp_path: Path) -> Path:
    """Another file of the same network (a third digest)."""
    import onnx

    proto = onnx.load(str(model))
    proto.metadata_props.add(key="note2", value="version three")
    onnx.save(proto, str(tmp_path / "v3.onnx"))
    return tmp_path / "v3.onnx"
