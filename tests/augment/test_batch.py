import math

import numpy as np
import pytest
import torch

from envsound.augment.batch import batch_augment, mixup, spec_augment, time_roll
from envsound.augment.between_class import between_class, mix_between_class, other_class_partners, sound_gain_db
from envsound.config import AugmentConfig, FeatureConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.registry import model_preset

AT_16K = FeatureConfig(sample_rate=16000)


def test_mixup_keeps_targets_a_distribution_and_favours_the_original():
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 6)
    y = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])]
    mx, my = mixup(x, y, alpha=0.4)
    assert torch.allclose(my.sum(dim=1), torch.ones(8))
    assert (my.max(dim=1).values >= 0.5 - 1e-6).all()
    assert not torch.equal(mx, x)


def test_spec_augment_masks_bands_and_frames_only():
    torch.manual_seed(1)
    x = torch.randn(4, 1, 32, 50)
    out = spec_augment(x, freq_mask=8, time_mask=10)
    assert out.shape == x.shape
    changed = out != x
    assert changed.any()
    for example in range(4):  # every changed cell lies in a fully masked row or column
        cells = changed[example, 0]
        rows, cols = cells.all(dim=1), cells.all(dim=0)
        assert (cells <= (rows[:, None] | cols[None, :])).all()


def test_time_roll_moves_content_without_changing_it():
    torch.manual_seed(2)
    x = torch.arange(3 * 10, dtype=torch.float32).reshape(3, 1, 1, 10)
    out = time_roll(x)
    assert torch.equal(out.sort(dim=-1).values, x.sort(dim=-1).values)


def test_batch_augment_is_identity_when_everything_is_off():
    x, y = torch.randn(2, 1, 8, 8), torch.eye(2)
    ox, oy = batch_augment(x, y, AugmentConfig(mixup_alpha=0, spec_augment=False, time_roll=False), features=AT_16K)
    assert torch.equal(ox, x) and torch.equal(oy, y)


def test_batch_augment_on_waveform_batches_skips_spec_augment():
    """(batch, 1, samples): time roll and mixup apply, SpecAugment (4-D only) does not, the shape is kept."""
    torch.manual_seed(3)
    x = torch.randn(6, 1, 800)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    ox, oy = batch_augment(x, y, AugmentConfig(mixup_alpha=0, spec_augment=True, time_roll=True), features=AT_16K)
    assert ox.shape == x.shape and torch.equal(oy, y)
    assert torch.equal(ox.sort(dim=-1).values, x.sort(dim=-1).values)  # only rotated: no masked (mean-filled) runs
    mx, my = batch_augment(x, y, AugmentConfig(mixup_alpha=0.4, spec_augment=True, time_roll=False),
                           features=AT_16K)
    assert mx.shape == x.shape and torch.allclose(my.sum(dim=1), torch.ones(6))


def test_between_class_mix_is_heard_at_its_ratio_whatever_the_loudness():
    """A sound 20 dB quieter than its partner gets 10x the waveform weight at r = 0.5, so both are equally loud."""
    t = torch.arange(8000) / 8000
    loud = torch.sin(2 * math.pi * 500 * t).view(1, 1, -1)  # whole periods in a 1,024-sample frame
    quiet = 0.1 * torch.sin(2 * math.pi * 1000 * t).view(1, 1, -1)
    mixed = mix_between_class(loud, quiet, torch.tensor([0.5]), sample_rate=8000, gain="rms")[0, 0]
    basis = torch.stack([loud[0, 0], quiet[0, 0]], dim=1)
    weights = torch.linalg.lstsq(basis, mixed[:, None]).solution[:, 0]
    amplitude_loud, amplitude_quiet = weights[0].item(), 0.1 * weights[1].item()
    assert amplitude_loud == pytest.approx(amplitude_quiet, rel=1e-3)
    same = mix_between_class(loud, loud, torch.tensor([0.8]), sample_rate=8000)  # equal gains: p = r, power kept
    assert torch.allclose(same, loud / math.sqrt(0.8 ** 2 + 0.2 ** 2), atol=1e-5)


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_between_class_gain_is_a_weighted_as_in_the_paper(sample_rate):
    """The BC paper weighs loudness with the A curve: a 100 Hz tone is 19.1 dB below a 1 kHz tone of the same
    amplitude (IEC 61672), and at r = 0.5 gets ~9x the waveform weight; plain RMS hears them equal."""
    t = torch.arange(sample_rate) / sample_rate
    low, mid = (torch.sin(2 * math.pi * f * t).view(1, 1, -1) for f in (100.0, 1000.0))
    difference = (sound_gain_db(low, sample_rate=sample_rate) - sound_gain_db(mid, sample_rate=sample_rate)).item()
    assert difference == pytest.approx(-19.1, abs=0.5)
    rms = sound_gain_db(low, sample_rate=sample_rate, mode="rms") - sound_gain_db(mid, sample_rate=sample_rate,
                                                                               mode="rms")
    assert abs(rms.item()) < 0.2  # a 2,048-sample frame holds 4.6 periods of 100 Hz at 44.1 kHz
    assert sound_gain_db(torch.zeros(1, 1, sample_rate), sample_rate=sample_rate).item() == pytest.approx(-80.0)
    mixed = mix_between_class(low, mid, torch.tensor([0.5]), sample_rate=sample_rate)[0, 0]
    weights = torch.linalg.lstsq(torch.stack([low[0, 0], mid[0, 0]], dim=1), mixed[:, None]).solution[:, 0]
    assert (weights[0] / weights[1]).item() == pytest.approx(10 ** (19.1 / 20), rel=0.06)


def _authors_compute_gain_db(sound: np.ndarray, fs: int) -> float:
    """bc_learning_sound's utils.compute_gain (A_weighting) and mix's max over frames, restated in numpy."""
    n_fft = {16000: 2048, 44100: 4096}[fs]
    freq_sq = np.linspace(0, fs // 2, n_fft // 2 + 1) ** 2
    freq_sq[0] = 1.0
    weight = np.maximum(2.0 + 20.0 * (2 * np.log10(12194) + 2 * np.log10(freq_sq) - np.log10(freq_sq + 12194 ** 2)
                                      - np.log10(freq_sq + 20.6 ** 2) - 0.5 * np.log10(freq_sq + 107.7 ** 2)
                                      - 0.5 * np.log10(freq_sq + 737.9 ** 2)), -80.0)
    gains = [np.sum(np.abs(np.fft.rfft(np.hanning(n_fft + 1)[:-1] * sound[i:i + n_fft])) ** 2 * 10 ** (weight / 10))
             for i in range(0, len(sound) - n_fft + 1, n_fft // 2)]
    return float(np.max(10 * np.log10(np.maximum(gains, 10 ** (-80.0 / 10)))))


@pytest.mark.parametrize("fs", [16000, 44100])
def test_the_a_weighted_gain_is_the_authors(fs):
    rng = np.random.default_rng(0)
    sounds = rng.normal(size=(3, fs)) * np.array([[1.0], [0.01], [1e-6]])  # loud, quiet, below the floor
    sounds[:, : fs // 2] *= np.linspace(0, 1, fs // 2)  # a fade-in: the loudest frame is not the first
    ours = sound_gain_db(torch.from_numpy(sounds).float()[:, None], sample_rate=fs)
    assert ours.tolist() == pytest.approx([_authors_compute_gain_db(s, fs) for s in sounds], abs=1e-3)


def test_between_class_targets_are_the_mixing_ratio():
    torch.manual_seed(4)
    x = torch.randn(6, 1, 4096)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    mx, my = between_class(x, y, sample_rate=16000)
    assert mx.shape == x.shape and torch.allclose(my.sum(dim=1), torch.ones(6))
    assert not torch.equal(mx, x)
    bx, by = batch_augment(x, y, AugmentConfig(mixup_alpha=0, between_class=True, spec_augment=False, time_roll=False),
                           features=AT_16K)
    assert not torch.equal(by, y)  # between-class mixing runs even with mixup off
    lx, ly = batch_augment(torch.randn(2, 1, 8, 8), torch.eye(2), AugmentConfig(mixup_alpha=0, between_class=True,
                                                                              spec_augment=False, time_roll=False),
                           features=AT_16K)
    assert torch.equal(ly, torch.eye(2))  # log-mel batches are never between-class mixed


def test_between_class_needs_a_waveform_model():
    with pytest.raises(ConfigError, match="augment.between_class=True is out of range; valid: false unless "):
        bare_config(overrides=["augment.between_class=true"])
    config = bare_config(preset=model_preset("envnet2"), model="envnet2", overrides=["augment.between_class=true"])
    assert config.augment.between_class


def test_between_class_partners_are_of_another_class():
    """EnvNet-v2's BC learning mixes two sounds of different classes (the authors' code redraws until they differ)."""
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2])  # most rows share a class: a random partner would often too
    y = torch.eye(3)[labels]
    drawn = torch.stack([other_class_partners(y) for _ in range(200)])
    assert (labels[drawn] != labels).all()
    assert set(drawn[:, 0].tolist()) == {6, 7}  # uniform among the other-class rows: both are drawn
    one_class = torch.eye(3)[torch.zeros(4, dtype=torch.long)]
    assert other_class_partners(one_class).shape == (4,)  # nobody differs: any partner, no error
    multi = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # multi-hot: a different label set
    assert other_class_partners(multi).tolist()[:2] == [2, 2]
