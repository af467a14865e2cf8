"""A fleet's versions on a real store (SQLite, and PostgreSQL where the server binaries are): a version published is
copied, digested and signed with a key made on first use (mode 0600); a signature is refused for a flipped byte,
another key or none; assignments to named sensors, a deterministic share, or all; a rollback gives each sensor of the
newest batch the version it had before; status says what each sensor is assigned, runs and since when."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta, timezone

import pytest

from envsound.deploy.signing import KEY_NAME, RefusedModel, public_pem, server_key, sign, verify
from envsound.deploy.store import Detection, Heartbeat, Store
from envsound.deploy.versions import Fleet
from envsound.errors import ConfigError
from envsound.fileio import file_digest

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def model_file(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.fixture
def fleet(store_spec, tmp_path):
    store = Store.open(store_spec)
    yield Fleet(store, tmp_path / "fleet")
    store.close()


def test_the_key_is_made_once_readable_by_its_owner_only(tmp_path):
    key = server_key(tmp_path / "fleet")
    assert stat.S_IMODE((tmp_path / "fleet" / KEY_NAME).stat().st_mode) == 0o600
    assert server_key(tmp_path / "fleet").private_bytes_raw() == key.private_bytes_raw()


def test_a_signature_is_refused_for_a_flipped_byte_another_key_or_none(tmp_path):
    digest = "ab" * 32
    signature = sign(server_key(tmp_path / "a"), 3, digest)
    public = public_pem(tmp_path / "a")
    verify(public, 3, digest, signature)  # the server's, over this version and digest: accepted
    flipped = bytearray(bytes.fromhex(signature))
    flipped[5] ^= 1
    for version, text, sig, why in [(3, digest, flipped.hex(), "not the server's"),
                                    (3, "ac" + digest[2:], signature, "not the server's"),
                                    (4, digest, signature, "not the server's"),  # another version's signature
                                    (3, digest, None, "unsigned"), (3, digest, "", "unsigned")]:
        with pytest.raises(RefusedModel, match=why):
            verify(public, version, text, sig)
    with pytest.raises(RefusedModel, match="not the server's"):
        verify(public_pem(tmp_path / "b"), 3, digest, signature)  # another server's key


def test_a_version_is_copied_digested_signed_and_published_once(fleet, tmp_path):
    source = model_file(tmp_path / "model.onnx", b"a model")
    version, new = fleet.add_version(source, name="cnn", thresholds={"dog": {"threshold": 0.7, "precision": 0.9}},
                                     note="first", who="ann")
    assert new and version.id == 1 and version.digest == file_digest(source) and version.size == 7
    assert fleet.path(version).read_bytes() == b"a model" and fleet.path(version).parent.name == "models"
    verify(public_pem(fleet.folder), version.id, version.digest, version.signature)
    assert (version.name, version.note, version.who, version.thresholds["dog"]["precision"]) == ("cnn", "first",
                                                                                                 "ann", 0.9)
    again, new = fleet.add_version(source, name="cnn")
    assert not new and again == version
    second, _ = fleet.add_version(model_file(tmp_path / "b.onnx", b"another"), name="cnn")
    assert second.id == 2 and [v.id for v in fleet.versions()] == [2, 1]
    assert fleet.version(2).to_dict()["digest"] == second.digest and "file" not in second.to_dict()


def test_assignments_named_a_share_or_all_and_rollbacks(fleet, tmp_path):
    for name in ("a", "b", "c", "d"):
        fleet.store.create_token(name, "sensor")
    fleet.store.create_token("viewer", "viewer")
    one, _ = fleet.add_version(model_file(tmp_path / "1.onnx", b"1"), name="cnn")
    two, _ = fleet.add_version(model_file(tmp_path / "2.onnx", b"2"), name="cnn")
    assert fleet.known_sensors() == ["a", "b", "c", "d"] and fleet.assigned("a") is None
    with pytest.raises(ConfigError, match="nothing to roll back"):
        fleet.rollback()
    fleet.assign(1, who="ann")
    assert {fleet.assigned(n).id for n in "abcd"} == {1}
    canary = fleet.assign(2, share=0.5, who="ann")
    assert len(canary) == 2 and canary == fleet.assign(2, share=0.5)  # deterministic
    chosen = {item.sensor for item in canary}
    assert {n: fleet.assigned(n).id for n in "abcd"} == {n: 2 if n in chosen else 1 for n in "abcd"}
    fleet.assign(2)  # then to all
    assert {fleet.assigned(n).id for n in "abcd"} == {2}
    back = fleet.rollback(who="ann")  # to before "all": the canary's sensors keep 2, the others go back to 1
    assert {n: fleet.assigned(n).id for n in "abcd"} == {n: 2 if n in chosen else 1 for n in "abcd"}
    assert back[0].sensor is None and back[0].version == 1
    fleet.assign(1, sensors=["a"])
    fleet.rollback()
    assert fleet.assigned("a").id == (2 if "a" in chosen else 1)
    with pytest.raises(ConfigError, match="not both"):
        fleet.assign(2, sensors=["a"], share=0.5)
    with pytest.raises(ConfigError, match="no such version"):
        fleet.assign(9)
    with pytest.raises(ConfigError, match="above 0"):
        fleet.assign(2, share=1.5)


def test_a_rollback_of_a_first_canary_gives_its_sensors_their_own_model_again(fleet, tmp_path):
    fleet.add_version(model_file(tmp_path / "1.onnx", b"1"), name="cnn")
    fleet.assign(1, sensors=["a"])
    fleet.assign(1)
    assert [item.line() for item in fleet.rollback()] == ["every sensor -> its own model (the one it was started "
                                                          "with)", "a -> version 1"]
    assert fleet.assigned("a").id == 1 and fleet.assigned("b") is None
    assert [item.line() for item in fleet.rollback()] == ["every sensor -> version 1"]  # forward again
    assert fleet.assigned("b").id == 1


def test_status_says_assigned_running_since_and_online(fleet, tmp_path):
    fleet.add_version(model_file(tmp_path / "1.onnx", b"1"), name="cnn")
    fleet.assign(1)
    store = fleet.store
    first = datetime.now(timezone.utc) - timedelta(seconds=30)
    store.add_report("lab", [Detection("k1", "dog", NOW, NOW + timedelta(seconds=1), 0.9, version=1)],
                     heartbeat=Heartbeat(NOW, version=1), received=first)
    store.add_report("lab", [], heartbeat=Heartbeat(NOW + timedelta(seconds=5), version=1),
                     received=first + timedelta(seconds=5))
    store.create_token("far", "sensor")
    status = {item["sensor"]: item for item in fleet.status(online_seconds=120)}
    lab = status["lab"]
    assert (lab["assigned"], lab["running"], lab["online"]) == (1, 1, True)
    assert lab["since"] == store.sensors()[0]["version_since"] and lab["since"].startswith(
        first.strftime("%Y-%m-%dT%H:%M:%S"))  # since the first heartbeat of version 1, not the latest
    assert (status["far"]["running"], status["far"]["online"], status["far"]["last_heartbeat"]) == (None, False, None)
    assert store.events(version=2) == []
    heard = store.events(version=1)[0]  # the version's name and digest, not the report's model and fingerprint
    assert (heard["version"], heard["model"], heard["fingerprint"]) == (1, "cnn", fleet.version(1).digest[:16])


def test_a_refusal_is_kept_on_the_sensor_while_its_heartbeats_say_it(fleet):
    """Kept in the store, not the server's memory: fleet status (and a restarted server) still says it."""
    now = datetime.now(timezone.utc)
    line = "version 3 refused: unsigned; this sensor keeps running version 2"
    fleet.store.add_report("lab", [], heartbeat=Heartbeat(now, version=2, refused=line))
    assert [row["refused"] for row in fleet.status()] == [line]
    fleet.store.add_report("lab", [], heartbeat=Heartbeat(now + timedelta(seconds=1), version=3))
    assert [row["refused"] for row in fleet.status()] == [None]  # it took a version: no longer said


def test_the_snippets_a_sensor_dropped_over_its_budget_are_kept_on_its_row(fleet):
    """listen's heartbeat counts them (the guide: "counted and reported"): fleet status says it."""
    fleet.store.add_report("lab", [], heartbeat=Heartbeat(datetime.now(timezone.utc), snippets_dropped=7))
    assert [row["snippets_dropped"] for row in fleet.status()] == [7]
