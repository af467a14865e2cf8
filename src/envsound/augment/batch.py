"""On-the-fly batch augmentation of windows: mixup (soft targets), time roll, mel band jitter and SpecAugment masks.

Log-mel batches are ``(batch, C, n_mels, frames)``, waveform batches ``(batch, 1, samples)``: time roll and mixup work
on both (along the last axis / on whole examples), band jitter and SpecAugment only on 4-D log-mel batches.

Applied in ``training_step`` to training batches only; never inside a model's ``forward``.
"""

from __future__ import annotations

import torch

from envsound.augment.band_shift import band_shift
from envsound.augment.between_class import between_class
from envsound.config import AugmentConfig, FeatureConfig


def mixup(x: torch.Tensor, y: torch.Tensor, *, alpha: float, per_example: bool = False
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each example with a random partner: ``lam * a + (1 - lam) * b`` for inputs and targets, lam ~ Beta(a, a),
    one for the batch, or one per example with ``per_example`` (MixMatch's mixing of labelled and unlabelled rows)."""
    if not per_example:
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        lam = max(lam, 1.0 - lam)  # the first example dominates, so a batch keeps its own identity
        perm = torch.randperm(len(x), device=x.device)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
    lam = torch.distributions.Beta(alpha, alpha).sample((len(x),)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(len(x), device=x.device)
    lam_x, lam_y = lam.view(-1, *([1] * (x.dim() - 1))).to(x.dtype), lam.view(-1, 1).to(y.dtype)
    return lam_x * x + (1 - lam_x) * x[perm], lam_y * y + (1 - lam_y) * y[perm]


def spec_augment(x: torch.Tensor, *, freq_mask: int = 16, time_mask: int = 32, n_masks: int = 2) -> torch.Tensor:
    """Masks (filled with the example's mean) over random mel bands and frames of ``(batch, C, n_mels, frames)``.

    Each of ``n_masks`` masks per axis is up to ``freq_mask`` bands / ``time_mask`` frames wide, and at most a quarter
    of the axis, so small inputs are not wiped out.
    """
    batch, _, n_mels, n_frames = x.shape
    freq_mask, time_mask = min(freq_mask, n_mels // 4), min(time_mask, n_frames // 4)
    x = x.clone()
    fill = x.mean(dim=(1, 2, 3), keepdim=True)
    for size, axis, length in ((freq_mask, 2, n_mels), (time_mask, 3, n_frames)):
        for _ in range(n_masks):
            width = torch.randint(0, min(size, length) + 1, (batch,))
            start = (torch.rand(batch) * (length - width + 1).float()).long()
            positions = torch.arange(length)
            mask = (positions[None] >= start[:, None]) & (positions[None] < (start + width)[:, None])
            shape = [batch, 1, 1, 1]
            shape[axis] = length
            x = torch.where(mask.view(shape).to(x.device), fill, x)
    return x


def time_roll(x: torch.Tensor) -> torch.Tensor:
    """Rotate each example of ``(batch, ..., T)`` by a random number of steps along the last axis (frames or samples;
    events move, content is kept)."""
    shifts = torch.randint(0, x.shape[-1], (len(x),))
    return torch.stack([torch.roll(example, int(shift), dims=-1) for example, shift in zip(x, shifts)])


def batch_augment(x: torch.Tensor, y: torch.Tensor, aug: AugmentConfig, *, features: FeatureConfig
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The on-the-fly augmentation ``aug`` asks for, in a fixed order: time roll, the mel bank's edge jitter and
    SpecAugment (4-D log-mel batches of the bank ``features`` describes; a waveform batch ``(batch, 1, samples)``
    skips them), then mixup, or between-class mixing of waveform batches at ``features.sample_rate`` when
    ``aug.between_class`` is on (its gain: ``aug.bc_gain``)."""
    if aug.time_roll:
        x = time_roll(x)
    if (aug.fmin_shift_hz or aug.fmax_shift_hz) and x.dim() == 4:
        x = band_shift(x, features, fmin_range=aug.fmin_shift_hz, fmax_range=aug.fmax_shift_hz)
    if aug.spec_augment and x.dim() == 4:
        x = spec_augment(x)
    if aug.between_class and x.dim() == 3:
        x, y = between_class(x, y, sample_rate=features.sample_rate, gain=aug.bc_gain)
    elif aug.mixup_alpha > 0:
        x, y = mixup(x, y, alpha=aug.mixup_alpha)
    return x, y
