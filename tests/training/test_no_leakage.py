"""No leakage through augmentation, by construction and by test.

A real ESC-50-style dataset on disk (several takes per source recording, like ESC-50's ``src_file``), real
cross-validation splits, and the data pipeline exactly as ``train_model`` runs it (``prepare_training_data``): no test
clip, no copy derived from one, no clip sharing a source recording with one, may reach training or validation; no
validation clip may be the source of a training copy or its background sound.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from envsound.config.files import bare_config
from envsound.data.esc50 import prepare_esc50
from envsound.data.records import Manifest
from envsound.data.splits import check_augmentation_leakage, cv_splits
from envsound.data.synthetic import synthesize_clip
from envsound.errors import DatasetLayoutError
from envsound.features.cache import FeatureCache
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model
from envsound.training.prepare import prepare_training_data
from audiofactory import write_audio
from conftest import TINY_OVERRIDES

CLASSES = ("dog_bark", "rain", "siren", "clock_tick")
SR = 16000
AUGMENT = ("augment.copies=2", "augment.workers=1", "augment.background=0.7", "augment.noise=0.3",
           "augment.pitch_shift=0.5", "augment.time_stretch=0.5", "augment.gain=0.5", "augment.shift=0.3")


def make_esc50_takes(root: Path, *, folds: int = 4, sources_per_class_per_fold: int = 1, takes: int = 3) -> Path:
    """ESC-50 layout: ``{fold}-{src}-{take}-{target}.wav``, every source recording cut into ``takes`` clips."""
    rows, rng = [], np.random.default_rng(0)
    for target, category in enumerate(CLASSES):
        for fold in range(1, folds + 1):
            for s in range(sources_per_class_per_fold):
                src = f"{100 * target + 10 * fold + s}"
                for take in "ABCD"[:takes]:
                    name = f"{fold}-{src}-{take}-{target}.wav"
                    write_audio(root / "audio" / name, synthesize_clip(category, n_samples=SR, sample_rate=SR,
                                                                        rng=rng), sample_rate=SR)
                    rows.append(f"{name},{fold},{target},{category},True,{src},{take}")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def takes_manifest(tmp_path_factory) -> Manifest:
    return prepare_esc50(make_esc50_takes(tmp_path_factory.mktemp("esc50_takes")))


def config_with(*extra: str):
    return bare_config(overrides=TINY_OVERRIDES + ("train.val_fraction=0.25",) + AUGMENT + extra)


def assert_no_leak(data, test: Manifest) -> None:
    """Fail if anything of ``test`` (or of validation) reached what the model trains on."""
    by_path = {os.path.realpath(r.path): r for r in test.records + data.train.records + data.val.records}
    test_ids, test_sources = {r.clip_id for r in test.records}, {r.source_id for r in test.records}
    val_ids, val_sources = {r.clip_id for r in data.val.records}, {r.source_id for r in data.val.records}
    train_ids = {r.clip_id for r in data.train.records}
    for side in (data.train, data.val):
        assert not {r.clip_id for r in side.records} & test_ids, "a test clip reached training or validation"
        assert not {r.source_id for r in side.records} & test_sources, "a take of a test recording leaked"
    assert not {r.source_id for r in data.train.records} & val_sources, "validation shares a recording with training"
    assert data.copies.copies, "the pipeline made no copies: this test would prove nothing"
    assert len(data.copies.features) == len(data.copies.copies)
    for copy in data.copies.copies:
        assert copy.source_clip_id in train_ids, f"copy of a non-training clip {copy.source_clip_id}"
        assert copy.source_clip_id not in test_ids | val_ids
        assert copy.source_id not in test_sources | val_sources
        if copy.noise_path is not None:
            noise = by_path.get(os.path.realpath(copy.noise_path))
            assert noise is not None and noise.clip_id in train_ids, f"background {copy.noise_path} is not training"
            assert noise.source_id not in test_sources | val_sources
            assert noise.source_id != copy.source_id
    # what the training loop receives: one variant list per training clip, all of them that clip's copies
    variants = data.train_variants
    assert len(variants) == len(data.train) and sum(len(v) for v in variants) == len(data.copies.copies)


def test_no_test_or_validation_audio_reaches_training(tmp_path, takes_manifest):
    config = config_with()
    cache = FeatureCache(tmp_path / "cache")
    n_with_background = 0
    for test_fold, train, test in cv_splits(takes_manifest, [1, 2, 3, 4])[:2]:
        data = prepare_training_data(train, config, held_out=[test], cache=cache, progress=False)
        assert len(data.val) > 0 and len(data.train) > 0
        assert_no_leak(data, test)
        n_with_background += sum(c.noise_path is not None for c in data.copies.copies)
    assert n_with_background > 0, "no copy had a background sound: the background check was not exercised"


def test_guard_catches_a_copy_made_from_a_validation_clip(takes_manifest):
    _, train, test = cv_splits(takes_manifest, [1, 2, 3, 4])[0]
    from envsound.data.splits import train_val_split

    fit, val = train_val_split(train, val_fraction=0.25, seed=0)
    check_augmentation_leakage(fit, [val, test], copy_sources=fit.records[:3])  # legitimate: passes
    with pytest.raises(DatasetLayoutError, match=val.records[0].clip_id):
        check_augmentation_leakage(fit, [val, test], copy_sources=[fit.records[0], val.records[0]])
    with pytest.raises(DatasetLayoutError, match="train/test leak"):  # a take of a test recording in training
        check_augmentation_leakage(fit.subset(fit.records + test.records[:1]), [test])


def test_background_folder_holding_test_clips_is_refused_naming_them(tmp_path, takes_manifest):
    _, train, test = cv_splits(takes_manifest, [1, 2, 3, 4])[0]
    folder = tmp_path / "noise"
    folder.mkdir()
    victim = test.records[0]
    os.symlink(victim.path, folder / "innocent_name.wav")  # same file under another name: still the test clip
    write_audio(folder / "street.wav", synthesize_clip("rain", n_samples=SR, sample_rate=SR,
                                                        rng=np.random.default_rng(1)), sample_rate=SR)
    config = config_with(f"augment.background_folder={folder}")
    with pytest.raises(DatasetLayoutError, match="innocent_name.wav") as info:
        prepare_training_data(train, config, held_out=[test], progress=False)
    assert victim.clip_id in str(info.value)
    # train_model refuses before training (nothing written but the resolved config)
    with pytest.raises(DatasetLayoutError, match=victim.clip_id):
        train_model(train, config, out_dir=tmp_path / "run", held_out=[test], context=RunContext(progress=False))
    assert not (tmp_path / "run" / "model.ckpt").exists()


def test_background_folder_holding_validation_clips_is_refused(tmp_path, takes_manifest):
    _, train, test = cv_splits(takes_manifest, [1, 2, 3, 4])[0]
    from envsound.data.splits import train_val_split

    config = config_with()
    _, val = train_val_split(train, val_fraction=config.train.val_fraction, seed=config.train.seed)  # as train_model
    folder = tmp_path / "noise"
    folder.mkdir()
    os.link(val.records[0].path, folder / "hardlinked.wav")  # another path, the same inode
    with pytest.raises(DatasetLayoutError, match=val.records[0].clip_id):
        prepare_training_data(train, config_with(f"augment.background_folder={folder}"), held_out=[test],
                              progress=False)


def test_cross_validation_refuses_a_leaky_background_folder(tmp_path, takes_manifest):
    from envsound.recipes.crossval import run_cv

    # the dataset's own audio folder: every fold's test clips are in it
    folder = Path(takes_manifest.records[0].path).parent
    config = config_with(f"augment.background_folder={folder}", "model.name=cnn")
    with pytest.raises(DatasetLayoutError, match="validation or test clips"):
        run_cv(takes_manifest, config, folds=[1, 2], out_dir=tmp_path / "cv",
               context=RunContext(progress=False))
    assert not (tmp_path / "cv" / "fold_1" / "model.ckpt").exists()
