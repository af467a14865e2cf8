"""MFCCs from log-mel spectrograms, and fixed-length MFCC statistics for the classical (k-NN, random forest) baselines.

The DCT is a small matrix product written here (not a librosa call) so the baselines share the log-mel frontend and its
cache; it equals ``librosa.feature.mfcc(S=logmel_db, n_mfcc=n_mfcc)`` (DCT-II, ``norm='ortho'``, no liftering).
"""

from __future__ import annotations

import numpy as np

from envsound.errors import ConfigError

SUMMARY_STATS = ("mean", "std", "min", "max", "diff_mean", "diff_std")


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis ``(n_mfcc, n_mels)`` float64 (``scipy.fft.dct(type=2, norm='ortho')`` rows)."""
    if not 1 <= n_mfcc <= n_mels:
        raise ConfigError(f"n_mfcc={n_mfcc!r} out of range; valid: 1..n_mels={n_mels} (features.n_mfcc)")
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc_from_logmel(logmel_db: np.ndarray, *, n_mfcc: int) -> np.ndarray:
    """MFCCs of a dB mel spectrogram, as ``librosa.feature.mfcc(S=logmel_db, n_mfcc=n_mfcc)``.

    Args:
        logmel_db: ``(..., n_mels, frames)`` in dB (any float dtype).
        n_mfcc: coefficients to keep, ``1..n_mels``.

    Returns:
        ``(..., n_mfcc, frames)`` float32.

    Raises:
        ConfigError: ``n_mfcc`` out of range.
        ValueError: ``logmel_db`` has fewer than 2 dimensions.

    >>> mfcc_from_logmel(np.zeros((128, 216)), n_mfcc=20).shape
    (20, 216)
    """
    logmel_db = np.asarray(logmel_db)
    if logmel_db.ndim < 2:
        raise ValueError(f"mfcc_from_logmel: expected (..., n_mels, frames), got shape {logmel_db.shape}")
    basis = dct_matrix(n_mfcc, logmel_db.shape[-2])
    return np.matmul(basis, logmel_db.astype(np.float64)).astype(np.float32)


def mfcc_summary(logmel_db: np.ndarray, *, n_mfcc: int) -> np.ndarray:
    """A fixed-length vector of MFCC statistics over time for one window.

    Layout (``6 * n_mfcc`` values), in blocks of ``n_mfcc`` in the order of :data:`SUMMARY_STATS`:
    ``[mean, std, min, max, mean of the first difference, std of the first difference]``, each block indexed by
    coefficient 0..n_mfcc-1. Statistics run over frames; a single frame has zero difference statistics.

    Args:
        logmel_db: ``(C, n_mels, frames)`` or ``(n_mels, frames)`` in dB. With ``C`` > 1 only channel 0 (the log-mel;
            a delta channel is redundant with the difference statistics) is used.
        n_mfcc: coefficients, ``1..n_mels``.

    Returns:
        ``(6 * n_mfcc,)`` float32.

    Raises:
        ConfigError: ``n_mfcc`` out of range.
        ValueError: a shape other than the two above, or zero frames.

    >>> mfcc_summary(np.random.default_rng(0).normal(size=(1, 128, 216)), n_mfcc=20).shape
    (120,)
    """
    logmel_db = np.asarray(logmel_db)
    if logmel_db.ndim == 3:
        logmel_db = logmel_db[0]
    if logmel_db.ndim != 2 or logmel_db.shape[-1] == 0:
        raise ValueError(f"mfcc_summary: expected (C, n_mels, frames) or (n_mels, frames) with frames >= 1, "
                         f"got shape {logmel_db.shape}")
    mfcc = mfcc_from_logmel(logmel_db, n_mfcc=n_mfcc).astype(np.float64)
    if mfcc.shape[-1] > 1:
        diff = np.diff(mfcc, axis=-1)
        diff_mean, diff_std = diff.mean(-1), diff.std(-1)
    else:
        diff_mean = diff_std = np.zeros(n_mfcc)
    stats = [mfcc.mean(-1), mfcc.std(-1), mfcc.min(-1), mfcc.max(-1), diff_mean, diff_std]
    return np.concatenate(stats).astype(np.float32)
