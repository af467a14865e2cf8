"""cv, train and evaluate over a frozen network on a fresh clone: 'envsound cv DATA --init yamnet' (the probe on
the network's embeddings, each clip embedded once for all folds), 'train --init birdnet-v2.4' then 'evaluate' and
'predict' on the head it wrote, zero-shot 'evaluate NAME --label-map', and what a frozen trunk cannot do refused in
one line. The networks are the tiny BirdNET- and YAMNet-shaped ones of tests/tinytflite.py, whose embedding is the
mean of the window's 1,024-sample blocks: the two classes here are clips of opposite offsets under noise."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from audiofactory import write_offsets  # noqa: E402 (after the skips)
from tinytflite import install_tiny_pair, reference  # noqa: E402


def offsets(root, rate: int, seconds: float, per_class: int = 3):
    """A folder dataset of two classes, ``up`` (offset +0.2) and ``down`` (-0.2), under noise of 0.05."""
    return write_offsets(root, sample_rate=rate, seconds=seconds, per_class=per_class)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """Both tiny networks installed (as 'envsound download NAME --from' does) and a dataset at each one's rate."""
    root = tmp_path_factory.mktemp("frozen-cv")
    return {"models": install_tiny_pair(root), "yamnet": offsets(root / "at16k", 16_000, 1.5),
            "birdnet": offsets(root / "at48k", 48_000, 3.5)}


def test_cv_init_yamnet_probes_each_fold_and_embeds_each_clip_once(envsound_main, frozen, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(frozen["models"]))
    from envsound.transfer.frozen_windows import cache_entries, clear_cache

    clear_cache()
    ran = envsound_main("cv", "--dataset", "folder", "--root", frozen["yamnet"], "--init", "yamnet",
                        "--out", tmp_path / "cv")
    assert ran.returncode == 0, ran.stderr
    assert [line.split(" (")[0] for line in ran.stdout.splitlines() if line.startswith("fold ")] == [
        "fold 1: accuracy 1.0000", "fold 2: accuracy 1.0000", "fold 3: accuracy 1.0000"]
    assert "mean accuracy 1.0000 ± 0.0000 over 3 folds" in ran.stdout
    assert cache_entries() == 6  # 6 clips, each trained on in 2 folds and tested in 1: embedded once
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["model"] == "yamnet" and summary["config"]["features"]["sample_rate"] == 16_000
    from envsound.models.checkpoint import load_checkpoint

    fold = load_checkpoint(tmp_path / "cv" / "fold_1" / "model.ckpt")
    assert (fold.meta["kind"], fold.meta["licence"], fold.meta["transfer"]["kind"]) == (
        "frozen-head", "Apache-2.0", "frozen")
    assert fold.state_dict["head.weight"].shape == (2, 1024) and not fold.task.multi_label


def test_train_init_birdnet_then_evaluate_and_predict_the_head(envsound_main, frozen, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(frozen["models"]))
    data = frozen["birdnet"]
    ran = envsound_main("train", "--dataset", "folder", "--root", data, "--folds", "1,2", "--init", "birdnet-v2.4",
                        "--out", tmp_path / "run", "--set", "features.eval_hop_seconds=0.25",
                        "--set", "events.open_set=0")  # the probe and its hop; the gate: test_frozen_open_set.py
    assert ran.returncode == 0, ran.stderr
    assert "trained birdnet-v2.4 on 4 clips" in ran.stdout
    ran = envsound_main("evaluate", tmp_path / "run" / "model.ckpt", "--dataset", "folder", "--root", data,
                        "--folds", "3", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert (report["accuracy"], report["seen_in_training"]) == (1.0, 0)  # the fold it never saw
    down = sorted((data / "down").iterdir())[-1]
    ran = envsound_main("predict", tmp_path / "run" / "model.ckpt", down, "--json", "--segments")
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["top"][0]["label"] == "down"
    # a single-label head: its two classes' probabilities are a softmax (they were two sigmoids, both near 1)
    assert sum(entry["score"] for entry in answer["top"]) == pytest.approx(1.0, abs=2e-4)
    # windows at the hop it was trained and evaluated at, not the network's default 3 s
    assert [segment["start"] for segment in answer["segments"]] == [0.0, 0.25, 0.5]


def test_evaluate_yamnet_zero_shot_averages_the_mapped_logits(envsound_main, frozen, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(frozen["models"]))
    (tmp_path / "map.csv").write_text("source,target\nClass 3,up\nClass 7,down\nClass 9,down\n")
    ran = envsound_main("evaluate", "yamnet", "--dataset", "folder", "--root", frozen["yamnet"], "--label-map",
                        tmp_path / "map.csv", "--out", tmp_path / "out")
    assert ran.returncode == 0, ran.stderr
    from envsound.features.windows import eval_windows
    from envsound.models.frozen import FROZEN
    from envsound.models.litert import frozen_config

    features = frozen_config(FROZEN["yamnet"]).features
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert len(rows) == 6
    for row in rows:
        wave = sf.read(row["file"], dtype="float32")[0]
        windows, _ = eval_windows(wave[None], features)
        scores, _ = reference("yamnet", windows[:, 0])
        logits = np.log(scores) - np.log1p(-scores)  # YAMNet's scores are the sigmoid of these
        target = np.stack([logits[:, 3], logits[:, [7, 9]].mean(axis=1)], axis=1)  # up: Class 3; down: 7, 9
        probs = (np.exp(target) / np.exp(target).sum(axis=1, keepdims=True)).mean(axis=0)  # softmax: single-label
        assert float(row["score"]) == pytest.approx(probs.max(), abs=1e-4)
        assert row["predicted"] == ("up", "down")[int(probs.argmax())]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "birdnet-v2.4", "--label-map", "{map}"],
     "'Genus species3_Common 33' is not a class of the model; closest: 'Genus species33_Common 33'"),
    (["evaluate", "yamnet"], "yamnet tags its own 521 classes (multi-label); dataset 'folder' is single-label: score "
                             "it zero-shot with --label-map FILE"),
    (["cv", "--init", "yamnet", "--transfer", "full", "--out", "{out}"],
     "--init yamnet (a frozen network run by LiteRT): transfer.mode=full: its trunk cannot be trained; use "
     "transfer.mode=probe (auto)"),
    (["train", "--init", "yamnet", "--semi", "fixmatch", "--out", "{out}"],
     "--init yamnet (a frozen network run by LiteRT): semi.method=fixmatch: a probe fits on the labelled clips only"),
    (["train", "--init", "yamnet", "--set", "model.options.frame_head=true", "--out", "{out}"],
     "a frame head needs a torch trunk's frames"),
    (["train", "--model", "yamnet", "--out", "{out}"],
     "model.name=yamnet: a frozen network; its head is learned from --init yamnet (train, cv) or with envsound learn"),
])
def test_what_does_not_apply_to_a_frozen_network_is_refused_in_one_line(envsound_main, frozen, tmp_path,
                                                                        monkeypatch, argv, message):
    monkeypatch.setenv("ENVSOUND_MODELS", str(frozen["models"]))
    (tmp_path / "map.csv").write_text("Genus species3_Common 33,up\n")
    argv = [a.format(map=tmp_path / "map.csv", out=tmp_path / "out") for a in argv]
    head = 2 if argv[0] == "evaluate" else 1  # the command (and evaluate's model), then the dataset
    ran = envsound_main(*argv[:head], "--dataset", "folder", "--root", frozen["yamnet"], *argv[head:])
    assert ran.returncode == 1
    assert message in ran.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "model.ckpt").exists()
