"""Detections with their sound, end to end: `envsound serve --auth --store` as its own process, a sensor
`envsound listen model.onnx --input FILE --report URL --snippets --snippets-except LABEL`, then a viewer lists the
events, fetches each one's sound and decodes it; a sensor token may not; the excepted label's sound never arrived.
The server, the model and the recording are tests/cli/test_sensor.py's."""

from __future__ import annotations

import re
import subprocess

import httpx
from test_sensor import ENVSOUND, Server, onnx_model, recording, stored, token  # noqa: F401 (fixtures used by name)

from envsound.deploy.snippets import decode

LAST_LINE = re.compile(r"^(\d+) events: (\d+) delivered, 0 queued; snippets: (\d+) sent, 0 queued, 0 dropped "
                       r"\(over the budget\)$")


def test_a_sensor_sends_its_events_sound_and_a_viewer_hears_it(onnx_model, recording, synthetic_manifest, tmp_path):
    private = sorted({record.label for record in synthetic_manifest.records})[0]  # its sound must not leave
    store = tmp_path / "events.sqlite"
    sensor, viewer = token(store, "lab", "sensor"), token(store, "me", "viewer")
    server = Server(onnx_model, store)
    try:
        ran = subprocess.run([*ENVSOUND, "listen", str(onnx_model), "--input", str(recording), "--report", server.url,
                              "--token", sensor, "--sensor", "lab", "--queue", str(tmp_path / "queue.sqlite"),
                              "--deliver-seconds", "30", "--snippets", "--snippets-except", private],
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        heard, delivered, sent = (int(n) for n in LAST_LINE.match(ran.stdout.strip().splitlines()[-1]).groups())
        events = stored(server.url, viewer)
        assert heard == delivered == len(events) >= 3
        with_sound = [e for e in events if e["audio"]]
        assert sent == len(with_sound) == sum(e["label"] != private for e in events) >= 1
        assert private in {e["label"] for e in events}  # heard and reported, its sound kept on the sensor's side
        # where each event lies in its snippet, as the sensor cut it (what the review offers and labels)
        offered = httpx.get(f"{server.url}/v1/review/events", params={"k": 100},
                            headers={"Authorization": f"Bearer {viewer}"}, timeout=30).json()["events"]
        spans = {item["event"]: (item["start"], item["end"]) for item in offered}
        assert set(spans) == {e["id"] for e in with_sound}
        for event in with_sound:
            answer = httpx.get(f"{server.url}/v1/events/{event['id']}/audio",
                               headers={"Authorization": f"Bearer {viewer}"}, timeout=30)
            assert answer.status_code == 200 and answer.headers["content-type"] == "audio/ogg"
            assert len(answer.content) == event["audio"]
            samples, rate = decode(answer.content)
            assert rate in (8000, 12000, 16000, 24000, 48000) and len(samples) / rate >= 1.0
            start, end = spans[event["id"]]
            assert 0.0 <= start < end <= len(samples) / rate + 0.05  # the event inside its snippet
        refused = httpx.get(f"{server.url}/v1/events/{with_sound[0]['id']}/audio",
                            headers={"Authorization": f"Bearer {sensor}"}, timeout=30)
        assert refused.status_code == 403
        assert len(list((tmp_path / "events-fleet" / "snippets" / "lab").glob("*.ogg"))) == len(with_sound)
    finally:
        server.kill()
