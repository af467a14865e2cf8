"""Layers and argument checks shared by the torch models, and the per-model options mechanism (:class:`OptionSpec`,
:func:`resolve_options`): a model class lists what ``model.options`` may hold in ``options: ClassVar[dict[str,
OptionSpec]]`` and takes each option as a keyword argument of its constructor.

Tensor layout everywhere: log-mel input ``(batch, in_channels, n_mels, frames)`` float; channel 0 is the log-mel,
channel 1 (when present) its delta.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import yaml
from torch import nn

from envsound.errors import ConfigError


def check_model_args(name: str, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int,
                     filters: int | None, dropout: float | None) -> None:
    """Raise :class:`ConfigError` naming ``name`` and the bad value when a constructor argument is out of range.

    ``n_classes``, ``in_channels``, ``n_mels``, ``n_frames`` and ``filters`` (when set) must be ints >= 1;
    ``dropout`` (when set) must be in ``[0, 1)``.
    """
    for key, value in (("n_classes", n_classes), ("in_channels", in_channels), ("n_mels", n_mels),
                       ("n_frames", n_frames)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"model {name!r}: {key}={value!r} must be an int >= 1")
    if filters is not None and (isinstance(filters, bool) or not isinstance(filters, int) or filters < 1):
        raise ConfigError(f"model {name!r}: model.filters={filters!r} must be an int >= 1 (or unset for the default)")
    if dropout is not None and not 0 <= dropout < 1:
        raise ConfigError(f"model {name!r}: model.dropout={dropout!r} must be in [0, 1) (or unset for the default)")


def check_input(name: str, x: torch.Tensor, in_channels: int) -> None:
    """Raise :class:`ConfigError` unless ``x`` is ``(batch, in_channels, n_mels, frames)``."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ConfigError(f"model {name!r}: input of shape {tuple(x.shape)} is not (batch, {in_channels}, n_mels, "
                          f"frames); check features.deltas and the feature settings the model was built with")


class MelBatchNorm(nn.Module):
    """Batch normalisation of every (channel, mel bin) over batch and time; needs no fitted dataset statistics.

    As ``bn0`` in PANNs: log-mel levels differ a lot between low and high bins, so each bin gets its own mean and
    scale, learned from the training batches (running statistics at evaluation). Input and output
    ``(batch, in_channels, n_mels, frames)``; the output keeps the input's memory format.
    """

    def __init__(self, in_channels: int, n_mels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.n_mels = n_mels
        self.bn = nn.BatchNorm1d(in_channels * n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, mels, frames = x.shape
        if channels != self.in_channels or mels != self.n_mels:
            raise ConfigError(f"input has {channels} channels x {mels} mel bins but the model was built for "
                              f"{self.in_channels} x {self.n_mels}; use the feature settings of the checkpoint")
        channels_last = channels > 1 and x.is_contiguous(memory_format=torch.channels_last)
        y = self.bn(x.reshape(batch, channels * mels, frames)).reshape(batch, channels, mels, frames)
        return y.contiguous(memory_format=torch.channels_last) if channels_last else y


class BandConv2d(nn.Conv2d):
    """A ``Conv2d`` (stride 1, no padding) whose kernel spans most of the mel axis, as Piczak's 57-of-60-band first
    layer: in training it runs as one ``Conv1d`` over time on each of the few mel offsets, stacked along the batch.

    Same parameters, state-dict keys and output values as ``nn.Conv2d(in_ch, out_ch, kernel_size)`` (to float
    rounding; the training output is a non-contiguous view). Why: oneDNN's backward for a tall kernel over 2 input
    channels is slow on the CPU, while a Conv1d over ``in_ch x kernel height`` channels is not (``piczak``'s conv1 at
    batch 1,000: benchmarks/bench_kernels.py, docs/benchmarks.md). Evaluation, frozen (eval-mode) layers, the ONNX
    export and inputs with more than :attr:`MAX_OFFSETS` offsets (the stacked bands grow with them) take the plain
    ``Conv2d``. ``(batch, in_ch, H, T) -> (batch, out_ch, H - kh + 1, T - kw + 1)``.
    """

    MAX_OFFSETS = 8

    def __init__(self, in_ch: int, out_ch: int, kernel_size: tuple[int, int]) -> None:
        super().__init__(in_ch, out_ch, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh = self.kernel_size[0]
        offsets = x.shape[2] - kh + 1
        if not (self.training and torch.is_grad_enabled()) or not 1 <= offsets <= self.MAX_OFFSETS:
            return super().forward(x)  # Conv2d also raises its own error for an input smaller than the kernel
        batch, channels, _, frames = x.shape
        bands = torch.cat([x[:, :, h:h + kh].reshape(batch, channels * kh, frames) for h in range(offsets)])
        y = nn.functional.conv1d(bands, self.weight.flatten(1, 2), self.bias)  # (offsets * batch, out_ch, T')
        return y.unflatten(0, (offsets, batch)).permute(1, 2, 0, 3)


class ConvBlock(nn.Module):
    """``n_convs`` x (3x3 conv, no bias + BatchNorm + ReLU), then 2x2 average pooling.

    ``(batch, in_ch, H, W) -> (batch, out_ch, ceil(H / 2), ceil(W / 2))``: ``ceil_mode`` keeps the last odd row or
    column (averaged over the cells that exist) and lets a size-1 axis pass, so any input size works.
    """

    def __init__(self, in_ch: int, out_ch: int, *, n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.convs(x))


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """PANNs-style clip pooling: mean over frequency, then max + mean over time.

    ``(batch, C, F, T) -> (batch, C)``; any F, T >= 1, so the model accepts any input length.
    """
    x = x.mean(dim=2)
    return x.amax(dim=2) + x.mean(dim=2)


# ---- per-model options (``model.options``) -------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One option a model accepts through ``model.options`` (and as a keyword argument of its constructor).

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``; a ``str`` option lists its ``choices``, a number may have a
    closed range ``[low, high]`` (``None``: unbounded on that side). ``help`` is one short phrase for messages.

    >>> OptionSpec(64, int, low=1, help="GRU units per direction").describe()   # 'int >= 1, default 64'
    """

    default: Any
    kind: type
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    help: str = ""

    def describe(self) -> str:
        """``gru|lstm, default gru`` / ``int 1..4, default 1`` / ``float >= 0, default 0.1``."""
        if self.choices:
            valid = "|".join(str(c) for c in self.choices)
        elif self.low is not None and self.high is not None:
            valid = f"{self.kind.__name__} {self.low}..{self.high}"
        elif self.low is not None:
            valid = f"{self.kind.__name__} >= {self.low}"
        elif self.high is not None:
            valid = f"{self.kind.__name__} <= {self.high}"
        else:
            valid = self.kind.__name__
        return f"{valid}, default {self.default}"

    def coerce(self, value: Any) -> Any:
        """``value`` as this option's type (a YAML-typed value from a config, or a string from the command line);
        raises ``ValueError`` when it is not one, or is outside the choices or the range."""
        if isinstance(value, str) and self.kind is not str:
            value = yaml.safe_load(value) if value.strip() else value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ValueError
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            value = float(value)
        elif self.kind is str:
            if not isinstance(value, str):
                raise ValueError
        if self.choices and value not in self.choices:
            raise ValueError
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError
        return value


def describe_options(specs: Mapping[str, OptionSpec]) -> str:
    """``rnn (gru|lstm, default gru), hidden (int >= 1, default 64)``; ``none`` for a model without options."""
    return ", ".join(f"{key} ({spec.describe()})" for key, spec in specs.items()) or "none"


def resolve_options(name: str, specs: Mapping[str, OptionSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` (``model.options``) against model ``name``'s ``specs``; return every option, typed, with the
    defaults filled in for those not given.

    Raises:
        ConfigError: ``given`` is not a mapping, names an option the model does not have, or has a value of the
            wrong type or out of range; the message names the model, the key or value, and lists the valid options.

    >>> resolve_options("crnn", CRNN.options, {"hidden": 32})   # {'rnn': 'gru', 'hidden': 32, ...}
    """
    if not isinstance(given, Mapping):
        raise ConfigError(f"model {name!r}: model.options={given!r} must be a mapping of option: value; its options: "
                          f"{describe_options(specs)}")
    resolved = {key: spec.default for key, spec in specs.items()}
    for key, value in given.items():
        if key not in specs:
            if not specs:
                raise ConfigError(f"model {name!r} takes no options, but model.options has {key!r}; leave "
                                  "model.options empty for this model")
            close = difflib.get_close_matches(str(key), list(specs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"model {name!r} has no option {key!r}{hint}; its options: {describe_options(specs)}")
        spec = specs[key]
        try:
            resolved[key] = spec.coerce(value)
        except (TypeError, ValueError, OverflowError, yaml.YAMLError):
            raise ConfigError(f"model {name!r}: model.options.{key}={value!r} is not valid; valid: "
                              f"{spec.describe()}" + (f" ({spec.help})" if spec.help else "")) from None
    return resolved
