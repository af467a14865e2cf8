"""On-the-fly batch augmentation of windows: mixup (soft targets), time roll and SpecAugment masks.

Log-mel batches are ``(batch, C, n_mels, frames)``, waveform batches ``(batch, 1, samples)``: time roll and mixup work
on both (along the last axis / on whole examples), SpecAugment only on 4-D log-mel batches.

Applied in ``training_step`` to training batches only; never inside a model's ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from envsound.config import AugmentConfig


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


def between_class(x: torch.Tensor, y: torch.Tensor, *, sample_rate: int, gain: str = "a_weighting"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Between-class mixing of waveforms ``(batch, 1, samples)`` (Tokozume et al., ICLR 2018): each example is mixed
    with a partner of another class (:func:`other_class_partners`) at a ratio ``r ~ U(0, 1)`` *as heard*, and the
    target is ``r * a + (1 - r) * b``.

    A plain ``r * a + (1 - r) * b`` of a loud and a quiet sound sounds like the loud one alone, so the waveform
    weight ``p`` corrects ``r`` by the two sounds' gains ``g`` (:func:`sound_gain_db`, ``gain`` "a_weighting" as the
    paper or "rms"): ``p = 1 / (1 + 10 ** ((g_a - g_b) / 20) * (1 - r) / r)``, and the mix is divided by
    ``sqrt(p**2 + (1 - p)**2)`` to keep its power.
    """
    perm = other_class_partners(y)
    r = torch.rand(len(x), device=x.device).clamp(1e-3, 1 - 1e-3)
    mixed = mix_between_class(x, x[perm], r, sample_rate=sample_rate, gain=gain)
    r = r.view(-1, 1).to(y.dtype)
    return mixed, r * y + (1 - r) * y[perm]


def other_class_partners(y: torch.Tensor) -> torch.Tensor:
    """``(batch,)`` indices: for each row of the targets ``y`` ``(batch, K)``, a row drawn uniformly among those whose
    target differs, as the authors' code draws its two sounds until their labels differ; a row whose target every
    other row shares gets a uniformly drawn partner (itself included)."""
    n = len(y)
    differs = (y[:, None, :] != y[None, :, :]).any(dim=-1)  # (batch, batch)
    scores = torch.rand(n, n, device=y.device).masked_fill(~differs, -1.0)  # a random order of the other-class rows
    partners = scores.argmax(dim=1)
    alone = ~differs.any(dim=1)
    return torch.where(alone, torch.randint(0, n, (n,), device=y.device), partners)


def mix_between_class(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor, *, sample_rate: int,
                      gain: str = "a_weighting") -> torch.Tensor:
    """The waveforms of :func:`between_class`: ``a`` and ``b`` ``(batch, 1, samples)`` mixed so that ``a`` is heard
    at ratio ``r`` (``(batch,)``, in (0, 1))."""
    gain_a = sound_gain_db(a.float(), sample_rate=sample_rate, mode=gain)
    gain_b = sound_gain_db(b.float(), sample_rate=sample_rate, mode=gain)
    p = 1.0 / (1.0 + 10.0 ** ((gain_a - gain_b) / 20) * (1 - r) / r)
    p = p.view(-1, *([1] * (a.dim() - 1)))
    return ((p * a + (1 - p) * b) / torch.sqrt(p ** 2 + (1 - p) ** 2)).to(a.dtype)


def sound_gain_db(x: torch.Tensor, *, sample_rate: int, mode: str = "a_weighting", floor_db: float = -80.0
                  ) -> torch.Tensor:
    """``(batch,)``: the loudest frame of each example of ``x`` ``(batch, ..., samples)``, in dB, as the BC authors'
    ``compute_gain`` measures it: frames of about 0.1 s (a power of two: 2,048 samples at 16 kHz, 4,096 at
    44.1 kHz), hop half a frame; "a_weighting" sums the A-weighted power spectrum of the Hann-windowed frame, "rms"
    takes the mean square; floored at ``floor_db``. A clip shorter than a frame is one frame."""
    flat = x.reshape(len(x), -1).float()
    n_fft = min(2 ** round(math.log2(sample_rate * 0.1)), flat.shape[1])
    frames = flat.unfold(1, n_fft, max(1, n_fft // 2))  # (batch, frames, n_fft)
    if mode == "rms":
        power = frames.pow(2).mean(dim=-1)
    else:
        window = torch.hann_window(n_fft, device=x.device)  # periodic, as numpy's hanning(n + 1)[:-1]
        spectrum = torch.fft.rfft(frames * window).abs().pow(2)
        power = (spectrum * a_weighting(n_fft, sample_rate=sample_rate, device=x.device)).sum(dim=-1)
    return 10.0 * torch.log10(power.amax(dim=1).clamp(min=10.0 ** (floor_db / 10)))


def a_weighting(n_fft: int, *, sample_rate: int, floor_db: float = -80.0, device=None) -> torch.Tensor:
    """``(n_fft // 2 + 1,)`` power factors of the A-weighting curve (IEC 61672, +2 dB at 1 kHz normalisation as the
    BC authors' ``a_weight``) at the bins of an ``n_fft``-point rFFT, floored at ``floor_db``."""
    freq_sq = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, device=device, dtype=torch.float64) ** 2
    freq_sq[0] = 1.0  # the DC bin: the floor, not log(0)
    weight_db = 2.0 + 20.0 * (2 * math.log10(12194.0) + 2 * torch.log10(freq_sq)
                              - torch.log10(freq_sq + 12194.0 ** 2) - torch.log10(freq_sq + 20.6 ** 2)
                              - 0.5 * torch.log10(freq_sq + 107.7 ** 2) - 0.5 * torch.log10(freq_sq + 737.9 ** 2))
    return (10.0 ** (weight_db.clamp(min=floor_db) / 10)).float()


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


def batch_augment(x: torch.Tensor, y: torch.Tensor, aug: AugmentConfig, *, sample_rate: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The on-the-fly augmentation ``aug`` asks for, in a fixed order: time roll, SpecAugment (4-D log-mel batches
    only; a waveform batch ``(batch, 1, samples)`` skips it), then mixup, or between-class mixing of waveform batches
    at ``sample_rate`` when ``aug.between_class`` is on (its gain: ``aug.bc_gain``)."""
    if aug.time_roll:
        x = time_roll(x)
    if aug.spec_augment and x.dim() == 4:
        x = spec_augment(x)
    if aug.between_class and x.dim() == 3:
        x, y = between_class(x, y, sample_rate=sample_rate, gain=aug.bc_gain)
    elif aug.mixup_alpha > 0:
        x, y = mixup(x, y, alpha=aug.mixup_alpha)
    return x, y


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
