"""``efficientat``: EfficientAT's MobileNetV3 (Schmid, Koutini, Widmer, ICASSP 2023), the network behind its AudioSet
weights (``mn01_as`` ... ``mn40_as``), written from the paper and the layer facts of its release.

MobileNetV3-Large with every width scaled by ``width`` (channels rounded to multiples of 8), four stride-2 stages,
squeeze-and-excitation over channels (mean over frequency and time, reduction 4, sigmoid) in the blocks MobileNetV3
marks, batch norm with eps 1e-3; then a 1x1 conv to 6x the last width, global average pooling (the official
"embedding"), a bottleneck ``Linear -> Hardswish`` of ``make_divisible(1280 width)`` units and the head
``Dropout -> Linear``. Layer names follow the release (``features.*``), so an official state dict loads after two
renames (:func:`official_key`); see :mod:`envsound.models.pretrained` for the files themselves.

Input ``(batch, 1, 128, frames)`` from the EfficientAT frontend (``features.frontend: efficientat``, set by this
model's preset); any number of frames works (global pooling). Returns logits; :meth:`EfficientAT.embed` is what the
head sees, :meth:`EfficientAT.pooled` the official 6x-width embedding.

With ``model.options.frame_head`` H > 0 the model detects events too: :meth:`EfficientAT.frame_logits` scores a step
every ``frame_step`` input frames (8: the trunk's 32-frame stride shift-and-stitched 4 times,
:mod:`envsound.models.frames`; with ``frame_skips``, the default, two early layers' outputs beside it; 4 with
``frame_stitch`` false, ``--preset sed``: one run of the trunk, its coarse layers interpolated, a stride-4 layer read
too) with a bidirectional GRU of H units, and the clip logits are those frames' linear-softmax pooling; the release's
bottleneck and head are then kept (an ``--init`` loads them) but unused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.errors import ConfigError
from envsound.features.efficientat import SETTINGS
from envsound.models.blocks import OptionSpec, check_input, check_model_args
from envsound.models.frames import FrameHead, FrameOutput, Tap, linear_softmax_logit, stitched_steps, upsampled_steps

DEFAULT_WIDTH = 0.4
DEFAULT_DROPOUT = 0.2
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
SE_REDUCTION = 4

# MobileNetV3-Large: (in, kernel, expanded, out, squeeze-excite, hardswish, stride) before width scaling
BLOCKS = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
LAST_CHANNEL = 1280
TIME_STRIDE = 32  # five stride-2 layers
FRAME_STEP = 8  # frame output: one step every 8 input frames (80 ms at a 10-ms hop), TIME_STRIDE / 8 shifted runs
# model.options.frame_skips: the frame head also reads the last layers at time strides 8 and 16 (their frequency bins
# kept): event F1 0.300 -> 0.362 on ESC-10 mixtures (docs/results.md)
SKIP_TAPS = (Tap(layer=6, stride=8, keep_bins=True), Tap(layer=12, stride=16, keep_bins=True))
# a frame step of 4 input frames (40 ms) reads the last stride-4 layer too: the only one as fine as its steps
FINE_TAP = Tap(layer=3, stride=4, keep_bins=True)


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm(c_in: int, c_out: int, *, kernel: int = 1, stride: int = 1, groups: int = 1,
              activation: type[nn.Module] | None = None) -> nn.Sequential:
    """``Conv2d (no bias, 'same' padding) -> BatchNorm2d [-> activation]``: keys ``0.*``, ``1.*``."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: ``x * sigmoid(fc2(relu(fc1(mean over frequency and time))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels // SE_REDUCTION)
        self.fc1 = nn.Linear(channels, squeezed)
        self.fc2 = nn.Linear(squeezed, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * scale[:, :, None, None]


class ConcurrentSE(nn.Module):
    """The release's wrapper around one :class:`SqueezeExcite` (its name is in the weight files' keys)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([SqueezeExcite(channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """``[1x1 expand ->] depthwise kxk [-> squeeze-excite] -> 1x1 project``, plus the input when shapes allow."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, hardswish: bool,
                 stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_norm(c_in, expanded, activation=act))
        layers.append(conv_norm(expanded, expanded, kernel=kernel, stride=stride, groups=expanded, activation=act))
        if se:
            layers.append(ConcurrentSE(expanded))
        layers.append(conv_norm(expanded, c_out))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


class EfficientAT(FrameOutput, nn.Module):
    """EfficientAT's MobileNetV3 (``mn`` family) at ``width`` (0.4 = ``mn04``, 1.0 = ``mn10``, 4.0 = ``mn40``).

    Args:
        n_classes: logits, >= 1 (527 for the AudioSet taggers).
        in_channels: 1 (the EfficientAT frontend has no delta channel).
        n_mels, n_frames: the input size the model is built for (informational: global pooling takes any size).
        filters: unused (the widths come from ``width``); must be unset.
        dropout: before the head's linear layer, [0, 1); None = 0.2 (the release's).
        width: width multiplier, 0.1..4.0.
        frame_head: GRU units per direction of the frame-level head, 0 (none: clip output only) .. 1024.

    >>> model = EfficientAT(n_classes=10, in_channels=1, n_mels=128, n_frames=500)
    >>> model(torch.randn(2, 1, 128, 500)).shape   # torch.Size([2, 10])
    """

    preset: ClassVar[dict[str, Any]] = {
        "features": dict(SETTINGS),
        # fine-tuning a pre-trained network (the recipe `--init` from an official file takes; measured in
        # docs/results.md): a low rate, few epochs, masking on the log-mel and the mel bank's edges jittered as
        # EfficientAT's training frontend does (10 Hz and 2 kHz), no offline copies
        "train": {"lr": 3e-4, "max_epochs": 30, "weight_decay": 1e-3, "batch_size": 32},
        "augment": {"copies": 0, "mixup_alpha": 0.3, "fmin_shift_hz": 10.0, "fmax_shift_hz": 2000.0},
    }
    input_kind: ClassVar[str] = "logmel"
    options: ClassVar[dict[str, OptionSpec]] = {
        "width": OptionSpec(DEFAULT_WIDTH, float, low=0.1, high=4.0,
                            help="width multiplier (0.1 mn01 ... 0.4 mn04 ... 4.0 mn40)"),
        "frame_head": OptionSpec(0, int, low=0, high=1024,
                                 help="GRU units of a frame-level event head (0: none; --preset sed: 64)"),
        "frame_skips": OptionSpec(True, bool, help="the frame head also reads two early layers (strides 8 and 16): "
                                                   "sharper onsets"),
        "frame_step": OptionSpec(FRAME_STEP, int, low=4, high=8,
                                 help="input frames per frame-head step: 8 (80 ms) or 4 (40 ms; with frame_skips "
                                      "a stride-4 layer is read too)"),
        "frame_stitch": OptionSpec(True, bool, help="frame steps from shifted runs of the trunk (exact, stride / "
                                                    "step runs); false: one run, coarse layers interpolated (the "
                                                    "way to train the trunk too)"),
    }
    # options that only shape layers a new label set replaces: an --init source may differ in them
    head_options: ClassVar[tuple[str, ...]] = ("frame_head", "frame_skips", "frame_step", "frame_stitch")
    frame_name, frame_hint = "efficientat", " (--preset sed)"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None, width: float = DEFAULT_WIDTH, frame_head: int = 0,
                 frame_skips: bool = True, frame_step: int = FRAME_STEP, frame_stitch: bool = True) -> None:
        super().__init__()
        check_model_args("efficientat", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels,
                         n_frames=n_frames, filters=filters, dropout=dropout)
        if filters is not None:
            raise ConfigError("model 'efficientat': model.filters is not used; set model.options.width instead")
        self.in_channels = in_channels
        self.width = float(width)
        layers: list[nn.Module] = [conv_norm(in_channels, make_divisible(16 * width), kernel=3, stride=2,
                                             activation=nn.Hardswish)]
        for c_in, kernel, expanded, c_out, se, hs, stride in BLOCKS:
            layers.append(InvertedResidual(make_divisible(c_in * width), kernel, make_divisible(expanded * width),
                                           make_divisible(c_out * width), se, hs, stride))
        last = make_divisible(BLOCKS[-1][3] * width)
        self.pooled_dim = 6 * last
        layers.append(conv_norm(last, self.pooled_dim, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.embed_dim = make_divisible(LAST_CHANNEL * width)
        self.bottleneck = nn.Sequential(nn.Linear(self.pooled_dim, self.embed_dim), nn.Hardswish(inplace=True))
        self.head = nn.Sequential(nn.Dropout(DEFAULT_DROPOUT if dropout is None else dropout),
                                  nn.Linear(self.embed_dim, n_classes))
        if frame_step not in (4, 8):
            raise ConfigError(f"model 'efficientat': model.options.frame_step={frame_step} is not valid; valid: 4 "
                              "(40 ms), 8 (80 ms)")
        skips = (*((FINE_TAP,) if frame_step == 4 else ()), *SKIP_TAPS) if frame_skips else ()
        self.frame_taps = (*skips, Tap(len(layers) - 1, TIME_STRIDE))
        self.frame_step_frames, self.frame_stitch = frame_step, frame_stitch
        frame_dim = self.pooled_dim + sum(make_divisible(BLOCKS[tap.layer - 1][3] * width) * _bins(n_mels, tap.stride)
                                          for tap in self.frame_taps[:-1])
        self.frame_head = FrameHead(frame_dim, n_classes, hidden=frame_head) if frame_head else None

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames) -> (batch, 6 x last width)``: the release's embedding (384 for ``mn04``)."""
        check_input("efficientat", x, self.in_channels)
        return self.features(x).mean(dim=(2, 3))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames) -> (batch, embed_dim)``: the bottleneck's output, what the head sees."""
        return self.bottleneck(self.pooled(x))

    def frame_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames) -> (batch, steps, D)``: every :attr:`frame_step_frames` input frames, the
        trunk's frequency-averaged output (6 x last width) and with ``frame_skips`` the early layers' (what the
        frame head reads), shift-and-stitched or, without ``frame_stitch``, interpolated from one run."""
        check_input("efficientat", x, self.in_channels)
        steps = stitched_steps if self.frame_stitch else upsampled_steps
        return steps(self.features, x, taps=self.frame_taps, step=self.frame_step_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames) -> logits (batch, n_classes)``: the head's, or with a frame head the
        linear-softmax pooling of its frames."""
        if self.frame_head is not None:
            return linear_softmax_logit(self.frame_logits(x))
        return self.head(self.embed(x))


def _bins(n_mels: int, stride: int) -> int:
    """Frequency bins left of ``n_mels`` after the stride-2 layers up to ``stride`` (each keeps ceil(n / 2))."""
    while stride > 1:
        n_mels, stride = -(-n_mels // 2), stride // 2
    return n_mels


# The release's classifier (pool, flatten, Linear, Hardswish, Dropout, Linear) is split here into the bottleneck and
# the head, the layer a new label set replaces (envsound's transfer convention).
RENAMES = {"classifier.2.": "bottleneck.0.", "classifier.5.": "head.1."}


def official_key(key: str) -> str:
    """A release state-dict key as named here: ``classifier.5.weight`` -> ``head.1.weight``; others unchanged."""
    return _renamed(key, RENAMES)


def release_key(key: str) -> str:
    """A key named here as the release names it: ``head.1.weight`` -> ``classifier.5.weight`` (for messages)."""
    return _renamed(key, {new: old for old, new in RENAMES.items()})


def _renamed(key: str, renames: dict[str, str]) -> str:
    return next((new + key[len(old):] for old, new in renames.items() if key.startswith(old)), key)
