"""``cnn``: the default model, a compact VGG-style CNN on log-mel spectrograms, fast on a 2-core CPU.

Input ``(batch, in_channels, n_mels, frames)`` -> per-mel-bin BatchNorm (no fitted statistics) -> 4 conv blocks of
widths ``filters x (1, 2, 4, 8)`` (block 1 one 3x3 conv, blocks 2-4 two; BN + ReLU after each; 2x2 average pool)
-> mean over frequency, max + mean over time (PANNs) -> dropout -> FC + ReLU (the embedding) -> dropout -> logits.

With ``model.options.frame_head`` H > 0 it scores frames too (events, ``predict --events``): the last block's map,
one step every 16 frames, run twice 8 frames apart and interleaved (:mod:`envsound.models.frames`), read by a
bidirectional GRU of H units; the clip logits are then the frames' linear-softmax pooling, so the usual training on
clip labels teaches it where each class is (weak labels).

Block 1 has a single conv because it runs at full resolution: its second conv cost as much as a whole later block
(and its BN/ReLU passes were the largest memory traffic) for no measurable gain. Numbers: ``benchmarks/bench_models.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.models.blocks import ConvBlock, MelBatchNorm, OptionSpec, check_input, check_model_args, global_pool
from envsound.models.frames import FrameHead, FrameOutput, Tap, linear_softmax_logit, stitched_steps

DEFAULT_FILTERS = 16
DEFAULT_DROPOUT = 0.3
CONVS_PER_BLOCK = (1, 2, 2, 2)
TIME_STRIDE = 16  # four 2x2 pools
FRAME_STEP = 8  # frame output: one step every 8 frames, 2 shifted runs


class CNN(FrameOutput, nn.Module):
    """Compact CNN; accepts any ``n_frames`` (and any ``n_mels`` >= 1) thanks to global pooling.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (log-mel) or 2 (log-mel + delta).
        n_mels: mel bins of the input, >= 1 (any size works; the model is meant for >= 32 bins and frames).
        n_frames: frames the model is built for (informational; any length works at run time).
        filters: width of block 1, >= 1 (blocks are ``filters x 1, 2, 4, 8``); None = 16.
        dropout: dropout before both linear layers, [0, 1); None = 0.3.
        frame_head: GRU units per direction of a frame-level event head, 0 (none) .. 1024.

    Raises:
        ConfigError: an argument out of range.

    >>> model = CNN(n_classes=10, in_channels=1, n_mels=128, n_frames=216)
    >>> model(torch.randn(4, 1, 128, 216)).shape   # torch.Size([4, 10])
    """

    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "logmel"
    options: ClassVar[dict[str, OptionSpec]] = {
        "frame_head": OptionSpec(0, int, low=0, high=1024,
                                 help="GRU units of a frame-level event head (0: none), trained on clip labels"),
    }
    head_options: ClassVar[tuple[str, ...]] = ("frame_head",)  # an --init source may differ in it
    frame_step_frames: ClassVar[int] = FRAME_STEP
    frame_name = "cnn"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, frame_head: int = 0) -> None:
        super().__init__()
        check_model_args("cnn", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        f = DEFAULT_FILTERS if filters is None else filters
        p = DEFAULT_DROPOUT if dropout is None else dropout
        self.in_channels = in_channels
        trunk = CNNEncoder(in_channels=in_channels, n_mels=n_mels, n_frames=n_frames, filters=f)
        # The trunk's parts are registered here directly (state_dict keys 'norm.*', 'blocks.*' as ever);
        # :attr:`encoder` is a view over them, so old checkpoints load unchanged.
        self.norm, self.blocks = trunk.norm, trunk.blocks
        widths = [in_channels] + trunk.widths
        self.embed_dim = widths[-1]
        self.fc = nn.Sequential(nn.Dropout(p), nn.Linear(widths[-1], self.embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(self.embed_dim, n_classes))
        self.frame_head = FrameHead(widths[-1], n_classes, hidden=frame_head) if frame_head else None

    @property
    def encoder(self) -> "CNNEncoder":
        """The convolutional trunk (input norm + conv blocks) as a :class:`CNNEncoder` sharing this model's modules:
        ``model.encoder.load_state_dict(autoencoder.encoder.state_dict())`` writes into this model."""
        return CNNEncoder.from_parts(self.norm, self.blocks, in_channels=self.in_channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, 8 * filters)``, non-negative."""
        check_input("cnn", x, self.in_channels)
        return self.fc(global_pool(self.blocks(self.norm(x))))

    def frame_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, steps, 8 x filters)``: the last block's map averaged
        over frequency every 8 input frames, step ``m`` centred on input frame ``m x 8`` (half a frame before: the
        input is padded by half a stride at its start, as a 2x2 average pool's step is centred between the frames
        it reads)."""
        check_input("cnn", x, self.in_channels)
        x = nn.functional.pad(x, (TIME_STRIDE // 2, 0, 0, 0), mode="replicate")
        return stitched_steps([self.norm, *self.blocks], x, taps=[Tap(len(self.blocks), TIME_STRIDE)],
                              step=FRAME_STEP)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> logits (batch, n_classes)``: the head's, or with a frame head
        the linear-softmax pooling of its frames."""
        if self.frame_head is not None:
            return linear_softmax_logit(self.frame_logits(x))
        return self.head(self.embed(x))


class CNNEncoder(nn.Module):
    """The trunk of :class:`CNN`: per-mel-bin BatchNorm, then the 4 conv blocks (each ending in a 2x2 average pool).

    ``(batch, in_channels, n_mels, frames) -> (batch, 8 * filters, ceil(n_mels / 16), ceil(frames / 16))``
    (every pool uses ``ceil_mode``). Used by the convolutional autoencoder; :attr:`CNN.encoder` is the same trunk
    inside a classifier (same parameter names ``norm.*``, ``blocks.*``).

    Average pooling records no switch positions, so only an upsampling decoder mirrors this trunk (see
    :mod:`envsound.models.autoencoder`).

    Raises:
        ConfigError: an argument out of range.
    """

    def __init__(self, *, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None) -> None:
        super().__init__()
        check_model_args("cnn", n_classes=1, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=None)
        f = DEFAULT_FILTERS if filters is None else filters
        self.in_channels = in_channels
        self.filters = f
        self.widths = [f * m for m in (1, 2, 4, 8)]
        self.norm = MelBatchNorm(in_channels, n_mels)
        channels = [in_channels] + self.widths
        self.blocks = nn.Sequential(*[ConvBlock(channels[i], channels[i + 1], n_convs=n)
                                      for i, n in enumerate(CONVS_PER_BLOCK)])

    @classmethod
    def from_parts(cls, norm: MelBatchNorm, blocks: nn.Sequential, *, in_channels: int) -> "CNNEncoder":
        """A trunk over existing modules (no copy): what :attr:`CNN.encoder` returns."""
        trunk = cls.__new__(cls)
        nn.Module.__init__(trunk)
        trunk.in_channels = in_channels
        trunk.widths = [block.convs[0].out_channels for block in blocks]
        trunk.filters = trunk.widths[0]
        trunk.norm, trunk.blocks = norm, blocks
        return trunk

    def forward(self, x: torch.Tensor, return_sizes: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Size]]:
        """Encode ``x`` ``(batch, in_channels, n_mels, frames)``; with ``return_sizes=True`` also the four
        pre-pool sizes ``(batch, C, H, W)``, first block first (what an upsampling decoder restores)."""
        check_input("cnn", x, self.in_channels)
        x = self.norm(x)
        sizes: list[torch.Size] = []
        for block in self.blocks:
            x = block.convs(x)
            sizes.append(x.shape)
            x = block.pool(x)
        return (x, sizes) if return_sizes else x
