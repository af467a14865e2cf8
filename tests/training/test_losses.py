"""Noise-robust losses per label origin, and drawing curated and noisy clips at a set rate."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from envsound.config import Config
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.task import Task
from envsound.training.loop.clips import ClipSet, FitData
from envsound.training.loop.data import ClipDataModule, origin_sampling
from envsound.training.loop.losses import origin_loss, per_clip_loss

MULTI, SINGLE = Task("multi_label"), Task("single_label")


def batch(seed: int = 0, n: int = 6, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    multi = (torch.rand(n, c, generator=g) < 0.4).float()
    single = torch.nn.functional.one_hot(torch.randint(0, c, (n,), generator=g), c).float()
    return logits, multi, single


def test_default_and_lsoft_with_beta_one_are_the_task_loss():
    logits, multi, single = batch()
    for task, targets in ((MULTI, multi), (SINGLE, single)):
        expected = task.loss(logits, targets)
        assert per_clip_loss("default", logits, targets, task=task).mean() == pytest.approx(float(expected), rel=1e-6)
        assert per_clip_loss("lsoft", logits, targets, task=task, beta=1.0).mean() == pytest.approx(float(expected),
                                                                                                     rel=1e-6)


def test_lq_by_hand_and_bounded_where_cross_entropy_is_not():
    logits = torch.tensor([[2.0, -1.0]])
    p = torch.sigmoid(logits)[0]
    # labels (1, 1): the second is "wrong" for a confident model
    expected = ((1 - p[0] ** 0.5) / 0.5 + (1 - p[1] ** 0.5) / 0.5) / 2
    assert float(per_clip_loss("lq", logits, torch.tensor([[1.0, 1.0]]), task=MULTI, q=0.5)) == pytest.approx(
        float(expected), rel=1e-6)
    p_single = torch.softmax(logits, dim=1)[0, 1]
    assert float(per_clip_loss("lq", logits, torch.tensor([[0.0, 1.0]]), task=SINGLE, q=1.0)) == pytest.approx(
        float(1 - p_single), rel=1e-6)
    # a label the model is certain is wrong: BCE grows without bound, lq stays under 1/q
    certain = torch.tensor([[40.0, -40.0]])
    wrong = torch.tensor([[0.0, 1.0]])
    assert float(per_clip_loss("default", certain, wrong, task=MULTI)) > 20
    assert float(per_clip_loss("lq", certain, wrong, task=MULTI, q=0.7)) <= 1 / 0.7


def test_lsoft_lets_a_confident_prediction_outvote_a_label():
    """The gradient of lsoft toward a label the model confidently rejects is a fraction beta of BCE's."""
    logits = torch.tensor([[6.0, -6.0]], requires_grad=True)
    wrong = torch.tensor([[0.0, 1.0]])
    grads = {}
    for name in ("default", "lsoft"):
        logits.grad = None
        per_clip_loss(name, logits, wrong, task=MULTI, beta=0.7).sum().backward()
        grads[name] = logits.grad.clone()
    assert torch.allclose(grads["lsoft"], grads["default"] * 0.7, atol=1e-3)


def test_origin_loss_blends_by_noisiness():
    logits, multi, _ = batch(1)
    config = dataclasses.replace(Config().noisy, curated_loss="default", noisy_loss="lq")
    curated = per_clip_loss("default", logits, multi, task=MULTI)
    noisy = per_clip_loss("lq", logits, multi, task=MULTI, q=config.q)
    mix = torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0, 0.25])
    expected = ((1 - mix) * curated + mix * noisy).mean()
    assert float(origin_loss(logits, multi, mix, task=MULTI, config=config)) == pytest.approx(float(expected))


def test_noisy_share_sets_how_often_noisy_clips_are_drawn():
    config = bare_config(overrides=["noisy.noisy_share=0.25", "noisy.epoch_clips=400"])
    noisiness = np.array([0.0] * 10 + [1.0] * 90, dtype=np.float32)  # 90 % of the clips are noisy
    weights, epoch = origin_sampling(config, None, noisiness)
    assert epoch == 400 and weights[noisiness > 0].sum() == pytest.approx(0.25)
    balanced = np.linspace(1, 2, 100)
    weights, _ = origin_sampling(config, balanced, noisiness)  # class-balance weights kept within each origin
    assert weights[noisiness > 0].sum() == pytest.approx(0.25)
    assert weights[11] / weights[10] == pytest.approx(balanced[11] / balanced[10])
    with pytest.raises(ConfigError, match="all of one origin"):
        origin_sampling(config, None, np.zeros(5, dtype=np.float32))
    assert origin_sampling(bare_config(), None, noisiness) == (None, 0)


def test_noisy_clips_reach_the_loss_with_their_noisiness_and_the_epoch_size_is_set():
    config = bare_config(overrides=["noisy.noisy_share=0.5", "noisy.epoch_clips=64", "train.batch_size=16",
                                    "features.window_seconds=0.5"])
    feats = [np.zeros((1, config.features.n_mels, 200), dtype=np.float32) for _ in range(20)]
    targets = np.eye(4, dtype=np.float32)[np.arange(20) % 4]
    noisiness = (np.arange(20) >= 15).astype(np.float32)  # 5 noisy clips of 20
    data = ClipDataModule(config, FitData(ClipSet(feats, targets, noisiness=noisiness)))
    loader = data.train_dataloader()
    torch.manual_seed(0)  # the sampler draws from torch's generator
    drawn = torch.cat([b[2] for b in loader])
    assert len(drawn) == 64 and len(next(iter(loader))) == 3
    assert 0.3 < float(drawn.mean()) < 0.7  # half the windows from a quarter of the clips (expected 0.5)
    assert math.isclose(float(np.asarray(data.sampler_weights)[noisiness > 0].sum()), 0.5)


def test_the_module_loss_needs_an_origin_only_where_the_origins_losses_differ():
    from envsound.training.loop.module import ClassifierModule

    logits, _, single = batch(2)
    noisiness = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    smoothed = bare_config(overrides=("model.filters=4", "train.label_smoothing=0.1"))
    # one loss for both origins: the task's, label smoothing included, whatever the clips' origins
    expected = SINGLE.loss(logits, single, label_smoothing=0.1)
    assert float(ClassifierModule.from_config(smoothed, 4).loss(
        logits, single, noisiness)) == pytest.approx(float(expected))
    robust = bare_config(overrides=("model.filters=4", "noisy.noisy_loss=lq"))
    blended = origin_loss(logits, single, noisiness, task=SINGLE, config=robust.noisy)
    robust_loss = ClassifierModule.from_config(robust, 4).loss(logits, single, noisiness)
    assert float(robust_loss) == pytest.approx(float(blended))
    assert float(blended) != pytest.approx(float(SINGLE.loss(logits, single)))
