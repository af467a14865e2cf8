"""An ensemble: ``train.ensemble`` networks of one architecture trained from seeds ``seed, seed + 1, ...``, scored as
one model.

Its logits are the mean of its members' logits (for a softmax output, the normalised geometric mean of the members'
probabilities), so an ensemble is a model like any other: it returns logits, is saved as one state dict
(``members.<i>.*``) in one checkpoint, and evaluation and prediction need no special case. Averaging independently
trained networks removes much of the seed-to-seed variance that dominates small datasets such as ESC-10. An ensemble
of frame models (a detector's, ``--preset sed --set train.ensemble=3``) averages its members' frame logits and pools
its clip logits from them, as one frame model does.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from envsound.models.frames import linear_softmax_logit


class Ensemble(nn.Module):
    """``len(members)`` >= 2 networks taking the same input; ``forward`` returns the mean of their logits (of frame
    models: pooled from the mean of their frame logits)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_frames:  # as each member: the clip pooled from the frames, so what and when agree (and ONNX's)
            return linear_softmax_logit(self.frame_logits(x))
        return torch.stack([member(x) for member in self.members]).mean(dim=0)

    @property
    def has_frames(self) -> bool:
        """True when the members score frames (``model.options.frame_head``: a detector's ensemble)."""
        return all(getattr(member, "has_frames", False) for member in self.members)

    @property
    def frame_step_frames(self) -> int:
        """The input frames a step spans: the members' (one architecture, one config)."""
        return self.members[0].frame_step_frames

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the members' frame logits ``(batch, steps, n_classes)``."""
        return torch.stack([member.frame_logits(x) for member in self.members]).mean(dim=0)
