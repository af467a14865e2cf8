"""``envnet2``: Y. Tokozume, Y. Ushiku, T. Harada, "Learning from between-class examples for deep sound recognition"
(ICLR 2018): EnvNet-v2, an end-to-end model on the raw waveform ``(batch, samples)`` or ``(batch, 1, samples)``.

The layers follow the authors' released code (mil-tokyo/bc_learning_sound, ``models/envnetv2.py``): every conv is
valid (no padding) + BN + ReLU; widths are given for ``model.filters = f`` (the paper: f = 32).

    conv1  1x64, stride 1x2, f      conv2  1x16, stride 1x2, 2f     max-pool 1x64
    swap axes: (batch, 2f, 1, T) -> (batch, 1, 2f, T), the 2f conv2 channels become the frequency axis
    conv3  8x8, f                   conv4  8x8, f                   max-pool 5x3
    conv5  1x4, 2f                  conv6  1x4, 2f                  max-pool 1x2
    conv7  1x2, 4f                  conv8  1x2, 4f                  max-pool 1x2
    conv9  1x2, 8f                  conv10 1x2, 8f                  max-pool 1x2
    fc11 128f, ReLU, dropout  ->  fc12 128f, ReLU, dropout (the embedding)  ->  fc13 logits

(The paper's text summarises this as conv1-conv8; the released code, followed here, has the ten conv layers above and
fc widths 4096 = 128 x 32.)

Deviations from the paper, for a 2-core CPU: the preset runs at **22.05 kHz** instead of 44.1 kHz with the same window
duration (66,650 samples at 44.1 kHz = 1.51 s -> 33,325 samples), with the kernel sizes unchanged, so every
kernel spans twice the time and the last conv stage sees 2 steps instead of 8; and ``model.filters = 16`` (half of
every conv width, fc 2048 instead of 4096). ``model.filters`` must be >= 10: the 8x8 convs and the 5x3 pool need
>= 19 conv2 channels on the frequency axis. The input length is fixed by the fully connected layers: windows of the
``n_frames`` samples the model was built with (>= :data:`MIN_SAMPLES`; 23,642 = 1.07 s at 22.05 kHz). The paper's
between-class mixing is ``augment.between_class`` (loudness by ``augment.bc_gain``; ``augment/between_class.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.errors import ConfigError
from envsound.models.waveform_blocks import (as_waveform_batch, check_waveform_args, memory_format_of,
                                             min_input_length)

DEFAULT_FILTERS = 32  # the paper's widths
DEFAULT_DROPOUT = 0.5
MIN_FILTERS = 10
_SR = 22050
PAPER_SECONDS = 66650 / 44100  # the paper's input: 66,650 samples at 44.1 kHz

PRESET: dict[str, Any] = {
    "features": {"kind": "waveform", "sample_rate": _SR, "window_seconds": PAPER_SECONDS, "eval_hop_seconds": 0.5},
    "model": {"filters": 16},
}


def output_steps(n_samples: int) -> int:
    """Time steps left after the last pooling for an input of ``n_samples`` samples (< 1 means too short)."""
    t = (n_samples - 64) // 2 + 1  # conv1
    t = (t - 16) // 2 + 1  # conv2
    t //= 64
    t = (t - 14) // 3  # conv3, conv4 (8 wide), pool 3
    t = (t - 6) // 2  # conv5, conv6 (4 wide), pool 2
    t = (t - 2) // 2  # conv7, conv8 (2 wide), pool 2
    return (t - 2) // 2  # conv9, conv10 (2 wide), pool 2


MIN_SAMPLES = min_input_length(output_steps)


def _conv(in_ch: int, out_ch: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


class EnvNet2(nn.Module):
    """EnvNet-v2 (Tokozume et al. 2018) on raw waveforms.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (mono waveform).
        n_mels: 1 (the registry's convention for waveform models).
        n_frames: window length in samples (``features.window_samples``), >= :data:`MIN_SAMPLES`; the model takes
            inputs of this length only (its fc11 size follows from it).
        filters: ``f`` (conv widths f, 2f, f, f, 2f, 2f, 4f, 4f, 8f, 8f; fc 128f), >= 10; None = 32 (the paper).
        dropout: after fc11 and fc12; None = 0.5.

    Raises:
        ConfigError: an argument out of range, ``filters < 10``, or a window shorter than :data:`MIN_SAMPLES`.

    >>> model = EnvNet2(n_classes=10, in_channels=1, n_mels=1, n_frames=33325, filters=16)
    >>> model(torch.randn(4, 33325)).shape   # torch.Size([4, 10])
    """

    preset: ClassVar[dict[str, Any]] = PRESET
    input_kind: ClassVar[str] = "waveform"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None) -> None:
        super().__init__()
        check_waveform_args("envnet2", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels,
                            n_frames=n_frames, filters=filters, dropout=dropout, min_samples=MIN_SAMPLES)
        f = DEFAULT_FILTERS if filters is None else filters
        if f < MIN_FILTERS:
            raise ConfigError(f"model 'envnet2': model.filters={f} is too small; need >= {MIN_FILTERS} (the 8x8 "
                              f"convs and 5x3 pool run over the 2 x filters conv2 channels)")
        p = DEFAULT_DROPOUT if dropout is None else dropout
        self.n_samples = n_frames
        self.llf = nn.Sequential(*_conv(1, f, (1, 64), (1, 2)), *_conv(f, 2 * f, (1, 16), (1, 2)),
                                 nn.MaxPool2d((1, 64)))
        self.features = nn.Sequential(
            *_conv(1, f, (8, 8)), *_conv(f, f, (8, 8)), nn.MaxPool2d((5, 3)),
            *_conv(f, 2 * f, (1, 4)), *_conv(2 * f, 2 * f, (1, 4)), nn.MaxPool2d((1, 2)),
            *_conv(2 * f, 4 * f, (1, 2)), *_conv(4 * f, 4 * f, (1, 2)), nn.MaxPool2d((1, 2)),
            *_conv(4 * f, 8 * f, (1, 2)), *_conv(8 * f, 8 * f, (1, 2)), nn.MaxPool2d((1, 2)),
        )
        height = (2 * f - 14) // 5
        self.flat_dim = 8 * f * height * output_steps(n_frames)
        hidden = 128 * f
        self.fc = nn.Sequential(nn.Linear(self.flat_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(p),
                                nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(hidden, n_classes))
        self.embed_dim = hidden

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, 128 * filters)`` (fc12 output)."""
        x = as_waveform_batch("envnet2", x, min_samples=MIN_SAMPLES)
        if x.shape[-1] != self.n_samples:
            raise ConfigError(f"model 'envnet2': input of {x.shape[-1]} samples does not match the {self.n_samples} "
                              "the model was built for; cut windows of the checkpoint's features.window_seconds")
        fmt = memory_format_of(self.features)
        z = self.llf(x.unsqueeze(2).contiguous(memory_format=fmt))  # (batch, 2f, 1, T)
        z = z.transpose(1, 2).contiguous(memory_format=fmt)  # swap axes -> (batch, 1, 2f, T)
        return self.fc(self.features(z).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` or ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.embed(x))
