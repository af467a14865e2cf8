"""The agile loop on a frozen network's store on a fresh clone: 'envsound embed birdnet-v2.4', 'envsound label --from',
'envsound learn' writes a model.ckpt that names its trunk by digest (and the network's licence) and carries the
learned head; the trunk run by LiteRT and the head on its embedding score audio as the head scores the stored windows;
'envsound check' on that model. The network is the tiny BirdNET-shaped one of tests/tinytflite.py."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
from tinytflite import birdnet_folder  # noqa: E402 (after the skips)


@pytest.fixture()
def birdnet_store(envsound_main, tmp_path, monkeypatch):
    """A store of 8 clips of 3 s (one window each) embedded by the tiny BirdNET: 'bird' clips carry an offset the
    tiny network's embedding (a mean of the waveform's segments) shows, 'rain' clips do not; all reviewed."""
    from envsound.transfer.install_frozen import install_frozen

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    install_frozen("birdnet-v2.4", source=birdnet_folder(tmp_path / "copy"), progress=False)
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        kind = "bird" if i % 2 == 0 else "rain"
        wave = rng.uniform(-0.2, 0.2, 48_000 * 3).astype(np.float32) + (0.3 if kind == "bird" else 0.0)
        sf.write(audio / f"{kind}{i}.wav", wave, 48_000, subtype="FLOAT")
    ran = envsound_main("embed", "birdnet-v2.4", audio, "--out", tmp_path / "db")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.embeddings.store import EmbeddingsStore

    rows = EmbeddingsStore(tmp_path / "db").columns().to_pylist()
    with (tmp_path / "verdicts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["window", "file", "start", "end", "label", "verdict"])
        for row in rows:
            verdict = "yes" if "bird" in Path(row["file"]).name else "no"
            writer.writerow([row["window"], row["file"], row["start"], row["end"], "bird", verdict])
    ran = envsound_main("label", tmp_path / "db", "--from", tmp_path / "verdicts.csv")
    assert ran.returncode == 0, ran.stderr
    return tmp_path / "db"


def test_learn_on_a_birdnet_store_writes_the_head_and_names_the_trunk_by_digest(envsound_main, birdnet_store,
                                                                               tmp_path):
    ran = envsound_main("learn", birdnet_store, "--label", "bird", "--out", tmp_path / "learned",
                        "--negatives", "none")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.embeddings.store import EmbeddingsStore
    from envsound.models.checkpoint import load_checkpoint
    from envsound.inference.predictor import Predictor

    store = EmbeddingsStore(birdnet_store)
    learned = load_checkpoint(tmp_path / "learned" / "model.ckpt")
    assert learned.meta["trunk"]["digest"] == store.network_digest
    assert learned.meta["trunk"]["network"] == "birdnet-v2.4" and learned.meta["licence"] == "CC BY-NC-SA 4.0"
    assert learned.labels == ["bird"] and learned.state_dict["head.weight"].shape == (1, 1024)

    predictor = Predictor.from_checkpoint(tmp_path / "learned" / "model.ckpt")
    stored = predictor.model.head_probs(store.vectors(np.arange(store.windows)))[:, 0]
    for row, expected in zip(store.columns().to_pylist(), stored):
        score = predictor.predict_file(row["file"], top_k=1).top[0]["score"]
        assert score == pytest.approx(float(expected), abs=2e-3)  # the store keeps float16
        assert (score > 0.5) == ("bird" in Path(row["file"]).name)


def test_check_on_a_head_learned_over_birdnet_draws_its_sheet(envsound_main, birdnet_store, tmp_path):
    assert envsound_main("learn", birdnet_store, "--label", "bird", "--out", tmp_path / "learned",
                         "--negatives", "none").returncode == 0
    ran = envsound_main("check", tmp_path / "learned" / "model.ckpt", birdnet_store, "--sample", "3")
    assert ran.returncode == 0, ran.stderr
    sheet = list(csv.DictReader((tmp_path / "learned" / "bird.check.csv").open()))
    assert len(sheet) == 3 and all("bird" in Path(row["file"]).name for row in sheet)


def test_a_learned_head_whose_trunk_is_another_file_is_refused(envsound_main, birdnet_store, tmp_path):
    assert envsound_main("learn", birdnet_store, "--label", "bird", "--out", tmp_path / "learned",
                         "--negatives", "none").returncode == 0
    from envsound.errors import CheckpointError
    from envsound.inference.predictor import Predictor

    installed = tmp_path / "models" / "birdnet-v2.4" / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
    installed.write_bytes(installed.read_bytes() + b"\0")  # another file of the same name
    with pytest.raises(CheckpointError, match="its head was learned on birdnet-v2.4 .*, which is not here"):
        Predictor.from_checkpoint(tmp_path / "learned" / "model.ckpt")


def test_predict_predict_out_and_listen_open_a_head_learned_over_birdnet(envsound_main, birdnet_store, tmp_path):
    """A learned head over a frozen network opens as any model.ckpt does (Predictor.from_checkpoint): predict on a
    file, predict --out over a folder, listen on a file as a stream."""
    import json

    assert envsound_main("learn", birdnet_store, "--label", "bird", "--out", tmp_path / "learned",
                         "--negatives", "none").returncode == 0
    model, audio = tmp_path / "learned" / "model.ckpt", tmp_path / "audio"
    ran = envsound_main("predict", model, audio / "bird0.wav", audio / "rain1.wav", "--json")
    assert ran.returncode == 0, ran.stderr
    said = {Path(row["file"]).name: row["top"][0]["score"] for row in map(json.loads, ran.stdout.splitlines())}
    assert said["bird0.wav"] > 0.5 > said["rain1.wav"], said
    ran = envsound_main("predict", model, audio, "--out", tmp_path / "results", "-q")
    assert ran.returncode == 0 and "8 files" in ran.stdout, ran.stdout + ran.stderr
    ran = envsound_main("listen", model, "--input", audio / "bird2.wav", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[0])["top"][0]["label"] == "bird"
    # embed with it: the store of its windows is the trunk's, and the message says so instead of storing a second
    ran = envsound_main("embed", model, audio, "--out", tmp_path / "db2")
    assert ran.returncode != 0 and "embed with the network itself (envsound embed birdnet-v2.4" in ran.stderr
    assert not (tmp_path / "db2").exists()


def test_serve_answers_with_a_head_learned_over_birdnet(envsound_main, birdnet_store, tmp_path):
    """The server's door (load_model) opens the learned head too: /v1/model names its labels, /v1/predict scores."""
    import httpx

    from envsound.app.run import running
    from envsound.app.server import create_app
    from envsound.inference.api import load_model

    assert envsound_main("learn", birdnet_store, "--label", "bird", "--out", tmp_path / "learned",
                         "--negatives", "none").returncode == 0
    with running(create_app(load_model(tmp_path / "learned" / "model.ckpt"))) as url:
        described = httpx.get(f"{url}/v1/model", timeout=10).json()
        assert described["labels"] == ["bird"] and described["licence"] == "CC BY-NC-SA 4.0"  # BirdNET's travels
        with open(tmp_path / "audio" / "bird4.wav", "rb") as handle:
            answer = httpx.post(f"{url}/v1/predict", files={"file": ("bird4.wav", handle)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["top"][0]["label"] == "bird" and answer.json()["top"][0]["score"] > 0.5
