"""``transfer.mode=probe``: the source's trunk as a fixed feature extractor and a logistic regression as the head.

The embeddings (``network.embed``) of every evaluation window of the training clips and their offline copies are
computed once; scikit-learn's ``LogisticRegression`` is fitted on them (standardised), and its coefficients, with the
standardisation folded in (:mod:`envsound.transfer.linear_head`), become the weights of the network's head. The
result is an ordinary network state dict, so the checkpoint is used by ``evaluate``, ``predict`` and an export like
any other. Seconds, not minutes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from envsound.config import Config
from envsound.models.clip import ClipModel, build_network, inference_runtime
from envsound.task import Task
from envsound.transfer.linear_head import fit_probe_head
from envsound.transfer.source import InitPlan, apply_init, head_linear


def fit_probe(plan: InitPlan, config: Config, features: Sequence[np.ndarray], targets: np.ndarray, *,
              variants: Sequence[Sequence[np.ndarray]] = (), task: Task | None = None
              ) -> dict[str, torch.Tensor]:
    """The state dict of a network whose trunk is ``plan``'s and whose head is a logistic regression fitted on the
    trunk's embeddings of ``features`` (and of ``variants[i]``, the copies of clip ``i``) with ``targets``
    ``(n_clips, n_classes)``.

    >>> state = fit_probe(plan, config, train_features, targets)
    """
    n_classes = targets.shape[1]
    network = build_network(config, n_classes)
    apply_init(network, plan)
    runtime = inference_runtime(config, lambda: build_network(config, n_classes), device=config.runtime.accelerator,
                                network=network, setting="runtime.accelerator")
    model = ClipModel(config=config, labels=[str(i) for i in range(n_classes)], task=task, network=network,
                      runtime=runtime)
    weight, bias = fit_probe_head(lambda clip: model.window_embeddings(model.clip_windows(clip)[0]), features,
                                  targets, variants=variants, multi_label=task is not None and task.multi_label,
                                  c=config.transfer.probe_c)
    linear = head_linear(network)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    return {k: v.detach().contiguous() for k, v in network.state_dict().items()}

