"""Windows over the last axis: starts, cutting, padding, random crops."""

from __future__ import annotations

import numpy as np
import pytest

from envsound.config import FeatureConfig
from envsound.errors import ConfigError
from envsound.features.mel import DB_FLOOR
from envsound.features.windows import (cut_waveform_windows, cut_windows, random_waveform_window, random_window,
                                       window_pad_value, window_starts)


def test_window_starts_examples():
    assert window_starts(10, window=4, hop=3) == [0, 3, 6]
    assert window_starts(11, window=4, hop=3) == [0, 3, 6, 7]  # last window aligned to the end
    assert window_starts(4, window=4, hop=1) == [0]
    assert window_starts(3, window=4, hop=1) == [0]  # short clip: one padded window
    assert window_starts(0, window=4, hop=1) == [0]
    assert window_starts(431, window=216, hop=43) == [0, 43, 86, 129, 172, 215]


@pytest.mark.parametrize("n, window, hop",
                         [(n, w, h) for n in (1, 5, 37, 216, 431) for w in (1, 8, 216) for h in (1, 3, 43)])
def test_window_starts_cover_every_frame(n, window, hop):
    starts = window_starts(n, window=window, hop=hop)
    assert starts == sorted(set(starts)) and starts[0] == 0
    assert all(0 <= s <= max(0, n - window) for s in starts)
    assert all(b - a <= hop for a, b in zip(starts, starts[1:]))
    assert starts[-1] + window >= n  # the tail is covered
    if hop <= window:  # (a hop longer than the window skips frames between windows, as asked)
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s:s + window] = True
        assert covered.all()


def test_window_starts_bad_values():
    with pytest.raises(ConfigError, match="hop=0"):
        window_starts(10, window=4, hop=0)


def test_cut_windows_content_and_padding():
    feats = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    out = cut_windows(feats, window=4, hop=3)
    assert out.shape == (3, 2, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], feats[..., 3:7])
    np.testing.assert_array_equal(out[-1], feats[..., 6:10])

    short = cut_windows(feats, window=13, hop=5, pad_value=(DB_FLOOR, 0.0))
    assert short.shape == (1, 2, 3, 13)
    np.testing.assert_array_equal(short[0, ..., :10], feats)
    assert np.all(short[0, 0, :, 10:] == DB_FLOOR) and np.all(short[0, 1, :, 10:] == 0.0)
    assert np.all(cut_windows(feats, window=12, hop=1)[0, ..., 10:] == DB_FLOOR)  # default pad: dB floor


def test_pad_value_per_channel_mismatch_raises():
    with pytest.raises(ValueError, match="3 pad values"):
        cut_windows(np.zeros((2, 3, 5)), window=8, hop=1, pad_value=(0.0, 1.0, 2.0))


def test_window_pad_value_from_config():
    assert window_pad_value(FeatureConfig()) == (DB_FLOOR,)
    assert window_pad_value(FeatureConfig(deltas=True)) == (DB_FLOOR, 0.0)
    assert window_pad_value(FeatureConfig(kind="waveform")) == (0.0,)


def test_random_window_bounds_and_reproducible():
    feats = np.arange(50, dtype=np.float32)[None, None, :].repeat(2, axis=1)
    starts = {int(random_window(feats, window=10, rng=np.random.default_rng(s))[0, 0, 0]) for s in range(200)}
    assert min(starts) == 0 and max(starts) == 40  # every start from 0 to T - window is reachable
    a = random_window(feats, window=10, rng=np.random.default_rng(5))
    b = random_window(feats, window=10, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0, 0], np.arange(a[0, 0, 0], a[0, 0, 0] + 10))
    short = random_window(feats[..., :4], window=10, rng=np.random.default_rng(0))
    assert short.shape == (1, 2, 10)
    np.testing.assert_array_equal(short[0, 0, :4], np.arange(4)) and np.all(short[..., 4:] == DB_FLOOR)


def test_waveform_windows_pad_with_silence():
    wave = np.linspace(-1, 1, 100, dtype=np.float32)
    windows = cut_waveform_windows(wave, window=40, hop=30)
    assert windows.shape == (3, 40)
    np.testing.assert_array_equal(windows[-1], wave[60:])
    padded = cut_waveform_windows(wave[:25], window=40, hop=30)
    assert padded.shape == (1, 40) and np.all(padded[0, 25:] == 0.0)
    crop = random_waveform_window(wave[None, :10], window=16, rng=np.random.default_rng(1))
    assert crop.shape == (1, 16) and np.all(crop[0, 10:] == 0.0)


def test_waveform_windows_are_in_samples_and_padded_with_silence():
    """kind='waveform': windows of window_samples, hops of eval_hop_seconds in samples, short clips padded with 0."""
    from envsound.features.windows import eval_hop_length, eval_windows, samples_per_step, train_window, window_length

    cfg = FeatureConfig(kind="waveform", sample_rate=8000, window_seconds=0.5, eval_hop_seconds=0.25)
    assert (window_length(cfg), eval_hop_length(cfg), samples_per_step(cfg)) == (4000, 2000, 1)
    clip = np.random.default_rng(0).uniform(-1, 1, (1, 9000)).astype(np.float32)
    windows, starts = eval_windows(clip, cfg)
    assert windows.shape == (4, 1, 4000) and starts == [0, 2000, 4000, 5000]
    assert np.array_equal(windows[-1, 0], clip[0, 5000:])
    short, _ = eval_windows(clip[:, :100], cfg)
    assert short.shape == (1, 1, 4000) and np.all(short[0, 0, 100:] == 0.0)
    crop = train_window(clip, cfg, rng=np.random.default_rng(1))
    assert crop.shape == (1, 4000)
    mel = FeatureConfig()
    assert (window_length(mel), eval_hop_length(mel), samples_per_step(mel)) == (
        mel.window_frames, mel.eval_hop_frames, mel.hop_length)


def test_eval_crops_spread_n_windows_as_envnet2_tests():
    from envsound.features.windows import crop_starts, eval_starts, eval_windows

    cfg = FeatureConfig(kind="waveform", sample_rate=8000, window_seconds=0.01, eval_crops=10)  # 80 samples
    clip = np.arange(1000, dtype=np.float32)[None, :]
    windows, starts = eval_windows(clip, cfg)
    assert starts == eval_starts(1000, cfg) == [i * (920 // 9) for i in range(10)]
    assert [int(w[0, 0]) for w in windows] == starts and windows.shape == (10, 1, 80)
    assert crop_starts(50, window=80, crops=10) == [0] and crop_starts(100, window=80, crops=1) == [10]
    assert eval_windows(clip[:, :50], cfg)[0].shape == (1, 1, 80)  # a short clip: one padded window
