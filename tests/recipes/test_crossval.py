import json

import pytest

from envsound.errors import DatasetLayoutError
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv


def test_cross_validation_writes_summary_and_figures(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters = "knn", None  # fast: the loop is what is tested here
    summary = run_cv(synthetic_manifest, tiny_config, folds=[1, 2, 3], out_dir=tmp_path,
                     context=RunContext(progress=False))
    written = json.loads((tmp_path / "cv.json").read_text())
    assert written["mean_accuracy"] == pytest.approx(summary["mean_accuracy"])
    assert [f["fold"] for f in written["folds"]] == [1, 2, 3]
    assert all(f["n_test"] == len(synthetic_manifest.select_folds([f["fold"]])) for f in written["folds"])
    accuracies = [f["accuracy"] for f in written["folds"]]
    assert written["mean_accuracy"] == pytest.approx(sum(accuracies) / 3)
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "predictions.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(synthetic_manifest.select_folds([1, 2, 3]))
    for fold in (1, 2, 3):
        assert (tmp_path / f"fold_{fold}" / "model.ckpt").exists()


def test_resume_reuses_finished_folds(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path, context=RunContext(progress=False))
    stamp = (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path,
           context=RunContext(resume=True, progress=False))
    assert (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns == stamp


def test_one_fold_is_not_cross_validation(tmp_path, synthetic_manifest, tiny_config):
    with pytest.raises(DatasetLayoutError, match="at least 2 folds"):
        run_cv(synthetic_manifest, tiny_config, folds=[1], out_dir=tmp_path, context=RunContext(progress=False))
