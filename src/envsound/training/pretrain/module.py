"""The Lightning module behind :func:`~envsound.recipes.pretrain.pretrain_autoencoder`: a convolutional
autoencoder and its reconstruction loss."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from envsound.config import Config
from envsound.hardware import keep_freed_memory
from envsound.models.autoencoder import build_autoencoder
from envsound.training.loop.optim import configure_optimization


class AutoencoderModule(L.LightningModule):
    """Trains :class:`~envsound.models.autoencoder.ConvAutoencoder` on windows ``(batch, C, n_mels, frames)``.

    Loss: mean squared error between the reconstruction and ``model.target(x)`` (the input standardised per mel bin),
    the whole network at once. Logged per epoch: ``train_loss`` and, on held-out windows, ``val_loss``.
    Batches are ``(x, ...)``: anything after the windows (targets, clip indices) is ignored.
    """

    def __init__(self, config: Config, *, decoder: str, channels_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "decoder": decoder})
        self.config = config
        self.channels_last = channels_last  # the runtime's choice (envsound.hardware)
        self.model = build_autoencoder(config, decoder=decoder)
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
        train = self.config.train
        return configure_optimization(self.model.parameters(), train,
                                      total_steps=int(self.trainer.estimated_stepping_batches))
