"""An ensemble: ``train.ensemble`` networks of one architecture trained from seeds ``seed, seed + 1, ...``, scored as
one model.

Its logits are the mean of its members' logits (for a softmax output, the normalised geometric mean of the members'
probabilities), so an ensemble is a model like any other: it returns logits, is saved as one state dict
(``members.<i>.*``) in one checkpoint, and evaluation and prediction need no special case. Averaging independently
trained networks removes much of the seed-to-seed variance that dominates small datasets such as ESC-10.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    """``len(members)`` >= 2 networks taking the same input; ``forward`` returns the mean of their logits."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)
