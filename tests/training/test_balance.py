"""Class balance: the auto decision, loss weights, sampler weights, and the weighted loss in the module."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from envsound.config.files import bare_config
from envsound.training.loop.balance import choose_class_balance, class_weights, sample_weights
from envsound.training.loop.module import ClassifierModule

from conftest import TINY_OVERRIDES


def one_hot(counts: list[int]) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.eye(len(counts), dtype=np.float32)[labels]


def test_auto_is_off_for_balanced_and_loss_for_imbalanced_sets(caplog):
    with caplog.at_level(logging.INFO, logger="envsound"):
        assert choose_class_balance(one_hot([32] * 10), "auto") == "off"  # ESC-10: 32 training clips per class
        assert choose_class_balance(one_hot([30, 25, 21]), "auto") == "off"  # 1.43 <= 1.5
        assert choose_class_balance(one_hot([100, 40, 60]), "auto") == "loss"  # 2.5
    assert "class balance: off (train.class_balance=auto; largest/smallest class = 1.00" in caplog.text
    assert "class balance: loss (train.class_balance=auto; largest/smallest class = 2.50, 100/40 clips)" in caplog.text
    for mode in ("sampler", "loss", "off"):
        assert choose_class_balance(one_hot([100, 40]), mode) == mode
        assert choose_class_balance(one_hot([10, 10]), mode) == mode


def test_multi_label_sets_are_weighted_by_every_label():
    targets = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    assert choose_class_balance(targets, "auto") == "loss"  # label counts 4, 2, 1 -> 4/1
    np.testing.assert_allclose(class_weights(targets), [7 / 12, 7 / 6, 7 / 3])  # was [5/12, 5/3, 0] by first label
    per_clip = sample_weights(targets)
    np.testing.assert_allclose(per_clip, [(1 / 4 + 1 / 2) / 2, (1 / 4 + 1) / 2, 1 / 4, 1 / 4, 1 / 2])


def test_weights_keep_the_loss_scale_and_equalise_sampling():
    targets = one_hot([60, 20, 20])
    weights = class_weights(targets)
    np.testing.assert_allclose(weights, [1 / 1.8, 1 / 0.6, 1 / 0.6], rtol=1e-6)
    assert weights[targets.argmax(1)].mean() == pytest.approx(1.0)  # mean weight over the clips is 1
    np.testing.assert_allclose(class_weights(one_hot([5, 5])), [1.0, 1.0])
    per_clip = sample_weights(targets)
    per_class = np.bincount(targets.argmax(1), weights=per_clip)
    np.testing.assert_allclose(per_class, [1.0, 1.0, 1.0])  # every class drawn equally often


def test_module_loss_uses_the_class_weights():
    config = bare_config(overrides=TINY_OVERRIDES)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    plain = ClassifierModule.from_config(config, 2).loss(logits, targets)
    weighted = ClassifierModule.from_config(config, 2, class_weights=torch.tensor([0.5, 2.0])).loss(logits, targets)
    manual = torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor([0.5, 2.0]))
    assert torch.isclose(weighted, manual) and not torch.isclose(weighted, plain)
    assert "class_weights" not in ClassifierModule.from_config(config, 2, class_weights=torch.ones(2)).state_dict()
