"""Class balance: a class-weighted loss or a class-balanced sampler, chosen by ``train.class_balance``.

Counts are label counts: clips per class for a single-label set, clips carrying the label for a multi-label set
(the column sums of the target rows in both cases). A multi-label clip is sampled by the mean rarity of its labels.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

IMBALANCE_RATIO = 1.5  # auto turns balancing on when the largest class has more than this many times the smallest


def class_counts(targets: np.ndarray) -> np.ndarray:
    """``(n_classes,)`` clips carrying each label (column sums of one-hot or multi-hot rows)."""
    return np.rint((np.asarray(targets) > 0.5).sum(axis=0)).astype(np.int64)


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
    """``(n_clips,)`` float64 sampling weights for ``WeightedRandomSampler``: ``1 / count(label)`` (each class drawn
    equally often), for a multi-label clip the mean of that over its labels; a clip without a label gets the
    smallest weight of the others."""
    hot = np.asarray(targets) > 0.5
    inverse = 1.0 / np.maximum(class_counts(targets), 1).astype(np.float64)
    n_labels = hot.sum(axis=1)
    weights = (hot * inverse[None, :]).sum(axis=1) / np.maximum(n_labels, 1)
    if (n_labels == 0).any():
        weights[n_labels == 0] = weights[n_labels > 0].min() if (n_labels > 0).any() else 1.0
    return weights
