"""Convolutional autoencoders over the classifier trunks, for pre-training on unlabelled audio (issue 3).

The encoder is *exactly* a classifier's trunk - :class:`~envsound.models.dtu.DTUEncoder` (``dtu``) or
:class:`~envsound.models.cnn.CNNEncoder` (``cnn``) - so its weights transfer by name into the classifier
(:func:`load_encoder_state`). The decoder mirrors the encoder with transposed convolutions (stride 1, same kernel
sizes and 'same' padding, the channel counts reversed) and inverts each pooling step in one of two ways:

- ``"unpool"``: :class:`torch.nn.MaxUnpool2d` with the switch positions recorded by the encoder's max-pooling and its
  pre-pool size: every value goes back to where its maximum came from, zeros elsewhere (also in the odd last row or
  column a floor-mode pool dropped). Only defined for the ``dtu`` trunk: the ``cnn`` trunk *average*-pools, which
  records no switches, so ``cnn`` + ``"unpool"`` is a :class:`ConfigError` (use ``"upsample"``: nearest-neighbour
  upsampling is, up to a factor 1/4, the exact transpose of 2x2 average pooling).
- ``"upsample"``: every value repeated over its 2x2 pooling window (:func:`upsample_to`), cropped or edge-extended to
  the pre-pool size.

ReLU (``dtu``) or BatchNorm + ReLU (``cnn``, as its encoder) after every transposed convolution except the last, which
is linear. The model returns the reconstruction; the loss (mean squared error against :meth:`ConvAutoencoder.target`,
the input standardised per mel bin) lives outside ``forward``.

Layout: input and reconstruction ``(batch, in_channels, n_mels, frames)`` float.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from envsound.config import Config
from envsound.errors import CheckpointError, ConfigError
from envsound.models import cnn as cnn_module
from envsound.models import dtu as dtu_module
from envsound.models.checkpoint import Checkpoint
from envsound.models.cnn import CNNEncoder
from envsound.models.dtu import DTUEncoder
from envsound.models.files import AUTOENCODER, KINDS, open_model_file

log = logging.getLogger(__name__)

DECODERS = ("unpool", "upsample")
TRUNKS = {"dtu": DTUEncoder, "cnn": CNNEncoder}
DEFAULT_FILTERS = {"dtu": dtu_module.DEFAULT_FILTERS, "cnn": cnn_module.DEFAULT_FILTERS}
KIND = AUTOENCODER  # Checkpoint.meta["kind"] of a pre-trained autoencoder
CHECKPOINT_NAME = "autoencoder.ckpt"


def check_decoder(trunk: str, decoder: str) -> None:
    """Raise :class:`ConfigError` unless ``trunk`` has an autoencoder and ``decoder`` is valid for it."""
    if trunk not in TRUNKS:
        raise ConfigError(f"model.name={trunk!r} has no autoencoder; pre-training works for {', '.join(TRUNKS)} "
                          "(pass --model dtu or --model cnn)")
    if decoder not in DECODERS:
        raise ConfigError(f"decoder={decoder!r} is not valid; use one of {', '.join(DECODERS)}")
    if trunk == "cnn" and decoder == "unpool":
        raise ConfigError("decoder='unpool' needs max-pool switch positions, but the 'cnn' trunk average-pools; "
                          "use --decoder upsample with cnn, or --model dtu for unpooling")


def upsample_to(x: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Repeat every value of ``x`` ``(batch, C, h, w)`` over a 2x2 block, then fit to ``size[-2:]`` = ``(H, W)``.

    ``H`` is ``2h`` (even pre-pool size), ``2h - 1`` (odd size, ceil-mode pool: the last block is cropped) or
    ``2h + 1`` (odd size, floor-mode pool: the row the pool dropped repeats its neighbour); the same for ``W``.
    """
    height, width = int(size[-2]), int(size[-1])
    y = F.interpolate(x, scale_factor=2, mode="nearest")[..., :height, :width]
    pad_h, pad_w = height - y.shape[-2], width - y.shape[-1]
    if pad_h > 0 or pad_w > 0:
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
    return y


class ConvAutoencoder(nn.Module):
    """A trunk (``encoder``) plus a mirrored decoder of transposed convolutions.

    Args:
        encoder: a :class:`DTUEncoder` or :class:`CNNEncoder` (built fresh, or the very trunk of a classifier).
        decoder: ``"unpool"`` (``DTUEncoder`` only) or ``"upsample"``.

    Raises:
        ConfigError: another encoder type, or an unknown or unsupported decoder.

    >>> ae = ConvAutoencoder(DTUEncoder(in_channels=1, n_mels=28, n_frames=36, filters=64), decoder="unpool")
    >>> ae(torch.randn(4, 1, 28, 36)).shape   # torch.Size([4, 1, 28, 36])
    """

    def __init__(self, encoder: nn.Module, *, decoder: str) -> None:
        super().__init__()
        trunk = next((name for name, cls in TRUNKS.items() if isinstance(encoder, cls)), None)
        if trunk is None:
            raise ConfigError(f"ConvAutoencoder: encoder {type(encoder).__name__} is not a DTUEncoder or CNNEncoder")
        check_decoder(trunk, decoder)
        self.trunk, self.decoder_kind = trunk, decoder
        self.encoder = encoder
        self.in_channels = encoder.in_channels
        if trunk == "dtu":
            # mirror of (conv k + ReLU + max-pool) x 3: (unpool + transposed conv k [+ ReLU]) x 3, last one linear
            f = encoder.filters
            kernels = dtu_module.KERNELS
            stages = []
            for i in reversed(range(len(kernels))):
                k, out = kernels[i], (f if i > 0 else encoder.in_channels)
                layers: list[nn.Module] = [nn.ConvTranspose2d(f, out, k, padding=k // 2)]
                if i > 0:
                    layers.append(nn.ReLU(inplace=True))
                stages.append(nn.Sequential(*layers))
        else:
            # mirror of (n x (conv 3 + BN + ReLU) + avg-pool) x 4
            channels = [encoder.in_channels] + list(encoder.widths)
            stages = []
            for i in reversed(range(len(channels) - 1)):
                n_convs = len([m for m in encoder.blocks[i].convs if isinstance(m, nn.Conv2d)])
                layers = []
                for j in range(n_convs):
                    out = channels[i] if j == n_convs - 1 else channels[i + 1]
                    final = i == 0 and j == n_convs - 1  # the output layer: linear, with a bias
                    layers.append(nn.ConvTranspose2d(channels[i + 1], out, 3, padding=1, bias=final))
                    if not final:
                        layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                stages.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(stages)
        self.unpool = nn.MaxUnpool2d(2) if decoder == "unpool" else None

    def invert_pool(self, x: torch.Tensor, indices: torch.Tensor | None, size: torch.Size) -> torch.Tensor:
        """Undo one pooling step: ``(batch, C, h, w)`` -> ``size`` ``(batch, C, H, W)``, by max-unpooling with
        ``indices`` (decoder ``"unpool"``) or by :func:`upsample_to` (``"upsample"``)."""
        if self.unpool is not None:
            return self.unpool(x, indices, output_size=size[-2:])
        return upsample_to(x, size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Size]]:
        """``(code, switch indices or Nones, pre-pool sizes)``, first pool first."""
        if self.trunk == "dtu":
            return self.encoder(x, return_indices=True)
        z, sizes = self.encoder(x, return_sizes=True)
        return z, [None] * len(sizes), sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_mels, frames)`` -> reconstruction of :meth:`target`, same shape."""
        z, indices, sizes = self.encode(x)
        for stage, idx, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            z = stage(self.invert_pool(z, idx, size))
        return z

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the autoencoder reconstructs: ``x`` standardised per (channel, mel bin), as the encoder's input
        BatchNorm does (batch statistics in training, running statistics in eval) but without its learnable scale
        and shift, so the target cannot be shrunk to make the loss small. Detached; shape of ``x``, float32."""
        bn = self.encoder.norm.bn
        batch, channels, mels, frames = x.shape
        flat = x.float().reshape(batch, channels * mels, frames)
        if bn.training or bn.running_mean is None:
            y = F.batch_norm(flat, None, None, training=True, eps=bn.eps)
        else:
            y = F.batch_norm(flat, bn.running_mean, bn.running_var, training=False, eps=bn.eps)
        return y.reshape(batch, channels, mels, frames).detach()


def build_encoder(name: str, *, in_channels: int, n_mels: int, n_frames: int,
                  filters: int | None = None) -> nn.Module:
    """A fresh trunk of model ``name`` (``"dtu"`` or ``"cnn"``) for this input size.

    Raises:
        ConfigError: another model name, or an argument out of range.
    """
    if name not in TRUNKS:
        raise ConfigError(f"model.name={name!r} has no autoencoder; pre-training works for {', '.join(TRUNKS)}")
    return TRUNKS[name](in_channels=in_channels, n_mels=n_mels, n_frames=n_frames, filters=filters)


def build_autoencoder(config: Config, *, decoder: str) -> ConvAutoencoder:
    """The autoencoder of ``config.model`` (name ``dtu`` or ``cnn``, its ``filters``) sized for ``config.features``.

    Raises:
        ConfigError: a model without an autoencoder, an invalid decoder for it, waveform features.
    """
    check_decoder(config.model.name, decoder)
    feats = config.features
    if feats.kind != "logmel":
        raise ConfigError(f"features.kind={feats.kind!r}: the autoencoder needs log-mel input; "
                          "set features.kind=logmel")
    encoder = build_encoder(config.model.name, in_channels=2 if feats.deltas else 1, n_mels=feats.n_mels,
                            n_frames=feats.window_frames, filters=config.model.filters)
    return ConvAutoencoder(encoder, decoder=decoder)


def autoencoder_checkpoint(model: ConvAutoencoder, config: Config, *, meta: dict[str, Any] | None = None
                           ) -> Checkpoint:
    """A self-describing :class:`Checkpoint` of ``model``: ``labels=[]``, ``meta`` with ``kind="autoencoder"``,
    ``decoder`` and ``trunk`` (plus ``meta``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return Checkpoint(config=config, labels=[], state_dict=state,
                      meta={"kind": KIND, "decoder": model.decoder_kind, "trunk": model.trunk, **(meta or {})})


def read_autoencoder_checkpoint(path: str | Checkpoint, *, source: str | None = None) -> Checkpoint:
    """Load ``path`` and check it is an autoencoder checkpoint.

    Raises:
        CheckpointError: unreadable, or a classifier (or other) checkpoint instead of an autoencoder.
    """
    if isinstance(path, Checkpoint):
        checkpoint, source, kind = path, source or "checkpoint", path.meta.get("kind")
    else:
        opened = open_model_file(path)
        checkpoint, source, kind = opened.checkpoint, source or str(path), opened.kind
    if kind != KIND or checkpoint.state_dict is None:
        what = KINDS.get(kind, f"kind={kind!r}")
        raise CheckpointError(f"{source}: not an autoencoder checkpoint ({what}); pass the {CHECKPOINT_NAME} written "
                              "by 'envsound pretrain'")
    return checkpoint


def load_autoencoder(path: str | Checkpoint, *, source: str | None = None) -> tuple[ConvAutoencoder, Checkpoint]:
    """Rebuild the autoencoder an ``autoencoder.ckpt`` describes (in eval mode) and return it with the checkpoint.

    Raises:
        CheckpointError: not an autoencoder checkpoint, or weights that do not fit the model it describes.
    """
    source = source or (str(path) if not isinstance(path, Checkpoint) else "checkpoint")
    checkpoint = read_autoencoder_checkpoint(path, source=source)
    try:
        model = build_autoencoder(checkpoint.config, decoder=str(checkpoint.meta.get("decoder")))
    except ConfigError as exc:
        raise CheckpointError(f"{source}: cannot rebuild the autoencoder: {exc}") from exc
    _load_all_or_nothing(model, checkpoint.state_dict, source=source, what="autoencoder")
    return model.eval(), checkpoint


def encoder_init_state(checkpoint: str | Checkpoint, config: Config, *, source: str | None = None
                       ) -> dict[str, torch.Tensor]:
    """The encoder weights of an autoencoder checkpoint, checked against the classifier ``config`` will build.

    Every mismatch is listed in one message: the trunk (``model.name``), the filter count (``model.filters``, defaults
    resolved), and the input (``features`` kind, sample rate, FFT size, hop, mel bands and range, deltas, and the
    window length in frames). Nothing is loaded here.

    Returns:
        ``{name: tensor}`` for :func:`load_encoder_state` (keys of the trunk, e.g. ``convs.0.weight``).

    Raises:
        CheckpointError: not an autoencoder checkpoint, or an encoder that does not match (the message says which).

    >>> state = encoder_init_state("runs/cae/autoencoder.ckpt", config)
    """
    source = source or str(checkpoint if not isinstance(checkpoint, Checkpoint) else "checkpoint")
    checkpoint = read_autoencoder_checkpoint(checkpoint, source=source)
    theirs = checkpoint.config
    name = config.model.name
    if name not in TRUNKS:
        raise CheckpointError(f"{source}: model {name!r} has no encoder to initialise; --init works for "
                              f"{', '.join(TRUNKS)} (the autoencoder's trunk is {theirs.model.name!r})")
    problems = []
    if theirs.model.name != name:
        problems.append(f"trunk (model.name) {theirs.model.name!r} in the checkpoint, {name!r} here")
    else:
        mine_f = config.model.filters or DEFAULT_FILTERS[name]
        their_f = theirs.model.filters or DEFAULT_FILTERS[name]
        if mine_f != their_f:
            problems.append(f"model.filters {their_f} in the checkpoint, {mine_f} here")
    for key, ours, other in input_settings(config, theirs):
        if ours != other:
            problems.append(f"{key} {other!r} in the checkpoint, {ours!r} here")
    if problems:
        raise CheckpointError(f"{source}: the autoencoder's encoder does not match this model: {'; '.join(problems)}; "
                              "pre-train with the same model and feature settings, or drop --init")
    prefix = "encoder."
    return {k[len(prefix):]: v for k, v in checkpoint.state_dict.items() if k.startswith(prefix)}


def encoder_of(network: nn.Module) -> nn.Module:
    """The trunk of a classifier (``network.encoder`` of ``dtu`` and ``cnn``).

    Raises:
        ConfigError: a model without an encoder trunk.
    """
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, tuple(TRUNKS.values())):
        raise ConfigError(f"model {type(network).__name__} has no encoder trunk; encoder initialisation and freezing "
                          f"work for {', '.join(TRUNKS)}")
    return encoder


def load_encoder_state(network: nn.Module, state: dict[str, torch.Tensor], *, source: str = "--init") -> None:
    """Copy ``state`` (from :func:`encoder_init_state`) into the classifier's trunk: all of it or nothing.

    Raises:
        CheckpointError: a missing or extra weight, or one of another shape (checked before anything is copied).
    """
    _load_all_or_nothing(encoder_of(network), state, source=source, what="encoder")


def _load_all_or_nothing(module: nn.Module, state: dict[str, torch.Tensor], *, source: str, what: str) -> None:
    # torch's strict load_state_dict copies every matching tensor before it raises, so check everything first.
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or extra or shapes:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
        if extra:
            details.append(f"unexpected {', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}")
        if shapes:
            details.append(f"shape {', '.join(shapes[:3])}{', ...' if len(shapes) > 3 else ''}")
        raise CheckpointError(f"{source}: {what} weights do not fit ({'; '.join(details)}); nothing was loaded")
    module.load_state_dict(state, strict=True)


def input_settings(mine: Config, theirs: Config) -> list[tuple[str, Any, Any]]:
    a, b = mine.features, theirs.features

    def f_max(cfg):
        return float(cfg.sample_rate / 2 if cfg.f_max is None else cfg.f_max)

    return [("features.kind", a.kind, b.kind), ("features.sample_rate", a.sample_rate, b.sample_rate),
            ("features.n_fft", a.n_fft, b.n_fft), ("features.hop_length", a.hop_length, b.hop_length),
            ("features.n_mels", a.n_mels, b.n_mels), ("features.f_min", float(a.f_min), float(b.f_min)),
            ("features.f_max", f_max(a), f_max(b)), ("features.deltas (input channels)", a.deltas, b.deltas),
            ("input frames (features.window_seconds)", a.window_frames, b.window_frames)]
