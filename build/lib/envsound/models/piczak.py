"""``piczak``: K. J. Piczak, "Environmental sound classification with convolutional neural networks" (MLSP 2015).

The short-segment variant: input 60 log-mel bands + deltas (2 channels) x 41 frames (~0.93 s at 22050 Hz, hop 512).

    conv1  80 filters 57x6 (freq x time), ReLU, max-pool 4x3 stride 1x3, dropout 0.5
    conv2  80 filters 1x3, ReLU, max-pool 1x3 stride 1x3
    FC 5000, ReLU, dropout 0.5 -> FC 5000, ReLU, dropout 0.5 (the embedding) -> logits

One addition to the paper: a per-(channel, mel bin) BatchNorm on the input (:class:`MelBatchNorm`), so raw dB
levels (about -100..+40) need no dataset statistics fitted outside the model.

The model sees one segment; a clip's prediction averages its segments' probabilities (done by evaluation, with the
preset's ``eval_hop_seconds`` = half a segment, as in the paper's 50 % overlap).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.errors import ConfigError
from envsound.models.blocks import BandConv2d, MelBatchNorm, check_input, check_model_args

DEFAULT_FILTERS = 80
DEFAULT_DROPOUT = 0.5
HIDDEN = 5000
SEGMENT_FRAMES = 41
_HOP, _SR = 512, 22050

# Piczak trained with SGD + Nesterov (lr 0.002, momentum 0.9); our loop's AdamW with a small lr and weight decay
# trains this 26M-parameter net reliably at our batch size, so the preset asks for that.
PRESET: dict[str, Any] = {
    "features": {
        "sample_rate": _SR, "n_fft": 1024, "hop_length": _HOP, "n_mels": 60, "deltas": True,
        "window_seconds": (SEGMENT_FRAMES - 1) * _HOP / _SR,  # -> window_frames == 41
        "eval_hop_seconds": (SEGMENT_FRAMES - 1) / 2 * _HOP / _SR,  # half a segment
    },
    "train": {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-3},
}


def _pool_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class Piczak(nn.Module):
    """Piczak (2015) short-segment CNN.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 2 as in the paper (log-mel + delta); 1 also works.
        n_mels: mel bands, >= 60 (conv1 spans 57 bands and the pool 4 of its outputs); the paper uses 60.
        n_frames: frames per segment, >= 20; the paper uses 41. The flatten size is computed from these.
        filters: conv filters, None = 80.
        dropout: None = 0.5.

    Raises:
        ConfigError: an argument out of range, or an input too small for the 57x6 kernel.

    >>> model = Piczak(n_classes=10, in_channels=2, n_mels=60, n_frames=41)
    >>> model(torch.randn(8, 2, 60, 41)).shape   # torch.Size([8, 10])
    """

    preset: ClassVar[dict[str, Any]] = PRESET
    input_kind: ClassVar[str] = "logmel"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None) -> None:
        super().__init__()
        check_model_args("piczak", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        f = DEFAULT_FILTERS if filters is None else filters
        p = DEFAULT_DROPOUT if dropout is None else dropout
        h = _pool_out(n_mels - 57 + 1, 4, 1)
        w = _pool_out(_pool_out(n_frames - 6 + 1, 3, 3) - 3 + 1, 3, 3)
        if h < 1 or w < 1:
            raise ConfigError(f"model 'piczak': input {n_mels} mels x {n_frames} frames is too small for its 57x6 "
                              f"kernel and pooling; use features.n_mels >= 60 and a window of >= 20 frames "
                              f"(the paper: 60 x 41)")
        self.in_channels = in_channels
        self.norm = MelBatchNorm(in_channels, n_mels)
        self.features = nn.Sequential(
            BandConv2d(in_channels, f, (57, 6)), nn.ReLU(inplace=True),
            nn.MaxPool2d((4, 3), stride=(1, 3)), nn.Dropout(p),
            nn.Conv2d(f, f, (1, 3)), nn.ReLU(inplace=True),
            nn.MaxPool2d((1, 3), stride=(1, 3)),
        )
        self.flat_dim = f * h * w
        self.fc = nn.Sequential(
            nn.Linear(self.flat_dim, HIDDEN), nn.ReLU(inplace=True), nn.Dropout(p),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(HIDDEN, n_classes))
        self.embed_dim = HIDDEN

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, n_frames) -> (batch, 5000)``; the input size must be the built one."""
        check_input("piczak", x, self.in_channels)
        z = self.features(self.norm(x)).flatten(1)
        if z.shape[1] != self.flat_dim:
            raise ConfigError(f"model 'piczak': input of shape {tuple(x.shape)} does not match the size the model "
                              f"was built for; cut windows of the preset's window_seconds")
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, n_frames) -> logits (batch, n_classes)``."""
        return self.head(self.embed(x))
