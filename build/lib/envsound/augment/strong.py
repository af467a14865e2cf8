"""The strong views of semi-supervised methods (FixMatch, ReMixMatch) on log-mel windows: time roll, speed and
pitch, SpecAugment masks, gain and noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from envsound.augment.batch import spec_augment, time_roll


def gain_and_noise(x: torch.Tensor, *, gain_db: float, snr_db: float) -> torch.Tensor:
    """A random gain and random noise on dB log-mel ``(batch, C, n_mels, frames)`` (the strong view's photometrics).

    Each example is shifted by a gain uniform in ``[-gain_db, gain_db]`` dB, then noise is added *in the power
    domain* at a level uniform between ``snr_db`` and ``2 * snr_db`` below the example's peak (exponentially
    distributed power per bin, as white noise's periodogram is), so quiet parts are buried and loud events stay.
    Returns a new tensor of the same shape in dB.
    """
    shape = (len(x),) + (1,) * (x.dim() - 1)
    x = x.float() + (torch.rand(shape, device=x.device) * 2 - 1) * gain_db
    peak = x.amax(dim=tuple(range(1, x.dim())), keepdim=True)
    level_db = peak - snr_db * (1 + torch.rand(shape, device=x.device))
    noise_power = 10.0 ** (level_db / 10) * torch.empty_like(x).exponential_()
    return 10.0 * torch.log10(10.0 ** (x / 10) + noise_power)


def speed_and_pitch(x: torch.Tensor, *, max_speed: float, max_shift_bins: float) -> torch.Tensor:
    """A random speed change and pitch shift of log-mel windows ``(batch, C, n_mels, frames)``, by resampling.

    Each example's time axis is scaled by a factor log-uniform in ``[1 / max_speed, max_speed]`` (above 1 the sound
    plays faster: its events get shorter) and its mel axis shifted by up to ``max_shift_bins`` bands either way (a
    shift along the mel scale, roughly logarithmic above 1 kHz, is a pitch shift there). Edges are reflected.
    Returns a new float tensor of the same shape.
    """
    batch, _, n_mels, _ = x.shape
    log_speed = torch.empty(batch, device=x.device).uniform_(-1, 1) * torch.log(torch.tensor(max_speed))
    shift = torch.empty(batch, device=x.device).uniform_(-1, 1) * max_shift_bins * 2 / n_mels  # grid units: 2 / bins
    theta = torch.zeros(batch, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 1, 2] = log_speed.exp(), 1.0, shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def strong_view(x: torch.Tensor, *, gain_db: float, snr_db: float, max_speed: float = 1.0,
                max_shift_bins: float = 0.0) -> torch.Tensor:
    """FixMatch's strong augmentation of log-mel windows: time roll, speed change and pitch shift (when
    ``max_speed`` > 1 or ``max_shift_bins`` > 0: :func:`speed_and_pitch`), SpecAugment masks, then gain and noise.

    No mixup (a pseudo-label is one class). ``(batch, C, n_mels, frames)`` in, same shape out.
    """
    x = time_roll(x)
    if max_speed > 1 or max_shift_bins > 0:
        x = speed_and_pitch(x, max_speed=max_speed, max_shift_bins=max_shift_bins)
    return gain_and_noise(spec_augment(x), gain_db=gain_db, snr_db=snr_db)
