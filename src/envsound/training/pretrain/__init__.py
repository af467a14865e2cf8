"""Autoencoder pre-training's Lightning module (:class:`~.module.AutoencoderModule`: reconstruction loss); the recipe
that runs it is :func:`~envsound.recipes.pretrain.pretrain_autoencoder`."""

from envsound.training.pretrain.module import AutoencoderModule

__all__ = ["AutoencoderModule"]
