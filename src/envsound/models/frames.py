"""Frame-level output for sound event detection: a head that scores every time step of a trunk's feature map, and
the pooling that turns those frame probabilities into one clip logit.

A CNN trunk that downsamples time by ``stride`` gives one step every ``stride`` input frames (0.32 s for EfficientAT:
too coarse for a 200-ms onset collar). :func:`stitched_steps` runs the trunk on copies of the input, each started
``step`` frames later, and interleaves their steps ("shift and stitch"): step ``m`` is centred on input frame
``m * step`` at ``stride / step`` times the trunk's cost. It can read earlier layers too (:class:`Tap`): their
smaller receptive fields place a sound's start and end more sharply than the last layer's seconds-wide view, and
they come from the same runs at no extra cost. :class:`FrameHead` (layer norm, dropout, a bidirectional GRU, a
linear layer) reads the whole sequence, so each step's decision sees its neighbours: what turns a frame classifier
into a detector of where an event starts and stops. Clip logits come from the frame
probabilities by linear-softmax pooling (Wang et al. 2019: ``sum p^2 / sum p``), the pooling that localises best
when a head is trained on clip labels only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from envsound.errors import ConfigError

EPS = 1e-6


def check_frame_task(multi_label: bool) -> None:
    """Refuse a frame head for a single-label set: events are found per class, as a multi-label set labels them."""
    if not multi_label:
        raise ConfigError("model.options.frame_head finds events of a multi-label set (--dataset fsdkaggle2019, "
                          "a set made by envsound mix); this set is single-label: set model.options.frame_head=0")


class FrameOutput:
    """What a network with an optional frame head (``self.frame_head``, ``self.frame_steps(x)``) shares:
    :attr:`has_frames` and :meth:`frame_logits`. ``frame_name`` names the model in the error, ``frame_hint`` ends it."""

    frame_name, frame_hint = "this model", ""
    frame_head: "FrameHead | None"

    @property
    def has_frames(self) -> bool:
        return self.frame_head is not None

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, n_mels, frames) -> (batch, steps, n_classes)``, steps as ``frame_steps`` gives them. Only with
        ``model.options.frame_head`` > 0."""
        if self.frame_head is None:
            raise ConfigError(f"model {self.frame_name!r} has no frame output; set model.options.frame_head"
                              f"{self.frame_hint}")
        return self.frame_head(self.frame_steps(x))


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


@dataclass(frozen=True)
class Tap:
    """A layer of a trunk the frame head reads: its index in the trunk's layers, its time stride (input frames per
    output step), and whether its frequency bins are kept (flattened with the channels: where in the spectrum, for an
    early layer) or averaged (the last layer's summary)."""

    layer: int
    stride: int
    keep_bins: bool = False


def stitched_steps(layers: Sequence[nn.Module], x: torch.Tensor, *, taps: Sequence[Tap], step: int) -> torch.Tensor:
    """The outputs of ``taps`` of ``layers`` (each ``(batch, C, F, T)``) over ``x`` ``(batch, C, n_mels, frames)``,
    one step every ``step`` input frames -> ``(batch, steps, D)``, the taps' features side by side, step ``m``
    centred on input frame ``m x step``. The layers run on copies of ``x`` started ``0, step, 2 step, ...`` frames
    later (as many as the largest stride needs); a tap of stride ``s`` interleaves the first ``s / step`` copies'
    outputs. As many steps as the shortest tap gives."""
    for tap in taps:
        if tap.stride % step:
            raise ValueError(f"step {step} must divide every tap's stride (layer {tap.layer}: {tap.stride})")
    outputs: list[list[torch.Tensor]] = [[] for _ in taps]
    for k in range(max(tap.stride for tap in taps) // step):
        wanted = [i for i, tap in enumerate(taps) if k < tap.stride // step]
        hidden = x[..., k * step:]
        for index, layer in enumerate(layers[:max(taps[i].layer for i in wanted) + 1]):
            hidden = layer(hidden)
            for i in wanted:
                if taps[i].layer == index:
                    outputs[i].append(hidden.flatten(1, 2) if taps[i].keep_bins else hidden.mean(dim=2))
    stitched = []
    for runs in outputs:  # each (batch, D, T_k), k = 0 .. s / step - 1
        length = min(run.shape[-1] for run in runs)
        stitched.append(torch.stack([run[..., :length] for run in runs], dim=-1).flatten(2))
    length = min(tap.shape[-1] for tap in stitched)
    return torch.cat([tap[..., :length] for tap in stitched], dim=1).transpose(1, 2)


def upsampled_steps(layers: Sequence[nn.Module], x: torch.Tensor, *, taps: Sequence[Tap], step: int) -> torch.Tensor:
    """What :func:`stitched_steps` gives, from **one** run of ``layers``: each tap's output read at input frames
    ``0, step, 2 step, ...`` by linear interpolation between its own steps (step ``j`` of a tap of stride ``s`` is
    centred on input frame ``j x s``) -> ``(batch, ceil(frames / step), D)``. The cheap way to a fine frame rate when
    the trunk trains too (a stitched step costs ``stride / step`` runs, each with its backward pass): the frame head
    sees coarse layers smoothly resampled and a fine early layer (stride ``step``) at its own rate."""
    steps = -(-x.shape[-1] // step)
    wanted = {tap.layer for tap in taps}
    outputs: dict[int, torch.Tensor] = {}
    hidden = x
    for index, layer in enumerate(layers[:max(wanted) + 1]):
        hidden = layer(hidden)
        if index in wanted:
            outputs[index] = hidden
    parts = []
    for tap in taps:
        out = outputs[tap.layer]
        out = out.flatten(1, 2) if tap.keep_bins else out.mean(dim=2)  # (batch, D, T_tap)
        position = torch.arange(steps, device=x.device, dtype=torch.float32) * (step / tap.stride)
        position = position.clamp(max=out.shape[-1] - 1)
        low = position.floor().long()
        high = (low + 1).clamp(max=out.shape[-1] - 1)
        share = (position - low).to(out.dtype)
        parts.append(out[..., low] * (1 - share) + out[..., high] * share)
    return torch.cat(parts, dim=1).transpose(1, 2)


def linear_softmax_logit(frame_logits: torch.Tensor) -> torch.Tensor:
    """``(batch, steps, K)`` frame logits -> ``(batch, K)`` clip logits: the logit of ``sum p^2 / sum p`` over the
    steps, ``p`` the frames' sigmoid probabilities."""
    probs = torch.sigmoid(frame_logits.float())
    pooled = (probs * probs).sum(dim=1) / probs.sum(dim=1).clamp_min(EPS)
    pooled = pooled.clamp(EPS, 1 - EPS)
    return torch.log(pooled) - torch.log1p(-pooled)
