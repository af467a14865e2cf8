"""The server's side of snippets, on a real server with tokens: a sensor uploads its own events' sound once however
often it retries, readers hear it and sensors never do, a sensor cannot upload another's (403), an unknown event is
404, too large 413, not audio 415; retention and quota delete the oldest, and a purge by sensor, label or age deletes
the files and the columns (the events stay)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.cli.fleet_purge import add_purge_options, purge
from envsound.deploy.snippet_files import MAX_SNIPPET_BYTES, SnippetFiles
from envsound.deploy.snippets import encode
from envsound.deploy.store import Detection, Store

NOW = datetime.now(timezone.utc)
OPUS = encode(np.random.default_rng(0).normal(0, 0.2, 16000).astype(np.float32), 16000)[0]


@dataclass
class Fleet:
    url: str
    store: Store
    folder: Path
    tokens: dict  # role -> secret; the sensor token is sensor "lab"'s


@pytest.fixture(scope="module")
def fleet(served, tmp_path_factory):
    where = tmp_path_factory.mktemp("snippets")
    store = Store.open(where / "events.sqlite")
    tokens = {role: store.create_token("lab" if role == "sensor" else role, role)[1]
              for role in ("sensor", "viewer", "reviewer", "admin")}
    files = SnippetFiles(store, where / "events-fleet")
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000, failures=1000),
                     snippets=files)
    with running(app) as url:
        yield Fleet(url, store, where / "events-fleet", tokens)
    store.close()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def report(store: Store, sensor: str, key: str, *, label: str = "dog", ended: timedelta = timedelta(0)) -> int:
    onset = NOW - ended - timedelta(seconds=2)
    store.add_report(sensor, [Detection(key, label, onset, onset + timedelta(seconds=2), 0.9)])
    return next(e["id"] for e in store.events(sensor=sensor, limit=10_000) if e["key"] == key)


def put(fleet: Fleet, sensor: str, key: str, body: bytes = OPUS, *, role: str = "sensor",
        media_type: str = "audio/ogg") -> httpx.Response:
    return httpx.put(f"{fleet.url}/v1/snippets/{sensor}/{key}", content=body, timeout=30,
                     headers={**bearer(fleet.tokens[role]), "Content-Type": media_type})


def test_a_retried_upload_is_stored_once_and_readers_hear_it(fleet):
    event = report(fleet.store, "lab", "k-once")
    first, again = put(fleet, "lab", "k-once"), put(fleet, "lab", "k-once")
    assert (first.status_code, again.status_code) == (200, 200), first.text
    assert (first.json()["stored"], again.json()["stored"]) == (True, False)
    assert first.json() == {"event": event, "bytes": len(OPUS), "stored": True}
    assert [p.name for p in (fleet.folder / "snippets" / "lab").iterdir() if p.name.startswith(str(event))] == \
        [f"{event}.ogg"]
    listed = httpx.get(f"{fleet.url}/v1/events", params={"sensor": "lab"}, headers=bearer(fleet.tokens["viewer"]))
    assert {e["key"]: e["audio"] for e in listed.json()["events"]}["k-once"] == len(OPUS)
    for role in ("viewer", "reviewer", "admin"):
        heard = httpx.get(f"{fleet.url}/v1/events/{event}/audio", headers=bearer(fleet.tokens[role]))
        assert heard.status_code == 200 and heard.content == OPUS and heard.headers["content-type"] == "audio/ogg"


def test_a_sensor_never_hears_audio_nor_uploads_another_sensors(fleet):
    event = report(fleet.store, "lab", "k-403")
    report(fleet.store, "yard", "k-yard")
    assert put(fleet, "lab", "k-403").status_code == 200
    heard = httpx.get(f"{fleet.url}/v1/events/{event}/audio", headers=bearer(fleet.tokens["sensor"]))
    assert heard.status_code == 403 and "a sensor token may not read" in heard.json()["error"]
    other = put(fleet, "yard", "k-yard")
    assert other.status_code == 403 and "may not speak as 'yard'" in other.json()["error"]
    assert put(fleet, "yard", "k-yard", role="viewer").status_code == 403
    assert put(fleet, "yard", "k-yard", role="admin").status_code == 200  # an admin may


def test_an_upload_for_no_event_too_large_or_not_audio_is_refused(fleet):
    report(fleet.store, "lab", "k-bad")
    missing = put(fleet, "lab", "k-never-reported")
    assert missing.status_code == 404 and "report it first" in missing.json()["error"]
    assert put(fleet, "lab", "k-bad", b"OggS" + bytes(MAX_SNIPPET_BYTES)).status_code == 413
    assert put(fleet, "lab", "k-bad", OPUS, media_type="audio/mpeg").status_code == 415
    assert put(fleet, "lab", "k-bad", b"<html>", media_type="audio/ogg").status_code == 415
    silent = report(fleet.store, "lab", "k-silent")
    none = httpx.get(f"{fleet.url}/v1/events/{silent}/audio", headers=bearer(fleet.tokens["viewer"]))
    assert none.status_code == 404 and "no sound of it is kept" in none.json()["error"]


def test_retention_and_quota_delete_the_oldest_snippets_and_files_of_events_gone(store_spec, tmp_path):
    store = Store.open(store_spec)  # SQLite, then PostgreSQL
    files = SnippetFiles(store, tmp_path / "fleet", keep_days=10, quota=3 * len(OPUS))
    ages = {"old": 20, "a": 4, "b": 3, "c": 2, "d": 1}  # days since each event ended
    ids = {key: report(store, "lab", key, ended=timedelta(days=days)) for key, days in ages.items()}
    for key in ages:
        files.keep("lab", key, OPUS, "audio/ogg")  # "d" takes it over its quota: down to 90 % of it at once
    stray = tmp_path / "fleet" / "snippets" / "lab" / "999.ogg"  # an event pruned by serve --keep-days
    stray.write_bytes(OPUS)
    assert files.enforce() == 1
    kept = {e["key"]: e["audio"] for e in store.events(limit=100)}
    assert kept == {"old": None, "a": None, "b": None, "c": len(OPUS), "d": len(OPUS)}
    assert sorted(p.name for p in (tmp_path / "fleet" / "snippets" / "lab").iterdir()) == \
        sorted(f"{ids[key]}.ogg" for key in "cd")
    assert files.total == 2 * len(OPUS)  # not one upload from over its quota again
    store.close()


def test_purge_by_sensor_label_and_age_deletes_files_and_columns(store_spec, tmp_path, capsys):
    store = Store.open(store_spec)
    files = SnippetFiles(store, tmp_path / "events-fleet")
    for sensor, key, label, days in (("lab", "1", "speech", 0), ("lab", "2", "dog", 0), ("yard", "3", "speech", 0),
                                     ("yard", "4", "dog", 30), ("yard", "5", "dog", 0)):
        report(store, sensor, key, label=label, ended=timedelta(days=days))
        files.keep(sensor, key, OPUS, "audio/ogg")
    parser = argparse.ArgumentParser()
    add_purge_options(parser)

    def run(*argv: str) -> str:
        args = parser.parse_args([*argv, "--store", store_spec, "--fleet-dir", str(tmp_path / "events-fleet")])
        assert purge(args) == 0
        return capsys.readouterr().out

    assert run("--label", "speech").startswith("2 snippets deleted")
    assert run("--sensor", "yard", "--older-than", "7").startswith("1 snippets deleted")
    assert {e["key"] for e in store.events(limit=100) if e["audio"]} == {"2", "5"}
    assert len(list((tmp_path / "events-fleet" / "snippets").glob("*/*.ogg"))) == 2
    assert run("--all").startswith("2 snippets deleted")
    assert store.count_events() == 5 and not list((tmp_path / "events-fleet" / "snippets").glob("*/*"))
    from envsound.errors import ConfigError

    with pytest.raises(ConfigError, match="say which snippets"):
        purge(parser.parse_args(["--store", store_spec]))
    store.close()
