"""Your own network everywhere a family goes (issue 76): 'envsound download --from FILE --spec SPEC' installs the tiny
ONNX network the test exports (tests/tinyonnx.py), then 'predict NAME', 'embed NAME', 'search', 'label', 'learn',
predicting with the head learned, and 'cv --init NAME' run on it as on BirdNET or YAMNet; a wrong spec fails the
command in one line naming the field."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tinyonnx
from audiofactory import write_offsets

RATE = 16_000
SPEC = tinyonnx.ONNX_SPEC


@pytest.fixture()
def installed(envsound_main, tmp_path, monkeypatch) -> Path:
    """The tiny network installed from the command line; a folder of 'up' clips (offset +0.2) and 'down' (-0.2)."""
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    mine = tmp_path / "mine"
    tinyonnx.write_tiny_onnx(mine / "tiny.onnx")
    (mine / "labels.txt").write_text("bark\nsiren\nrain\n")
    (mine / "spec.yaml").write_text(SPEC)
    ran = envsound_main("download", "--from", mine / "tiny.onnx", "--spec", mine / "spec.yaml")
    assert ran.returncode == 0, ran.stderr
    assert "my-onnx is installed at" in ran.stdout and "onnx: 16000 Hz, window 1600 samples, embedding 16, " \
                                                        "3 classes" in ran.stdout
    return write_offsets(tmp_path / "data", sample_rate=RATE, seconds=1.0)


def test_predict_by_name_scores_the_networks_own_classes(envsound_main, installed):
    listed = envsound_main("models").stdout
    assert "your own networks ('envsound download --from FILE --spec SPEC'): \n  my-onnx          onnx  3 classes  " \
           "16 kHz  window 0.1 s  hop 0.05 s  embedding 16  licence CC0-1.0  installed: " in listed
    clip = sorted((installed / "up").iterdir())[0]
    ran = envsound_main("predict", "my-onnx", clip, "--top-k", "3", "--json")
    assert ran.returncode == 0, ran.stderr
    top = json.loads(ran.stdout.strip().splitlines()[-1])["top"]
    wave, _ = sf.read(clip, dtype="float32")
    windows = np.stack([wave[s:s + 1600] for s in range(0, len(wave) - 1600 + 1, 800)])
    expected = (1 / (1 + np.exp(-tinyonnx.reference(windows)[0]))).mean(axis=0)  # a file's score: its windows' mean
    assert {row["label"]: round(row["score"], 4) for row in top} == {
        label: round(float(score), 4) for label, score in zip(["bark", "siren", "rain"], expected)}


def test_embed_label_learn_then_predict_with_the_head(envsound_main, installed, tmp_path):
    ran = envsound_main("embed", "my-onnx", installed, "--out", tmp_path / "db")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.embeddings.store import EmbeddingsStore

    rows = EmbeddingsStore(tmp_path / "db").columns().to_pylist()
    assert len(rows) == 6 * 19  # 1-s clips, 0.1-s windows every 0.05 s
    up = sorted((installed / "up").iterdir())[0]
    ran = envsound_main("search", tmp_path / "db", "--example", up, "--top", "5", "--json")
    assert ran.returncode == 0, ran.stderr
    hits = [json.loads(line) for line in ran.stdout.strip().splitlines()]
    assert len(hits) == 5 and all("/up/" in hit["file"] for hit in hits)
    with (tmp_path / "verdicts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["window", "file", "start", "end", "label", "verdict"])
        for row in rows[::3]:
            writer.writerow([row["window"], row["file"], row["start"], row["end"], "up",
                             "yes" if "/up/" in row["file"] else "no"])
    assert envsound_main("label", tmp_path / "db", "--from", tmp_path / "verdicts.csv").returncode == 0
    ran = envsound_main("learn", tmp_path / "db", "--label", "up", "--out", tmp_path / "learned",
                        "--negatives", "none")
    assert ran.returncode == 0, ran.stderr
    from envsound.models.checkpoint import load_checkpoint

    learned = load_checkpoint(tmp_path / "learned" / "model.ckpt")
    assert (learned.meta["trunk"]["network"], learned.meta["licence"]) == ("my-onnx", "CC0-1.0")
    ran = envsound_main("export", tmp_path / "learned" / "model.ckpt", "--out", tmp_path / "sensor")
    assert ran.returncode != 0 and "a head over my-onnx, a network installed with a spec" in ran.stderr
    assert not (tmp_path / "sensor").exists()
    for label in ("up", "down"):
        clip = sorted((installed / label).iterdir())[-1]
        ran = envsound_main("predict", tmp_path / "learned" / "model.ckpt", clip, "--json")
        assert ran.returncode == 0, ran.stderr
        score = json.loads(ran.stdout.strip().splitlines()[-1])["top"][0]["score"]
        assert (score > 0.5) == (label == "up"), (label, score)


def test_cv_init_probes_the_network(envsound_main, installed, tmp_path):
    ran = envsound_main("cv", "--dataset", "folder", "--root", installed, "--init", "my-onnx",
                        "--out", tmp_path / "cv")
    assert ran.returncode == 0, ran.stderr
    assert "mean accuracy 1.0000 ± 0.0000 over 3 folds" in ran.stdout
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["model"] == "my-onnx" and summary["config"]["features"]["window_seconds"] == 0.1


def test_a_wrong_spec_fails_the_command_in_one_line(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    tinyonnx.write_tiny_onnx(tmp_path / "tiny.onnx")
    (tmp_path / "labels.txt").write_text("bark\nsiren\nrain\n")
    (tmp_path / "spec.yaml").write_text(SPEC.replace("frames/embed", "pool"))
    ran = envsound_main("download", "--from", tmp_path / "tiny.onnx", "--spec", tmp_path / "spec.yaml")
    assert ran.returncode != 0
    assert ran.stderr.strip().splitlines() == [
        f"envsound download: error: {tmp_path / 'spec.yaml'}: embedding: no tensor 'pool' in tiny.onnx "
        "(outputs: logits)"]
