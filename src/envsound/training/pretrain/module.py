"""The Lightning module behind :func:`~envsound.recipes.pretrain.pretrain_autoencoder`: a convolutional
autoencoder and its reconstruction loss."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
import torch.nn.functional as F

from envsound.config import FeatureConfig, ModelConfig, TrainConfig
from envsound.hardware import keep_freed_memory
from envsound.models.autoencoder import ConvAutoencoder
from envsound.training.loop.optim import configure_optimization


class AutoencoderModule(L.LightningModule):
    """Trains ``network`` (a :class:`~envsound.models.autoencoder.ConvAutoencoder`) on windows
    ``(batch, C, n_mels, frames)`` with the optimiser and schedule of ``train``.

    Loss: mean squared error between the reconstruction and ``model.target(x)`` (the input standardised per mel bin),
    the whole network at once. Logged per epoch: ``train_loss`` and, on held-out windows, ``val_loss``.
    Batches are ``(x, ...)``: anything after the windows (targets, clip indices) is ignored.
    ``features`` and ``model``: the settings ``network`` was built from (as
    :func:`~envsound.models.autoencoder.build_autoencoder` reads them); with its decoder and ``train`` they are the
    module's hyperparameters, kept in Lightning's checkpoint so that a resumed run can be checked against them.
    """

    def __init__(self, network: ConvAutoencoder, train: TrainConfig, *, features: FeatureConfig, model: ModelConfig,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters({"decoder": network.decoder_kind, "features": asdict(features),
                                   "model": asdict(model), "train": asdict(train)})
        self.train_settings = train
        self.channels_last = channels_last  # the runtime's choice (envsound.hardware)
        self.model = network
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def setup(self, stage: str) -> None:
        keep_freed_memory()  # in every process, also those runtime.strategy=ddp_spawn starts afresh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the reconstruction of ``x`` against its standardised self (float32 scalar)."""
        return F.mse_loss(self(x).float(), self.model.target(x))

    def training_step(self, batch, batch_idx):
        x = batch[0]
        loss = self.reconstruction_loss(x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x = batch[0]
        self.log("val_loss", self.reconstruction_loss(x), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(x), sync_dist=True)

    def configure_optimizers(self):
        return configure_optimization(self.model.parameters(), self.train_settings,
                                      total_steps=int(self.trainer.estimated_stepping_batches))
