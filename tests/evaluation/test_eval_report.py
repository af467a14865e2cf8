"""write_report puts the JSON, text and figure of one evaluation on disk."""

from __future__ import annotations

import json

import numpy as np

from envsound.evaluation.metrics import classification_report
from envsound.evaluation.report import write_report


def test_write_report_files(tmp_path):
    y = np.array([0, 1, 2, 3, 3])
    prob = np.eye(4)[[0, 1, 1, 3, 3]]
    report = classification_report(y, prob, labels=["dog", "rain", "siren", "cat"]) | {"fold": 2}
    paths = write_report(report, out_dir=tmp_path / "eval", stem="fold2")
    assert set(paths) == {"json", "text", "confusion_png"}
    assert json.loads(paths["json"].read_text()) == report
    text = paths["text"].read_text()
    assert text.startswith("accuracy 0.8000") and "siren -> rain: 1" in text
    assert paths["confusion_png"].read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["fold2.json", "fold2.txt", "fold2_confusion.png"]
    assert "confusion_png" not in write_report(report, out_dir=tmp_path / "nofig", figure=False)


def test_evaluate_counts_the_clips_the_model_was_trained_on(trained_run, synthetic_manifest, caplog):
    from envsound.evaluation.evaluate import evaluate_model
    from envsound.models.checkpoint import load_checkpoint
    from envsound.models.clip import ClipModel

    model = ClipModel.from_checkpoint(load_checkpoint(trained_run.checkpoint))
    assert evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False).report["seen_in_training"] == 0
    with caplog.at_level("WARNING", logger="envsound"):
        report = evaluate_model(model, synthetic_manifest.select_folds([3, 5]), progress=False).report
    assert report["seen_in_training"] == 20 and "this is not a test score" in caplog.text
    model.trained_on = None  # a checkpoint from before fingerprints
    unknown = evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False).report
    assert unknown["seen_in_training"] is None
