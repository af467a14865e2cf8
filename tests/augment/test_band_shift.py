"""The mel bank's edge jitter on cached log-mels (EfficientAT's fmin/fmax augmentation)."""

import numpy as np
import pytest
import torch

from envsound.augment.band_shift import band_shift, shift_bands
from envsound.config import FeatureConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.features.efficientat import SETTINGS, EfficientATMel

EFFICIENTAT = FeatureConfig(**SETTINGS)


def _two_tones() -> torch.Tensor:
    t = np.arange(32000) / 32000
    noise = np.random.default_rng(0).standard_normal(32000)
    wave = 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.05 * np.sin(2 * np.pi * 9000 * t) + 0.01 * noise
    return torch.from_numpy(wave.astype(np.float32))[None]


def test_the_unshifted_bank_is_the_input():
    x = torch.randn(3, 1, 128, 20)
    same = shift_bands(x, EFFICIENTAT, f_min=np.zeros(3), f_max=np.full(3, 15000.0))
    assert torch.allclose(same, x, atol=1e-6)


@pytest.mark.parametrize("f_min,f_max", [(5.0, 14000.0), (9.0, 16000.0)])
def test_shifted_bands_approach_a_rebuilt_bank(f_min, f_max):
    """The cached log-mel moved to a bank from f_min to f_max is 4x closer to that bank rebuilt from the waveform than
    the unshifted log-mel is, and each tone peaks in the same band."""
    wave = _two_tones()
    cached = EfficientATMel.from_config(EFFICIENTAT)(wave)
    rebuilt = EfficientATMel(sample_rate=32000, n_fft=1024, win_length=800, hop_length=320, n_mels=128,
                             f_min=f_min, f_max=f_max)(wave)
    moved = shift_bands(cached, EFFICIENTAT, f_min=np.array([f_min]), f_max=np.array([f_max]))
    assert (moved - rebuilt).abs().mean() * 4 < (cached - rebuilt).abs().mean()
    spectrum = lambda x: x[0, 0].mean(dim=-1)  # noqa: E731
    assert spectrum(moved).argmax() == spectrum(rebuilt).argmax() != spectrum(cached).argmax()


def test_band_shift_draws_per_example_within_the_ranges():
    torch.manual_seed(0)
    ramp = torch.arange(128, dtype=torch.float32).view(1, 1, 128, 1).expand(6, 1, 128, 4).contiguous()
    out = band_shift(ramp, EFFICIENTAT, fmin_range=10, fmax_range=2000)
    assert out.shape == ramp.shape and out.dtype == ramp.dtype
    tops, bottoms = out[:, 0, -1, 0], out[:, 0, 0, 0]
    assert len(set(bottoms.tolist())) == 6  # each example its own bank
    # a ramp shows each band's new place: f_max 14-16 kHz moves the top band by at most about 2.4 bands (held at the
    # edge above 15 kHz), f_min 0-10 Hz the lowest by at most 0.6 (Kaldi's mel is 1.6 mel a hertz down there)
    assert ((tops - 127).abs() <= 2.5).all() and ((bottoms >= 0) & (bottoms <= 0.6)).all()


def test_band_shift_needs_log_mel_input():
    with pytest.raises(ConfigError, match="augment.fmax_shift_hz=2000.0 is out of range; valid: 0 unless features"):
        bare_config(overrides=["features.kind=waveform", "augment.fmax_shift_hz=2000"])
    with pytest.raises(ConfigError, match="augment.fmin_shift_hz=-1.0"):
        bare_config(overrides=["augment.fmin_shift_hz=-1"])
