"""The task seam's decisions: per-class thresholds fitted on held-out clips, and how a checkpoint keeps them."""

import numpy as np
import pytest

from envsound.errors import CheckpointError
from envsound.task import MULTI_LABEL, Task, fit_class_thresholds


def test_fitted_thresholds_separate_each_class_and_keep_the_default_without_positives():
    targets = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]])
    probs = np.array([[0.30, 0.80, 0.1], [0.25, 0.70, 0.2], [0.10, 0.95, 0.3], [0.05, 0.90, 0.4], [0.02, 0.60, 0.5]])
    thresholds = fit_class_thresholds(targets, probs, default=0.4)
    assert thresholds[0] == pytest.approx(0.25)  # a low-scored but separable class: 0.5 would miss both positives
    assert thresholds[1] == pytest.approx(0.90)  # a class scored high everywhere: only its positives pass
    assert thresholds[2] == 0.4  # no positive clip: nothing to fit
    task = Task(MULTI_LABEL, class_thresholds=thresholds)
    assert (task.decide(probs)[:, :2] == targets[:, :2].astype(bool)).all()
    assert not Task(MULTI_LABEL).decide(probs)[:2, 0].any()  # the global 0.5 misses them


def test_class_thresholds_survive_the_checkpoint_dict_and_must_match_the_classes():
    task = Task(MULTI_LABEL, class_thresholds=(0.2, 0.7))
    assert Task.from_dict(task.to_dict()) == task
    with pytest.raises(CheckpointError, match="2 class thresholds for 3 classes"):
        task.thresholds(3)
