"""Autoencoder pre-training (``envsound pretrain``): the recipe (:func:`~.run.pretrain_autoencoder`: data, split,
runtime, checkpoint) and its Lightning module (:class:`~.module.AutoencoderModule`: reconstruction loss)."""

from envsound.training.pretrain.run import pretrain_autoencoder

__all__ = ["pretrain_autoencoder"]
