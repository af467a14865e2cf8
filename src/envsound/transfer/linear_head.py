"""The probe's head in numpy: a logistic regression (scikit-learn) on standardised embeddings, the standardisation
folded into the weights, so the head reads raw embeddings. Shared by the probe on a torch trunk
(:mod:`envsound.transfer.probe`) and the one on a frozen network (:mod:`envsound.transfer.frozen_probe`)."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from envsound.transfer.progress import CountLines

log = logging.getLogger(__name__)

ABSENT = -30.0  # the logit of a class no training clip has (never predicted), or of a tag every clip lacks


def fit_probe_head(embed: Callable[[np.ndarray], np.ndarray], features: Sequence[np.ndarray], targets: np.ndarray,
                   *, variants: Sequence[Sequence[np.ndarray]] = (), multi_label: bool, c: float,
                   trunk: str = "the trunk") -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_linear_head` on the embeddings of every evaluation window of every clip of ``features`` and of its
    copies ``variants[i]``, each row with its clip's target row of ``targets`` ``(n_clips, K)``.

    ``embed``: one clip's features -> its windows' embeddings ``(n_windows, d)``; ``trunk`` names it in the log.
    """
    start = time.perf_counter()
    rows, owners = [], []
    lines = CountLines(f"probe: {trunk}'s embeddings", len(features), unit="clips")
    for i, clip in enumerate(features):
        for version in [clip, *(variants[i] if i < len(variants) else [])]:
            embedded = embed(version)
            rows.append(embedded)
            owners += [i] * len(embedded)
        lines.step()
    x = np.concatenate(rows)
    head = fit_linear_head(x, targets[np.asarray(owners)], multi_label=multi_label, c=c)
    log.info("probe: logistic regression (C=%g) on %d embeddings (%d-d) of %d clips of %s, %.1f s", c, len(x),
             x.shape[1], len(features), trunk, time.perf_counter() - start)
    return head


def fit_linear_head(x: np.ndarray, y: np.ndarray, *, multi_label: bool, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(K, d)`` and bias ``(K,)`` of a logistic regression of ``y`` on ``x``, both float64, to apply to raw
    embeddings: ``logits = x @ weight.T + bias``.

    Args:
        x: ``(n, d)`` embeddings, one row per window (standardised here: fitted on these rows only).
        y: ``(n, K)`` targets of each row (one-hot, or multi-hot when ``multi_label``).
        multi_label: one binary regression per class (sigmoid); else one multinomial regression (softmax), a class
            with no row getting the logit :data:`ABSENT`.
        c: the inverse regularisation strength, > 0 (``transfer.probe_c``).

    >>> weight, bias = fit_linear_head(embeddings, targets, multi_label=False, c=1.0)
    """
    x = np.asarray(x, dtype=np.float64)
    n_classes = y.shape[1]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a unit that never fires (ReLU) carries nothing
    z = (x - mean) / scale
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.zeros(n_classes)
    if multi_label:
        for k in range(n_classes):
            weight[k], bias[k] = _binary(z, y[:, k], c)
    else:
        labels = y.argmax(axis=1)
        present = np.unique(labels)
        bias[:] = ABSENT
        if len(present) == 1:
            bias[present[0]] = 0.0
        else:
            lr = LogisticRegression(C=c, max_iter=2000).fit(z, labels)
            coef, intercept = lr.coef_, lr.intercept_
            if len(present) == 2:  # sklearn keeps one row for two classes: softmax([-a/2, a/2]) = sigmoid(a)
                coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
            weight[present], bias[present] = coef, intercept
    # the standardisation folded in: w (x - m) / s + b = (w / s) x + b - w.m / s
    return weight / scale, bias - (weight / scale) @ mean


def _binary(z: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    if y.min() == y.max():  # every clip has (or lacks) the tag: a constant logit
        return np.zeros(z.shape[1]), -ABSENT if y.max() > 0 else ABSENT
    lr = LogisticRegression(C=c, max_iter=2000).fit(z, y > 0.5)
    return lr.coef_[0], float(lr.intercept_[0])
