"""EnvNet-v2's clip edges: leading and trailing exact zeros cut, half a window of zeros padded on each side."""

import numpy as np
import soundfile as sf

import pytest

from envsound.config import FeatureConfig
from envsound.features.cache import cache_settings
from envsound.features.edges import EdgeStream, prepare_clip
from envsound.features.extract import extract_features
from envsound.data.records import ClipRecord

RATE = 8000
WINDOW = 0.001  # 8 samples: half a window is 4


def edges(*, trim=True, pad=0.5) -> FeatureConfig:
    return FeatureConfig(kind="waveform", sample_rate=RATE, window_seconds=WINDOW, trim_zeros=trim, edge_pad=pad)


def test_off_by_default_the_clip_is_as_read():
    wave = np.array([0, 0, 1, 0], dtype=np.float32)
    assert prepare_clip(wave, FeatureConfig()) is wave


def test_trim_cuts_only_the_outer_zeros_and_pad_adds_half_a_window_each_side():
    wave = np.array([0, 0, 0.5, -0.25, 0, 0.125, 0, 0, 0], dtype=np.float32)
    assert prepare_clip(wave, edges(pad=0)).tolist() == [0.5, -0.25, 0, 0.125]
    assert prepare_clip(wave, edges(trim=False)).tolist() == [0] * 4 + wave.tolist() + [0] * 4
    assert prepare_clip(wave, edges()).tolist() == [0] * 4 + [0.5, -0.25, 0, 0.125] + [0] * 4


def test_a_silent_clip_is_kept_whole():
    wave = np.zeros(5, dtype=np.float32)
    assert prepare_clip(wave, edges()).tolist() == [0] * 13


@pytest.mark.parametrize("trim, pad", [(True, 0.5), (True, 0.0), (False, 0.5)])
def test_a_stream_of_blocks_gives_the_clip_and_says_where_it_starts(trim, pad):
    rng = np.random.default_rng(0)
    for _ in range(50):
        wave = rng.normal(size=60).astype(np.float32) * (rng.random(60) < 0.3)  # runs of exact zeros
        wave[:rng.integers(0, 20)] = 0
        wave[len(wave) - rng.integers(0, 20):] = 0
        cuts = np.sort(rng.choice(np.arange(1, 60), size=rng.integers(0, 8), replace=False))
        blocks = np.split(wave, cuts)
        stream = EdgeStream(blocks, edges(trim=trim, pad=pad))
        pieces = list(stream)
        assert np.concatenate(pieces).tolist() == prepare_clip(wave, edges(trim=trim, pad=pad)).tolist()
        assert max(map(len, pieces)) <= max(map(len, blocks))  # silence is counted, not gathered
        lead = int(np.flatnonzero(wave)[0]) if trim and wave.any() else 0
        assert stream.shift == lead - int(pad * 8)


def test_the_cache_key_changes_with_the_edges_and_not_otherwise():
    plain = cache_settings(FeatureConfig())
    assert "trim_zeros" not in plain and "edge_pad_samples" not in plain  # older entries keep their keys
    assert cache_settings(edges()) != cache_settings(edges(trim=False)) != cache_settings(edges(pad=0))


def test_extracted_features_are_the_shaped_clip(tmp_path):
    wave = np.zeros(RATE, dtype=np.float32)
    wave[2000:2400] = 0.5
    path = tmp_path / "bark.wav"
    sf.write(path, wave, RATE, subtype="PCM_16")
    cfg = FeatureConfig(kind="waveform", sample_rate=RATE, window_seconds=0.1, trim_zeros=True, edge_pad=0.5)
    record = ClipRecord(path=path, labels=("dog",), fold=1, source_id="bark", clip_id="bark")
    _, feats, _ = extract_features([record], cfg, cache=None, progress=False)
    got = np.asarray(feats[0])[0]
    assert len(got) == 400 + 2 * 400 and np.all(got[:400] == 0) and np.all(got[-400:] == 0)
    assert got[400:800] == pytest.approx(0.5, abs=1e-4)


def test_an_offline_copy_is_trimmed_before_its_noise_and_padded_after(tmp_path):
    """The original's silent ends are cut before augmentation: noise added first would leave nothing to trim."""
    from envsound.config import AugmentConfig
    from envsound.augment.offline import make_copies

    wave = np.zeros(RATE, dtype=np.float32)
    wave[2000:3200] = 0.5  # longer than n_fft: no STFT padding
    path = tmp_path / "bark.wav"
    sf.write(path, wave, RATE, subtype="PCM_16")
    record = ClipRecord(path=path, labels=("dog",), fold=1, source_id="bark", clip_id="bark")
    cfg = FeatureConfig(kind="waveform", sample_rate=RATE, window_seconds=0.1, trim_zeros=True, edge_pad=0.5)
    aug = AugmentConfig(copies=1, workers=1, pitch_shift=0, time_stretch=0, gain=0, noise=1.0)
    copy = np.asarray(make_copies([record], aug, cfg, seed=0, progress=False).features[0])[0]
    assert len(copy) == 1200 + 2 * 400 and np.all(copy[:400] == 0) and np.all(copy[-400:] == 0)
    assert np.any(copy[400:1600] != 0.5)  # the noise is there, on the sound alone
