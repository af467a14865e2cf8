"""A sensor's follower against a real server: it takes its assigned version once its digest and signature check
with the key it pinned at first contact, and refuses (file deleted, running model kept, the refusal kept for its
heartbeat) a corrupt file, an unsigned version and one signed by another key; a rollback to none gives it its own
model again; a server it cannot reach is no refusal."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy import schema
from envsound.deploy.fleet_files import fleet_dir
from envsound.deploy.follow import KEY_FILE, Follower
from envsound.deploy.signing import public_pem
from envsound.deploy.store import Store
from envsound.deploy.versions import OWN, Fleet


@pytest.fixture
def deployed(served, tmp_path):
    path = tmp_path / "events.sqlite"
    store = Store.open(path)
    token = store.create_token("lab", "sensor")[1]
    fleet = Fleet(store, fleet_dir(path))
    with running(create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000))) as url:
        swaps = []
        follower = Follower(url, sensor="lab", token=token, folder=tmp_path / "sensor", every=0.1,
                            load=lambda p: ("own",) if p is None else ("model", p.read_bytes()),
                            swap=lambda model, version: swaps.append((model, version and version["id"])))
        yield fleet, follower, swaps
    store.close()


def publish(fleet, tmp_path, content: bytes) -> int:
    (tmp_path / "m.onnx").write_bytes(content)
    version, _ = fleet.add_version(tmp_path / "m.onnx", name="cnn")
    fleet.assign(version.id)
    return version.id


def test_a_good_version_is_taken_and_a_bad_one_refused(deployed, tmp_path):
    fleet, follower, swaps = deployed
    follower.check_once()
    assert swaps == [] and follower.refused is None  # nothing assigned: its own model runs on
    publish(fleet, tmp_path, b"one")
    follower.check_once()
    assert swaps == [(("model", b"one"), 1)] and follower.running == 1
    assert (tmp_path / "sensor" / KEY_FILE).read_bytes() == public_pem(fleet.folder)  # pinned at first contact
    follower.check_once()
    assert len(swaps) == 1  # the same version: nothing to do

    corrupt = publish(fleet, tmp_path, b"two")
    fleet.path(fleet.version(corrupt)).write_bytes(b"tw0")
    follower.check_once()
    assert "version 2 refused: its file's SHA-256" in follower.refused and follower.running == 1
    assert list((tmp_path / "sensor").glob("v2-*")) == [] and len(swaps) == 1

    unsigned = publish(fleet, tmp_path, b"three")
    with fleet.store.engine.begin() as connection:
        connection.execute(sa.update(schema.model_versions).where(schema.model_versions.c.id == unsigned)
                           .values(signature=""))
    follower.check_once()
    assert follower.refused == "version 3 refused: version 3: unsigned" and follower.running == 1

    publish(fleet, tmp_path, b"four")
    (tmp_path / "sensor" / KEY_FILE).write_bytes(public_pem(tmp_path / "another"))  # a key not the server's
    follower.check_once()
    assert "version 4 refused" in follower.refused and "not the server's" in follower.refused
    assert len(swaps) == 1 and follower.running == 1

    (tmp_path / "sensor" / KEY_FILE).write_bytes(public_pem(fleet.folder))
    follower.polls += 10  # a refused version is tried again after ten polls
    follower.check_once()
    assert swaps[-1] == (("model", b"four"), 4) and follower.refused is None

    fleet.assign(OWN)  # none: its own model
    follower.check_once()
    assert swaps[-1] == (("own",), None) and follower.running is None


def test_a_server_it_cannot_reach_is_no_refusal(tmp_path):
    swaps = []
    follower = Follower("http://127.0.0.1:9", sensor="lab", token="t", folder=tmp_path, timeout=2,
                        load=lambda p: p, swap=lambda *a: swaps.append(a))
    follower.check_once()
    assert swaps == [] and follower.refused is None and "cannot reach" in follower.problem


def test_a_refusal_is_no_longer_said_once_a_rollback_leaves_the_version_it_runs(deployed, tmp_path):
    """The rollback after a corrupt publish: the sensor runs what it is assigned again, so it refuses nothing."""
    fleet, follower, swaps = deployed
    publish(fleet, tmp_path, b"one")
    follower.check_once()
    corrupt = publish(fleet, tmp_path, b"two")
    fleet.path(fleet.version(corrupt)).write_bytes(b"tw0")
    follower.check_once()
    assert follower.refused and follower.running == 1
    fleet.rollback()
    follower.check_once()
    assert follower.refused is None and follower.running == 1 and len(swaps) == 1


def test_the_key_pinned_at_the_first_answer_must_be_a_key(served, tmp_path):
    """Pinned at the first poll (not at the first version), and only an Ed25519 public key: a captive portal's page
    is not pinned."""
    from envsound.deploy.signing import RefusedModel, check_public

    path = tmp_path / "events.sqlite"
    store = Store.open(path)
    token = store.create_token("lab", "sensor")[1]
    with running(create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000))) as url:
        follower = Follower(url, sensor="lab", token=token, folder=tmp_path / "sensor", every=0.1,
                            load=lambda p: p, swap=lambda model, version: None)
        follower.check_once()  # nothing assigned yet: the key is pinned all the same
        assert (tmp_path / "sensor" / KEY_FILE).read_bytes() == public_pem(fleet_dir(path))
    store.close()
    with pytest.raises(RefusedModel, match="portal: not a public key"):
        check_public(b"<html>Sign in to the hotel Wi-Fi</html>", "portal")
