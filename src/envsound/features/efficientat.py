"""The EfficientAT frontend (Schmid et al., ICASSP 2023) as its official code computes it in evaluation mode.

Steps, from the paper's released frontend: pre-emphasis ``y[t] = x[t + 1] - 0.97 x[t]`` (one sample shorter); a
centred STFT (reflect padding) with a symmetric Hann window of ``win_length`` samples centred in ``n_fft``; the
power spectrum; Kaldi-style triangular mel banks (mel = 1127 ln(1 + f / 700), no normalisation, the Nyquist bin
left out); ``ln(mel + 1e-5)``; then the fixed normalisation ``(x + 4.5) / 5``. Networks pre-trained on AudioSet
with it (:mod:`envsound.models.efficientat`) only see sensible input through exactly these steps, so they are a
feature setting (``features.frontend = "efficientat"``) saved in every checkpoint, and the cache, training,
evaluation, prediction, serving and the ONNX export all take them from there.

Layouts: waveform ``(batch, samples)`` float32; output ``(batch, 1, n_mels, frames)`` with
``frames = 1 + (samples - 1) // hop_length``. Written here (torchaudio does not pair with this torch) and checked
against the official outputs in ``tests/models/test_efficientat.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from envsound.config import FeatureConfig
from envsound.errors import ConfigError
from envsound.features.melbank import EFFICIENTAT_SILENCE, LOG_OFFSET, NORM_SCALE, NORM_SHIFT, PREEMPHASIS

SILENCE = EFFICIENTAT_SILENCE
"""What digital silence becomes (about -1.40): the value a window shorter than the model's is padded with."""

# What the official frontend is built with (AugmentMelSTFT's evaluation settings): :data:`FEATURES` of a model
# preset. ``f_max`` is its 15 kHz (16 kHz Nyquist less half the 2-kHz range its training shifts f_max over).
SETTINGS = {"frontend": "efficientat", "sample_rate": 32000, "n_fft": 1024, "win_length": 800, "hop_length": 320,
            "n_mels": 128, "f_min": 0.0, "f_max": 15000.0, "deltas": False}


def kaldi_mel_banks(*, sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Kaldi's triangular mel filters ``(n_mels, n_fft // 2 + 1)`` float32 (no VTLN warp, the last bin zero).

    Band ``m`` rises from mel ``lo + m d`` to ``lo + (m + 1) d`` and falls to ``lo + (m + 2) d``, with
    ``d = (mel(f_max) - mel(f_min)) / (n_mels + 1)`` and mel = ``1127 ln(1 + f / 700)``; FFT bin ``k`` sits at
    ``k sample_rate / n_fft`` Hz. Peaks are 1 (no area normalisation, unlike Slaney filters). Computed in float32 as
    the reference implementation does: in float64 the frontend's output moves by 2e-4 (against 8e-5).

    Raises:
        ConfigError: ``0 <= f_min < f_max <= sample_rate / 2`` does not hold.
    """
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigError(f"Kaldi mel banks: f_min={f_min!r}, f_max={f_max!r} out of range; valid: "
                          f"0 <= f_min < f_max <= {sample_rate / 2}")
    low, high = 1127.0 * math.log1p(f_min / 700.0), 1127.0 * math.log1p(f_max / 700.0)
    delta = (high - low) / (n_mels + 1)
    band = torch.arange(n_mels, dtype=torch.float32)[:, None]
    left, centre, right = low + band * delta, low + (band + 1.0) * delta, low + (band + 2.0) * delta
    bins = 1127.0 * (1.0 + (sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32) / 700.0).log()
    weights = torch.clamp(torch.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)), min=0.0)
    return nn.functional.pad(weights, (0, 1))


def efficientat_frames(samples: int, *, hop_length: int) -> int:
    """Frames for ``samples`` input samples: the pre-emphasised signal is one shorter, the STFT centred."""
    return 1 + (max(samples, 2) - 1) // hop_length


def analysis_window(*, n_fft: int, win_length: int) -> torch.Tensor:
    """The symmetric (``periodic=False``) Hann window of ``win_length`` samples zero-padded to ``n_fft``, centred,
    as ``torch.stft`` places a shorter window: float32 ``(n_fft,)``."""
    if not 1 <= win_length <= n_fft:
        raise ConfigError(f"features.win_length={win_length!r} out of range; valid: 1..n_fft={n_fft}")
    left = (n_fft - win_length) // 2
    window = torch.hann_window(win_length, periodic=False, dtype=torch.float32)
    return nn.functional.pad(window, (left, n_fft - win_length - left))


class EfficientATMel(nn.Module):
    """Waveform ``(batch, samples)`` -> normalised log-mel ``(batch, 1, n_mels, frames)`` (see the module docstring).

    With ``dft_matmul=True`` the STFT is a product with a fixed DFT basis (what the ONNX export records: it has no
    FFT operator on every runtime); otherwise ``torch.stft``. The banks and window are non-persistent buffers.

    >>> frontend = EfficientATMel.from_config(FeatureConfig(**SETTINGS))
    >>> frontend(torch.zeros(2, 32000)).shape   # torch.Size([2, 1, 128, 100])
    """

    def __init__(self, *, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
                 f_min: float, f_max: float, dft_matmul: bool = False) -> None:
        super().__init__()
        if not 1 <= hop_length <= n_fft:
            raise ConfigError(f"features.hop_length={hop_length!r} out of range; valid: 1..n_fft={n_fft}")
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.dft_matmul = dft_matmul
        window = analysis_window(n_fft=n_fft, win_length=win_length)
        self.register_buffer("window", window, persistent=False)
        banks = kaldi_mel_banks(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
        self.register_buffer("banks", banks, persistent=False)
        if dft_matmul:
            n_freq = n_fft // 2 + 1
            time = torch.arange(n_fft, dtype=torch.float64)[:, None]
            angle = 2 * torch.pi * time * torch.arange(n_freq, dtype=torch.float64)[None, :] / n_fft
            basis = torch.cat([angle.cos(), -angle.sin()], dim=1) * window.double()[:, None]
            self.register_buffer("basis", basis.float(), persistent=False)

    @classmethod
    def from_config(cls, cfg: FeatureConfig, *, dft_matmul: bool = False) -> "EfficientATMel":
        return cls(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length or cfg.n_fft,
                   hop_length=cfg.hop_length, n_mels=cfg.n_mels, f_min=cfg.f_min,
                   f_max=cfg.sample_rate / 2 if cfg.f_max is None else cfg.f_max, dft_matmul=dft_matmul)

    channels = 1

    def frames(self, samples: int) -> int:
        return efficientat_frames(samples, hop_length=self.hop_length)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            x = waveform.float()
            x = x[:, 1:] - PREEMPHASIS * x[:, :-1]
            if x.shape[-1] <= self.n_fft // 2:  # reflect padding needs more samples than it pads: pad with zeros
                x = nn.functional.pad(x, (0, self.n_fft // 2 + 1 - x.shape[-1]))
            if self.dft_matmul:
                half = self.n_fft // 2
                padded = nn.functional.pad(x[:, None], (half, half), mode="reflect")[:, 0]
                spectrum = padded.unfold(-1, self.n_fft, self.hop_length) @ self.basis
                n_freq = half + 1
                power = (spectrum[..., :n_freq].square() + spectrum[..., n_freq:].square()).mT
            else:
                spectrum = torch.stft(x, self.n_fft, hop_length=self.hop_length, window=self.window, center=True,
                                      pad_mode="reflect", return_complex=True)
                power = spectrum.real.square() + spectrum.imag.square()
            mel = torch.matmul(self.banks, power)
            return ((torch.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE).unsqueeze(1)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}"
