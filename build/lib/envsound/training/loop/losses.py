"""Per-clip training losses, one per label origin (``noisy`` config section): the task's own, soft bootstrapping
(``lsoft``) and generalised cross-entropy (``lq``), for single- and multi-label tasks.

Written by hand: torch has BCE and cross-entropy (used for ``default``) but neither noise-robust loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from envsound.config import NoisyConfig
from envsound.task import Task


def per_clip_loss(name: str, logits: torch.Tensor, targets: torch.Tensor, *, task: Task, beta: float = 0.7,
                  q: float = 0.7, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``(batch,)`` losses of logits ``(batch, C)`` against float targets ``(batch, C)`` (mixed rows allowed).

    ``default``: BCE averaged over classes (multi-label) or cross-entropy (single-label), as
    :meth:`Task.loss` computes them; ``lsoft``: the same against ``beta * targets + (1 - beta) * p`` with ``p`` the
    model's own (detached) probabilities; ``lq``: ``(1 - p_y ** q) / q`` where ``p_y`` is the probability of the
    labelled outcome (per class for multi-label, then averaged over classes; the target-weighted class probability
    for single-label). ``weight`` (per class) scales each class's term.

    >>> per_clip_loss("lq", logits, targets, task=Task("multi_label"), q=0.7).mean().backward()
    """
    logits = logits.float()
    probs = task.activation(logits)
    if name == "lsoft":
        targets = beta * targets + (1 - beta) * probs.detach()
    if task.multi_label:
        if name == "lq":
            agree = targets * probs + (1 - targets) * (1 - probs)  # probability given to the labelled outcome
            terms = (1 - agree.clamp_min(1e-7) ** q) / q
        else:
            terms = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        if weight is not None:
            terms = terms * weight[None, :]
        return terms.mean(dim=1)
    weights = targets if weight is None else targets * weight[None, :]
    if name == "lq":
        agree = (targets * probs).sum(dim=1)
        scale = weights.sum(dim=1) / targets.sum(dim=1).clamp_min(1e-7)  # the class weight of the labelled class
        return scale * (1 - agree.clamp_min(1e-7) ** q) / q
    return -(weights * F.log_softmax(logits, dim=1)).sum(dim=1)


def origin_loss(logits: torch.Tensor, targets: torch.Tensor, noisiness: torch.Tensor, *, task: Task,
                config: NoisyConfig, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The batch loss when clips carry an origin: each clip's ``curated_loss`` and ``noisy_loss`` blended by its
    ``noisiness`` (1 for a noisy clip, 0 for a curated one, in between for a mixup of the two), averaged."""
    curated = per_clip_loss(config.curated_loss, logits, targets, task=task, beta=config.beta, q=config.q,
                            weight=weight)
    if config.noisy_loss == config.curated_loss:
        return curated.mean()
    noisy = per_clip_loss(config.noisy_loss, logits, targets, task=task, beta=config.beta, q=config.q, weight=weight)
    return ((1 - noisiness) * curated + noisiness * noisy).mean()
