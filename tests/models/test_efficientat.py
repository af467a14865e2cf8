"""EfficientAT: the frontend and network against the official outputs (when ../shared holds them), and official weight
files as taggers, --init sources, downloads and zero-shot models. Files in the release's format are built here from
the network at random weights (a release file is nothing but a state dict), so all but the parity tests run anywhere."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from envsound.config import FeatureConfig
from envsound.errors import CheckpointError, ConfigError
from envsound.features.efficientat import SETTINGS, EfficientATMel, kaldi_mel_banks
from envsound.models.checkpoint import load_checkpoint
from envsound.models.files import open_model_file
from envsound.models.efficientat import EfficientAT, release_key
from envsound.models.pretrained import PRETRAINED
from envsound.transfer.install import install_pretrained

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "pretrained" / "efficientat"
needs_shared = pytest.mark.skipif(not (SHARED / "reference-mn04.npz").exists(),
                                  reason=f"EfficientAT reference outputs not found at {SHARED}")


def release_state(width: float, *, n_classes: int = 527, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict named as the release names it, of the network at ``width`` with random weights."""
    torch.manual_seed(seed)
    state = EfficientAT(n_classes=n_classes, in_channels=1, n_mels=128, n_frames=100, width=width).state_dict()
    return {release_key(k): v for k, v in state.items()}


def write_labels(folder: Path, n: int = 527) -> Path:
    path = folder / "class_labels_indices.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        for i in range(n):
            writer.writerow([i, f"/m/{i}", "Dog" if i == 0 else "Chicken, rooster" if i == 1 else f"Sound {i}"])
    return path


@pytest.fixture
def tagger_file(tmp_path) -> Path:
    path = tmp_path / "mn01_as_mAP_298.pt"
    torch.save(release_state(0.1), path)
    write_labels(tmp_path)
    return path


# ------------------------------------------------------------------------------------------------ frontend and network

def test_kaldi_banks_are_triangles_peaking_at_one_with_the_nyquist_bin_zero():
    banks = kaldi_mel_banks(sample_rate=32000, n_fft=1024, n_mels=128, f_min=0.0, f_max=15000.0).numpy()
    assert banks.shape == (128, 513)
    assert np.all(banks[:, -1] == 0) and np.all(banks >= 0)
    assert banks[100:].max(axis=1).min() > 0.8 and banks.max() <= 1.0  # wide bands sample near their peak
    delta = 1127 * np.log1p(15000 / 700) / 129  # band spacing in mel; bin 1 (31.25 Hz) is on band 0's falling edge
    assert banks[0, 1] == pytest.approx(2 - 1127 * np.log1p(31.25 / 700) / delta, abs=1e-5)  # float32
    top = 15000 * 1024 / 32000  # no band reaches past f_max
    assert np.all(banks[:, int(np.ceil(top)) + 1:] == 0)


def test_frontend_frames_and_silence_and_the_onnx_form_agree():
    cfg = FeatureConfig(**SETTINGS)
    assert cfg.window_frames == 500  # 5 s at 32 kHz: 1 + (160000 - 1) // 320
    waveform = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 32000)).astype(np.float32) * 0.1)
    stft, matmul = EfficientATMel.from_config(cfg), EfficientATMel.from_config(cfg, dft_matmul=True)
    out = stft(waveform)
    assert out.shape == (2, 1, 128, cfg.frames(32000)) == (2, 1, 128, 100)
    assert torch.allclose(out, matmul(waveform), atol=1e-4)
    silence = stft(torch.zeros(1, 8000))
    assert torch.allclose(silence, torch.full_like(silence, (np.log(1e-5) + 4.5) / 5), atol=1e-6)


def test_mn04_has_the_tensors_of_the_release():
    model = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=500, width=0.4)
    state = model.state_dict()
    assert len(state) == 312 and sum(t.numel() for t in state.values()) == PRETRAINED["mn04_as"].parameters
    assert model(torch.zeros(2, 1, 128, 300)).shape == (2, 527) and model.pooled(torch.zeros(1, 1, 128, 50)).shape \
        == (1, 384)


@needs_shared
def test_every_official_width_builds_the_releases_state_dict_shapes():
    shapes = json.loads((SHARED / "state-dict-shapes.json").read_text())
    for name, spec in PRETRAINED.items():
        built = {k: list(v.shape) for k, v in release_state(spec.options["width"]).items()}
        assert built == shapes[name], name
        assert sum(int(np.prod(s)) for s in shapes[name].values()) == spec.parameters


@needs_shared
def test_parity_with_the_official_code_on_its_16_reference_inputs():
    reference = np.load(SHARED / "reference-mn04.npz")
    top5 = json.loads((SHARED / "reference-mn04-top5.json").read_text())["top5"]
    checkpoint = open_model_file(SHARED / "mn04_as_mAP_432.pt").checkpoint
    network = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=500).eval()
    network.load_state_dict(checkpoint.state_dict)
    frontend = EfficientATMel.from_config(checkpoint.config.features)
    worst = {"mel": 0.0, "logits": 0.0, "embedding": 0.0}
    for i, name in enumerate(reference["names"]):
        with torch.inference_mode():
            mel = frontend(torch.from_numpy(reference[f"waveform_{i}"])[None])
            logits, pooled = network(mel)[0].numpy(), network.pooled(mel)[0].numpy()
        worst["mel"] = max(worst["mel"], float(np.abs(mel[0, 0].numpy() - reference[f"mel_{i}"]).max()))
        worst["logits"] = max(worst["logits"], float(np.abs(logits - reference[f"logits_{i}"]).max()))
        worst["embedding"] = max(worst["embedding"], float(np.abs(pooled - reference[f"embedding_{i}"]).max()))
        if str(name) in top5:
            probs = 1 / (1 + np.exp(-logits))
            ours = [checkpoint.labels[j] for j in np.argsort(-probs)[:5]]
            assert ours == [label for label, _ in top5[str(name)]], name
    # measured: mel 8.5e-5, logits 1.5e-5, embedding 2.3e-6 (the issue asks 1e-4 and 1e-3)
    assert worst["mel"] < 1e-4 and worst["logits"] < 1e-4 and worst["embedding"] < 1e-4, worst


# ------------------------------------------------------------------------------------------------ release files

def test_a_release_file_loads_as_an_audioset_tagger(tagger_file):
    checkpoint = open_model_file(tagger_file).checkpoint
    assert checkpoint.task.multi_label and len(checkpoint.labels) == 527 and checkpoint.labels[0] == "Dog"
    assert checkpoint.config.model.name == "efficientat" and checkpoint.config.model.options == {"width": 0.1}
    assert checkpoint.config.features.frontend == "efficientat" and checkpoint.config.features.sample_rate == 32000
    assert checkpoint.meta["pretrained"]["name"] == "mn01_as"


def test_bad_release_files_are_one_line_errors_naming_the_problem(tmp_path, tagger_file):
    state = release_state(0.1)
    state["features.3.block.0.0.weight"] = torch.zeros(5, 5, 1, 1)
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match=r"features\.3\.block\.0\.0\.weight has shape \(5, 5, 1, 1\)"):
        open_model_file(tmp_path / "wrong.pt")
    (tmp_path / "truncated.pt").write_bytes(tagger_file.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match="a damaged or truncated torch file, cannot be read") as info:
        open_model_file(tmp_path / "truncated.pt")
    assert "\n" not in str(info.value)
    alone = tmp_path / "alone"
    alone.mkdir()
    torch.save(release_state(0.1), alone / "mn01.pt")
    with pytest.raises(CheckpointError, match="label names are missing: put AudioSet's class_labels_indices.csv"):
        open_model_file(alone / "mn01.pt")


def test_predict_and_export_take_a_release_file(tagger_file, tmp_path, envsound_main):
    from audiofactory import write_tone

    clip = write_tone(tmp_path / "tone.wav", seconds=2.0, sample_rate=22050)
    ran = envsound_main("predict", tagger_file, clip, "--json", "--top-k", "2")
    assert ran.returncode == 0, ran.stderr
    row = json.loads(ran.stdout.splitlines()[0])
    assert len(row["top"]) == 2 and "labels" in row
    ran = envsound_main("export", tagger_file, "--out", tmp_path / "tagger.onnx")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.api import load_model

    torch_top = load_model(tagger_file, device="cpu", precision="32").predict(clip, top_k=5).top
    onnx_top = load_model(tmp_path / "tagger.onnx").predict(clip, top_k=5).top
    assert [t["label"] for t in torch_top] == [t["label"] for t in onnx_top]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(torch_top, onnx_top)) < 1e-3


def test_zero_shot_label_map_scores_a_dataset_and_names_close_classes(tagger_file, tmp_path, synthetic_root,
                                                                      envsound_main):
    from envsound.data.synthetic import prepare_synthetic

    labels = prepare_synthetic(synthetic_root).labels
    rows = ["source,target"] + [f"Sound {i + 2},{name}" for i, name in enumerate(labels)]
    (tmp_path / "map.csv").write_text("\n".join(rows) + "\n")
    ran = envsound_main("evaluate", tagger_file, "--dataset", "synthetic", "--root", synthetic_root, "--folds", "5",
                        "--label-map", tmp_path / "map.csv", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert 0 <= report["accuracy"] <= 1 and len(report["per_class"]) == len(labels)
    (tmp_path / "bad.csv").write_text("Dgo,dog\n")
    ran = envsound_main("evaluate", tagger_file, "--dataset", "synthetic", "--root", synthetic_root, "--folds", "5",
                        "--label-map", tmp_path / "bad.csv")
    assert ran.returncode == 1 and "'Dgo' is not a class of the model; closest: 'Dog'" in ran.stderr


def test_init_from_a_release_file_fine_tunes_a_classifier_that_predicts(tagger_file, tmp_path, synthetic_root,
                                                                        envsound_main):
    from conftest import TINY_OVERRIDES

    tiny = [o for o in TINY_OVERRIDES if not o.startswith(("features.", "model.filters"))]
    sets = [arg for o in tiny + ["features.window_seconds=1.0", "train.max_epochs=1"] for arg in ("--set", o)]
    ran = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2",
                        "--init", tagger_file, "--transfer", "probe_full", "--out", tmp_path / "run", *sets)
    assert ran.returncode == 0, ran.stderr
    assert "head: replaced (527 -> 10 classes)" in ran.stderr and "probe: logistic regression" in ran.stderr
    checkpoint = load_checkpoint(tmp_path / "run" / "model.ckpt")
    assert checkpoint.config.features.frontend == "efficientat" and not checkpoint.task.multi_label
    assert checkpoint.meta["transfer"]["source"] == str(tagger_file)
    assert checkpoint.meta["transfer"]["head"] == "logistic regression, then fine-tuned"
    assert checkpoint.meta["epochs"] == 1  # the fine-tuning ran after the probe
    ran = envsound_main("evaluate", tmp_path / "run" / "model.ckpt", "--dataset", "synthetic", "--root",
                        synthetic_root, "--folds", "5")
    assert ran.returncode == 0, ran.stderr
    ran = envsound_main("export", tmp_path / "run" / "model.ckpt", "--out", tmp_path / "run" / "model.onnx")
    assert ran.returncode == 0, ran.stderr
    from envsound.inference.api import load_model

    clip = next(Path(synthetic_root).rglob("*.wav"))
    ours = load_model(tmp_path / "run" / "model.ckpt", device="cpu", precision="32").predict(clip, top_k=10).top
    exported = load_model(tmp_path / "run" / "model.onnx").predict(clip, top_k=10).top
    assert {t["label"]: round(t["score"], 3) for t in ours} == pytest.approx(
        {t["label"]: round(t["score"], 3) for t in exported}, abs=2e-3)


# ------------------------------------------------------------------------------------------------ getting the weights

def test_download_checks_the_network_and_keeps_nothing_that_fails(tmp_path, monkeypatch, server, tagger_file):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    server.files["class_labels_indices.csv"] = (tagger_file.parent / "class_labels_indices.csv").read_bytes()
    server.files["mn01_as_mAP_298.pt"] = tagger_file.read_bytes()
    path = install_pretrained("efficientat-mn01", url=server.url, progress=False)
    assert path == tmp_path / "models" / "mn01_as_mAP_298.pt"
    assert open_model_file("efficientat-mn01").checkpoint.labels[0] == "Dog"  # an installed name is a MODEL
    server.files["mn02_as_mAP_378.pt"] = tagger_file.read_bytes()  # mn01's network under mn02's name
    with pytest.raises(CheckpointError, match="holds the width-0.1 network, not mn02_as"):
        install_pretrained("efficientat-mn02", url=server.url, progress=False)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["class_labels_indices.csv",
                                                                       "mn01_as_mAP_298.pt"]
    with pytest.raises(CheckpointError, match="sha256 is not that of the official mn04_as_mAP_432.pt"):
        install_pretrained("efficientat-mn04", source_file=tagger_file)
    with pytest.raises(ConfigError, match="known: efficientat-mn01"):
        install_pretrained("efficientat-mn99")
    with pytest.raises(CheckpointError, match="not installed.*envsound download efficientat-mn10"):
        open_model_file("efficientat-mn10")


def test_cli_download_from_a_file_and_models_lists_it(tmp_path, monkeypatch, tagger_file, envsound_main):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    ran = envsound_main("download", "efficientat-mn01", "--from", tagger_file)
    assert ran.returncode == 0 and "efficientat-mn01 is installed at" in ran.stdout, ran.stderr
    ran = envsound_main("models")
    listed = {line.split()[0]: line for line in ran.stdout.splitlines() if line.startswith("  efficientat-")}
    assert "installed: " in listed["efficientat-mn01"] and "not installed" in listed["efficientat-mn40"]
    assert "AudioSet mAP 0.432" in listed["efficientat-mn04"]
    ran = envsound_main("download", "esc50")  # a dataset still needs --root: one line, no traceback
    assert ran.returncode == 1 and "pass --root PATH" in ran.stderr and "Traceback" not in ran.stderr


def test_init_from_bad_weights_or_a_misspelt_map_writes_nothing(tmp_path, tagger_file, synthetic_root,
                                                                envsound_main):
    (tmp_path / "broken.pt").write_bytes(tagger_file.read_bytes()[:3000])
    ran = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--init", tmp_path / "broken.pt",
                        "--out", tmp_path / "a")
    assert ran.returncode == 1
    assert "broken.pt: not a model file (a damaged or truncated torch file" in ran.stderr
    (tmp_path / "map.csv").write_text("Chiken rooster,alarm\n")
    ran = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--init", tagger_file,
                        "--label-map", tmp_path / "map.csv", "--out", tmp_path / "b")
    assert ran.returncode == 1 and "source 'Chiken rooster' (closest: 'Chicken, rooster')" in ran.stderr
    assert "Sound 300" not in ran.stderr  # 527 names are not listed
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
