"""Fine-tuning a classifier from a pre-trained autoencoder's encoder (``--init``): load, freeze, scale the encoder lr.

- :func:`resolve_init` checks an ``autoencoder.ckpt`` against the classifier config before any work is done;
- :func:`apply_init` copies the encoder weights into the freshly built classifier (all or nothing);
- :class:`FreezeEncoder` keeps the encoder's weights fixed for the first ``train.freeze_encoder_epochs`` epochs (its
  BatchNorm running statistics still follow the labelled data), then trains everything;
- :func:`optimizer_groups` gives the encoder ``lr * train.encoder_lr_scale`` and the rest ``lr``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch import nn

from envsound.config import Config, TrainConfig
from envsound.errors import CheckpointError, ConfigError
from envsound.features.cache import FeatureCache
from envsound.features.fingerprint import seen_in_training
from envsound.models.checkpoint import load_checkpoint
from envsound.models.autoencoder import encoder_init_state, encoder_of, load_encoder_state

log = logging.getLogger(__name__)


def resolve_init(init: str | Path | None, config: Config) -> dict[str, torch.Tensor] | None:
    """The checked encoder weights of ``init`` (``None`` when no ``--init`` is given).

    Raises:
        CheckpointError: ``init`` is not an autoencoder checkpoint or its encoder does not match ``config``.
        ConfigError: ``train.freeze_encoder_epochs`` > 0 without ``init`` (it would freeze a random encoder).
    """
    if init is None:
        if config.train.freeze_encoder_epochs > 0:
            raise ConfigError(f"train.freeze_encoder_epochs={config.train.freeze_encoder_epochs} would freeze a "
                              "randomly initialised encoder; pass --init DIR/autoencoder.ckpt or set it to 0")
        return None
    state = encoder_init_state(init, config, source=str(init))
    log.info("initialising the %s encoder from %s (%d tensors)", config.model.name, init, len(state))
    return state


def check_init_unseen(init: str | Path, protected: Sequence[str | Path], *, cache: FeatureCache | None,
                      allow_overlap: bool) -> None:
    """Refuse ``init`` when the model in it was fitted on any of ``protected`` (this split's validation and test
    clips): "fine-tuning" a model that has heard the test clips inflates every score after it.

    Raises:
        CheckpointError: the overlap (its size and the first files), unless ``allow_overlap`` (then a warning).
    """
    source = load_checkpoint(init)
    if source.trained_on is None:
        log.info("%s does not record the clips it was trained on (an older checkpoint): whether it saw this split's "
                 "test clips could not be checked", init)
        return
    seen = seen_in_training(protected, source.trained_on, cache=cache)
    if not seen:
        return
    message = (f"{init} was trained on {len(seen)} of this split's {len(protected)} validation/test clips (e.g. "
               f"{', '.join(str(p) for p in seen[:3])})")
    if allow_overlap:
        log.warning("leakage.allow_overlap: %s; used anyway", message)
        return
    raise CheckpointError(f"{message}; pre-train without them (envsound pretrain --exclude-folds), or pass "
                          "--allow-overlap (leakage.allow_overlap=true) if you mean it")


def apply_init(network: nn.Module, state: dict[str, torch.Tensor] | None, *, source: str = "--init") -> None:
    """Copy ``state`` into ``network``'s encoder (no-op for ``None``); raises :class:`CheckpointError` on a misfit."""
    if state is not None:
        load_encoder_state(network, state, source=source)


class FreezeEncoder(L.Callback):
    """``requires_grad=False`` on the encoder of ``pl_module.model`` while ``current_epoch < epochs``.

    Decided from the epoch number alone, so a resumed run freezes exactly as an uninterrupted one.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        for param in encoder_of(pl_module.model).parameters():
            param.requires_grad_(not frozen)
        if trainer.current_epoch in (0, self.epochs):
            log.info("epoch %d: encoder %s", trainer.current_epoch, "frozen" if frozen else "trainable")


def finetune_callbacks(config: Config) -> list[L.Callback]:
    """``[FreezeEncoder(n)]`` when ``train.freeze_encoder_epochs`` is n > 0, else ``[]``."""
    n = config.train.freeze_encoder_epochs
    return [FreezeEncoder(n)] if n > 0 else []


def optimizer_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """Parameter groups ``[{"params", "lr"}, ...]``: one group at ``train.lr``, or with ``encoder_lr_scale != 1``
    the encoder at ``lr * scale`` first and everything else at ``lr``.

    Raises:
        ConfigError: ``encoder_lr_scale != 1`` for a model without an encoder trunk.
    """
    if train.encoder_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": train.lr}]
    encoder_ids = {id(p) for p in encoder_of(model).parameters()}
    encoder = [p for p in model.parameters() if id(p) in encoder_ids]
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    return [{"params": encoder, "lr": train.lr * train.encoder_lr_scale}, {"params": rest, "lr": train.lr}]
