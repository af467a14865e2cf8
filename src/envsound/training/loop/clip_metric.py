"""Clip-level validation as a torchmetrics ``Metric``: window probabilities summed per clip, so a clip's score is the
mean over its windows (as ``evaluate`` scores it), and the sums of every process are added up by torchmetrics'
own synchronisation in a multi-process run."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ClipMeans(Metric):
    """Per-clip mean of the window probabilities of ``n_clips`` clips, and each clip's target row.

    ``update(probs, targets, clip)`` takes a batch of windows: probabilities ``(windows, classes)``, targets
    ``(windows, classes)`` and the index of each window's clip; ``compute()`` returns ``(probs, targets)`` of shape
    ``(n_clips, classes)`` (a clip no window reached: zeros)."""

    full_state_update = False

    def __init__(self, n_clips: int, n_classes: int) -> None:
        super().__init__()
        self.add_state("sums", default=torch.zeros(n_clips, n_classes), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(n_clips), dist_reduce_fx="sum")
        self.add_state("target_sums", default=torch.zeros(n_clips, n_classes), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, targets: torch.Tensor, clip: torch.Tensor) -> None:
        probs = probs.float().to(self.sums.device)
        clip = clip.to(self.sums.device)
        self.sums.index_add_(0, clip, probs)
        self.counts.index_add_(0, clip, torch.ones(len(clip), device=self.counts.device))
        self.target_sums.index_add_(0, clip, targets.float().to(self.sums.device))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        counts = self.counts.clamp(min=1)[:, None]
        # every window of a clip carries the clip's targets: their mean is the row (0/1, or a soft label)
        return self.sums / counts, self.target_sums / counts
