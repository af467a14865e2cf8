import torch

from envsound.config import TrainConfig
from envsound.training.augment import batch_augment, mixup, spec_augment, time_roll


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
    ox, oy = batch_augment(x, y, TrainConfig(mixup_alpha=0, spec_augment=False, time_roll=False))
    assert torch.equal(ox, x) and torch.equal(oy, y)


def test_batch_augment_on_waveform_batches_skips_spec_augment():
    """(batch, 1, samples): time roll and mixup apply, SpecAugment (4-D only) does not, the shape is kept."""
    torch.manual_seed(3)
    x = torch.randn(6, 1, 800)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    ox, oy = batch_augment(x, y, TrainConfig(mixup_alpha=0, spec_augment=True, time_roll=True))
    assert ox.shape == x.shape and torch.equal(oy, y)
    assert torch.equal(ox.sort(dim=-1).values, x.sort(dim=-1).values)  # only rotated: no masked (mean-filled) runs
    mx, my = batch_augment(x, y, TrainConfig(mixup_alpha=0.4, spec_augment=True, time_roll=False))
    assert mx.shape == x.shape and torch.allclose(my.sum(dim=1), torch.ones(6))
