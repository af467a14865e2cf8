"""A deployment end to end, as the issue's "done when" runs it: tokens made with `envsound token`, `envsound serve
--auth` as its own process, a sensor `envsound listen model.onnx --input - --report ... --sensor lab` on a recording
piped in; the viewer reads the events back. The server is killed with SIGKILL while the sensor listens and started
again: every event arrives, none twice. A sensor that cannot reach its server keeps its events for the next run,
and that run's last line counts them. `envsound token` makes a store only when asked to."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from envsound.deploy.store import Store

ENVSOUND = [sys.executable, "-m", "envsound"]
LAST_LINE = re.compile(r"^(\d+) events(?: and (\d+) queued before)?: (\d+) delivered, (\d+) queued$")


@pytest.fixture(scope="module")
def onnx_model(trained_run, tmp_path_factory) -> Path:
    from envsound.cli.main import main

    out = tmp_path_factory.mktemp("sensor") / "model.onnx"
    assert main(["export", "--quiet", str(trained_run.checkpoint), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def recording(synthetic_manifest, tmp_path_factory) -> Path:
    """Clips of each class, one after another, twice over: a recording of many events. The clips are ones the shared
    model trained on, so that it hears them whatever the CPU's numerics (this tests the deployment, not the model)."""
    return clips_recording(synthetic_manifest, tmp_path_factory.mktemp("recording") / "recording.wav", repeats=2)


def clips_recording(manifest, path: Path, *, repeats: int) -> Path:
    """``path``: a fold-1 clip of each class of ``manifest``, one after another, ``repeats`` times over (16-bit)."""
    first = {}
    for record in manifest.select_folds([1]).records:
        first.setdefault(record.label, record.path)
    parts, rate = [], None
    for clip in list(first.values()) * repeats:
        samples, rate = sf.read(clip, dtype="float32", always_2d=True)
        parts.append(samples.mean(axis=1))
    sf.write(path, np.concatenate(parts), rate, subtype="PCM_16")
    return path


def token(store: Path, name: str, role: str) -> str:
    ran = subprocess.run([*ENVSOUND, "token", "create", name, "--role", role, "--store", str(store), "--new-store"],
                         capture_output=True, text=True, timeout=60, check=True)
    return ran.stdout.strip().splitlines()[-1]


class Server:
    """``envsound serve MODEL --auth --store STORE`` as its own process, on ``port`` (0: any)."""

    def __init__(self, model: Path, store: Path, port: int = 0) -> None:
        self.process = subprocess.Popen([*ENVSOUND, "serve", str(model), "--auth", "--store", str(store),
                                         "--port", str(port), "--quiet"],
                                        stderr=subprocess.PIPE, text=True)
        for line in self.process.stderr:
            if "serving at" in line:
                self.url = re.search(r"(http://[^/]+)/", line).group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return
        raise AssertionError(f"serve did not start (exit {self.process.wait(10)})")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def listen(model: Path, url: str, secret: str, queue: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([*ENVSOUND, "listen", str(model), "--input", "-", "--report", url, "--token", secret,
                             "--sensor", "lab", "--queue", str(queue), "--deliver-seconds", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def summary(stdout: str) -> tuple[int, int, int]:
    """(heard, delivered, queued) of the last line, which counts an earlier run's events too: they add up."""
    heard, before, delivered, queued = (int(n or 0) for n in LAST_LINE.match(stdout.strip().splitlines()[-1]).groups())
    assert heard + before == delivered + queued, stdout
    return heard, delivered, queued


def stored(url: str, viewer: str) -> list[dict]:
    answer = httpx.get(f"{url}/v1/events", params={"sensor": "lab", "limit": 10_000},
                       headers={"Authorization": f"Bearer {viewer}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def test_a_sensor_reports_what_it_hears_and_the_viewer_reads_it(onnx_model, recording, tmp_path):
    store = tmp_path / "events.sqlite"
    sensor, viewer = token(store, "lab", "sensor"), token(store, "me", "viewer")
    server = Server(onnx_model, store)
    try:
        with open(recording, "rb") as audio:
            run = listen(onnx_model, server.url, sensor, tmp_path / "queue.sqlite", stdin=audio)
            out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        heard, delivered, queued = summary(out)
        assert heard >= 3 and (delivered, queued) == (heard, 0)
        events = stored(server.url, viewer)
        assert len(events) == heard and {e["sensor"] for e in events} == {"lab"}
        labels = re.findall(r"event (\S+) [\d.]+-[\d.]+ s", out)
        assert sorted(e["label"] for e in events) == sorted(labels)
        assert all(len(e["fingerprint"]) == 16 and e["model"] for e in events)
    finally:
        server.kill()


def test_events_survive_a_server_killed_mid_stream_and_arrive_once(onnx_model, recording, tmp_path):
    store, queue = tmp_path / "events.sqlite", tmp_path / "queue.sqlite"
    sensor, viewer = token(store, "lab", "sensor"), token(store, "me", "viewer")
    server = Server(onnx_model, store)
    data = recording.read_bytes()
    run = listen(onnx_model, server.url, sensor, queue, stdin=subprocess.PIPE)
    try:
        half = len(data) // 2
        os.write(run.stdin.fileno(), data[:half])
        deadline = time.monotonic() + 60
        while not stored(server.url, viewer):  # the first events are in
            assert time.monotonic() < deadline, "no event arrived"
            time.sleep(0.2)
        server.kill()
        said = []  # the sensor's stderr, line by line as it comes

        def read_stderr():
            for line in run.stderr:
                said.append(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        os.write(run.stdin.fileno(), data[half:])
        run.stdin.close()
        deadline = time.monotonic() + 60
        while not any("cannot reach" in line for line in said):  # the sensor finds the server gone and queues
            assert time.monotonic() < deadline and run.poll() is None, "".join(said)
            time.sleep(0.05)
        server = Server(onnx_model, store, port=server.port)
        assert run.wait(120) == 0
        reader.join(10)
        out, err = run.stdout.read(), "".join(said)
        heard, delivered, queued = summary(out)
        assert (delivered, queued) == (heard, 0) and "cannot reach" in err
        events = stored(server.url, viewer)
        assert len(events) == heard and len({e["key"] for e in events}) == heard
    finally:
        run.kill()
        server.kill()


def test_a_sensor_without_its_server_keeps_the_events_for_its_next_run(onnx_model, recording, tmp_path):
    store, queue = tmp_path / "events.sqlite", tmp_path / "queue.sqlite"
    sensor, viewer = token(store, "lab", "sensor"), token(store, "me", "viewer")
    with open(recording, "rb") as audio:
        run = subprocess.run([*ENVSOUND, "listen", str(onnx_model), "--input", "-", "--report", "http://127.0.0.1:9",
                              "--token", sensor, "--sensor", "lab", "--queue", str(queue), "--deliver-seconds", "1"],
                             stdin=audio, capture_output=True, text=True, timeout=120)
    heard, delivered, queued = summary(run.stdout)
    assert run.returncode == 1 and heard >= 3 and (delivered, queued) == (0, heard)
    assert "cannot reach http://127.0.0.1:9/v1/report" in run.stderr
    server = Server(onnx_model, store)
    try:
        with open(recording, "rb") as audio:
            again = listen(onnx_model, server.url, sensor, queue, stdin=audio)
            out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert summary(out) == (heard, 2 * heard, 0)  # this run's events and the last run's
        last = out.strip().splitlines()[-1]
        assert last == f"{heard} events and {heard} queued before: {2 * heard} delivered, 0 queued"
        assert len(stored(server.url, viewer)) == 2 * heard
    finally:
        server.kill()


def test_token_list_and_revoke_without_a_store_make_none_and_say_so(tmp_path, monkeypatch, capsys):
    """Issue 69: `envsound token list` without --store printed nothing, exited 0 and made the default store."""
    from envsound.cli.main import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the user's data folder: the default store's
    for argv, where in ((["token", "list"], tmp_path / "data" / "envsound" / "events.sqlite"),
                        (["token", "list", "--store", str(tmp_path / "events.sqlite")], tmp_path / "events.sqlite"),
                        (["token", "revoke", "lab", "--store", str(tmp_path / "events.sqlite")],
                         tmp_path / "events.sqlite")):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and f"{where}" in err and "no store there" in err, err
        assert not where.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_token_create_on_a_mistyped_store_is_refused_unless_new_store(tmp_path, capsys):
    """Issue 69: `token create --store event.sqlite` (a typo for events.sqlite) silently made a second store; and
    `token list` of a store without tokens printed nothing."""
    from envsound.cli.main import main

    store = tmp_path / "events.sqlite"
    assert main(["token", "create", "lab", "--role", "sensor", "--store", str(store), "--new-store"]) == 0
    assert f"in a new store, sqlite:///{store};" in capsys.readouterr().out
    assert main(["token", "create", "me", "--role", "viewer", "--store", str(tmp_path / "event.sqlite")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'event.sqlite'}: no store there; add --new-store" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "event.sqlite").exists()
    assert main(["token", "create", "me", "--role", "viewer", "--store", str(store)]) == 0  # the store is there
    assert "a new store" not in capsys.readouterr().out
    assert main(["token", "revoke", "lab", "--store", str(store)]) == 0
    assert main(["token", "revoke", "me", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["token", "list", "--store", str(store)]) == 0
    assert "no tokens" not in capsys.readouterr().out  # revoked tokens are listed
    Store.open(tmp_path / "served.sqlite").close()  # a store of no tokens: the one serve made before any token
    assert main(["token", "list", "--store", str(tmp_path / "served.sqlite")]) == 0
    assert capsys.readouterr().out == f"no tokens in sqlite:///{tmp_path / 'served.sqlite'}\n"
