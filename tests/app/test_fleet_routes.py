"""The fleet's routes on a real server with tokens: a sensor reads its own assignment and fetches only the file of
the version assigned to it (403 for another), and the server's public key; viewers read versions, status and rates
but fetch no model; reports carry the version that heard each event and the one the sensor runs, /v1/events
filters by it, and a refusal in a heartbeat shows in the status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.fleet_files import fleet_dir
from envsound.deploy.signing import public_pem
from envsound.deploy.store import Store
from envsound.deploy.versions import Fleet


@pytest.fixture(scope="module")
def deployed(served, tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "events.sqlite"
    store = Store.open(path)
    tokens = {name: store.create_token(name, role)[1] for name, role in
              (("lab", "sensor"), ("yard", "sensor"), ("viewer", "viewer"), ("admin", "admin"))}
    fleet = Fleet(store, fleet_dir(path))
    for content in (b"version one", b"version two"):
        (path.parent / "m.onnx").write_bytes(content)
        fleet.add_version(path.parent / "m.onnx", name="cnn", who="ann")
    fleet.assign(1, sensors=["lab"])
    fleet.assign(2, sensors=["yard"])
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000))
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, tokens, fleet
    store.close()


def as_(tokens, name) -> dict:
    return {"Authorization": f"Bearer {tokens[name]}"}


def test_a_sensor_fetches_its_own_version_only(deployed):
    client, tokens, fleet = deployed
    mine = client.get("/v1/fleet/assignment", headers=as_(tokens, "lab")).json()
    assert mine["sensor"] == "lab" and mine["version"]["id"] == 1 and mine["version"]["digest"] == fleet.version(
        1).digest and "file" not in mine["version"]
    assert client.get("/v1/fleet/versions/1/file", headers=as_(tokens, "lab")).content == b"version one"
    other = client.get("/v1/fleet/versions/2/file", headers=as_(tokens, "lab"))
    assert other.status_code == 403 and "not the one assigned to sensor 'lab'" in other.json()["error"]
    assert client.get("/v1/fleet/versions/9/file", headers=as_(tokens, "lab")).status_code == 404
    assert client.get("/v1/fleet/assignment", params={"sensor": "yard"},
                      headers=as_(tokens, "lab")).status_code == 403
    assert client.get("/v1/fleet/key", headers=as_(tokens, "lab")).content == public_pem(fleet.folder)
    for path in ("/v1/fleet/versions", "/v1/fleet/status", "/v1/fleet/rates"):
        assert client.get(path, headers=as_(tokens, "lab")).status_code == 403, path


def test_viewers_read_versions_but_fetch_no_model_and_an_admin_any(deployed):
    client, tokens, _ = deployed
    assert [v["id"] for v in client.get("/v1/fleet/versions", headers=as_(tokens, "viewer")).json()["versions"]] \
        == [2, 1]
    for path in ("/v1/fleet/versions/1/file", "/v1/fleet/assignment", "/v1/fleet/key"):
        assert client.get(path, headers=as_(tokens, "viewer")).status_code == 403, path
    assert client.get("/v1/fleet/versions/2/file", headers=as_(tokens, "admin")).content == b"version two"
    assert client.get("/v1/fleet/assignment", params={"sensor": "yard"},
                      headers=as_(tokens, "admin")).json()["version"]["id"] == 2
    assert client.get("/v1/fleet/assignment", headers=as_(tokens, "admin")).status_code == 422


def test_reports_carry_versions_events_filter_by_them_and_refusals_show(deployed):
    client, tokens, _ = deployed
    now = datetime.now(timezone.utc)
    times = [(now - timedelta(seconds=60 - 10 * i)).isoformat() for i in range(4)]
    events = [{"key": f"k{i}", "label": "dog", "onset": times[i], "offset": times[i + 1], "score": 0.9,
               "version": version} for i, version in ((0, 1), (1, 1), (2, 2))]
    body = {"sensor": "yard", "events": events, "heartbeat": {"time": times[-1], "version": 2,
                                                              "refused": "version 3: unsigned"}}
    assert client.post("/v1/report", json=body, headers=as_(tokens, "yard")).json()["stored"] == 3
    read = as_(tokens, "viewer")
    assert [e["key"] for e in client.get("/v1/events", params={"version": 1}, headers=read).json()["events"]] == [
        "k1", "k0"]
    assert client.get("/v1/events", params={"version": 2}, headers=read).json()["events"][0]["version"] == 2
    status = {row["sensor"]: row for row in client.get("/v1/fleet/status", headers=read).json()["sensors"]}
    assert (status["yard"]["assigned"], status["yard"]["running"], status["yard"]["online"]) == (2, 2, True)
    assert status["yard"]["refused"]["line"] == "version 3: unsigned" and status["lab"]["running"] is None
    sensors = {row["name"]: row for row in client.get("/v1/sensors", headers=read).json()["sensors"]}
    assert sensors["yard"]["version"] == 2 and sensors["yard"]["version_since"]
    rates = client.get("/v1/fleet/rates", params={"hours": 1}, headers=read).json()["rates"]
    assert [(r["version"], r["events"], r["sensors"], r["per_sensor_hour"]) for r in rates] == [(1, 2, 1, 2.0),
                                                                                               (2, 1, 1, 1.0)]
