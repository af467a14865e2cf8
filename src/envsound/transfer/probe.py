"""``transfer.mode=probe``: the source's trunk as a fixed feature extractor and a logistic regression as the head.

The embeddings (``network.embed``) of every evaluation window of the training clips and their offline copies are
computed once; scikit-learn's ``LogisticRegression`` is fitted on them (standardised), and its coefficients, with the
standardisation folded in, become the weights of the network's head. The result is an ordinary network state dict,
so the checkpoint is used by ``evaluate``, ``predict`` and an export like any other. Seconds, not minutes.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from envsound.config import Config
from envsound.models.clip import ClipModel, build_network, inference_runtime
from envsound.task import Task
from envsound.transfer.progress import CountLines
from envsound.transfer.source import InitPlan, apply_init, head_linear

log = logging.getLogger(__name__)


def fit_probe(plan: InitPlan, config: Config, features: Sequence[np.ndarray], targets: np.ndarray, *,
              variants: Sequence[Sequence[np.ndarray]] = (), task: Task | None = None
              ) -> dict[str, torch.Tensor]:
    """The state dict of a network whose trunk is ``plan``'s and whose head is a logistic regression fitted on the
    trunk's embeddings of ``features`` (and of ``variants[i]``, the copies of clip ``i``) with ``targets``
    ``(n_clips, n_classes)``.

    >>> state = fit_probe(plan, config, train_features, targets)
    """
    start = time.perf_counter()
    n_classes = targets.shape[1]
    network = build_network(config, n_classes)
    apply_init(network, plan)
    runtime = inference_runtime(config, lambda: build_network(config, n_classes), device=config.runtime.accelerator,
                                network=network, setting="runtime.accelerator")
    model = ClipModel(config=config, labels=[str(i) for i in range(n_classes)], task=task, network=network,
                      runtime=runtime)
    rows, owners = [], []
    lines = CountLines("probe: the trunk's embeddings", len(features), unit="clips")
    for i, clip in enumerate(features):
        for version in [clip, *(variants[i] if i < len(variants) else [])]:
            embedded = model.window_embeddings(model.clip_windows(version)[0])
            rows.append(embedded)
            owners += [i] * len(embedded)
        lines.step()
    x = np.concatenate(rows).astype(np.float64)
    y = targets[np.asarray(owners)]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a unit that never fires (ReLU) carries nothing
    z = (x - mean) / scale
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.zeros(n_classes)
    if task is not None and task.multi_label:
        for c in range(n_classes):
            weight[c], bias[c] = _binary(z, y[:, c], config.transfer.probe_c)
    else:
        labels = y.argmax(axis=1)
        present = np.unique(labels)
        bias[:] = -30.0  # a class with no training clip is never predicted
        if len(present) == 1:
            bias[present[0]] = 0.0
        else:
            lr = LogisticRegression(C=config.transfer.probe_c, max_iter=2000).fit(z, labels)
            coef, intercept = lr.coef_, lr.intercept_
            if len(present) == 2:  # sklearn keeps one row for two classes: softmax([-a/2, a/2]) = sigmoid(a)
                coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
            weight[present], bias[present] = coef, intercept
    linear = head_linear(network)
    with torch.no_grad():  # the standardisation folded into the layer: w (x - m) / s + b = (w / s) x + b - w.m / s
        linear.weight.copy_(torch.from_numpy(weight / scale))
        linear.bias.copy_(torch.from_numpy(bias - (weight / scale) @ mean))
    log.info("probe: logistic regression (C=%g) on %d embeddings (%d-d) of %d clips, %.1f s",
             config.transfer.probe_c, len(x), x.shape[1], len(features), time.perf_counter() - start)
    return {k: v.detach().contiguous() for k, v in network.state_dict().items()}


def _binary(z: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    if y.min() == y.max():  # every clip has (or lacks) the tag: a constant logit
        return np.zeros(z.shape[1]), 30.0 if y.max() > 0 else -30.0
    lr = LogisticRegression(C=c, max_iter=2000).fit(z, y > 0.5)
    return lr.coef_[0], float(lr.intercept_[0])
