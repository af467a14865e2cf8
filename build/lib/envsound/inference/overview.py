"""A picture-sized summary of a recording for the web page: its waveform envelope and the log-mel spectrogram the model
sees, pooled to at most ``columns`` time steps whatever the length (a 1-hour file is summarised block by block, in
bounded memory, like :class:`~envsound.inference.predictor.Predictor` reads it). Computed in numpy, so a
model exported to ONNX draws it without torch."""

from __future__ import annotations

import base64
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from envsound.audio.load import audio_info, iter_audio_blocks
from envsound.config import FeatureConfig
from envsound.features.melbank import picture_logmel

DB_RANGE = 80.0  # dB shown below the loudest cell; quieter cells are drawn as the floor


class _MaxPool:
    """Max over consecutive groups of ``width`` along the last axis, fed in pieces of any length."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self.carry: np.ndarray | None = None
        self.columns: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        values = values if self.carry is None else np.concatenate([self.carry, values], axis=-1)
        whole = values.shape[-1] // self.width * self.width
        if whole:
            grouped = values[..., :whole].reshape(*values.shape[:-1], -1, self.width)
            self.columns.append(grouped.max(axis=-1))
        self.carry = values[..., whole:]

    def result(self) -> np.ndarray:
        if self.carry is not None and self.carry.shape[-1]:
            self.columns.append(self.carry.max(axis=-1, keepdims=True))
            self.carry = None
        return np.concatenate(self.columns, axis=-1)


def display_features(features: FeatureConfig) -> FeatureConfig:
    """The log-mel settings a spectrogram is drawn with: the model's own, or log-mel defaults at the model's sample
    rate for a waveform model (which has no spectrogram of its own)."""
    single = replace(features, deltas=False)
    return single if features.kind == "logmel" else FeatureConfig(sample_rate=features.sample_rate)


def overview(path: str | Path, features: FeatureConfig, *, columns: int = 800, block_seconds: float = 60.0) -> dict:
    """Summarise the audio file at ``path`` as decoded at ``features.sample_rate``.

    Returns a JSON-ready dict: ``seconds``; ``envelope`` (``[[min, max], ...]`` per column, rounded); ``spectrogram``
    with ``mels``, ``columns`` and ``values``: base64 of uint8 cells, row-major with the lowest mel band first, 0 =
    ``DB_RANGE`` dB or more below the loudest cell and 255 = the loudest.

    Raises:
        AudioLoadError: as :func:`~envsound.audio.load.iter_audio_blocks`.
    """
    mel_config = display_features(features)
    info = audio_info(path)
    total = max(1, round(info.frames * features.sample_rate / info.sample_rate))
    envelope_max = _MaxPool(math.ceil(total / columns))
    envelope_min = _MaxPool(envelope_max.width)
    mels = _MaxPool(math.ceil((total // mel_config.hop_length + 1) / columns))
    for block in iter_audio_blocks(path, sample_rate=features.sample_rate, block_seconds=block_seconds):
        envelope_max.add(block)
        envelope_min.add(-block)
        mels.add(picture_logmel(block, mel_config))
    highs, lows = envelope_max.result(), -envelope_min.result()
    spectrogram = mels.result()
    top = float(spectrogram.max())
    cells = np.clip((spectrogram - (top - DB_RANGE)) / DB_RANGE, 0.0, 1.0) * 255.0
    return {
        "seconds": round(total / features.sample_rate, 3),
        "envelope": [[round(float(lo), 4), round(float(hi), 4)] for lo, hi in zip(lows, highs)],
        "spectrogram": {"mels": int(cells.shape[0]), "columns": int(cells.shape[1]),
                        "values": base64.b64encode(np.round(cells).astype(np.uint8).tobytes()).decode("ascii")},
    }
