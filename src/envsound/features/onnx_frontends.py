"""The log-mel frontends in exportable form: ``(1, samples)`` -> ``(C, n_mels, frames)``, the windowed DFT as one
product with a fixed basis instead of ONNX's ``STFT`` operator; what ``envsound export`` writes into an ``.onnx`` file
(:mod:`envsound.inference.onnx_export`), registered as each frontend's ``onnx_module`` (``features/frontends.py``)."""

from __future__ import annotations

import torch
from torch import nn

from envsound.config import FeatureConfig
from envsound.features.efficientat import EfficientATMel
from envsound.features.mel import DELTA_WIDTH, deltas, hann_window, mel_filterbank, power_to_db, whole_clip_slope

__all__ = ["OnnxFrontend", "OnnxEfficientATFrontend"]


class OnnxFrontend(nn.Module):
    """:class:`~envsound.features.mel.LogMel` in exportable form, ``(1, samples)`` -> ``(C, n_mels, frames)``, equal
    to LogMel within float32 rounding.

    The windowed DFT is one product with a fixed ``(n_fft, 2 * n_freq)`` cosine / sine basis rather than the ONNX
    ``STFT`` operator: onnxruntime's STFT took 6.3 ms per 5-s clip at 22.05 kHz (n_fft 1024) on the 2-core CPU of
    docs/benchmarks.md, the product 3.7 ms, and it needs no particular opset.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.with_deltas = cfg.n_fft, cfg.hop_length, cfg.deltas
        self.n_freq = cfg.n_fft // 2 + 1
        time_index = torch.arange(cfg.n_fft, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * time_index * torch.arange(self.n_freq, dtype=torch.float64)[None, :] / cfg.n_fft
        window = hann_window(cfg.n_fft).double()[:, None]
        self.register_buffer("basis", torch.cat([angle.cos() * window, -angle.sin() * window], dim=1).float())
        self.register_buffer("filterbank", mel_filterbank(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                                                          n_mels=cfg.n_mels, f_min=cfg.f_min, f_max=cfg.f_max))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(waveform, (self.n_fft // 2, self.n_fft // 2))  # centred, zeros (librosa >= 0.10)
        spectrum = padded.unfold(-1, self.n_fft, self.hop_length) @ self.basis  # (1, frames, 2 * n_freq): re, im
        power = (spectrum[..., :self.n_freq].square() + spectrum[..., self.n_freq:].square()).mT
        logmel = power_to_db(self.filterbank @ power)  # (1, n_mels, frames)
        if self.with_deltas:
            # A clip shorter than the delta width takes another formula (see deltas()): both branches are in the graph.
            slopes = torch.cond(logmel.shape[-1] >= DELTA_WIDTH, _windowed_slope, _whole_clip_slope, (logmel,))
            logmel = torch.cat([logmel, slopes])
        return logmel


class OnnxEfficientATFrontend(nn.Module):
    """:class:`~envsound.features.efficientat.EfficientATMel` with its DFT as a basis product, ``(1, samples)`` ->
    ``(1, n_mels, frames)`` (the layout of :class:`OnnxFrontend`)."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.mel = EfficientATMel.from_config(cfg, dft_matmul=True)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mel(waveform)[0]


def _windowed_slope(logmel: torch.Tensor) -> torch.Tensor:
    # deltas(), not windowed_slope(): the branch is traced for every length, and deltas' own length check keeps the
    # trace valid for short clips. (A torch.cond branch may not return a view of its input: hence the clones.)
    return deltas(logmel).clone()


def _whole_clip_slope(logmel: torch.Tensor) -> torch.Tensor:
    return whole_clip_slope(logmel).clone()
