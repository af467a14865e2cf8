"""``crnn``: a convolutional recurrent network on log-mel spectrograms (CNN front, bidirectional GRU/LSTM over time).

Input ``(batch, in_channels, n_mels, frames)`` -> per-mel-bin BatchNorm -> 3 conv blocks of widths
``filters x (1, 2, 4)`` (block 1 one 3x3 conv, blocks 2-3 two; BN + ReLU after each) with average pools of
``(freq, time)`` = (2, 2), (4, 2), (4, 1): frequency shrinks 32x, time only 4x, so the recurrent layer sees one step
per 4 frames (93 ms at the default 22.05 kHz / hop 512) -> the channels x remaining mel bins of each step flattened
-> bidirectional GRU or LSTM (``rnn``, ``hidden`` units per direction, ``layers``) -> pooling over time (``pool``:
attention, mean or max) -> dropout -> FC + ReLU (the embedding, ``2 x hidden``) -> dropout -> logits.

With ``model.options.frame_head`` H > 0 it scores frames too (events, ``predict --events``): the recurrent outputs,
one step every 4 frames (the input padded by half a step at its start, so step ``m`` is centred on frame ``4 m``),
read by a frame head (a bidirectional GRU of H units, :mod:`envsound.models.frames`); the clip logits are then the
frames' linear-softmax pooling, so training on clip labels teaches it where each class is (weak labels).

Cost: about half the cnn's convolution work (the two last cnn blocks are replaced by one block at low frequency
resolution) plus a small recurrent layer; numbers from ``benchmarks/bench_models.py --models cnn crnn``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.models.blocks import (ConvBlock, MelBatchNorm, OptionSpec, check_input, check_model_args,
                                    resolve_options)
from envsound.models.frames import FrameHead, FrameOutput, linear_softmax_logit

DEFAULT_FILTERS = 16
DEFAULT_DROPOUT = 0.3
CONVS_PER_BLOCK = (1, 2, 2)
WIDTHS = (1, 2, 4)  # x filters
POOLS = ((2, 2), (4, 2), (4, 1))  # (frequency, time) per block: frequency pooled more, time kept fine
TIME_STRIDE = 4  # input frames per recurrent step


def pooled_size(size: int, kernels: list[int] | tuple[int, ...]) -> int:
    """``size`` after ceil-mode pools of ``kernels`` in turn: ``pooled_size(128, (2, 4, 4)) == 4``."""
    for k in kernels:
        size = -(-size // k)
    return size


class CRNN(FrameOutput, nn.Module):
    """CNN front + bidirectional RNN over time; accepts any ``frames`` >= 1 (``n_mels`` is fixed at construction).

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (log-mel) or 2 (log-mel + delta).
        n_mels: mel bins of the input, >= 1 (the recurrent input size depends on it).
        n_frames: frames the model is built for (informational; any length works at run time).
        filters: width of conv block 1, >= 1 (blocks are ``filters x 1, 2, 4``); None = 16.
        dropout: dropout before both linear layers (and between stacked RNN layers), [0, 1); None = 0.3.
        rnn: ``"gru"`` or ``"lstm"``.
        hidden: recurrent units per direction, 8..1024; the embedding has ``2 x hidden`` values.
        layers: stacked recurrent layers, 1..4.
        pool: how the recurrent outputs become one vector per clip: ``"attention"`` (softmax-weighted mean, the
            weights from a linear layer), ``"mean"`` or ``"max"`` over time.
        frame_head: GRU units per direction of a frame-level event head, 0 (none) .. 1024.

    Raises:
        ConfigError: an argument out of range.

    >>> model = CRNN(n_classes=10, in_channels=1, n_mels=128, n_frames=216, rnn="lstm")
    >>> model(torch.randn(4, 1, 128, 216)).shape   # torch.Size([4, 10])
    """

    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "logmel"
    options: ClassVar[dict[str, OptionSpec]] = {
        "rnn": OptionSpec("gru", str, choices=("gru", "lstm"), help="recurrent cell"),
        "hidden": OptionSpec(64, int, low=8, high=1024, help="recurrent units per direction"),
        "layers": OptionSpec(1, int, low=1, high=4, help="stacked recurrent layers"),
        "pool": OptionSpec("attention", str, choices=("attention", "mean", "max"), help="pooling over time"),
        "frame_head": OptionSpec(0, int, low=0, high=1024,
                                 help="GRU units of a frame-level event head (0: none), trained on clip labels"),
    }
    head_options: ClassVar[tuple[str, ...]] = ("frame_head",)  # an --init source may differ in it
    frame_step_frames: ClassVar[int] = TIME_STRIDE
    frame_name = "crnn"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, rnn: str = "gru", hidden: int = 64, layers: int = 1,
                 pool: str = "attention", frame_head: int = 0) -> None:
        super().__init__()
        check_model_args("crnn", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        opts = resolve_options("crnn", self.options, {"rnn": rnn, "hidden": hidden, "layers": layers, "pool": pool,
                                                      "frame_head": frame_head})
        f = DEFAULT_FILTERS if filters is None else filters
        p = DEFAULT_DROPOUT if dropout is None else dropout
        self.in_channels = in_channels
        self.rnn_kind, self.pool_kind = opts["rnn"], opts["pool"]
        self.norm = MelBatchNorm(in_channels, n_mels)
        channels = [in_channels] + [f * m for m in WIDTHS]
        blocks = []
        for i, (n_convs, kernel) in enumerate(zip(CONVS_PER_BLOCK, POOLS)):
            block = ConvBlock(channels[i], channels[i + 1], n_convs=n_convs)
            block.pool = nn.AvgPool2d(kernel, ceil_mode=True)
            blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        rnn_input = channels[-1] * pooled_size(n_mels, [k[0] for k in POOLS])
        cell = nn.GRU if self.rnn_kind == "gru" else nn.LSTM
        self.rnn = cell(rnn_input, opts["hidden"], num_layers=opts["layers"], batch_first=True, bidirectional=True,
                        dropout=p if opts["layers"] > 1 else 0.0)
        width = 2 * opts["hidden"]
        self.attention = nn.Linear(width, 1) if self.pool_kind == "attention" else None
        self.embed_dim = width
        self.fc = nn.Sequential(nn.Dropout(p), nn.Linear(width, self.embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(self.embed_dim, n_classes))
        hidden_frames = opts["frame_head"]
        self.frame_head = FrameHead(width, n_classes, hidden=hidden_frames) if hidden_frames else None

    def conv_steps(self, x: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
        """What the recurrent layer reads: ``(batch, in_channels, n_mels, frames) -> (batch, steps, channels x
        remaining mel bins)``, step ``m`` reading frames ``4 m .. 4 m + 3`` (``ceil(frames / 4)`` steps). ``centred``:
        step ``m`` centred on frame ``4 m`` (half a frame before) instead, the input padded by half a step at its
        start, as the time pools centre a step between the frames it reads (``ceil((frames + 2) / 4)`` steps)."""
        check_input("crnn", x, self.in_channels)
        if centred:
            x = nn.functional.pad(x, (TIME_STRIDE // 2, 0, 0, 0), mode="replicate")
        x = self.blocks(self.norm(x))  # (batch, C, F', T')
        batch, channels, mels, steps = x.shape
        return x.permute(0, 3, 1, 2).reshape(batch, steps, channels * mels)

    def sequence(self, x: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
        """The recurrent outputs ``(batch, steps, 2 x hidden)`` over :meth:`conv_steps`."""
        out, _ = self.rnn(self.conv_steps(x, centred=centred))
        return out

    def frame_steps(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent outputs with step ``m`` centred on input frame ``4 m`` (what the frame head reads)."""
        return self.sequence(x, centred=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> (batch, 2 x hidden)``, non-negative."""
        h = self.sequence(x)
        if self.attention is not None:
            weights = torch.softmax(self.attention(h).float(), dim=1).to(h.dtype)  # (batch, steps, 1)
            pooled = (weights * h).sum(dim=1)
        elif self.pool_kind == "mean":
            pooled = h.mean(dim=1)
        else:
            pooled = h.amax(dim=1)
        return self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames) -> logits (batch, n_classes)``: the head's, or with a frame head
        the linear-softmax pooling of its frames."""
        if self.frame_head is not None:
            return linear_softmax_logit(self.frame_logits(x))
        return self.head(self.embed(x))
