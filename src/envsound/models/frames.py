"""Frame-level output for sound event detection: a head that scores every time step of a trunk's feature map, and
the pooling that turns those frame probabilities into one clip logit.

A CNN trunk that downsamples time by ``stride`` gives one step every ``stride`` input frames (0.32 s for EfficientAT:
too coarse for a 200-ms onset collar). :func:`stitched_steps` runs the trunk on ``shifts`` copies of the input, each
started ``stride / shifts`` frames later, and interleaves their steps ("shift and stitch"): step ``m`` is centred on
input frame ``m * stride / shifts`` at ``shifts`` times the trunk's cost. :class:`FrameHead` (layer norm, dropout,
a bidirectional GRU, a linear layer) reads the whole sequence, so each step's decision sees its neighbours: what
turns a frame classifier into a detector of where an event starts and stops. Clip logits come from the frame
probabilities by linear-softmax pooling (Wang et al. 2019: ``sum p^2 / sum p``), the pooling that localises best
when a head is trained on clip labels only.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from envsound.errors import ConfigError

EPS = 1e-6


def check_frame_task(multi_label: bool) -> None:
    """Refuse a frame head for a single-label set: events are found per class, as a multi-label set labels them."""
    if not multi_label:
        raise ConfigError("model.options.frame_head finds events of a multi-label set (--dataset fsdkaggle2019, "
                          "a set made by envsound mix); this set is single-label: set model.options.frame_head=0")


class FrameHead(nn.Module):
    """``(batch, steps, dim) -> (batch, steps, n_classes)`` frame logits: ``LayerNorm -> Dropout -> BiGRU(hidden)
    -> Linear``."""

    def __init__(self, dim: int, n_classes: int, *, hidden: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.drop(self.norm(steps)))
        return self.out(hidden)


def stitched_steps(trunk: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, stride: int,
                   shifts: int) -> torch.Tensor:
    """``trunk`` ((batch, C, n_mels, frames) -> (batch, D, F', frames / stride)) over ``x`` started at ``shifts``
    offsets -> ``(batch, steps, D)``, the frequency axis averaged, step ``m`` centred on input frame
    ``m * stride / shifts``; as many steps as the shortest shifted run gives."""
    if stride % shifts:
        raise ValueError(f"shifts {shifts} must divide the trunk's stride {stride}")
    runs = [trunk(x[..., k * (stride // shifts):]).mean(dim=2) for k in range(shifts)]  # (batch, D, T_k)
    length = min(run.shape[-1] for run in runs)
    interleaved = torch.stack([run[..., :length] for run in runs], dim=-1)  # (batch, D, T, shifts)
    return interleaved.flatten(2).transpose(1, 2)


def linear_softmax_logit(frame_logits: torch.Tensor) -> torch.Tensor:
    """``(batch, steps, K)`` frame logits -> ``(batch, K)`` clip logits: the logit of ``sum p^2 / sum p`` over the
    steps, ``p`` the frames' sigmoid probabilities."""
    probs = torch.sigmoid(frame_logits.float())
    pooled = (probs * probs).sum(dim=1) / probs.sum(dim=1).clamp_min(EPS)
    pooled = pooled.clamp(EPS, 1 - EPS)
    return torch.log(pooled) - torch.log1p(-pooled)
