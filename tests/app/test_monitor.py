"""The deployment's REST API over a real server, on SQLite and on a real PostgreSQL server: reports stored once and
read back newest first in pages; sensors with their heartbeat; a sensor's audio stream stored as its events; every
bad request a 4xx with one line; a store that cannot write answers 503 and keeps nothing of the report."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from audiofactory import noise, tone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.store import Store

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def event(i: int, label: str = "dog", score: float = 0.7) -> dict:
    onset = NOW - timedelta(minutes=60 - i)
    return {"key": f"e{i}", "label": label, "onset": onset.isoformat(), "offset": (onset + timedelta(seconds=3))
            .isoformat().replace("+00:00", "Z"), "score": score}


@pytest.fixture
def api(served, store_spec):
    store = Store.open(store_spec)
    with running(create_app(served.model, store=store)) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.store = store
        yield client
    store.close()


def test_reports_are_stored_once_and_read_newest_first(api):
    first = api.post("/v1/report", json={"sensor": "lab", "model": "cnn", "fingerprint": "f00d",
                                          "events": [event(i) for i in range(30)],
                                          "heartbeat": {"time": NOW.isoformat(), "label": "dog", "score": 0.7}})
    assert first.status_code == 200 and first.json() == {"stored": 30, "duplicates": 0}
    again = api.post("/v1/report", json={"sensor": "lab", "events": [event(i) for i in range(25, 35)]})
    assert again.json() == {"stored": 5, "duplicates": 5}
    api.post("/v1/report", json={"sensor": "yard", "events": [event(0, "siren", 0.2)]})

    page = api.get("/v1/events", params={"sensor": "lab", "limit": 20}).json()
    assert [e["key"] for e in page["events"]] == [f"e{i}" for i in range(34, 14, -1)]
    rest = api.get("/v1/events", params={"sensor": "lab", "limit": 20, "cursor": page["next"]}).json()
    assert [e["key"] for e in rest["events"]] == [f"e{i}" for i in range(14, -1, -1)] and rest["next"] is None
    newest = page["events"][0]
    assert set(newest) >= {"label", "onset", "offset", "score", "sensor", "model", "fingerprint"}
    assert newest["onset"] == (NOW - timedelta(minutes=26)).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert [e["sensor"] for e in api.get("/v1/events", params={"label": "siren"}).json()["events"]] == ["yard"]
    assert len(api.get("/v1/events", params={"min_score": 0.5, "limit": 10_000}).json()["events"]) == 35
    since = (NOW - timedelta(minutes=28)).isoformat()  # e32 sounds until 27:57 before now, e31 until 28:57
    assert [e["key"] for e in api.get("/v1/events", params={"since": since}).json()["events"]] == [
        "e34", "e33", "e32"]

    sensors = {s["name"]: s for s in api.get("/v1/sensors").json()["sensors"]}
    assert set(sensors) == {"lab", "yard"} and sensors["lab"]["online"]
    assert (sensors["lab"]["label"], sensors["lab"]["model"], sensors["yard"]["label"]) == ("dog", "cnn", None)


@pytest.mark.parametrize("body, status, reason", [
    ({"sensor": "lab", "events": [{"key": "a", "label": "dog", "onset": "yesterday"}]}, 422, "events.0.onset"),
    ({"sensor": "lab", "events": [{**event(1), "onset": "2026-11-27T10:00:00"}]}, 422, "timezone"),
    ({"sensor": "lab", "events": [{**event(1), "score": 7}]}, 422, "score"),
    ({"sensor": "lab", "events": [{**event(1), "offset": event(0)["onset"]}]}, 422, "is before onset"),
    ({"sensor": "lab", "events": [{**event(1), "onset": "2999-01-01T00:00:00Z",
                                   "offset": "2999-01-01T00:00:01Z"}]}, 422, "is out of range"),
    ({"sensor": "lab", "events": [event(0)] * 1001}, 422, "at most 1000"),
    ({"sensor": "no such/sensor", "events": []}, 422, "sensor"),
    ({"events": []}, 422, "sensor: Field required"),
])
def test_a_bad_report_gets_a_4xx_with_one_line(served, tmp_path, body, status, reason):
    store = Store.open(tmp_path / "events.sqlite")
    with running(create_app(served.model, store=store)) as url:
        answer = httpx.post(f"{url}/v1/report", json=body, timeout=30)
    assert answer.status_code == status and reason in answer.json()["error"], answer.text
    assert "\n" not in answer.json()["error"] and store.count_events() == 0


@pytest.mark.parametrize("params, reason", [
    ({"since": "last tuesday"}, "since"), ({"until": "2026-11-27T10:00:00"}, "give the time's zone"),
    ({"limit": 1_000_000}, "limit"), ({"limit": 0}, "limit"), ({"min_score": 2}, "min_score"),
    ({"cursor": "garbage"}, "cursor 'garbage' is not one this server gave"),
    ({"since": "0001-01-01T00:00:00+05:00"}, "since: 0001-01-01T00:00:00+05:00 is out of range in UTC"),
])
def test_a_bad_query_gets_422_with_one_line(api, params, reason):
    answer = api.get("/v1/events", params=params)
    assert answer.status_code == 422 and reason in answer.json()["error"], answer.text


def test_a_sensor_streaming_audio_gets_its_events_stored(api, served):
    rate = 8000
    audio = np.concatenate([tone(seconds=3, sample_rate=rate, freq=660)[:, 0],
                            noise(seconds=3, sample_rate=rate)[:, 0]]).astype("<f4")
    start = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    ws = str(api.base_url).replace("http://", "ws://").rstrip("/")
    hops = []
    with connect(f"{ws}/v1/listen?rate={rate}&encoding=float32") as socket:
        socket.send(json.dumps({"sensor": "mic1", "start": start.isoformat()}))
        socket.send(audio.tobytes())
        socket.send("end")
        try:
            while True:
                hops.append(json.loads(socket.recv(timeout=30)))
        except ConnectionClosed:
            pass
    heard = [e for hop in hops for e in hop["events"]]
    assert heard, "the stream's two sounds end as events"
    stored = api.get("/v1/events", params={"sensor": "mic1"}).json()["events"]
    expected = sorted(((start + timedelta(seconds=e["onset"])).isoformat(timespec="microseconds"), e["label"])
                      for e in heard)
    assert sorted((e["onset"].replace("Z", "+00:00"), e["label"]) for e in stored) == expected
    (sensor,) = api.get("/v1/sensors").json()["sensors"]
    assert sensor["name"] == "mic1" and sensor["label"] == hops[-2]["top"][0]["label"]
    assert sensor["model"] == served.model.describe()["model"]


def test_a_store_that_cannot_write_answers_503_and_keeps_nothing(served, tmp_path):
    path = tmp_path / "events.sqlite"
    store = Store.open(path)
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    sa.event.listen(store.engine, "connect",  # the file may not grow: SQLite's "database or disk is full"
                    lambda connection, _record: connection.execute(f"PRAGMA max_page_count = {pages + 1}"))
    store.engine.dispose()
    report = {"sensor": "lab", "events": [{**event(0), "key": f"big{i}", "label": "x" * 200} for i in range(1000)]}
    with running(create_app(served.model, store=store)) as url:
        answer = httpx.post(f"{url}/v1/report", json=report, timeout=30)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert "full" in answer.json()["error"] and "nothing of it was kept, retry" in answer.json()["error"]
    assert store.count_events() == 0


def test_a_database_gone_away_answers_503_and_the_server_goes_on(served, postgres):
    """A PostgreSQL server of its own, stopped under the running app: reads and writes answer 503 with one line,
    the page and /healthz still answer, and everything works again once the database is back."""
    from benchmarks.support.pgcluster import PostgresServer

    with PostgresServer() as database:
        store = Store.open(database.url())
        with running(create_app(served.model, store=store)) as url, httpx.Client(base_url=url, timeout=60) as api:
            assert api.post("/v1/report", json={"sensor": "lab", "events": [event(1)]}).status_code == 200
            database.stop()
            for answer in (api.get("/v1/events"), api.get("/v1/sensors"),
                           api.post("/v1/report", json={"sensor": "lab", "events": [event(2)]})):
                assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
                assert "\n" not in answer.json()["error"] and database.url().split("@")[1] in answer.json()["error"]
            assert api.get("/healthz").status_code == 200
            database.start()
            assert api.post("/v1/report", json={"sensor": "lab", "events": [event(2)]}).json()["stored"] == 1
            assert len(api.get("/v1/events").json()["events"]) == 2
        store.close()


def test_pages_hold_every_event_of_an_onset_shared_to_the_microsecond(api):
    """A stream's onsets are its start plus seconds: microseconds matter, and ties are broken by id."""
    onset = "2026-11-27T08:00:00.123456Z"
    events = [{"key": f"t{i}", "label": "dog", "onset": onset, "offset": "2026-11-27T08:00:01Z", "score": 0.5}
              for i in range(5)]
    assert api.post("/v1/report", json={"sensor": "lab", "events": events}).json()["stored"] == 5
    keys, cursor = [], None
    while True:
        page = api.get("/v1/events", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        keys += [e["key"] for e in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(keys) == [f"t{i}" for i in range(5)] and len(keys) == 5


def test_a_sensor_whose_clock_is_an_hour_off_is_said_to_be_off(api):
    """Issue 68: events keep the sensor's times and the server's receive time; GET /v1/sensors says whose clock is
    off (the sensor's time of sending against the server's time of receiving)."""
    behind = datetime.now(timezone.utc) - timedelta(hours=1)  # the sensor's clock now
    shifted = [{**event(i), "onset": (behind - timedelta(seconds=30 - i)).isoformat(),
                "offset": (behind - timedelta(seconds=29 - i)).isoformat()} for i in range(3)]
    late = api.post("/v1/report", json={"sensor": "late", "events": shifted, "sent": behind.isoformat()})
    right = api.post("/v1/report", json={"sensor": "right", "events": [event(5)],
                                         "sent": datetime.now(timezone.utc).isoformat()})
    old = api.post("/v1/report", json={"sensor": "older", "events": [event(6)]})  # a sensor that does not say
    assert late.status_code == right.status_code == old.status_code == 200, (late.text, right.text, old.text)

    stored = api.get("/v1/events", params={"sensor": "late"}).json()["events"]
    assert len(stored) == 3
    for item in stored:
        lag = datetime.fromisoformat(item["received"].replace("Z", "+00:00")) - \
            datetime.fromisoformat(item["onset"].replace("Z", "+00:00"))
        assert timedelta(minutes=59) < lag < timedelta(minutes=70), item
    sensors = {s["name"]: s for s in api.get("/v1/sensors").json()["sensors"]}
    assert sensors["late"]["clock"] == "clock off by about 60 min, behind the server's"
    assert -3700 < sensors["late"]["clock_offset"] < -3500
    assert sensors["right"]["clock"] is None and abs(sensors["right"]["clock_offset"]) < 60
    assert sensors["older"]["clock"] is None and sensors["older"]["clock_offset"] is None


def test_a_report_body_over_the_limit_gets_413_and_nothing_is_stored(served, tmp_path):
    """Issue 68: /v1/report is under the same body limit as /v1/predict, declared or streamed."""
    from envsound.app.server import ServerLimits

    store = Store.open(tmp_path / "events.sqlite")
    limits = ServerLimits(max_upload_mb=0.05)  # 50 KB: a report of ~300 events
    big = {"sensor": "lab", "events": [{**event(i % 60), "key": f"k{i}"} for i in range(1000)]}
    content = json.dumps(big).encode()
    assert len(content) > 100_000
    with running(create_app(served.model, store=store, limits=limits)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        declared = client.post("/v1/report", content=content, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "--max-upload-mb" in declared.json()["error"]

        def chunks():
            for start in range(0, len(content), 8192):
                yield content[start:start + 8192]

        streamed = client.post("/v1/report", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "--max-upload-mb" in streamed.json()["error"]
        small = client.post("/v1/report", json={"sensor": "lab", "events": [event(1)]})
        assert small.status_code == 200
    assert store.count_events() == 1
    store.close()
