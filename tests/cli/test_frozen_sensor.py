"""A sensor on a head learned over a frozen network: `envsound serve EXPORT --auth --store` as its own process (the
folder `envsound export` made), `envsound listen EXPORT --report` (where only the light install and LiteRT can be
imported) and `envsound listen LEARNED.ckpt --report` on a recording file: their events reach the server's store,
each marked with the model's name and its fingerprint (the first 16 hex digits of the export's manifest, or of the
checkpoint), as an ONNX model's are. The network is the tiny BirdNET of tests/tinytflite.py (tests/learnedhead.py
makes the head)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import httpx
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
pytest.importorskip("fastapi")

from learnedhead import learned_head, light_install, recording  # noqa: E402 (after the skips)
from test_sensor import Server, stored, summary  # noqa: E402 (its helpers: serve as a process, the store's events)

from envsound.fileio import file_digest  # noqa: E402

SENSOR = "from envsound.cli.main import main\nsys.exit(main(sys.argv[1:]))"


def test_listen_reports_the_events_of_a_head_over_a_frozen_network_to_serve(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned, export = learned_head(tmp_path), tmp_path / "sensor-model"
    assert envsound_main("export", learned, "--out", export).returncode == 0
    audio = recording(tmp_path / "recording.wav", 48_000, 3.0, "rbbrrb")  # windows of 3 s: 2 bird events, 2 rain
    store = tmp_path / "events.sqlite"
    secrets = {}
    for name, role in (("lab", "sensor"), ("me", "viewer")):
        made = envsound_main("token", "create", name, "--role", role, "--store", store, "--new-store")
        assert made.returncode == 0, made.stderr
        secrets[name] = made.stdout.strip().splitlines()[-1]
    server = Server(export, store)
    try:
        heard = {}
        for model in (export, learned):
            argv = ["listen", str(model), "--input", str(audio), "--report", server.url, "--token", secrets["lab"],
                    "--sensor", "lab", "--queue", str(tmp_path / f"queue-{model.name}.sqlite"),
                    "--deliver-seconds", "30"]
            if model == export:  # as a sensor runs it: the light install and LiteRT, no torch
                ran = subprocess.run([sys.executable, "-c", light_install(SENSOR), *argv], capture_output=True,
                                     text=True, timeout=120)
            else:
                ran = envsound_main(*argv)
            assert ran.returncode == 0, ran.stderr
            events, delivered, queued = summary(ran.stdout)
            assert events == 4 and (delivered, queued) == (4, 0), ran.stdout
            heard[file_digest(export / "envsound-head.json" if model == export else model)[:16]] = events
        events = stored(server.url, secrets["me"])
        described = httpx.get(f"{server.url}/v1/model", headers={"Authorization": f"Bearer {secrets['me']}"},
                              timeout=30).json()
    finally:
        server.kill()
    assert described["labels"] == ["bird", "rain"] and described["licence"] == "CC BY-NC-SA 4.0"  # BirdNET's travels
    assert len(events) == 8 and {e["sensor"] for e in events} == {"lab"}
    assert {e["model"] for e in events} == {"birdnet-v2.4"}
    assert {e["fingerprint"]: sum(f["fingerprint"] == e["fingerprint"] for f in events) for e in events} == heard
    seconds = sorted((e["label"], round((_when(e["offset"]) - _when(e["onset"])).total_seconds(), 3)) for e in events)
    assert seconds == [("bird", 3.0)] * 2 + [("bird", 6.0)] * 2 + [("rain", 3.0)] * 2 + [("rain", 6.0)] * 2


def _when(stamp: str) -> datetime:
    """A stored event's time (ISO 8601 in UTC: the stream's start plus the event's offset in it)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
