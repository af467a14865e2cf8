"""``aclnet``: J. J. Huang, J. J. Alvarado Leanos, "AclNet: efficient end-to-end audio classification CNN" (2018).

An end-to-end model on the raw waveform ``(batch, samples)`` or ``(batch, 1, samples)`` at 16 kHz:

    LLF (low-level features), 1-D over the waveform:
        conv1  32 filters, kernel 9, stride 2, BN, ReLU
        conv2  64 filters, kernel 5, stride 2, BN, ReLU
        max-pool 40 (stride 40)          -> one frame per 160 samples = 10 ms at 16 kHz
    reshape (batch, 64, frames) -> an image (batch, 1, 64, frames): the 64 LLF channels play the frequency axis
    HLF (high-level features), VGG-like, every conv 3x3 + BN + ReLU, each group followed by 2x2 max-pooling:
        conv3 f | conv4-5 2f | conv6-7 4f | conv8-9 8f | conv10-11 16f
    global average pooling -> dropout -> linear -> logits

The LLF kernels and strides (9/2, 5/2) are one of the paper's LLF configurations; the max-pool width is the option
``llf_pool`` (40 makes 10-ms frames at 16 kHz, 110 makes 9.98-ms frames at 44.1 kHz, the paper's 10-ms frame rate).
``model.filters`` = ``f``, the width of conv3 (the paper's width multiplier ``m`` is ``f / 32``: the class default
``f = 32`` is the paper's m = 1 with 32 ... 512 channels; the everyday preset's ``f = 16`` is m = 0.5, sized for a
2-core CPU). The option ``separable`` makes conv4-11 depthwise-separable (a 3x3 depthwise conv, BN, ReLU, then a 1x1
pointwise conv, BN, ReLU: MobileNet's block, the paper's low-cost variant); conv3, with one input channel, stays
standard. The LLF widths (32, 64) are fixed: 64 is the height of the HLF image. The paper's final 1x1 convolution to
``n_classes`` followed by average pooling equals average pooling followed by a linear layer (both are linear), which
is what is used here, so :meth:`AclNet.embed` has a pooled embedding to return. Deviations from the paper: pooling
uses ``ceil_mode`` so windows shorter than 1.28 s still work; no mixup/augmentation inside the model (the
training loop's ``augment.mixup_alpha`` and ``augment.time_roll`` apply to waveforms too). Windows of 1.28 s
(20480 samples -> 128 frames at 16 kHz) as in the paper; a clip's prediction averages its windows (preset hop:
half a window). The shortest input is :func:`min_samples` samples (one LLF frame; :data:`MIN_SAMPLES` at the default
pool).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.models.blocks import OptionSpec, resolve_options
from envsound.models.waveform_blocks import (as_waveform_batch, check_waveform_args, memory_format_of,
                                             min_input_length)

DEFAULT_FILTERS = 32  # the paper's width multiplier 1
DEFAULT_DROPOUT = 0.2
LLF_CHANNELS = (32, 64)
LLF_POOL = 40  # the default llf_pool: x the two stride-2 convs = 160 samples = 10 ms at 16 kHz
_SR = 16000

PRESET: dict[str, Any] = {
    "features": {"kind": "waveform", "sample_rate": _SR, "window_seconds": 1.28, "eval_hop_seconds": 0.64},
    "model": {"filters": 16},
}


def llf_frames(n_samples: int, pool: int = LLF_POOL) -> int:
    """Frames the LLF stage makes of ``n_samples`` samples with max-pool width ``pool`` (< 1 means too short)."""
    l1 = (n_samples - 1) // 2 + 1  # kernel 9, stride 2, padding 4
    l2 = (l1 - 1) // 2 + 1  # kernel 5, stride 2, padding 2
    return l2 // pool


def min_samples(pool: int = LLF_POOL) -> int:
    """The shortest input, in samples, that makes one LLF frame with max-pool width ``pool``."""
    return min_input_length(lambda n: llf_frames(n, pool))


MIN_SAMPLES = min_samples()


def _conv_bn_relu(conv: nn.Module, channels: int, bn: type) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=True)]


def _hlf_conv(in_ch: int, out_ch: int, *, separable: bool) -> list[nn.Module]:
    """One 3x3 HLF convolution with BN and ReLU; depthwise-separable (depthwise 3x3, then pointwise 1x1, each with
    BN and ReLU) when ``separable`` and the input has more than one channel."""
    if not separable or in_ch == 1:
        return _conv_bn_relu(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), out_ch, nn.BatchNorm2d)
    return (_conv_bn_relu(nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False), in_ch, nn.BatchNorm2d)
            + _conv_bn_relu(nn.Conv2d(in_ch, out_ch, 1, bias=False), out_ch, nn.BatchNorm2d))


class AclNet(nn.Module):
    """AclNet (Huang & Leanos 2018) on raw waveforms.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (mono waveform).
        n_mels: 1 (the registry's convention for waveform models).
        n_frames: window length in samples (``features.window_samples``), >= :func:`min_samples`; the network
            accepts any input of at least that many samples (global pooling).
        filters: conv3 width ``f`` (HLF widths f, 2f, 4f, 8f, 16f); None = 32 (the paper's m = 1).
        dropout: before the classifier; None = 0.2.
        llf_pool: the LLF max-pool width, 1..1000: a frame is ``4 x llf_pool`` samples (40: 10 ms at 16 kHz; 110:
            10 ms at 44.1 kHz).
        separable: depthwise-separable conv4-11 (the paper's low-cost variant) instead of standard ones.

    Raises:
        ConfigError: an argument or option out of range, or a window shorter than ``min_samples(llf_pool)``.

    >>> model = AclNet(n_classes=10, in_channels=1, n_mels=1, n_frames=20480, filters=16)
    >>> model(torch.randn(8, 20480)).shape   # torch.Size([8, 10])
    """

    preset: ClassVar[dict[str, Any]] = PRESET
    input_kind: ClassVar[str] = "waveform"
    options: ClassVar[dict[str, OptionSpec]] = {
        "llf_pool": OptionSpec(LLF_POOL, int, low=1, high=1000, help="LLF max-pool width (a frame: 4 x it samples)"),
        "separable": OptionSpec(False, bool, help="depthwise-separable conv4-11"),
    }

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, llf_pool: int = LLF_POOL, separable: bool = False) -> None:
        super().__init__()
        opts = resolve_options("aclnet", self.options, {"llf_pool": llf_pool, "separable": separable})
        self.min_samples = min_samples(opts["llf_pool"])
        check_waveform_args("aclnet", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels,
                            n_frames=n_frames, filters=filters, dropout=dropout, min_samples=self.min_samples)
        f = DEFAULT_FILTERS if filters is None else filters
        p = DEFAULT_DROPOUT if dropout is None else dropout
        c1, c2 = LLF_CHANNELS
        self.llf = nn.Sequential(
            *_conv_bn_relu(nn.Conv1d(1, c1, 9, stride=2, padding=4, bias=False), c1, nn.BatchNorm1d),
            *_conv_bn_relu(nn.Conv1d(c1, c2, 5, stride=2, padding=2, bias=False), c2, nn.BatchNorm1d),
            nn.MaxPool1d(opts["llf_pool"]),
        )
        layers: list[nn.Module] = []
        in_ch = 1
        for width, n_convs in ((f, 1), (2 * f, 2), (4 * f, 2), (8 * f, 2), (16 * f, 2)):
            for _ in range(n_convs):
                layers += _hlf_conv(in_ch, width, separable=opts["separable"])
                in_ch = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.hlf = nn.Sequential(*layers)
        self.embed_dim = 16 * f
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(self.embed_dim, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, 16 * filters)`` (global average pool)."""
        x = as_waveform_batch("aclnet", x, min_samples=self.min_samples)
        image = self.llf(x).unsqueeze(1)  # (batch, 1, 64, frames)
        image = image.contiguous(memory_format=memory_format_of(self.hlf))
        return self.hlf(image).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` or ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.embed(x))
