"""The numpy half of the log-mel frontend: the mel scale, its filterbank and a picture-grade log-mel.

Nothing here imports torch, so what runs without it (window cutting, the page's spectrogram, a model exported to ONNX)
shares these constants and filters with the torch frontend in :mod:`envsound.features.mel`.
"""

from __future__ import annotations

import math

import numpy as np

from envsound.config import FeatureConfig
from envsound.errors import ConfigError

DB_FLOOR = -100.0  # dB: 10*log10(AMIN), the value of digital silence and of window padding
AMIN = 1e-10  # power floor of power_to_db

# The EfficientAT frontend's constants (envsound.features.efficientat): ln(mel + LOG_OFFSET), then
# (x + NORM_SHIFT) / NORM_SCALE; digital silence (and window padding) becomes EFFICIENTAT_SILENCE, about -1.40.
PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
EFFICIENTAT_SILENCE = (math.log(LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE

# Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Hz -> mel on the Slaney scale (``librosa.hz_to_mel(htk=False)``), float64, same shape as ``hz``."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Mel (Slaney scale) -> Hz, the inverse of :func:`hz_to_mel`, float64."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


def mel_weights(*, sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                f_max: float | None = None) -> np.ndarray:
    """Triangular mel filters equal to ``librosa.filters.mel`` defaults (Slaney scale, ``norm='slaney'``).

    Args:
        sample_rate: Hz, > 0.
        n_fft: FFT size in samples, >= 2.
        n_mels: number of filters, >= 1.
        f_min: lowest band edge in Hz, >= 0.
        f_max: highest band edge in Hz, ``f_min < f_max <= sample_rate / 2``; ``None`` = ``sample_rate / 2``.

    Returns:
        float32 array ``(n_mels, n_fft // 2 + 1)``; row ``i`` weights the power bins of band ``i`` (area-normalised).

    Raises:
        ConfigError: a value out of the ranges above.

    >>> mel_weights(sample_rate=22050, n_fft=1024, n_mels=128).shape
    (128, 513)
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if sample_rate <= 0 or n_fft < 2 or n_mels < 1:
        raise ConfigError(f"mel filterbank: sample_rate={sample_rate!r}, n_fft={n_fft!r}, n_mels={n_mels!r} out of "
                          "range; valid: sample_rate > 0, n_fft >= 2, n_mels >= 1")
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ConfigError(f"mel filterbank: f_min={f_min!r}, f_max={f_max!r} out of range; "
                          f"valid: 0 <= f_min < f_max <= sample_rate/2 = {sample_rate / 2}")
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (n_freq,)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # band edges, Hz
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]  # Slaney: constant energy per band
    return weights.astype(np.float32)


def stft_frames(samples: int, *, n_fft: int, hop_length: int) -> int:
    """Frames of a centred STFT (``n_fft // 2`` zeros each side) over ``samples`` samples: ``1 + samples // hop``
    for an even ``n_fft``."""
    return 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop_length


def picture_logmel(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel ``(n_mels, frames)`` dB of a ``(samples,)`` waveform with ``cfg``'s mel settings, in numpy.

    The same maths as :class:`~envsound.features.mel.LogMel` (centred periodic-Hann STFT, Slaney filters, ref 1.0,
    floor :data:`DB_FLOOR`), to float32 accuracy; for drawing, where torch is not needed (models score the torch or
    ONNX frontend's values).
    """
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.pad(np.asarray(waveform, dtype=np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)).astype(np.float32) ** 2  # (frames, n_freq)
    weights = mel_weights(sample_rate=cfg.sample_rate, n_fft=n_fft, n_mels=cfg.n_mels, f_min=cfg.f_min,
                          f_max=cfg.f_max)
    return 10.0 * np.log10(np.maximum(weights @ power.T, AMIN))
