"""Feature extraction over records, with the on-disk cache: hits, misses, invalidation, bad audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from envsound.audio.load import load_audio
from envsound.config import FeatureConfig
from envsound.data.records import ClipRecord
from envsound.errors import AudioLoadError, ConfigError
from envsound.features.cache import CACHE_ENV, FeatureCache, cache_settings, default_cache_root
from envsound.features.extract import extract_features
from envsound.features.mel import LogMel

SR = 16000
CFG = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=40)


def write_clip(path: Path, *, seconds: float = 0.5, seed: int = 0, sample_rate: int = SR) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * (300 + 100 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(str(path), y, sample_rate, subtype="PCM_16")
    return path


def record(path: Path, i: int = 0) -> ClipRecord:
    return ClipRecord(path=path, labels=("dog",), fold=1, source_id=f"src{i}", clip_id=f"clip{i}")


@pytest.fixture
def clips(tmp_path):
    return [record(write_clip(tmp_path / f"c{i}.wav", seed=i, seconds=0.3 + 0.1 * i), i) for i in range(3)]


def test_extract_computes_logmel_of_loaded_audio(clips, tmp_path):
    kept, feats, skipped = extract_features(clips, CFG, cache=None, progress=False)
    assert kept == clips and skipped == [] and len(feats) == 3
    for rec, feat in zip(kept, feats):
        wave = load_audio(rec.path, sample_rate=SR)
        assert feat.shape == (1, 40, 1 + len(wave) // 256) and feat.dtype == np.float32
        expected = LogMel.from_config(CFG)(torch.from_numpy(wave)[None])[0].numpy()
        np.testing.assert_allclose(feat, expected, atol=1e-4)
    assert feats[0].shape != feats[2].shape  # whole clips, not windows


def test_second_call_hits_cache_and_serves_same_arrays(clips, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    _, first, _ = extract_features(clips, CFG, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 3)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3
    _, second, _ = extract_features(clips, CFG, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (3, 3)  # no decoding on the second pass
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)  # float32 storage: lossless
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave no temporaries


def test_changed_setting_misses(clips, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    extract_features(clips, CFG, cache=cache, progress=False)
    other = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32)
    _, feats, _ = extract_features(clips, other, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 6) and feats[0].shape[1] == 32
    deltas = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=40, deltas=True)
    _, feats, _ = extract_features(clips, deltas, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 9) and feats[0].shape[0] == 2
    # settings that act after the cache (window, n_mfcc) share the entry
    windowed = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=40, window_seconds=0.2, n_mfcc=13)
    extract_features(clips, windowed, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (3, 9)


def test_modified_file_misses(clips, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    _, before, _ = extract_features(clips, CFG, cache=cache, progress=False)
    path = clips[0].path
    stat = path.stat()
    write_clip(path, seed=9, seconds=0.3)  # same length, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    _, after, _ = extract_features(clips, CFG, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (2, 4)
    assert after[0].shape == before[0].shape and not np.allclose(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_key_depends_on_path_size_mtime_and_settings(clips):
    cache = FeatureCache("/nonexistent-root")
    settings = cache_settings(CFG)
    key = cache.key(clips[0].path, settings)
    assert len(key) == 64 and key == cache.key(clips[0].path, dict(reversed(list(settings.items()))))
    assert key != cache.key(clips[1].path, settings)
    assert key != cache.key(clips[0].path, {**settings, "n_mels": 41})
    with pytest.raises(AudioLoadError, match="missing.wav"):
        cache.key(clips[0].path.with_name("missing.wav"), settings)


def test_corrupt_cache_entry_is_recomputed(clips, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    _, first, _ = extract_features(clips[:1], CFG, cache=cache, progress=False)
    entry = cache.path_for(cache.key(clips[0].path, cache_settings(CFG)))
    entry.write_bytes(entry.read_bytes()[:40])  # a truncated entry
    _, again, _ = extract_features(clips[:1], CFG, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 2)
    np.testing.assert_array_equal(again[0], first[0])
    assert cache.load(cache.key(clips[0].path, cache_settings(CFG))) is not None  # rewritten


def test_bad_audio_raise_or_skip(clips, tmp_path, caplog):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all\n" * 10)
    missing = tmp_path / "missing.wav"
    records = [clips[0], record(bad, 7), clips[1], record(missing, 8), clips[2]]
    with pytest.raises(AudioLoadError, match="bad.wav"):
        extract_features(records, CFG, cache=FeatureCache(tmp_path / "cache"), progress=False)
    with caplog.at_level("WARNING", logger="envsound.features.extract"):
        kept, feats, skipped = extract_features(records, CFG, cache=FeatureCache(tmp_path / "cache"),
                                                on_error="skip", progress=False)
    assert kept == clips and len(feats) == 3
    assert [p for p, _ in skipped] == [bad, missing]
    assert all(str(p) in reason for p, reason in skipped)
    assert "skipped 2 of 5" in caplog.text
    # features stay aligned with their records
    _, alone, _ = extract_features([clips[1]], CFG, cache=None, progress=False)
    np.testing.assert_array_equal(feats[1], alone[0])


def test_too_short_clip_uses_min_seconds(tmp_path):
    short = record(write_clip(tmp_path / "short.wav", seconds=0.05))
    with pytest.raises(AudioLoadError, match="too short"):
        extract_features([short], CFG, cache=None, progress=False)
    cfg = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=40, min_seconds=0.0)
    _, feats, _ = extract_features([short], cfg, cache=None, progress=False)
    assert feats[0].shape == (1, 40, 1 + 800 // 256)


def test_waveform_kind_resamples_and_caches(tmp_path):
    rec = record(write_clip(tmp_path / "a.wav", seconds=0.5, sample_rate=22050))
    cfg = FeatureConfig(kind="waveform", sample_rate=SR)
    cache = FeatureCache(tmp_path / "cache")
    _, feats, _ = extract_features([rec], cfg, cache=cache, progress=False)
    assert feats[0].shape == (1, 8000) and feats[0].dtype == np.float32
    np.testing.assert_array_equal(feats[0][0], load_audio(rec.path, sample_rate=SR))
    _, again, _ = extract_features([rec], cfg, cache=cache, progress=False)
    assert cache.hits == 1 and np.array_equal(again[0], feats[0])


def test_on_error_must_be_known(clips):
    with pytest.raises(ConfigError, match="'ignore'"):
        extract_features(clips, CFG, cache=None, on_error="ignore", progress=False)


def test_default_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "envcache"))
    assert FeatureCache().root == tmp_path / "envcache" == default_cache_root()
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_root() == Path.home() / ".cache" / "envsound" / "features"
