"""``resnet``: a residual CNN on log-mel spectrograms (ResNet-10/18/34 layouts, narrow and cheap by default).

Input ``(batch, in_channels, n_mels, frames)`` -> per-mel-bin BatchNorm -> stem (3x3 conv + BN + ReLU at full
resolution, 2x2 average pool) -> 4 stages of widths ``filters x (1, 2, 4, 8)``, each ``blocks`` basic residual blocks
(``depth`` 10: 1 per stage, 18: 2, 34: 3-4-6-3); stages 2-4 start with a stride-2 block -> mean over frequency, max +
mean over time (as ``cnn``) -> dropout -> FC + ReLU (the embedding, ``8 x filters``) -> dropout -> logits.

With ``model.options.frame_head`` H > 0 it scores frames too (events, ``predict --events``): the last stage's map,
one step every 16 frames, run twice 8 frames apart and interleaved (:mod:`envsound.models.frames`), read by a
bidirectional GRU of H units; the clip logits are then the frames' linear-softmax pooling (weak labels, as ``cnn``).

A basic block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (identity, or a 1x1 conv + BN where the width or the
stride changes), then ReLU. The last BN of each block starts at zero, so every block starts as the identity (Goyal et
al. 2017): deep stacks train from the first step. The stem pools before the first stage because a 3x3 conv of
``filters`` channels at full resolution costs as much as a whole later stage. Numbers: ``benchmarks/bench_models.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.models.blocks import (MelBatchNorm, OptionSpec, check_input, check_model_args, global_pool,
                                    resolve_options)
from envsound.models.frames import FrameHead, FrameOutput, Tap, linear_softmax_logit, stitched_steps

DEFAULT_FILTERS = 16
DEFAULT_DROPOUT = 0.3
WIDTHS = (1, 2, 4, 8)  # x filters
BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # residual blocks per stage for each depth
TIME_STRIDE = 16  # the stem's pool and three stride-2 stages
FRAME_STEP = 8  # frame output: one step every 8 frames, 2 shifted runs


class BasicBlock(nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``, the first conv with ``stride``.

    ``(batch, in_ch, H, W) -> (batch, out_ch, ceil(H / stride), ceil(W / stride))``; the shortcut is the identity
    when the shape is kept, else a strided 1x1 conv + BN.
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        nn.init.zeros_(self.bn2.weight)  # the block starts as its shortcut
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(FrameOutput, nn.Module):
    """Residual CNN; accepts any ``frames`` >= 1 (and any ``n_mels`` >= 1) thanks to global pooling.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (log-mel) or 2 (log-mel + delta).
        n_mels: mel bins of the input, >= 1.
        n_frames: frames the model is built for (informational; any length works at run time).
        filters: width of the stem and stage 1, >= 1 (stages are ``filters x 1, 2, 4, 8``); None = 16.
        dropout: dropout before both linear layers, [0, 1); None = 0.3.
        depth: 10, 18 or 34: residual blocks per stage (1, 1, 1, 1), (2, 2, 2, 2) or (3, 4, 6, 3), as the ImageNet
            ResNets of those depths.
        frame_head: GRU units per direction of a frame-level event head, 0 (none) .. 1024.

    Raises:
        ConfigError: an argument out of range.

    >>> model = ResNet(n_classes=10, in_channels=1, n_mels=128, n_frames=216, depth=18)
    >>> model(torch.randn(4, 1, 128, 216)).shape   # torch.Size([4, 10])
    """

    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "logmel"
    options: ClassVar[dict[str, OptionSpec]] = {
        "depth": OptionSpec(10, int, choices=tuple(BLOCKS), help="residual blocks per stage 1-1-1-1, 2-2-2-2 or "
                                                                 "3-4-6-3"),
        "frame_head": OptionSpec(0, int, low=0, high=1024,
                                 help="GRU units of a frame-level event head (0: none), trained on clip labels"),
    }
    head_options: ClassVar[tuple[str, ...]] = ("frame_head",)  # an --init source may differ in it
    frame_step_frames: ClassVar[int] = FRAME_STEP
    frame_name = "resnet"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, depth: int = 10, frame_head: int = 0) -> None:
        super().__init__()
        check_model_args("resnet", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        opts = resolve_options("resnet", self.options, {"depth": depth, "frame_head": frame_head})
        f = DEFAULT_FILTERS if filters is None else filters
        p = DEFAULT_DROPOUT if dropout is None else dropout
        self.in_channels = in_channels
        self.depth = opts["depth"]
        self.norm = MelBatchNorm(in_channels, n_mels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, f, 3, padding=1, bias=False), nn.BatchNorm2d(f),
                                  nn.ReLU(inplace=True), nn.AvgPool2d(2, ceil_mode=True))
        widths = [f * m for m in WIDTHS]
        stages, width = [], f
        for i, (out, n_blocks) in enumerate(zip(widths, BLOCKS[self.depth])):
            blocks = [BasicBlock(width if b == 0 else out, out, stride=2 if (i > 0 and b == 0) else 1)
                      for b in range(n_blocks)]
            stages.append(nn.Sequential(*blocks))
            width = out
        self.stages = nn.Sequential(*stages)
        self.embed_dim = widths[-1]
        self.fc = nn.Sequential(nn.Dropout(p), nn.Linear(widths[-1], self.embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(self.embed_dim, n_classes))
        hidden = opts["frame_head"]
        self.frame_head = FrameHead(widths[-1], n_classes, hidden=hidden) if hidden else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, 8 * filters)``, non-negative."""
        check_input("resnet", x, self.in_channels)
        return self.fc(global_pool(self.stages(self.stem(self.norm(x)))))

    def frame_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, steps, 8 x filters)``: the last stage's map averaged
        over frequency every 8 input frames, step ``m`` centred on input frame ``m x 8`` (half a frame after: the
        stem's 2x2 pool centres its step between two frames; the strided convs, padded on both sides, keep that)."""
        check_input("resnet", x, self.in_channels)
        return stitched_steps([self.norm, self.stem, *self.stages], x, taps=[Tap(len(self.stages) + 1, TIME_STRIDE)],
                              step=FRAME_STEP)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> logits (batch, n_classes)``: the head's, or with a frame head
        the linear-softmax pooling of its frames."""
        if self.frame_head is not None:
            return linear_softmax_logit(self.frame_logits(x))
        return self.head(self.embed(x))
