"""The unlabelled terms of the semi-supervised methods, as functions of logits and probabilities (no network).

Shapes: ``(batch, K)`` logits / probabilities over K classes; targets are float vectors (one-hot, soft or multi-hot).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pseudo_label_loss(weak_probs: torch.Tensor, strong_logits: torch.Tensor, *, threshold: float | torch.Tensor,
                      multi_label: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabelled loss and its mask.

    Single-label: where the weak view's top probability is at least ``threshold`` (0 < t <= 1; a float, or a
    ``(batch,)`` tensor of one threshold per window, as :class:`SelfAdaptiveThreshold` gives), its argmax is a hard
    pseudo-label for the strong view (cross-entropy); the loss is averaged over *all* windows (masked ones count 0),
    as in the paper, so it grows as the mask opens. Multi-label: each class on its own, 1 where the weak sigmoid is
    at least ``threshold``, 0 where it is at most ``1 - threshold``, no target in between (BCE).

    Returns (scalar loss, mask ``(batch,)`` or ``(batch, K)`` of 0/1 floats: what got a pseudo-label).
    """
    if multi_label:
        mask = ((weak_probs >= threshold) | (weak_probs <= 1 - threshold)).float()
        targets = (weak_probs >= threshold).float()
        return (F.binary_cross_entropy_with_logits(strong_logits, targets, reduction="none") * mask).mean(), mask
    confidence, pseudo = weak_probs.max(dim=-1)
    mask = (confidence >= threshold).float()
    return (F.cross_entropy(strong_logits, pseudo, reduction="none") * mask).mean(), mask


def sharpen(probs: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """MixMatch's sharpening: ``p ** (1 / T)`` renormalised over the classes (T -> 0 approaches one-hot)."""
    powered = probs.clamp(min=1e-12) ** (1.0 / temperature)
    return powered / powered.sum(dim=-1, keepdim=True)


def mixmatch_loss(logits: torch.Tensor, targets: torch.Tensor, n_labelled: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MixMatch's two terms on a mixed batch whose first ``n_labelled`` rows came from labelled windows: soft
    cross-entropy there, and for the unlabelled rows the squared error between the softmax and the (mixed, sharpened)
    guess, averaged over rows and classes as in the paper (so ``lambda_u`` is on the paper's scale, 75 for CIFAR-10).

    Returns (supervised term, unlabelled term).
    """
    l_logits, u_logits = logits[:n_labelled], logits[n_labelled:]
    supervised = F.cross_entropy(l_logits, targets[:n_labelled])  # probability targets: soft cross-entropy
    unsupervised = ((torch.softmax(u_logits, dim=-1) - targets[n_labelled:]) ** 2).mean()
    return supervised, unsupervised


# ReMixMatch's weights: 1.5 on the mixed unlabelled term, 0.5 on the unmixed strong view (its paper's lambda_U and
# lambda_U1); the second is expressed as a share of the first, so both follow lambda_u and its ramp-up.
PRE_MIXUP_SHARE = 0.5 / 1.5


def remixmatch_loss(mixed_logits: torch.Tensor, mixed_targets: torch.Tensor, n_labelled: int,
                    strong_logits: torch.Tensor, guess: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ReMixMatch's terms: soft cross-entropy on a mixed batch whose first ``n_labelled`` rows came from labelled
    windows (the supervised term) and on its other rows (mixed strong views), plus :data:`PRE_MIXUP_SHARE` x the soft
    cross-entropy of one unmixed strong view of each unlabelled window against its guess.

    Returns (supervised term, unlabelled term).
    """
    supervised = F.cross_entropy(mixed_logits[:n_labelled], mixed_targets[:n_labelled])
    unsupervised = F.cross_entropy(mixed_logits[n_labelled:], mixed_targets[n_labelled:])
    return supervised, unsupervised + PRE_MIXUP_SHARE * F.cross_entropy(strong_logits, guess)


class DistributionAlignment(nn.Module):
    """ReMixMatch's distribution alignment of the unlabelled guesses: ``p * p_labelled / p_model``, renormalised,
    where ``p_model`` is a running mean of the model's predictions on unlabelled windows and ``p_labelled`` one of
    the labelled targets (exponential moving averages; ``momentum`` 0.99 weighs about the last 100 batches, as
    ReMixMatch's moving average over 128 batches does).

    Early in training a network's guesses crowd into a few classes; dividing by their running marginal and
    multiplying by the labelled one spreads the pseudo-labels over the classes as the labelled clips are spread.
    Both marginals are buffers, saved in Lightning's checkpoints, so a resumed run goes on aligning the same way.
    """

    def __init__(self, n_classes: int, *, momentum: float = 0.99) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("p_model", torch.full((n_classes,), 1.0 / n_classes))
        self.register_buffer("p_labelled", torch.full((n_classes,), 1.0 / n_classes))

    @torch.no_grad()
    def forward(self, probs: torch.Tensor, labelled_targets: torch.Tensor) -> torch.Tensor:
        """Update both marginals with this batch, then return the aligned ``probs`` ``(batch, K)``."""
        m = self.momentum
        self.p_model.mul_(m).add_(probs.float().mean(dim=0), alpha=1 - m)
        self.p_labelled.mul_(m).add_(labelled_targets.float().mean(dim=0), alpha=1 - m)
        aligned = probs.float() * self.p_labelled / self.p_model.clamp(min=1e-6)
        return aligned / aligned.sum(dim=-1, keepdim=True).clamp(min=1e-12)


class SelfAdaptiveThreshold(nn.Module):
    """FreeMatch's self-adaptive threshold (Wang et al. 2023) for single-label FixMatch: a window's pseudo-label
    counts when its top probability reaches ``tau * p(c) / max(p)`` for its top class c, where ``tau`` is a running
    mean of the unlabelled windows' top probability (the model's confidence) and ``p`` one of their class
    probabilities (both start at ``1 / K`` and are exponential moving averages with ``momentum``).

    A fixed 0.95 waits for a confident network; with 2-3 labelled clips per class and a few hundred steps the mask
    opens late (docs/results.md). This threshold starts low, rises with the model's confidence, and is lower for the
    classes the model predicts less often. Both averages are buffers, saved in Lightning's checkpoints.
    """

    def __init__(self, n_classes: int, *, momentum: float = 0.99) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("confidence", torch.tensor(1.0 / n_classes))
        self.register_buffer("class_probs", torch.full((n_classes,), 1.0 / n_classes))

    @torch.no_grad()
    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Update both averages with this batch's ``probs`` ``(batch, K)``; return each window's threshold
        ``(batch,)``."""
        m, probs = self.momentum, probs.float()
        self.confidence.mul_(m).add_(probs.max(dim=-1).values.mean(), alpha=1 - m)
        self.class_probs.mul_(m).add_(probs.mean(dim=0), alpha=1 - m)
        per_class = self.confidence * self.class_probs / self.class_probs.max()
        return per_class[probs.argmax(dim=-1)]
