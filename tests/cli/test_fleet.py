"""`envsound fleet` on a real store: publish a model.ckpt (exported to ONNX as `export` does) or a model.onnx (taken
as it is) to a canary's share, then to all, status, rollback; a head over a frozen network as its head alone; a
folder of no model refused in one line."""

from __future__ import annotations

import json
import re

import onnx
import pytest

from envsound.deploy.signing import public_pem, verify
from envsound.deploy.store import Heartbeat, Store
from envsound.deploy.versions import Fleet
from envsound.fileio import file_digest
from envsound.inference.predictor import Predictor


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "events.sqlite"
    opened = Store.open(path)
    for name in ("a", "b", "c", "d"):
        opened.create_token(name, "sensor")
    yield path
    opened.close()


def test_publish_a_checkpoint_to_a_canary_then_all_then_roll_back(envsound_main, trained_run, store, tmp_path):
    ran = envsound_main("fleet", "publish", trained_run.checkpoint, "--share", "0.5", "--note", "first", "--who",
                        "ann", "--store", store)
    assert ran.returncode == 0, ran.stderr
    assert re.match(r"version 1: \S+, sha256 [0-9a-f]{16}, [\d.]+ MiB, published by ann, signed with "
                    r".*events-fleet/signing-key.pem\n", ran.stdout)
    chosen = re.search(r"version 1 assigned to (\S+, \S+) \(a share of 0.5 of 4 known sensors\)", ran.stdout)
    assert chosen, ran.stdout
    fleet = Fleet(Store.open(store), tmp_path / "events-fleet")
    version = fleet.version(1)
    runs = Predictor.from_checkpoint(fleet.path(version), device="cpu", timed=False)  # what a sensor runs
    assert version.name == runs.model.config.model.name and version.digest == file_digest(fleet.path(version))
    verify(public_pem(fleet.folder), 1, version.digest, version.signature)
    ran = envsound_main("fleet", "assign", "1", "--store", store)
    assert ran.returncode == 0 and ran.stdout.strip() == "version 1 assigned to every sensor"
    fleet.store.add_report("a", [], heartbeat=Heartbeat(version.created, version=1))
    ran = envsound_main("fleet", "status", "--store", store)
    assert ran.stdout.startswith(f"version 1: {version.name} sha256 {version.digest[:16]} by ann")
    assert re.search(r"^a +assigned +1  running 1 since \S+ \S+Z  last heartbeat \S+ \S+Z  online$", ran.stdout, re.M)
    assert re.search(r"^b +assigned +1  running none  last heartbeat never  offline$", ran.stdout, re.M)
    ran = envsound_main("fleet", "rollback", "--store", store)  # to before "all": the canary's keep version 1
    assert ran.returncode == 0, ran.stderr
    canary = chosen.group(1).split(", ")
    assert ran.stdout.splitlines() == ["rolled back: every sensor -> its own model (the one it was started with)",
                                       *(f"rolled back: {name} -> version 1" for name in canary)]
    assert {name: fleet.assigned(name) is not None for name in "abcd"} == {n: n in canary for n in "abcd"}
    fleet.store.close()


def test_an_onnx_file_is_taken_as_it_is_and_a_folder_of_no_model_refused(envsound_main, trained_run, store, tmp_path):
    onnx_file = tmp_path / "model.onnx"
    assert envsound_main("export", "--quiet", trained_run.checkpoint, "--out", onnx_file).returncode == 0
    ran = envsound_main("fleet", "publish", onnx_file, "--sensors", "a,b", "--store", store)
    assert ran.returncode == 0, ran.stderr
    assert f"sha256 {file_digest(onnx_file)[:16]}" in ran.stdout and "assigned to a, b\n" in ran.stdout
    again = envsound_main("fleet", "publish", onnx_file, "--store", store)  # the same file: the same version, to all
    assert "version 1:" in again.stdout and "already published" in again.stdout
    assert "version 1 assigned to every sensor" in again.stdout
    learned = tmp_path / "learned.onnx"  # as envsound learn's model.ckpt exports: thresholds and precision in meta
    proto = onnx.load(str(onnx_file))
    meta = next(item for item in proto.metadata_props if item.key == "envsound.meta")
    meta.value = json.dumps({**json.loads(meta.value), "learned": {"labels": {"dog": {
        "threshold": 0.7, "precision": 0.93, "precision_interval": [0.8, 0.98], "recall": 0.5}}}})
    onnx.save(proto, str(learned))
    assert envsound_main("fleet", "publish", learned, "--sensors", "c", "--store", store).returncode == 0
    fleet = Fleet(Store.open(store), tmp_path / "events-fleet")
    assert fleet.version(2).thresholds == {"dog": {"threshold": 0.7, "precision": 0.93,
                                                   "precision_interval": [0.8, 0.98]}}
    assert fleet.version(1).thresholds is None
    fleet.store.close()
    ran = envsound_main("fleet", "publish", tmp_path, "--store", store)
    assert ran.returncode == 1 and ran.stderr.count("\n") == 1 and "a folder, not a model file" in ran.stderr
    ran = envsound_main("fleet", "rollback", "--store", store)
    assert ran.returncode == 0 and ran.stdout == "rolled back: c -> version 1\n"  # as every sensor before
    ran = envsound_main("fleet", "status", "--store", tmp_path / "none.sqlite")
    assert ran.returncode == 1 and "no store there" in ran.stderr


def test_a_head_over_a_frozen_network_is_published_without_its_network_and_runs_where_it_is_installed(
        envsound_main, served, store, tmp_path, monkeypatch):
    """`fleet publish LEARNED.ckpt` of a head over (the tiny) BirdNET: the version is the export folder's head and
    manifest in one small file, not the network; a sensor following the fleet unpacks it and runs it on the network
    it has installed (of the digest the head was learned on), and refuses to run it where that is not installed."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("flatbuffers")
    from learnedhead import learned_head, recording

    from envsound.app.auth import Guard
    from envsound.app.run import running
    from envsound.app.server import create_app
    from envsound.deploy.follow import Follower

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned = learned_head(tmp_path)
    ran = envsound_main("fleet", "publish", learned, "--store", store)
    assert ran.returncode == 0, ran.stderr
    export = tmp_path / "sensor-model"  # its export folder is the same head: the same version
    assert envsound_main("export", learned, "--out", export).returncode == 0
    again = envsound_main("fleet", "publish", export, "--store", store)
    assert again.returncode == 0 and "version 1:" in again.stdout and "already published" in again.stdout
    opened = Store.open(store)
    fleet = Fleet(opened, tmp_path / "events-fleet")
    version = fleet.version(1)
    assert version.format == "head" and version.size < 50_000  # the head, not the network's .tflite
    token = opened.create_token("lab", "sensor")[1]
    with running(create_app(served.model, store=opened, guard=Guard(opened, required=True))) as url:
        swaps = []
        follower = Follower(url, sensor="lab", token=token, folder=tmp_path / "sensor", every=0.1,
                            load=lambda path: Predictor.from_checkpoint(path, timed=False),
                            swap=lambda model, assigned: swaps.append(model))
        follower.check_once()
        assert follower.running == 1 and follower.refused is None
        assert not list((tmp_path / "sensor").rglob("*.tflite"))  # it runs the network installed here
        audio = recording(tmp_path / "recording.wav", 48_000, 3.0, "rbbr")
        heard = swaps[0].predict_file(audio, events=True).events
        assert [(event["label"], event["onset"], event["offset"]) for event in heard] == [
            ("rain", 0.0, 3.0), ("bird", 3.0, 9.0), ("rain", 9.0, 12.0)], heard  # as the head learned: its windows
        monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "elsewhere"))  # a sensor without the network
        other = Follower(url, sensor="lab", token=token, folder=tmp_path / "bare", every=0.1,
                         load=lambda path: Predictor.from_checkpoint(path, timed=False), swap=lambda *_: None)
        other.check_once()
        assert other.running is None and "birdnet-v2.4 is not installed" in other.refused
    opened.close()
