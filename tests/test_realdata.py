"""Real-data smoke test on the ESC-50 copy beside the clone (../shared/data/esc50); skipped when it is absent."""

import json

import pytest

from envsound.data.registry import load_dataset
from envsound.data.splits import check_no_leakage
from envsound.evaluation.evaluate import evaluate_model
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model

pytestmark = pytest.mark.realdata


def test_esc10_trains_evaluates_and_predicts_from_flac(tmp_path, esc50_root, envsound_main):
    from envsound.config.files import bare_config

    esc10 = load_dataset("esc10", esc50_root)
    train, test = esc10.select_folds([1, 2]), esc10.select_folds([4])
    check_no_leakage(train, test)
    # the real pipeline with the default features and model, trained briefly (augmentation off: it needs long runs)
    config = bare_config(overrides=["train.max_epochs=15", "train.batch_size=16", "train.lr=0.003", "train.patience=0",
                                    "augment.mixup_alpha=0",
                                    "augment.spec_augment=false", "augment.time_roll=false",
                                    "augment.copies=0"])
    result = train_model(train, config, out_dir=tmp_path / "run",
                         context=RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False))
    model = ClipModel.from_checkpoint(load_checkpoint(result.checkpoint))
    report = evaluate_model(model, test, cache=FeatureCache(tmp_path / "cache"), progress=False).report
    assert report["n_clips"] == 80
    assert report["accuracy"] > 0.3, report["accuracy"]  # chance is 0.1; fifteen short epochs on 144 clips

    files = [r.path for r in test.records[:2]]
    run = envsound_main("predict", result.checkpoint, *files, "--json")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    assert all(line["top"][0]["label"] in esc10.labels for line in lines)
