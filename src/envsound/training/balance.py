"""Class balance: a class-weighted loss or a class-balanced sampler, chosen by ``train.class_balance``.

Counts use one label per clip: its label, or for a multi-label clip the first of its labels in the dataset's label
order (the first 1 of its multi-hot row). So a multi-label set is weighted by that label rather than skipped.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

IMBALANCE_RATIO = 1.5  # auto turns balancing on when the largest class has more than this many times the smallest


def class_counts(targets: np.ndarray) -> np.ndarray:
    """``(n_classes,)`` clips per class by first label (argmax of a one-hot row, the first 1 of a multi-hot row)."""
    return np.bincount(targets.argmax(axis=1), minlength=targets.shape[1])


def choose_class_balance(targets: np.ndarray, mode: str) -> str:
    """``"loss"``, ``"sampler"`` or ``"off"`` for ``mode`` (``train.class_balance``) and the training targets.

    ``auto`` gives ``"loss"`` when max/min of the non-empty class counts exceeds :data:`IMBALANCE_RATIO`, else
    ``"off"`` (ESC-10 and ESC-50 are balanced). A weighted loss rather than the sampler: every clip is still seen
    once per epoch (a sampler drawing with replacement leaves out about a third of the majority clips each epoch).
    The choice is logged.
    """
    counts = class_counts(targets)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    chosen = mode if mode != "auto" else ("loss" if ratio > IMBALANCE_RATIO else "off")
    log.info("class balance: %s (train.class_balance=%s; largest/smallest class = %.2f, %d/%d clips)", chosen,
             mode, ratio, int(present.max()) if len(present) else 0, int(present.min()) if len(present) else 0)
    return chosen


def class_weights(targets: np.ndarray) -> np.ndarray:
    """``(n_classes,)`` float32 loss weights ``n_clips / (n_present_classes * count)``: 1.0 for a balanced set, the
    mean over the clips is 1, so the loss keeps its scale; a class with no training clip gets 0."""
    counts = class_counts(targets).astype(np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """``(n_clips,)`` float64 sampling weights ``1 / count(first label)`` for ``WeightedRandomSampler``: each class is
    drawn equally often."""
    counts = class_counts(targets)
    return 1.0 / counts[targets.argmax(axis=1)].astype(np.float64)
