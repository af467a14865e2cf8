"""``dtu``: the seed paper's classifier, ``(64)5c-2p-(64)3c-2p-(64)3c-2p-128fc-n``.

:class:`DTUEncoder` is the convolutional part (shared with the later convolutional autoencoder, which unpools with
the max-pool switches); :class:`DTUClassifier` puts a 128-unit FC layer and the output layer on top. Encoder weights
transfer by name: ``classifier.encoder.load_state_dict(autoencoder.encoder.state_dict())``.

Padding is 'same' (``k // 2``), not 'valid': every pool then exactly halves the map (128 x 216 -> 64 x 108 -> 32 x 54
-> 16 x 27), so the autoencoder's mirror image needs no cropping arithmetic, and frames at the clip edges (onsets,
short events) are seen by as many filters as frames in the middle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from envsound.errors import ConfigError
from envsound.models.blocks import MelBatchNorm, check_input, check_model_args

DEFAULT_FILTERS = 64
DEFAULT_DROPOUT = 0.5
HIDDEN = 128
KERNELS = (5, 3, 3)


class DTUEncoder(nn.Module):
    """Per-mel-bin input BatchNorm, then 3 x (conv k x k 'same' + ReLU + max-pool 2x2), ``filters`` channels each.

    ``(batch, in_channels, n_mels, frames) -> (batch, filters, n_mels // 8, frames // 8)`` (each pool floors).
    The input norm (:class:`MelBatchNorm`) is part of the encoder so that its statistics transfer with the weights;
    an autoencoder reconstructing the normalised input can use ``encoder.norm(x)`` as its target.

    Raises:
        ConfigError: an argument out of range, or fewer than 8 mel bins or frames (nothing left after 3 pools).
    """

    def __init__(self, *, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None) -> None:
        super().__init__()
        check_model_args("dtu", n_classes=1, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=None)
        if n_mels < 8 or n_frames < 8:
            raise ConfigError(f"model 'dtu': input {n_mels} mels x {n_frames} frames is too small for 3 2x2 pools; "
                              f"use at least 8 mel bins and 8 frames")
        self.filters = DEFAULT_FILTERS if filters is None else filters
        self.in_channels = in_channels
        self.norm = MelBatchNorm(in_channels, n_mels)
        channels = [in_channels] + [self.filters] * len(KERNELS)
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], k, padding=k // 2)
                                   for i, k in enumerate(KERNELS))
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.out_shape = (self.filters, n_mels // 8, n_frames // 8)

    def forward(self, x: torch.Tensor, return_indices: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor], list[torch.Size]]:
        """Encode ``x`` of shape ``(batch, in_channels, n_mels, frames)``.

        Returns ``z`` ``(batch, filters, n_mels // 8, frames // 8)``; with ``return_indices=True`` the tuple
        ``(z, indices, sizes)``: the three max-pool switch tensors (for ``nn.MaxUnpool2d``, first pool first) and the
        three pre-pool sizes ``(batch, filters, H, W)`` to pass as its ``output_size`` (odd sizes unpool exactly).
        """
        check_input("dtu", x, self.in_channels)
        x = self.norm(x)
        indices: list[torch.Tensor] = []
        sizes: list[torch.Size] = []
        for conv in self.convs:
            x = self.act(conv(x))
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        return (x, indices, sizes) if return_indices else x


class DTUClassifier(nn.Module):
    """:class:`DTUEncoder` -> flatten -> FC 128 + ReLU (the embedding) -> dropout -> logits.

    Args:
        n_classes: output logits, >= 1.
        in_channels: 1 (log-mel) or 2 (+ delta).
        n_mels, n_frames: input size, each >= 8; the flatten size ``filters * (n_mels // 8) * (n_frames // 8)`` is
            computed from them, so inputs must have exactly this size.
        filters: encoder channels, None = 64.
        dropout: before the output layer, None = 0.5.

    Raises:
        ConfigError: an argument out of range; at run time, an input of another size.

    >>> model = DTUClassifier(n_classes=10, in_channels=1, n_mels=128, n_frames=216)
    >>> model(torch.randn(2, 1, 128, 216)).shape   # torch.Size([2, 10])
    """

    preset: ClassVar[dict[str, Any]] = {}
    input_kind: ClassVar[str] = "logmel"

    def __init__(self, *, n_classes: int, in_channels: int, n_mels: int, n_frames: int, filters: int | None = None,
                 dropout: float | None = None) -> None:
        super().__init__()
        check_model_args("dtu", n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
                         filters=filters, dropout=dropout)
        p = DEFAULT_DROPOUT if dropout is None else dropout
        self.input_shape = (in_channels, n_mels, n_frames)
        self.encoder = DTUEncoder(in_channels=in_channels, n_mels=n_mels, n_frames=n_frames, filters=filters)
        c, h, w = self.encoder.out_shape
        self.flat_dim = c * h * w
        self.fc = nn.Sequential(nn.Linear(self.flat_dim, HIDDEN), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(HIDDEN, n_classes))
        self.embed_dim = HIDDEN

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, n_frames) -> (batch, 128)``, non-negative."""
        z = self.encoder(x).flatten(1)
        if z.shape[1] != self.flat_dim:
            raise ConfigError(f"model 'dtu': input of shape {tuple(x.shape)} does not fit the (batch, "
                              f"{', '.join(map(str, self.input_shape))}) input the model was built for; use the "
                              f"checkpoint's feature settings")
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, n_frames) -> logits (batch, n_classes)``."""
        return self.head(self.embed(x))
