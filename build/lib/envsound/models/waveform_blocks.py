"""Argument and input checks shared by the raw-waveform models (``aclnet``, ``envnet2``).

Waveform models keep the registry's constructor convention ``(*, n_classes, in_channels, n_mels, n_frames, filters,
dropout)`` with ``in_channels = 1``, ``n_mels = 1`` and ``n_frames`` = the window length **in samples**
(``features.window_samples``; :func:`envsound.models.clip.input_shape` passes exactly that). Their ``forward`` takes
``(batch, samples)`` (the house waveform layout) or ``(batch, 1, samples)`` (a batch of dataset windows, which are
``(1, samples)``), float in [-1, 1] at ``features.sample_rate``.
"""

from __future__ import annotations

from typing import Callable

import torch

from envsound.errors import ConfigError
from envsound.models.blocks import check_model_args


def check_waveform_args(name: str, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int,
                        filters: int | None, dropout: float | None, min_samples: int) -> None:
    """:func:`check_model_args`, plus: mono (``in_channels == n_mels == 1``) and ``n_frames >= min_samples``.

    Raises:
        ConfigError: naming ``name``, the bad value and, for a short window, the minimum in samples.
    """
    check_model_args(name, n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                     filters=filters, dropout=dropout)
    if in_channels != 1 or n_mels != 1:
        raise ConfigError(f"model {name!r} takes a mono waveform: in_channels and n_mels must be 1, got "
                          f"{in_channels} and {n_mels}; use features.kind=waveform")
    if n_frames < min_samples:
        raise ConfigError(f"model {name!r}: a window of {n_frames} samples is too short; the architecture needs "
                          f">= {min_samples} samples (raise features.window_seconds so that window_seconds x "
                          f"sample_rate >= {min_samples})")


def as_waveform_batch(name: str, x: torch.Tensor, *, min_samples: int) -> torch.Tensor:
    """``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, 1, samples)``.

    Raises:
        ConfigError: another layout, or fewer than ``min_samples`` samples (the message names the minimum).
    """
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != 1:
        raise ConfigError(f"model {name!r}: input of shape {tuple(x.shape)} is not a waveform batch (batch, samples) "
                          "or (batch, 1, samples); use features.kind=waveform")
    if x.shape[-1] < min_samples:
        raise ConfigError(f"model {name!r}: input of {x.shape[-1]} samples is too short; the architecture needs "
                          f">= {min_samples} samples")
    return x


def min_input_length(out_length: Callable[[int], int], *, upper: int = 1 << 24) -> int:
    """Smallest ``n >= 1`` with ``out_length(n) >= 1`` (``out_length`` non-decreasing), by bisection."""
    if out_length(upper) < 1:
        raise ConfigError(f"no input of up to {upper} samples is long enough for this architecture")
    low, high = 1, upper
    while low < high:
        mid = (low + high) // 2
        if out_length(mid) >= 1:
            high = mid
        else:
            low = mid + 1
    return low


def memory_format_of(module: torch.nn.Module) -> torch.memory_format:
    """``channels_last`` when the first 2-D convolution of ``module`` with more than one input channel has its weight
    in that format (after ``model.to(memory_format=torch.channels_last)``), else contiguous. Models that reshape a
    waveform into an image follow the format their 2-D weights were given."""
    for conv in module.modules():
        if isinstance(conv, torch.nn.Conv2d) and conv.in_channels > 1:
            weight = conv.weight
            if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
                return torch.channels_last
            break
    return torch.contiguous_format
