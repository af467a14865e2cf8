"""RunContext: how a recipe runs (feature cache, resume, overwrite, progress, bad audio), carried once through the
recipes down to train_model."""

import argparse

import pytest

from envsound.cli.options import run_context
from envsound.errors import ConfigError, EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.recipes import crossval
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import cross_validate
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
    cross_validate(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path / "cv", context=context)
    assert len(seen) == 2 and all(c is context for c in seen)


def test_overwrite_reaches_every_fold(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters = "knn", None
    cross_validate(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path, context=RunContext(progress=False))
    stamp = (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns
    with pytest.raises(EnvsoundError, match="already exists"):
        cross_validate(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path,
                       context=RunContext(progress=False))
    cross_validate(synthetic_manifest, tiny_config, folds=[1, 2], out_dir=tmp_path,
                   context=RunContext(overwrite=True, progress=False))
    assert (tmp_path / "fold_1" / "model.ckpt").stat().st_mtime_ns != stamp


def test_the_cli_flags_make_the_context():
    args = argparse.Namespace(no_cache=True, cache_dir=None, resume=True, overwrite=False, quiet=True, skip_bad=True)
    assert run_context(args) == RunContext(cache=None, resume=True, overwrite=False, progress=False, on_error="skip")
