"""How a model started from another trains (``transfer.mode``): which layers are the trunk, when they are frozen,
at which learning rate they train.

- ``full``: everything trains; the trunk at ``train.lr x transfer.trunk_lr_scale`` (:func:`optimizer_groups`).
- ``gradual``: :class:`TrunkFinetuning` (Lightning's ``BaseFinetuning``) freezes the trunk for
  ``transfer.freeze_epochs`` epochs - weights, and the frozen layers in eval mode so batch-norm statistics and dropout
  are frozen too - then trains it as ``full`` does.
- ``probe``: no Lightning loop at all (:mod:`envsound.transfer.probe`).
- ``probe_full``: ``probe``, then ``full`` from the network the probe made (LP-FT).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from envsound.config import Config
from envsound.errors import ConfigError
from envsound.models.autoencoder import KIND as AUTOENCODER, encoder_of
from envsound.transfer.notes import note
from envsound.transfer.source import HEAD, InitPlan

log = logging.getLogger(__name__)

# transfer.mode=auto for a classifier checkpoint: the winner of the K = 5 experiment (docs/results.md, "Transfer
# from our own models": probe 80.0 %, full 72.2 %, gradual 70.9 %, scratch 55.9 %); "full" where probe cannot run
BEST_CLASSIFIER_MODE = "probe"


def resolve_mode(config: Config, plan: InitPlan | None) -> str | None:
    """The mode this run trains in (``None`` without ``--init``).

    Raises:
        ConfigError: a mode other than ``auto`` without ``--init`` (it would freeze or probe a random trunk),
            ``probe`` from an autoencoder (its layers after the encoder are untrained), ``probe`` for an ensemble
            (but of frame heads: N probes) or with a semi-supervised method, or ``gradual`` on several processes (DDP
            cannot start synchronising layers it was built without).
    """
    mode = config.transfer.mode
    frame_head = bool(config.model.options.get("frame_head"))  # a detector's probes make an ensemble too
    if plan is None:
        if mode != "auto":
            raise ConfigError(f"transfer.mode={mode} trains from a source model, and there is none: give init= "
                              "(--init) SOURCE/model.ckpt (or autoencoder.ckpt), or leave transfer.mode=auto")
        return None
    if mode == "auto":
        mode = BEST_CLASSIFIER_MODE if plan.kind != AUTOENCODER else "full"
        if mode == "probe" and (config.semi.method != "none" or (config.train.ensemble > 1 and not frame_head)):
            mode = "full"  # a probe fits one head on labelled clips: semi-supervised runs and ensembles train
        note(log, "transfer.mode=auto: %s", mode)
    if mode == "probe_full" and (plan.kind == AUTOENCODER or config.semi.method != "none"
                                 or config.train.ensemble > 1):
        raise ConfigError("transfer.mode=probe_full starts from a probe: it needs a classifier checkpoint, one "
                          "network and no semi-supervised method (use full)")
    if mode == "probe" and plan.kind == AUTOENCODER:
        raise ConfigError("transfer.mode=probe needs a classifier checkpoint (an autoencoder's layers after its "
                          "encoder are untrained); use full or gradual with an autoencoder.ckpt")
    if mode == "probe" and config.train.ensemble > 1 and not frame_head:
        raise ConfigError("transfer.mode=probe fits one logistic regression; set train.ensemble=1 (an ensemble of "
                          "probes is for frame heads: model.options.frame_head)")
    if mode == "probe" and config.semi.method != "none":
        raise ConfigError(f"transfer.mode=probe fits on the labelled clips only; semi.method={config.semi.method} "
                          "needs a trained network (use transfer.mode full or gradual)")
    if mode == "gradual" and config.runtime.processes > 1:
        raise ConfigError("transfer.mode=gradual runs in one process; use transfer.mode=full with several devices")
    return mode


def trunk_modules(network: nn.Module, plan: InitPlan) -> list[nn.Module]:
    """The transferred layers of ``network``: every child but the head (classifier source), or the encoder
    (autoencoder source)."""
    if plan.kind == AUTOENCODER:
        return [encoder_of(network)]
    return [module for name, module in network.named_children() if name != HEAD]


def optimizer_groups(model: nn.Module, *, lr: float, trunk_scale: float,
                     trunk: list[nn.Module] | None) -> list[dict[str, Any]]:
    """Parameter groups ``[{"params", "lr"}, ...]``: one at ``lr`` (``train.lr``), or the ``trunk`` at ``lr x
    trunk_scale`` (``transfer.trunk_lr_scale``) first and the rest at ``lr``. Frozen parameters stay in their group:
    they get no gradient while frozen (the optimiser skips them), so unfreezing needs no new group under the one-cycle
    schedule."""
    scale = trunk_scale
    if trunk is None or scale == 1.0:
        return [{"params": list(model.parameters()), "lr": lr}]
    trunk_ids = {id(p) for module in trunk for p in module.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) in trunk_ids], "lr": lr * scale},
            {"params": [p for p in model.parameters() if id(p) not in trunk_ids], "lr": lr}]


class TrunkFinetuning(BaseFinetuning):
    """The trunk frozen (weights, batch-norm statistics, dropout) while ``current_epoch < epochs``, then trainable.

    Decided from the epoch number alone, so a resumed run freezes exactly as an uninterrupted one. The frozen
    layers are put in eval mode at every frozen epoch's start (after Lightning's own mode switches), and back in train
    mode once they thaw.
    """

    def __init__(self, plan: InitPlan, epochs: int) -> None:
        super().__init__()
        self.plan, self.epochs = plan, epochs

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(trunk_modules(pl_module.model, self.plan), train_bn=False)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer) -> None:
        trunk = trunk_modules(pl_module.model, self.plan)
        if epoch < self.epochs:
            self.freeze(trunk, train_bn=False)
            for module in trunk:
                module.eval()
        else:  # back to train mode: without a validation set nothing else would switch it back
            self.make_trainable(trunk)
            for module in trunk:
                module.train()
        if epoch in (0, self.epochs):
            log.info("epoch %d: trunk %s", epoch, "frozen (eval mode)" if epoch < self.epochs else "trainable")


def transfer_callbacks(mode: str | None, config: Config, plan: InitPlan | None) -> list[L.Callback]:
    """``[TrunkFinetuning]`` for ``gradual``, else nothing."""
    if mode == "gradual" and plan is not None:
        return [TrunkFinetuning(plan, config.transfer.freeze_epochs)]
    return []
