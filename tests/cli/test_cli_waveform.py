"""A raw-waveform model through the same commands as the mel models: config, train, evaluate, predict."""

import json

import pytest

from envsound.evaluation.evaluate import evaluate_model
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel

TINY_ACLNET = ("features.sample_rate=16000", "features.window_seconds=0.5", "features.eval_hop_seconds=0.25",
               "model.filters=4", "train.max_epochs=1", "train.patience=0", "train.batch_size=16")


def test_aclnet_train_evaluate_predict(tmp_path, synthetic_root, synthetic_manifest, envsound_main):
    sets = [arg for o in TINY_ACLNET for arg in ("--set", o)]
    shown = envsound_main("config", "--model", "aclnet")
    assert shown.returncode == 0 and "kind: waveform" in shown.stdout
    train = envsound_main("train", "--model", "aclnet", "--dataset", "synthetic", "--root", synthetic_root,
                          "--folds", "1,2", "--out", tmp_path / "run", "--no-cache", *sets)
    assert train.returncode == 0, train.stderr
    assert "trained aclnet" in train.stdout
    checkpoint = tmp_path / "run" / "model.ckpt"
    evaluate = envsound_main("evaluate", checkpoint, "--dataset", "synthetic", "--root", synthetic_root, "--folds", "5",
                             "--json", "--no-cache")
    assert evaluate.returncode == 0, evaluate.stderr
    report = json.loads(evaluate.stdout)
    model = ClipModel.from_checkpoint(load_checkpoint(checkpoint))
    expected = evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False).report
    assert report["n_clips"] == expected["n_clips"] == 20  # fold 5: 10 classes x 2 clips
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    predict = envsound_main("predict", checkpoint, synthetic_manifest.records[0].path, "--json", "--segments")
    assert predict.returncode == 0, predict.stderr
    result = json.loads(predict.stdout)
    assert result["error"] is None and len(result["segments"]) == 5  # 1.5 s at a 0.25-s hop of 0.5-s windows


def test_waveform_model_with_logmel_features_is_a_one_line_error(tmp_path, synthetic_root, envsound_main):
    run = envsound_main("train", "--model", "envnet2", "--set", "features.kind=logmel", "--dataset", "synthetic",
                        "--root", synthetic_root, "--folds", "1", "--out", tmp_path / "run", "--no-cache")
    assert run.returncode != 0
    assert "model 'envnet2' takes features.kind=waveform" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
