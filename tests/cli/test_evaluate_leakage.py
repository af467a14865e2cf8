"""Issue 55, rough edge 7: `evaluate` on a model's own training clips warned only on stderr while stdout showed a
clean score, and it recognised only the exact copies among re-encoded training clips. The note must be in the
report (stdout and --json), counting re-encoded copies with the content check training's guard uses."""

import json

import numpy as np
import soundfile as sf
import soxr
from conftest import TINY_OVERRIDES


def test_evaluate_reports_re_encoded_training_clips_on_stdout_and_in_json(tmp_path, synthetic_root,
                                                                          synthetic_manifest, envsound_main):
    sets = [arg for o in TINY_OVERRIDES if not o.startswith("model.") for arg in ("--set", o)]
    run = envsound_main("train", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1", "--model",
                        "knn", "--out", tmp_path / "run", "--no-cache", *sets)
    assert run.returncode == 0, run.stderr
    trained = [r for r in synthetic_manifest.records if r.fold == 1]
    unseen = [r for r in synthetic_manifest.records if r.fold == 5]
    folder = tmp_path / "eval"

    def write(record, suffix, wave, rate, **kwargs):
        path = folder / record.labels[0] / f"{record.path.stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave, rate, **kwargs)

    for i, record in enumerate(trained[:4]):  # four training clips, each under another name and encoding
        wave, rate = sf.read(record.path, dtype="float32")
        if i == 0:
            write(record, ".flac", wave, rate)  # lossless: the same samples
        elif i in (1, 2):
            write(record, ".ogg", wave, rate, format="OGG", subtype="VORBIS")  # lossy
        else:
            write(record, "_resampled.wav", soxr.resample(wave, rate, rate * 3 // 2), rate * 3 // 2)
    for record in unseen[:3]:  # and three clips it never heard
        wave, rate = sf.read(record.path, dtype="float32")
        write(record, ".wav", wave, rate)

    model = tmp_path / "run" / "model.ckpt"
    text = envsound_main("evaluate", model, "--dataset", "folder", "--root", folder, "--no-cache")
    assert text.returncode == 0, text.stderr
    note = "LEAKAGE: 4 of the 7 clips evaluated were in this model's training data"
    assert text.stdout.startswith(note), text.stdout
    as_json = envsound_main("evaluate", model, "--dataset", "folder", "--root", folder, "--no-cache", "--json")
    report = json.loads(as_json.stdout)
    assert report["seen_in_training"] == 4 and report["leakage"]["seen_in_training"] == 4
    assert report["leakage"]["clips"] == 7 and report["leakage"]["note"].startswith(note)
    clean = envsound_main("evaluate", model, "--dataset", "synthetic", "--root", synthetic_root, "--folds", "5",
                          "--no-cache", "--json")
    assert json.loads(clean.stdout)["seen_in_training"] == 0 and "leakage" not in json.loads(clean.stdout)
    assert not np.isnan(report["accuracy"])
