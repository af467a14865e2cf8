"""Layers and argument checks shared by the torch models.

Tensor layout everywhere: log-mel input ``(batch, in_channels, n_mels, frames)`` float; channel 0 is the log-mel,
channel 1 (when present) its delta.
"""

from __future__ import annotations

import torch
from torch import nn

from envsound.errors import ConfigError


def check_model_args(name: str, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int,
                     filters: int | None, dropout: float | None) -> None:
    """Raise :class:`ConfigError` naming ``name`` and the bad value when a constructor argument is out of range.

    ``n_classes``, ``in_channels``, ``n_mels``, ``n_frames`` and ``filters`` (when set) must be ints >= 1;
    ``dropout`` (when set) must be in ``[0, 1)``.
    """
    for key, value in (("n_classes", n_classes), ("in_channels", in_channels), ("n_mels", n_mels),
                       ("n_frames", n_frames)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"model {name!r}: {key}={value!r} must be an int >= 1")
    if filters is not None and (isinstance(filters, bool) or not isinstance(filters, int) or filters < 1):
        raise ConfigError(f"model {name!r}: model.filters={filters!r} must be an int >= 1 (or unset for the default)")
    if dropout is not None and not 0 <= dropout < 1:
        raise ConfigError(f"model {name!r}: model.dropout={dropout!r} must be in [0, 1) (or unset for the default)")


def check_input(name: str, x: torch.Tensor, in_channels: int) -> None:
    """Raise :class:`ConfigError` unless ``x`` is ``(batch, in_channels, n_mels, frames)``."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ConfigError(f"model {name!r}: input of shape {tuple(x.shape)} is not (batch, {in_channels}, n_mels, "
                          f"frames); check features.deltas and the feature settings the model was built with")


class MelBatchNorm(nn.Module):
    """Batch normalisation of every (channel, mel bin) over batch and time; needs no fitted dataset statistics.

    As ``bn0`` in PANNs: log-mel levels differ a lot between low and high bins, so each bin gets its own mean and
    scale, learned from the training batches (running statistics at evaluation). Input and output
    ``(batch, in_channels, n_mels, frames)``; the output keeps the input's memory format.
    """

    def __init__(self, in_channels: int, n_mels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.n_mels = n_mels
        self.bn = nn.BatchNorm1d(in_channels * n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, mels, frames = x.shape
        if channels != self.in_channels or mels != self.n_mels:
            raise ConfigError(f"input has {channels} channels x {mels} mel bins but the model was built for "
                              f"{self.in_channels} x {self.n_mels}; use the feature settings of the checkpoint")
        channels_last = channels > 1 and x.is_contiguous(memory_format=torch.channels_last)
        y = self.bn(x.reshape(batch, channels * mels, frames)).reshape(batch, channels, mels, frames)
        return y.contiguous(memory_format=torch.channels_last) if channels_last else y


class ConvBlock(nn.Module):
    """``n_convs`` x (3x3 conv, no bias + BatchNorm + ReLU), then 2x2 average pooling.

    ``(batch, in_ch, H, W) -> (batch, out_ch, ceil(H / 2), ceil(W / 2))``: ``ceil_mode`` keeps the last odd row or
    column (averaged over the cells that exist) and lets a size-1 axis pass, so any input size works.
    """

    def __init__(self, in_ch: int, out_ch: int, *, n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.convs(x))


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """PANNs-style clip pooling: mean over frequency, then max + mean over time.

    ``(batch, C, F, T) -> (batch, C)``; any F, T >= 1, so the model accepts any input length.
    """
    x = x.mean(dim=2)
    return x.amax(dim=2) + x.mean(dim=2)
