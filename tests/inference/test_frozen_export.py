"""'envsound export' of a head learned over a frozen network: a folder (the trunk's .tflite copied by digest, head.npz,
a manifest, a README with the trunk's licence) that scores as the checkpoint does, opens without torch (predict,
load_model), refuses a changed file, and the one-line refusal of --out X.onnx. The networks are the tiny ones of
tests/tinytflite.py (learnedhead.py makes the head)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from learnedhead import LABELS, THRESHOLDS, learned_head, light_install, recording  # noqa: E402 (after the skips)

from envsound.errors import CheckpointError, ConfigError  # noqa: E402
from envsound.models.frozen import FROZEN  # noqa: E402


@pytest.mark.parametrize("member", ["birdnet-v2.4", "yamnet"])
def test_export_writes_the_trunk_the_head_and_a_manifest_that_score_as_the_checkpoint(envsound_main, tmp_path,
                                                                                    monkeypatch, member):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned, release = learned_head(tmp_path, member), FROZEN[member]
    out = tmp_path / "sensor-model"
    ran = envsound_main("export", learned, "--out", out, "--check")
    assert ran.returncode == 0, ran.stderr
    trunk = release.file.split("/")[-1]
    lines = ran.stdout.strip().splitlines()
    assert lines[0].startswith(f"wrote {out}: {member}'s {trunk} (") and "a head of 2 class(es)" in lines[0]
    licence = [line for line in lines if line.startswith("licence:")]
    if release.bundled:  # YAMNet, Apache-2.0: nothing to warn about
        assert licence == []
    else:
        assert licence == [f"licence: {trunk} is CC BY-NC-SA 4.0: this copy is yours, not to be redistributed "
                           "(the folder's README.txt says so)"]
        assert "not to be redistributed" in (out / "README.txt").read_text()
    assert lines[-1] == "check: largest probability difference from the checkpoint on noise: 0.00e+00"
    assert sorted(p.name for p in out.iterdir()) == sorted([trunk, "README.txt", "envsound-head.json", "head.npz"])
    assert (out / trunk).read_bytes() == (tmp_path / "models" / release.file).read_bytes()
    manifest = json.loads((out / "envsound-head.json").read_text())
    assert manifest["network"] == member and manifest["licence"] == release.licence
    assert manifest["labels"] == LABELS and manifest["task"]["class_thresholds"] == THRESHOLDS


def test_the_export_predicts_without_torch_or_the_installed_trunk(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned = learned_head(tmp_path)
    assert envsound_main("export", learned, "--out", tmp_path / "sensor-model").returncode == 0
    clip = recording(tmp_path / "clip.wav", 48_000, 3.0, "rbbr")
    script = light_install("from envsound import load_model\n"
                           "print(json.dumps(load_model(sys.argv[1]).predict(sys.argv[2], segments=True).to_dict()))")
    ran = subprocess.run([sys.executable, "-c", script, str(tmp_path / "sensor-model"), str(clip)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ENVSOUND_MODELS": str(tmp_path / "empty")})
    assert ran.returncode == 0, ran.stderr
    from envsound import load_model

    expected = load_model(learned).predict(clip, segments=True).to_dict()
    got = json.loads(ran.stdout)
    assert got["segments"] == expected["segments"]
    assert [s["label"] for s in got["segments"]] == ["rain", "bird", "bird", "rain"]


def test_a_changed_file_in_the_export_is_refused_in_one_line(envsound_main, tmp_path, monkeypatch):
    from envsound import load_model

    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    out = tmp_path / "sensor-model"
    assert envsound_main("export", learned_head(tmp_path), "--out", out).returncode == 0
    trunk = out / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
    original = trunk.read_bytes()
    trunk.write_bytes(original + b"\0")
    with pytest.raises(CheckpointError, match=f"^{trunk}: not the trunk the export was made with"):
        load_model(out)
    trunk.write_bytes(original)
    (out / "head.npz").unlink()
    with pytest.raises(CheckpointError, match="head.npz: the export's head is missing; export the head again"):
        load_model(out / "envsound-head.json")


def test_export_to_an_onnx_name_is_refused_naming_the_folder_form(envsound_main, tmp_path, monkeypatch):
    """Before: 'envsound export' on a head learned over a frozen network said it was 'not a registered model'."""
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned = learned_head(tmp_path)
    folder_form = (f"{learned}: a head learned over birdnet-v2.4 exports to a folder (its trunk's .tflite and the "
                   f"head), not one .onnx file; name a folder: envsound export {learned} --out DIR")
    ran = envsound_main("export", learned, "--out", tmp_path / "model.onnx")
    assert ran.returncode == 1 and ran.stderr.strip().splitlines()[-1].endswith(folder_form)
    from envsound.inference.onnx_export import export_onnx

    with pytest.raises(ConfigError, match="exports to a folder"):
        export_onnx(learned, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_export_replaces_an_earlier_export_and_keeps_off_other_folders(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    learned = learned_head(tmp_path)
    out = tmp_path / "sensor-model"
    assert envsound_main("export", learned, "--out", out).returncode == 0
    (out / "head.npz").write_bytes(b"stale")
    assert envsound_main("export", learned, "--out", out).returncode == 0
    assert len(list(tmp_path.glob(".sensor-model.*"))) == 0  # no building or old folder left beside it
    from envsound import load_model

    assert load_model(out).labels == LABELS
    ran = envsound_main("export", learned, "--out", tmp_path / "audio")
    assert ran.returncode == 0  # a new folder
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    ran = envsound_main("export", learned, "--out", tmp_path / "notes")
    assert ran.returncode == 1 and ran.stderr.strip().splitlines()[-1].endswith(
        f"--out {tmp_path / 'notes'}: a folder of other files; name a new folder (or an earlier export, which is "
        "replaced)")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]
