"""RunContext: how a recipe runs (feature cache, resume, overwrite, progress, bad audio), carried once through the
recipes down to train_model."""

import argparse

import pytest

from envsound.cli.options import run_context
from envsound.errors import ConfigError, EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.recipes import crossval
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv
from envsound.recipes.train import train_model


def test_an_unknown_on_error_is_refused_naming_it():
    with pytest.raises(ConfigError, match="on_error='ignore' is not valid; use 'raise'"):
        RunContext(on_error="ignore")


def test_cross_validation_hands_its_context_to_every_fold_unchanged(tmp_path, synthetic_manifest, tiny_config,
                                                                     monkeypatch):
    tiny_config.model.name, tiny_config.model.filters = "knn", None  # fast: the plumbing is what is tested
    seen = []

    def noting_train_model(*args, context, **kwargs):  # the real training, noting the context each fold gets
        seen.append(context)
        return train_model(*args, context=context, **kwargs)

    monkeypatch.setattr(crossval, "train_model", noting_train_model)
    context = RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False, on_error="skip")
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path / "cv", context=context)
    assert len(seen) == 2 and all(c is context for c in seen)


def test_overwrite_reaches_every_fold(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path, context=RunContext(progress=False))
    stamp = (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns
    with pytest.raises(EnvsoundError, match="already exists"):
        run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path,
               context=RunContext(progress=False))
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path,
           context=RunContext(overwrite=True, progress=False))
    assert (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns != stamp


def test_the_cli_flags_make_the_context():
    args = argparse.Namespace(no_cache=True, cache_dir=None, resume=True, overwrite=False, quiet=True, skip_bad=True)
    assert run_context(args) == RunContext(cache=None, resume=True, overwrite=False, progress=False, on_error="skip")


def test_cv_into_a_folder_holding_a_train_run_is_refused(tmp_path, synthetic_manifest, tiny_config):
    """Issue 69: `cv --out runs/mine` on a `train` run's folder wrote fold_1..k beside its model.ckpt."""
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    mine = tmp_path / "mine"
    train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=mine, context=RunContext(progress=False))
    with pytest.raises(ConfigError, match="holds the model of one training run") as caught:
        run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=mine,
               context=RunContext(overwrite=True, progress=False))
    assert sorted(p.name for p in mine.iterdir() if p.name.startswith("fold_")) == []
    run_cv(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path / "cv",
           context=RunContext(progress=False))
    with pytest.raises(ConfigError, match="holds a cross-validation"):  # and the reverse
        train_model(synthetic_manifest, tiny_config, out_dir=tmp_path / "cv", context=RunContext(progress=False))
    assert "\n" not in str(caught.value)


def test_a_finished_run_is_refused_in_the_python_api_s_words(tmp_path, synthetic_manifest, tiny_config):
    """Issue 69: the message named RunContext(overwrite=True) and out_dir, where envsound.train takes overwrite=,
    resume= and out=."""
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    train_model(synthetic_manifest, tiny_config, out_dir=tmp_path, context=RunContext(progress=False))
    with pytest.raises(EnvsoundError) as caught:
        train_model(synthetic_manifest, tiny_config, out_dir=tmp_path, context=RunContext(progress=False))
    assert "overwrite=True" in str(caught.value) and "resume=True" in str(caught.value)
    assert "RunContext" not in str(caught.value) and "out_dir" not in str(caught.value)


def test_a_misspelt_keyword_of_train_offers_the_keyword_it_meant(tmp_path):
    """Issue 69: `envsound.train(inti=...)` was refused as `resolve(): unknown keyword`, listing flags without init."""
    import envsound

    data = envsound.dataset("folder", root=tmp_path)
    with pytest.raises(ConfigError, match=r"train\(\): unknown keyword 'inti' \(did you mean init=\?\)") as caught:
        envsound.train(data, out=tmp_path / "run", inti="efficientat-mn04")
    assert "resolve()" not in str(caught.value) and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"cross_validate\(\): unknown keyword 'shot' \(did you mean shots=\?\)"):
        envsound.cross_validate(data, out=tmp_path / "cv", shot=5)
    with pytest.raises(ConfigError, match=r"train\(\): unknown keyword 'inti'"), pytest.warns(DeprecationWarning):
        envsound.train(dataset="folder", root=tmp_path, out=tmp_path / "run", inti="efficientat-mn04")  # the old form
