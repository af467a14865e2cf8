"""download, models and predict with the litert family on a fresh clone: the tiny BirdNET- and YAMNet-shaped
networks of tests/tinytflite.py with label files written here, installed --from a folder or from a server on
127.0.0.1, then predicted by name from the console and from Python."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import BIRDNET_FILES, birdnet_folder, reference, write_tiny, yamnet_files  # noqa: E402, F401

BIRDNET_LABELS = BIRDNET_FILES[1]


def test_download_from_a_folder_then_predict_by_name(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    ran = envsound_main("download", "birdnet-v2.4", "--from", birdnet_folder(tmp_path / "copy"))
    assert ran.returncode == 0, ran.stderr
    assert "a re-export, recognised by its structure" in ran.stdout and "licence: CC BY-NC-SA 4.0" in ran.stdout
    assert "species-range model: not installed" in ran.stdout  # the tiny folder has none
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, 48_000 * 4).astype(np.float32)
    sf.write(tmp_path / "clip.wav", wave, 48_000, subtype="FLOAT")
    ran = envsound_main("predict", "birdnet-v2.4", tmp_path / "clip.wav", "--top-k", "5", "--segments", "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    starts = [0, 48_000]  # a 4-s clip: the window at 0 s and one aligned to its end
    logits, _ = reference("birdnet-v2.4", np.stack([wave[s:s + 144_000] for s in starts]))
    mean = (1 / (1 + np.exp(-logits))).mean(axis=0)
    best = int(mean.argmax())
    assert result["top"][0] == {"label": f"Genus species{best}_Common {best}", "score": round(float(mean[best]), 4)}
    assert [s["start"] for s in result["segments"]] == [0.0, 1.0]
    # no class past the threshold in a window: no label, and the best class's score (was class 0's)
    ran = envsound_main("predict", "birdnet-v2.4", tmp_path / "clip.wav", "--segments", "--json", "--threshold",
                        "0.99")
    segments = json.loads(ran.stdout.strip().splitlines()[-1])["segments"]
    window_best = (1 / (1 + np.exp(-logits))).max(axis=1)
    assert [(s["label"], s["score"]) for s in segments] == [(None, round(float(p), 4)) for p in window_best]


def test_download_from_a_server_then_load_model_predicts(envsound_main, server, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = yamnet_files(tmp_path / "published")
    server.files.update({name: (folder / name).read_bytes() for name in ("yamnet.tflite", "yamnet_class_map.csv")})
    ran = envsound_main("download", "yamnet", "--url", server.url)
    assert ran.returncode == 0, ran.stderr
    assert "licence: Apache-2.0" in ran.stdout
    from envsound import load_model

    model = load_model("yamnet")
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, 15_600).astype(np.float32)
    top = model.predict(wave, sample_rate=16_000, top_k=1).top
    scores, _ = reference("yamnet", wave[None])
    best = int(scores[0].argmax())
    assert top == [{"label": f"Class {best}", "score": round(float(scores[0, best]), 4)}]
    assert model.describe()["runtime"]["engine"] == "litert"


def test_a_label_file_of_the_wrong_count_keeps_nothing(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = yamnet_files(tmp_path / "copy")
    (folder / "yamnet_class_map.csv").write_text("index,mid,display_name\n0,/m/0,Speech\n")
    ran = envsound_main("download", "yamnet", "--from", folder)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].endswith(
        "copy/yamnet_class_map.csv: expected 521 class names for yamnet, found 1; pass the label file distributed "
        "with the model")
    assert not list((tmp_path / "models" / "yamnet").iterdir())


def test_a_folder_without_the_network_says_what_it_looked_for(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = yamnet_files(tmp_path / "copy")
    ran = envsound_main("download", "birdnet-v2.4", "--from", folder)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].endswith(
        "copy: no .tflite here is birdnet-v2.4 (looked for BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite or any of the "
        "same structure)")
