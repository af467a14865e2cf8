"""Between-class (BC) mixing of waveforms (Tokozume, Ushiku and Harada, ICLR 2018): two sounds of different classes
mixed at a ratio as heard, the target that ratio; loudness measured as the authors' ``compute_gain`` does."""

from __future__ import annotations

import functools
import math

import torch

RMS_FRAME = 2048  # gain "rms": the frame envsound measured loudness over before the A-weighted gain


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
    """``(batch,)``: the loudest frame of each example of ``x`` ``(batch, ..., samples)``, in dB, hop half a frame,
    floored at ``floor_db``; a clip shorter than a frame is one frame.

    "a_weighting" is the BC authors' ``compute_gain``: frames of about 0.1 s (a power of two: 2,048 samples at
    16 kHz, 4,096 at 44.1 kHz), the A-weighted power spectrum of the Hann-windowed frame summed over bins. "rms" is
    what envsound used before checkpoint format 13: the mean square of 2,048-sample frames at any rate.
    """
    flat = x.reshape(len(x), -1).float()
    n_fft = RMS_FRAME if mode == "rms" else 2 ** round(math.log2(sample_rate * 0.1))
    n_fft = min(n_fft, flat.shape[1])
    frames = flat.unfold(1, n_fft, max(1, n_fft // 2))  # (batch, frames, n_fft)
    if mode == "rms":
        power = frames.pow(2).mean(dim=-1)
    else:
        window = torch.hann_window(n_fft, device=x.device)  # periodic, as numpy's hanning(n + 1)[:-1]
        spectrum = torch.fft.rfft(frames * window).abs().pow(2)
        power = (spectrum * a_weighting(n_fft, sample_rate=sample_rate).to(x.device)).sum(dim=-1)
    return 10.0 * torch.log10(power.amax(dim=1).clamp(min=10.0 ** (floor_db / 10)))


@functools.lru_cache(maxsize=8)
def a_weighting(n_fft: int, *, sample_rate: int, floor_db: float = -80.0) -> torch.Tensor:
    """``(n_fft // 2 + 1,)`` float32 power factors of the A-weighting curve (IEC 61672, +2 dB at 1 kHz normalisation
    as the BC authors' ``a_weight``) at the bins of an ``n_fft``-point rFFT, floored at ``floor_db``. Computed in
    float64 on the CPU (MPS has no float64), once per frame size and rate."""
    freq_sq = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64) ** 2
    freq_sq[0] = 1.0  # the DC bin: the floor, not log(0)
    weight_db = 2.0 + 20.0 * (2 * math.log10(12194.0) + 2 * torch.log10(freq_sq)
                              - torch.log10(freq_sq + 12194.0 ** 2) - torch.log10(freq_sq + 20.6 ** 2)
                              - 0.5 * torch.log10(freq_sq + 107.7 ** 2) - 0.5 * torch.log10(freq_sq + 737.9 ** 2))
    return (10.0 ** (weight_db.clamp(min=floor_db) / 10)).float()
