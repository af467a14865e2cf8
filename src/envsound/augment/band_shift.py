"""Random shifts of the mel filterbank's edges, applied to cached log-mel batches (EfficientAT's fmin/fmax jitter).

EfficientAT's training frontend rebuilds its mel banks for every batch with ``f_min`` drawn from
``[f_min, f_min + fmin_range)`` and ``f_max`` from ``f_max ± fmax_range / 2`` (10 Hz and 2 kHz), so its networks learn
not to depend on exactly where a band sits. envsound caches log-mels, so the shift is made on the cached bands: band
``m`` of a bank spanning ``[lo, hi]`` (mel scale) is centred at ``lo + (m + 1) (hi - lo) / (n_mels + 1)`` (Kaldi's and
Slaney's banks alike), which puts the shifted bank's band ``m`` at a fractional band index of the cached one; the
cached log-mel is interpolated linearly there and held at the edge band past either end. Where each band sits is
exact; its width is not rebuilt (it changes by at most the stretch, about 2 % for EfficientAT's ranges). Drawn per
example rather than per batch. Written here: no augmentation library works on a log-mel's band axis like this.
"""

from __future__ import annotations

import numpy as np
import torch

from envsound.config import FeatureConfig
from envsound.config.frontends import frontend_spec
from envsound.features.melbank import hz_to_mel


def mel_scale(frontend: str):
    """Hz -> mel of the bank ``frontend`` builds: Kaldi's ``1127 ln(1 + f / 700)`` (efficientat) or Slaney's
    (its :attr:`~envsound.config.frontends.Frontend.mel_scale`)."""
    if frontend_spec(frontend).mel_scale == "kaldi":
        return lambda hz: 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)
    return hz_to_mel


def band_positions(features: FeatureConfig, f_min: np.ndarray, f_max: np.ndarray) -> np.ndarray:
    """Where band ``m`` of a bank from ``f_min`` to ``f_max`` Hz (arrays ``(batch,)``) sits on the bank ``features``
    describes, in fractional band indices ``(batch, n_mels)`` float64 (the unshifted bank gives ``0 .. n_mels - 1``)."""
    mel = mel_scale(features.frontend)
    top = features.sample_rate / 2 if features.f_max is None else features.f_max
    low, high = mel(features.f_min), mel(top)
    step = (high - low) / (features.n_mels + 1)
    band = np.arange(features.n_mels, dtype=np.float64)[None, :]
    new_low, new_high = mel(f_min)[:, None], mel(f_max)[:, None]
    centres = new_low + (band + 1) * (new_high - new_low) / (features.n_mels + 1)
    return (centres - low) / step - 1


def shift_bands(x: torch.Tensor, features: FeatureConfig, *, f_min: np.ndarray, f_max: np.ndarray) -> torch.Tensor:
    """``x`` ``(batch, channels, n_mels, frames)``, cut by the bank ``features`` describes, as the bank from
    ``f_min[i]`` to ``f_max[i]`` Hz would cut example ``i`` (bands interpolated; see the module docstring)."""
    batch, _, n_mels, frames = x.shape
    positions = np.clip(band_positions(features, np.asarray(f_min), np.asarray(f_max)), 0, n_mels - 1)
    positions = torch.from_numpy(positions).to(x.device)
    below = positions.floor().long().clamp(max=max(n_mels - 2, 0))
    above = (below + 1).clamp(max=n_mels - 1)
    weight = (positions - below).to(x.dtype)[:, None, :, None]

    def take(index: torch.Tensor) -> torch.Tensor:
        return x.gather(2, index[:, None, :, None].expand(batch, x.shape[1], n_mels, frames))

    return take(below) * (1 - weight) + take(above) * weight


def band_shift(x: torch.Tensor, features: FeatureConfig, *, fmin_range: float, fmax_range: float) -> torch.Tensor:
    """``x`` ``(batch, channels, n_mels, frames)`` as if each example's bank had edges ``f_min + U[0, fmin_range)``
    and ``f_max + U[-fmax_range / 2, fmax_range / 2)`` Hz (``features.f_max`` unset = Nyquist); same shape and dtype.

    >>> x = torch.randn(4, 1, 128, 100)
    >>> band_shift(x, FeatureConfig(frontend="efficientat", f_max=15000.0), fmin_range=10, fmax_range=2000).shape
    torch.Size([4, 1, 128, 100])
    """
    top = features.sample_rate / 2 if features.f_max is None else features.f_max
    draws = torch.rand(2, len(x), dtype=torch.float64).numpy()
    f_min = features.f_min + draws[0] * fmin_range
    return shift_bands(x, features, f_min=f_min, f_max=np.maximum(top + (draws[1] - 0.5) * fmax_range, f_min + 1.0))
