"""``wrn28``: Wide-ResNet-28-2 (Zagoruyko & Komodakis 2016) on log-mel spectrograms, the network of the published
semi-supervised audio comparisons (FixMatch's WRN-28-2; Cances, Labbé & Pellegrini 2022 on ESC-10).

Input ``(batch, in_channels, n_mels, frames)`` -> per-mel-bin BatchNorm (an addition: raw dB levels need no fitted
statistics) -> 3x3 conv of ``filters`` channels -> 3 groups of ``(depth - 4) / 6`` pre-activation blocks of widths
``filters x widen x (1, 2, 4)``, the 2nd and 3rd starting with stride 2 -> BN, leaky ReLU -> mean over frequency and
time (the embedding, ``4 x filters x widen``) -> dropout -> logits.

A block is BN-LReLU-conv3x3-BN-LReLU-conv3x3 plus a shortcut (identity, or a 1x1 conv where width or stride changes),
with leaky ReLU slope 0.1 and BN momentum 0.001 as FixMatch's WRN. At full resolution (no stem pooling) it costs 11x
the default ``cnn`` per 5-s window at inference and 16x in training on a 2-core CPU (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.errors import ConfigError
from envsound.models.blocks import MelBatchNorm, OptionSpec, check_input, check_model_args, resolve_options

DEFAULT_FILTERS = 16
DEFAULT_DROPOUT = 0.0
SLOPE = 0.1
BN_MOMENTUM = 0.001


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class PreActBlock(nn.Module):
    """``conv(act(bn(conv(act(bn(x)))))) + shortcut``, the first conv with ``stride``; ``(B, in, H, W)`` ->
    ``(B, out, ceil(H / stride), ceil(W / stride))``."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = _bn(in_ch), _bn(out_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.act = nn.LeakyReLU(SLOPE, inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        y = self.conv2(self.act(self.bn2(self.conv1(pre))))
        # A projection sees the activated input, as in the original; the identity keeps x itself.
        return y + (x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre))


class WideResNet(nn.Module):
    """Wide-ResNet-``depth``-``widen`` on log-mels; any ``frames`` and ``n_mels`` >= 1 at run time (global pooling).

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (log-mel) or 2 (log-mel + delta).
        n_mels, n_frames: the input the model is built for (informational).
        filters: width of the first conv, >= 1 (groups are ``filters x widen x 1, 2, 4``); None = 16.
        dropout: before the output layer, [0, 1); None = 0.
        depth: 6n + 4 layers (28: 4 blocks a group); widen: the width factor k (2 for WRN-28-2).

    Raises:
        ConfigError: an argument out of range.

    >>> WideResNet(n_classes=10, in_channels=1, n_mels=64, n_frames=101)(torch.randn(2, 1, 64, 101)).shape
    torch.Size([2, 10])
    """

    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "logmel"
    options: ClassVar[dict[str, OptionSpec]] = {
        "depth": OptionSpec(28, int, low=10, help="layers, 6n + 4 (28: 4 blocks per group)"),
        "widen": OptionSpec(2, int, low=1, help="width factor k of WRN-depth-k"),
    }

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, depth: int = 28, widen: int = 2) -> None:
        super().__init__()
        check_model_args("wrn28", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        opts = resolve_options("wrn28", self.options, {"depth": depth, "widen": widen})
        if (opts["depth"] - 4) % 6:
            raise ConfigError(f"model 'wrn28': model.options.depth={opts['depth']} is not 6n + 4 (e.g. 16, 22, 28, 40)")
        f = DEFAULT_FILTERS if filters is None else filters
        blocks_per_group = (opts["depth"] - 4) // 6
        self.in_channels = in_channels
        self.norm = MelBatchNorm(in_channels, n_mels)
        self.stem = nn.Conv2d(in_channels, f, 3, padding=1, bias=False)
        groups, width = [], f
        for i, out in enumerate(f * opts["widen"] * m for m in (1, 2, 4)):
            groups += [PreActBlock(width if b == 0 else out, out, stride=2 if (i > 0 and b == 0) else 1)
                       for b in range(blocks_per_group)]
            width = out
        self.groups = nn.Sequential(*groups)
        self.final = nn.Sequential(_bn(width), nn.LeakyReLU(SLOPE, inplace=True))
        self.embed_dim = width
        self.head = nn.Sequential(nn.Dropout(DEFAULT_DROPOUT if dropout is None else dropout),
                                  nn.Linear(width, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, 4 * filters * widen)``."""
        check_input("wrn28", x, self.in_channels)
        return self.final(self.groups(self.stem(self.norm(x)))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> logits (batch, n_classes)``."""
        return self.head(self.embed(x))
