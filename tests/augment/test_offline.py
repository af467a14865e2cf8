"""Offline augmented copies: config validation, determinism, the cache across splits, a few-step training run."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from envsound.augment import offline as offline_augment
from envsound.augment.offline import apply_params, draw_params, make_copies, noise_pool
from envsound.config import Config
from envsound.config.files import bare_config
from envsound.data.records import ClipRecord
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.features.cache import FeatureCache
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model
from envsound.training.prepare import prepare_training_data

from audiofactory import write_not_audio, write_tone
from conftest import TINY_OVERRIDES

# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("override, message", [
    ("augment.noise_snr_db_min=50", "augment.noise_snr_db_min/max=(50.0, 40.0) is out of range; valid: min <= max"),
    ("augment.background_snr_db_max=1", "augment.background_snr_db_min/max=(3.0, 1.0)"),
    ("augment.stretch_rate_min=0", "augment.stretch_rate_min=0.0 is out of range; valid: 0.1..10"),
    ("augment.stretch_rate_max=-1", "augment.stretch_rate_max=-1.0 is out of range; valid: 0.1..10"),
    ("augment.pitch_semitones_max=13", "augment.pitch_semitones_max=13.0 is out of range; valid: -12..12"),
    ("augment.pitch_semitones_min=-12.5", "valid: -12..12"),
    ("augment.gain=1.5", "augment.gain=1.5 is out of range; valid: a probability 0..1"),
    ("augment.copies=-1", "augment.copies=-1 is out of range; valid: 0..100"),
    ("augment.shift_max_fraction=0", "valid: 0 < f <= 1"),
    ("train.class_balance=always", "valid: auto, sampler, loss or off"),
    ("augment.copies=2 augment.pitch_shift=0 augment.time_stretch=0 augment.gain=0 augment.noise=0",
     "augment.copies=2 is out of range; valid: 0 while every transform's probability is 0"),
])
def test_out_of_range_augment_settings_name_the_valid_range(override, message):
    with pytest.raises(ConfigError) as info:
        bare_config(overrides=override.split())
    assert message in str(info.value)


def test_augment_section_defaults_to_eight_copies_with_noise_and_round_trips():
    config = bare_config(overrides=["augment.copies=3", "augment.background_folder=/noise"])
    defaults = Config().augment  # the measured ESC-10 default (docs/results.md)
    assert defaults.copies == 8 and defaults.noise == 0.5
    again = Config.from_dict(config.to_dict())
    assert again.augment == config.augment and again.augment.background_folder == "/noise"
    with pytest.raises(ConfigError, match="unknown key 'augment.semitones'"):
        bare_config(overrides=["augment.semitones=2"])


def test_background_folder_without_usable_audio_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "noises"
    folder.mkdir()
    write_not_audio(folder / "broken.wav")
    (folder / "notes.txt").write_text("no audio here")
    config = bare_config(overrides=["augment.background=0.5", f"augment.background_folder={folder}"])
    with pytest.raises(DatasetLayoutError, match=str(folder)) as info:
        noise_pool([], config.augment)
    assert "no usable audio" in str(info.value)
    config.augment.background_folder = str(tmp_path / "absent")
    with pytest.raises(DatasetLayoutError, match="absent"):
        noise_pool([], config.augment)


# ------------------------------------------------------------------------------------------------ determinism


def _records(tmp_path, n=4, seconds=1.0):
    return [ClipRecord(path=write_tone(tmp_path / f"clip{i}.wav", seconds=seconds, sample_rate=16000,
                                       freq=300.0 + 110 * i),
                       labels=("a" if i % 2 else "b",), fold=1, source_id=f"src{i // 2}", clip_id=f"clip{i}")
            for i in range(n)]


def _tiny(*extra):
    return bare_config(overrides=TINY_OVERRIDES + ("augment.copies=2", "augment.workers=1") + extra)


def test_copy_parameters_depend_only_on_seed_clip_and_index(tmp_path):
    records = _records(tmp_path)
    aug = _tiny("augment.background=1", "augment.noise=0.5").augment
    pool = noise_pool(records, aug)
    first = draw_params(records[0], 1, aug, seed=0, pool=pool)
    assert draw_params(records[0], 1, aug, seed=0, pool=pool) == first
    assert draw_params(records[0], 2, aug, seed=0, pool=pool) != first
    assert draw_params(records[0], 1, aug, seed=1, pool=pool) != first
    assert draw_params(records[1], 1, aug, seed=0, pool=pool) != first
    # the background is never the clip's own recording (clip0 and clip1 share src0)
    for index in range(1, 20):
        chosen = draw_params(records[0], index, aug, seed=0, pool=pool)["background"]["path"]
        assert chosen not in (str(records[0].path.resolve()), str(records[1].path.resolve()))
    # the background choice survives a change of pool that keeps the chosen file (reuse across folds)
    smaller = noise_pool([r for r in records if str(r.path.resolve()) == first["background"]["path"]]
                         + records[:2], aug)
    assert draw_params(records[0], 1, aug, seed=0, pool=smaller)["background"] == first["background"]
    # a probability change leaves the other transforms' values alone
    other = draw_params(records[0], 1, _tiny("augment.background=1", "augment.noise=0.5",
                                             "augment.shift=0").augment, seed=0, pool=pool)
    assert {k: v for k, v in other.items() if k != "shift_fraction"} == \
           {k: v for k, v in first.items() if k != "shift_fraction"}


def test_a_short_clip_sped_up_still_gives_features(tmp_path):
    record = ClipRecord(path=write_tone(tmp_path / "blip.wav", seconds=0.1, sample_rate=16000), labels=("a",),
                        fold=1, source_id="blip", clip_id="blip")
    config = _tiny("augment.copies=1", "augment.time_stretch=1", "augment.stretch_rate_min=10",
                   "augment.stretch_rate_max=10", "features.min_seconds=0.05")
    copies = make_copies([record], config.augment, config.features, seed=0, progress=False)
    assert copies.features[0].shape[:2] == (1, 32) and copies.features[0].shape[2] >= 1


def test_apply_params_is_deterministic_and_changes_the_audio(tmp_path):
    wave = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32) * 0.5
    params = {"stretch_rate": 1.2, "pitch_semitones": 2.0, "noise_snr_db": 20.0, "gain_db": 3.0,
              "shift_fraction": 0.25, "seed": 5}
    a = apply_params(wave, params, sample_rate=16000)
    b = apply_params(wave, params, sample_rate=16000)
    assert np.array_equal(a, b)
    assert len(a) == pytest.approx(16000 / 1.2, rel=0.02)  # time stretch changes the length
    assert np.max(np.abs(a)) <= 1.0
    assert not np.array_equal(apply_params(wave, {**params, "seed": 6}, sample_rate=16000), a)  # other noise


def test_copies_are_identical_across_runs_and_processes(tmp_path, monkeypatch):
    records = _records(tmp_path)
    config = _tiny("augment.noise=0.5", "augment.background=0.5")
    pool = noise_pool(records, config.augment)
    in_process = make_copies(records, config.augment, config.features, seed=0, pool=pool, progress=False)
    assert in_process.made == 8 and in_process.hits == 0
    monkeypatch.setattr(offline_augment, "MIN_PARALLEL_JOBS", 2)
    config.augment.workers = 2
    parallel = make_copies(records, config.augment, config.features, seed=0, pool=pool, progress=False)
    assert [c.params for c in parallel.copies] == [c.params for c in in_process.copies]
    for a, b in zip(parallel.features, in_process.features):
        np.testing.assert_allclose(a, b, atol=1e-4)  # other process, same maths
    originals = [offline_augment.compute_features(offline_augment.load_audio(r.path, sample_rate=16000),
                                                  config.features) for r in records]
    for copy, feats in zip(in_process.copies, in_process.features):
        original = originals[records.index(copy.source)]
        assert feats.shape[:2] == original.shape[:2]
        assert feats.shape != original.shape or not np.allclose(feats, original), "a copy equals its original"


# ------------------------------------------------------------------------------------------------ cache


def _four_classes(manifest):
    keep = set(manifest.labels[:4])
    return manifest.subset([r for r in manifest.records if r.label in keep])


def test_second_split_hits_the_cache_for_shared_training_clips(tmp_path, synthetic_manifest):
    synthetic_manifest = _four_classes(synthetic_manifest)
    config = _tiny("train.val_fraction=0.2")
    cache = FeatureCache(tmp_path / "cache")
    first = prepare_training_data(synthetic_manifest.select_folds([2, 3]), config,
                                  held_out=[synthetic_manifest.select_folds([1])], cache=cache, progress=False)
    assert first.copies.hits == 0 and first.copies.made == 2 * len(first.train)
    second = prepare_training_data(synthetic_manifest.select_folds([1, 3]), config,
                                   held_out=[synthetic_manifest.select_folds([2])], cache=cache, progress=False)
    shared = {r.clip_id for r in first.train.records} & {r.clip_id for r in second.train.records}
    assert shared, "the two splits share no training clip: the test proves nothing"
    assert second.copies.hits == 2 * len(shared)
    assert second.copies.made == 2 * (len(second.train) - len(shared))
    by_key = {(c.source_clip_id, c.index): f for c, f in zip(first.copies.copies, first.copies.features)}
    for copy, feats in zip(second.copies.copies, second.copies.features):
        if copy.source_clip_id in shared:
            assert np.array_equal(feats, by_key[(copy.source_clip_id, copy.index)])
    # a rerun of the first split makes nothing; other feature settings or parameters miss
    assert prepare_training_data(synthetic_manifest.select_folds([2, 3]), config,
                                 held_out=[synthetic_manifest.select_folds([1])], cache=cache,
                                 progress=False).copies.made == 0
    config.augment.pitch_semitones_max = 3.0
    changed = make_copies(first.train.records[:2], config.augment, config.features, seed=0, cache=cache,
                          progress=False)
    assert changed.hits < 4  # copies that drew a pitch shift get new parameters, hence new keys


# ------------------------------------------------------------------------------------------------ training


def test_train_model_with_offline_copies_and_balanced_sampler(tmp_path, synthetic_manifest, caplog):
    synthetic_manifest = _four_classes(synthetic_manifest)
    config = _tiny("train.max_epochs=2", "train.class_balance=sampler", "augment.noise=0.3",
                   "augment.background=0.3")
    cache = FeatureCache(tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="envsound"):
        result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path / "run",
                             context=RunContext(cache=cache, progress=False),
                             held_out=[synthetic_manifest.select_folds([5])])
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.meta["augmented_copies"] == 2 * result.n_train
    assert checkpoint.config.augment.copies == 2
    assert "class balance: sampler" in caplog.text
    assert result.epochs == 2
    entries = len(list((tmp_path / "cache").rglob("*.npy")))
    # features and fingerprints (what the checkpoint records it heard) of each clip, and the copies
    assert entries == 2 * (result.n_train + result.n_val) + 2 * result.n_train
    train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path / "run",
                context=RunContext(cache=cache, overwrite=True, progress=False))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == entries  # the rerun made no new copy
