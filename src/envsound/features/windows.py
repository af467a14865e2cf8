"""Fixed-length windows over the last axis of an array: log-mel frames or waveform samples.

A model sees windows of ``FeatureConfig.window_frames`` frames (log-mel) or ``window_samples`` samples (waveform).
Every function here works on the **last axis** of any array, so one implementation serves both layouts:

- log-mel ``(C, n_mels, frames)``, padded with :data:`~envsound.features.mel.DB_FLOOR` (digital silence in dB) and,
  for a delta channel, 0.0 - pass ``pad_value=window_pad_value(cfg)``;
- waveform ``(samples,)`` or ``(1, samples)``, padded with 0.0 - use :func:`cut_waveform_windows` /
  :func:`random_waveform_window`, which only fix ``pad_value=0.0``.

Clips shorter than a window are padded at the end (the clip starts at frame 0 of the window) in training and
evaluation alike, so the model sees the same placement in both.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from envsound.config import FeatureConfig
from envsound.config.frontends import frontend_spec
from envsound.errors import ConfigError
from envsound.features.edges import edge_pad_samples
from envsound.features.melbank import DB_FLOOR

PadValue = float | Sequence[float]


def window_pad_value(cfg: FeatureConfig) -> tuple[float, ...]:
    """Per-channel pad values for the features ``cfg`` produces: ``(DB_FLOOR,)``, ``(DB_FLOOR, 0.0)`` with deltas
    (silence has zero slope), silence as another frontend makes it (``efficientat``: about -1.40; the frontend's
    :attr:`~envsound.config.frontends.Frontend.silence`), or ``(0.0,)`` for waveforms."""
    if cfg.kind == "waveform":
        return (0.0,)
    silence = frontend_spec(cfg.frontend).silence_value()
    return (silence, 0.0) if cfg.deltas else (silence,)


def window_starts(n_frames: int, *, window: int, hop: int) -> list[int]:
    """Start indices of windows covering ``n_frames``: every ``hop`` from 0, plus one aligned to the end.

    A clip no longer than one window yields ``[0]`` (it is padded). Otherwise the last window ends exactly at
    ``n_frames`` so the tail is covered (it may overlap its neighbour by more than ``window - hop``). With
    ``hop <= window`` every frame is in some window; a longer hop skips the frames between windows.

    Args:
        n_frames: length of the clip, >= 0.
        window: window length, >= 1.
        hop: distance between starts, >= 1.

    Returns:
        Sorted, distinct starts, each in ``0 .. max(0, n_frames - window)``.

    Raises:
        ConfigError: a value out of range.

    >>> window_starts(10, window=4, hop=3)
    [0, 3, 6]
    >>> window_starts(11, window=4, hop=3)
    [0, 3, 6, 7]
    """
    if n_frames < 0 or window < 1 or hop < 1:
        raise ConfigError(f"window_starts: n_frames={n_frames!r}, window={window!r}, hop={hop!r} out of range; "
                          "valid: n_frames >= 0, window >= 1, hop >= 1")
    if n_frames <= window:
        return [0]
    last = n_frames - window
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return starts


def cut_windows(features: np.ndarray, *, window: int, hop: int, pad_value: PadValue = DB_FLOOR) -> np.ndarray:
    """All windows of :func:`window_starts`, stacked.

    Args:
        features: ``(..., T)``, e.g. log-mel ``(C, n_mels, frames)`` or waveform ``(samples,)``.
        window: window length along the last axis, >= 1.
        hop: hop between windows, >= 1.
        pad_value: fill for a clip shorter than ``window``: a float, or one value per entry of the first axis
            (e.g. ``window_pad_value(cfg)`` = ``(DB_FLOOR, 0.0)`` for log-mel + deltas).

    Returns:
        ``(n_windows, ..., window)``, dtype of ``features``.

    >>> cut_windows(np.zeros((1, 128, 431)), window=216, hop=43).shape
    (6, 1, 128, 216)
    """
    features = _pad_to(np.asarray(features), window, pad_value)
    starts = window_starts(features.shape[-1], window=window, hop=hop)
    return np.stack([features[..., s:s + window] for s in starts])


def random_window(features: np.ndarray, *, window: int, rng: np.random.Generator,
                  pad_value: PadValue = DB_FLOOR) -> np.ndarray:
    """One window at a uniformly random start (training crops); a short clip is padded at the end instead.

    Args:
        features: ``(..., T)``.
        window: window length along the last axis, >= 1.
        rng: the source of the start, e.g. ``np.random.default_rng(seed)``.
        pad_value: as :func:`cut_windows`.

    Returns:
        ``(..., window)``, dtype of ``features`` (a copy).
    """
    features = _pad_to(np.asarray(features), window, pad_value)
    start = int(rng.integers(0, features.shape[-1] - window + 1))
    return features[..., start:start + window].copy()


def cut_waveform_windows(waveform: np.ndarray, *, window: int, hop: int) -> np.ndarray:
    """:func:`cut_windows` for waveforms ``(..., samples)``: pads with 0.0 (silence)."""
    return cut_windows(waveform, window=window, hop=hop, pad_value=0.0)


def random_waveform_window(waveform: np.ndarray, *, window: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`random_window` for waveforms ``(..., samples)``: pads with 0.0 (silence)."""
    return random_window(waveform, window=window, rng=rng, pad_value=0.0)


def _pad_to(features: np.ndarray, window: int, pad_value: PadValue) -> np.ndarray:
    """Pad the last axis at the end up to ``window`` (no copy when it is long enough)."""
    if window < 1:
        raise ConfigError(f"window={window!r} out of range; valid: >= 1")
    if features.ndim == 0:
        raise ValueError("windows: expected an array with a time axis, got a scalar")
    missing = window - features.shape[-1]
    if missing <= 0:
        return features
    fill = np.empty(features.shape[:-1] + (missing,), dtype=features.dtype)
    if np.ndim(pad_value) == 0:
        fill[...] = pad_value
    else:
        values = np.asarray(pad_value, dtype=features.dtype)
        if features.ndim < 2 or len(values) != features.shape[0]:
            raise ValueError(f"windows: {len(values)} pad values for an array of shape {features.shape}; "
                             "give one per entry of the first axis, or a single float")
        fill[...] = values.reshape((-1,) + (1,) * (features.ndim - 1))
    return np.concatenate([features, fill], axis=-1)


def window_length(cfg: FeatureConfig) -> int:
    """Length of one model window along the last axis: ``window_frames`` (log-mel) or ``window_samples`` (waveform)."""
    return cfg.window_samples if cfg.kind == "waveform" else cfg.window_frames


def eval_hop_length(cfg: FeatureConfig) -> int:
    """Hop between evaluation windows along the last axis: ``eval_hop_frames`` (log-mel) or samples (waveform), >= 1."""
    if cfg.kind == "waveform":
        return max(1, int(round(cfg.eval_hop_seconds * cfg.sample_rate)))
    return cfg.eval_hop_frames


def samples_per_step(cfg: FeatureConfig) -> int:
    """Waveform samples per step of the last axis: ``hop_length`` (log-mel frames) or 1 (waveform samples)."""
    return 1 if cfg.kind == "waveform" else cfg.hop_length


def start_seconds(starts: Sequence[int], cfg: FeatureConfig) -> np.ndarray:
    """Window starts (frames of a clip's features, or samples) -> seconds of the clip, its edge padding undone."""
    return (np.asarray(starts, dtype=np.float64) * samples_per_step(cfg) - edge_pad_samples(cfg)) / cfg.sample_rate


def eval_windows(features: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, list[int]]:
    """A clip's evaluation windows under ``cfg`` and their starts (frames for log-mel, samples for waveform).

    Log-mel ``(C, n_mels, frames)`` -> ``(n, C, n_mels, window_frames)``; waveform ``(1, samples)`` ->
    ``(n, 1, window_samples)``. The one definition used by training-time validation, evaluation and prediction, so
    all three agree.
    """
    window = window_length(cfg)
    starts = eval_starts(features.shape[-1], cfg)
    padded = _pad_to(np.asarray(features), window, window_pad_value(cfg))
    return np.stack([padded[..., s:s + window] for s in starts]), starts


def eval_window_at(features: np.ndarray, cfg: FeatureConfig, start: int) -> np.ndarray:
    """The one evaluation window of :func:`eval_windows` that starts at ``start``, as a copy: reads only that window
    of a memory-mapped clip."""
    window = window_length(cfg)
    padded = _pad_to(np.asarray(features), window, window_pad_value(cfg))
    return padded[..., start:start + window].copy()


def eval_starts(n_frames: int, cfg: FeatureConfig) -> list[int]:
    """The starts of :func:`eval_windows` for a clip ``n_frames`` long (frames, or samples for waveforms): every
    ``eval_hop_seconds``, or ``cfg.eval_crops`` crops (:func:`crop_starts`)."""
    if cfg.eval_crops:
        return crop_starts(n_frames, window=window_length(cfg), crops=cfg.eval_crops)
    return window_starts(n_frames, window=window_length(cfg), hop=eval_hop_length(cfg))


def crop_starts(n_frames: int, *, window: int, crops: int) -> list[int]:
    """``crops`` windows spread evenly from the first to the last possible start, as EnvNet-v2's test does
    (mil-tokyo/bc_learning_sound, ``multi_crop``: a stride of ``(n_frames - window) // (crops - 1)``); fewer when the
    clip is too short for distinct starts, ``[0]`` when it is no longer than a window, the middle for one crop.

    >>> crop_starts(100, window=10, crops=4)
    [0, 30, 60, 90]
    """
    if n_frames <= window:
        return [0]
    last = n_frames - window
    if crops == 1:
        return [last // 2]
    stride = last // (crops - 1)
    return sorted({i * stride for i in range(crops)}) if stride else list(range(last + 1))[:crops]


def train_window(features: np.ndarray, cfg: FeatureConfig, *, rng: np.random.Generator) -> np.ndarray:
    """One random training window of a clip under ``cfg``: ``(C, n_mels, window_frames)`` or ``(1, window_samples)``."""
    return random_window(features, window=window_length(cfg), rng=rng, pad_value=window_pad_value(cfg))
