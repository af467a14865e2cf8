"""A second pre-trained family, written as a plug-in would be (issue 66, item 4): ``toy``, a tiny AudioSet-style
tagger with its own frontend. Everything a family needs is this one module - its frontend (torch and ONNX forms),
its network, its release table, how its files are recognised and how one becomes a checkpoint - plus the two records
at the end, :data:`FRONTEND` and :data:`FAMILY`. In the package these would be ``models/toy.py`` and one record each
in ``config/frontends.py`` and ``models/families.py``: three source files. Here a fixture registers the records.

:func:`reference_probs` is the family's "official code": the same maths written independently in numpy (float64),
what the family's own repository would publish reference outputs from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from envsound.config import FeatureConfig
from envsound.config.files import bare_config
from envsound.config.frontends import Frontend
from envsound.features.efficientat import kaldi_mel_banks
from envsound.models.checkpoint import Checkpoint
from envsound.models.families import Family
from envsound.models.releases import Pretrained
from envsound.task import MULTI_LABEL, Task

FLOOR = 1e-6
SILENCE = math.log(FLOOR)
"""What digital silence becomes: log of the floor."""
LABELS = ["Dog", "Rain", "Siren"]
PREFIX = "toynet."
SETTINGS = {"frontend": "toy", "sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 40, "f_min": 0.0,
            "f_max": 8000.0, "deltas": False, "window_seconds": 1.0, "eval_hop_seconds": 0.5}


class ToyMel(nn.Module):
    """``(batch, samples)`` -> ``log(mel power + 1e-6)`` ``(batch, 1, n_mels, 1 + samples // hop)``: a centred,
    zero-padded STFT as a strided convolution with a periodic-Hann DFT basis, Kaldi mel banks."""

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, f_min: float, f_max: float):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * bins * torch.arange(n_fft, dtype=torch.float64)[None] / n_fft
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).float()[:, None]
        self.register_buffer("basis", basis, persistent=False)
        banks = kaldi_mel_banks(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
        self.register_buffer("banks", banks, persistent=False)

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> "ToyMel":
        return cls(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                   f_min=cfg.f_min, f_max=cfg.f_max or cfg.sample_rate / 2)

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        padded = nn.functional.pad(waveform[:, None], (half, half))
        spectrum = nn.functional.conv1d(padded, self.basis, stride=self.hop_length)  # (batch, 2 bins, frames)
        real, imag = spectrum.chunk(2, dim=1)
        power = real * real + imag * imag
        return torch.log(torch.matmul(self.banks, power) + FLOOR)[:, None]


class OnnxToyMel(nn.Module):
    """The ONNX form: ``(1, samples)`` -> ``(1, n_mels, frames)`` (already FFT-free)."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.mel = ToyMel.from_config(cfg)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mel(waveform)[0]


class ToyNet(nn.Module):
    """Log-mel ``(batch, 1, n_mels, frames)`` -> logits ``(batch, n_classes)``: one 3x3 convolution, ReLU, the mean
    over frequency and time, a linear head."""

    preset: ClassVar[dict[str, Any]] = {"features": dict(SETTINGS)}
    input_kind: ClassVar[str] = "logmel"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters or 8, 3, padding=1)
        self.head = nn.Linear(filters or 8, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(batch, filters)`` embedding the head reads (what the family contract's embeddings are)."""
        return torch.relu(self.conv(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


RELEASES = {"tiny_as": Pretrained("tiny_as", "toy_tiny_as.pt", 0.1, 8 * 9 + 8 + 8 * 3 + 3, family="toy",
                                  base_url="https://example.invalid/toy/")}


def is_toy_state(payload: Any) -> bool:
    return (isinstance(payload, Mapping) and bool(payload)
            and all(str(k).startswith(PREFIX) and isinstance(v, torch.Tensor) for k, v in payload.items()))


def toy_checkpoint(state: Mapping[str, torch.Tensor], *, path: Path, labels_required: bool = True) -> Checkpoint:
    config = bare_config(preset=ToyNet.preset, model="toy")
    return Checkpoint(config=config, labels=list(LABELS), task=Task(MULTI_LABEL),
                      state_dict={k.removeprefix(PREFIX): v for k, v in state.items()},
                      meta={"kind": "classifier", "pretrained": {"name": "tiny_as", "file": str(path)}})


def release_file(folder: Path, *, seed: int = 0) -> Path:
    """The family's release file (a bare state dict under ``toynet.``) at random weights."""
    torch.manual_seed(seed)
    state = ToyNet(n_classes=len(LABELS), in_channels=1, n_mels=SETTINGS["n_mels"], n_frames=101).state_dict()
    path = folder / RELEASES["tiny_as"].file
    torch.save({PREFIX + k: v for k, v in state.items()}, path)
    return path


def reference_probs(waveform: np.ndarray, state: Mapping[str, torch.Tensor]) -> np.ndarray:
    """The family's own maths in numpy float64: one clip ``(samples,)`` -> sigmoid probabilities ``(n_classes,)``."""
    n_fft, hop = SETTINGS["n_fft"], SETTINGS["hop_length"]
    padded = np.pad(waveform.astype(np.float64), n_fft // 2)
    n_frames = 1 + len(waveform) // hop
    frames = np.stack([padded[t * hop: t * hop + n_fft] for t in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, bins)
    banks = kaldi_mel_banks(sample_rate=SETTINGS["sample_rate"], n_fft=n_fft, n_mels=SETTINGS["n_mels"],
                            f_min=SETTINGS["f_min"], f_max=SETTINGS["f_max"]).double().numpy()
    mel = np.log(banks @ power.T + FLOOR)  # (n_mels, frames)
    weight = state[PREFIX + "conv.weight"].double().numpy()[:, 0]  # (filters, 3, 3)
    bias = state[PREFIX + "conv.bias"].double().numpy()
    image = np.pad(mel, 1)
    conv = np.stack([sum(weight[f, i, j] * image[i:i + mel.shape[0], j:j + mel.shape[1]]
                         for i in range(3) for j in range(3)) + bias[f] for f in range(len(bias))])
    pooled = np.maximum(conv, 0).mean(axis=(1, 2))
    logits = state[PREFIX + "head.weight"].double().numpy() @ pooled + state[PREFIX + "head.bias"].double().numpy()
    return 1 / (1 + np.exp(-logits))


# ------------------------------------------------------------------------------------------------ the two records
FRONTEND = Frontend("toy", "the toy family's frontend: zero-padded STFT, Kaldi mel, log(power + 1e-6)",
                    module=ToyMel.from_config, onnx_module=OnnxToyMel, silence=SILENCE, mel_scale="kaldi",
                    deltas=False)
FAMILY = Family("toy", "a toy AudioSet release .pt (e.g. toy_tiny_as.pt)", releases=RELEASES,
                recognise=is_toy_state, checkpoint=toy_checkpoint, frontend="toy", networks={"toy": ToyNet},
                licence="CC0-1.0")
