"""MFCCs from log-mel against librosa, and the fixed-length summary vector."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from envsound.errors import ConfigError
from envsound.features.mfcc import SUMMARY_STATS, mfcc_from_logmel, mfcc_summary


def logmel(shape, seed=0):
    return np.random.default_rng(seed).normal(-40.0, 12.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("n_mels, n_mfcc, frames", [(128, 20, 216), (40, 13, 7), (64, 64, 1)])
def test_mfcc_matches_librosa(n_mels, n_mfcc, frames):
    s = logmel((n_mels, frames), seed=n_mels)
    ours = mfcc_from_logmel(s, n_mfcc=n_mfcc)
    ref = librosa.feature.mfcc(S=s, n_mfcc=n_mfcc)
    assert ours.shape == ref.shape == (n_mfcc, frames) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=1e-5)


def test_mfcc_batched_leading_axes():
    s = logmel((3, 2, 40, 11))
    out = mfcc_from_logmel(s, n_mfcc=10)
    assert out.shape == (3, 2, 10, 11)
    np.testing.assert_allclose(out[2, 1], librosa.feature.mfcc(S=s[2, 1], n_mfcc=10), atol=1e-3)


def test_mfcc_summary_layout():
    s = logmel((2, 40, 30), seed=4)  # channel 1 (deltas) is ignored
    vec = mfcc_summary(s, n_mfcc=13)
    assert vec.shape == (len(SUMMARY_STATS) * 13,) and vec.dtype == np.float32
    m = librosa.feature.mfcc(S=s[0], n_mfcc=13)
    d = np.diff(m, axis=1)
    expected = np.concatenate([m.mean(1), m.std(1), m.min(1), m.max(1), d.mean(1), d.std(1)])
    np.testing.assert_allclose(vec, expected, atol=2e-3, rtol=1e-4)
    np.testing.assert_array_equal(vec, mfcc_summary(s[0], n_mfcc=13))  # (M, T) and (C, M, T) agree
    assert not np.array_equal(vec, mfcc_summary(s[::-1].copy(), n_mfcc=13))  # it is channel 0 that is used


def test_mfcc_summary_single_frame_and_errors():
    vec = mfcc_summary(logmel((40, 1)), n_mfcc=5)
    assert np.all(vec[5:10] == 0.0) and np.all(vec[20:] == 0.0)  # std and difference statistics of one frame
    with pytest.raises(ConfigError, match="n_mfcc=41"):
        mfcc_summary(logmel((40, 10)), n_mfcc=41)
    with pytest.raises(ValueError, match="frames >= 1"):
        mfcc_summary(np.zeros((40, 0)), n_mfcc=5)
