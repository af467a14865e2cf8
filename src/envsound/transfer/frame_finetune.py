"""The second stage of ``--preset sed``: after the frame head has learnt on the frozen trunk
(:mod:`envsound.transfer.frame_probe`), trunk and head train together on the strong labels for
``events.finetune_epochs`` epochs, at ``train.lr x transfer.trunk_lr_scale`` (LP-FT, Kumar et al. 2022: the fitted
head keeps the first steps from wrecking the AudioSet features).

The frozen head learns the training mixtures by heart (event F1 0.96 on them, a third of that on new clips:
docs/results.md); what makes the fine-tuned one hold on clips it never heard is variety the trunk's features have
not seen, drawn anew every epoch, each with its frame targets:

- **time shifts**: each epoch a clip is read from a random start (a clip shorter than the window sits at a random
  place in it), so an onset is not tied to a position;
- **mixing of mixtures**: half the windows get another window of the batch added at a random level 0-6 dB below
  (mel power added, as two sounds add), their targets joined (a class is active where either is);
- **gain** of +-6 dB and **frequency masks** (one band of up to 24 mel bins set to the window's mean).

BatchNorm keeps the AudioSet statistics (a batch of 16 mixtures is too few to estimate them). Mixing and gain read
the EfficientAT frontend's log-mel scale: another frontend is refused.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from envsound.augment.batch import spec_augment
from envsound.config import Config
from envsound.data.strong_labels import frame_targets
from envsound.errors import ConfigError
from envsound.features.windows import start_seconds, window_length, window_pad_value
from envsound.transfer.stages import fit_stage

log = logging.getLogger(__name__)

MIX_SHARE = 0.5  # windows that get a second window added
MIX_BELOW_DB = 6.0  # the second window's level: 0 .. this many dB below
GAIN_DB = 6.0
FREQ_MASK_BINS = 24
# the EfficientAT frontend's fixed normalisation, (ln(mel + 1e-5) + 4.5) / 5, undone to add two windows' mel power
LOG_OFFSET, LOG_SCALE = 4.5, 5.0


class FrameCrops(torch.utils.data.Dataset):
    """One window per clip, read from a random start each time it is asked for, with its frame targets
    ``(steps, K)`` at the model's frame step."""

    def __init__(self, features: Sequence[np.ndarray], strong: Sequence[Sequence], labels: Sequence[str], *,
                 config: Config, step_frames: int) -> None:
        feats = config.features
        self.features, self.strong, self.labels = features, strong, list(labels)
        self.window = window_length(feats)
        self.pad = float(window_pad_value(feats)[0])
        self.feats, self.step_frames = feats, step_frames
        self.step_seconds = step_frames * feats.hop_length / feats.sample_rate
        self.steps = math.ceil(self.window / step_frames)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = np.asarray(self.features[index], dtype=np.float32)
        n = clip.shape[-1]
        low, high = min(0, n - self.window), max(0, n - self.window)  # shorter than the window: placed inside it
        start = int(torch.randint(low, high + 1, ()).item())
        window = np.full((*clip.shape[:-1], self.window), self.pad, dtype=np.float32)
        first, last = max(start, 0), min(start + self.window, n)
        window[..., first - start:last - start] = clip[..., first:last]
        begin = float(start_seconds([start], self.feats)[0])  # edge padding undone, as evaluation reads a window
        target = frame_targets(self.strong[index], self.labels, begin=begin, steps=self.steps, step=self.step_seconds)
        return torch.from_numpy(window), torch.from_numpy(target)


def mix_windows(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:data:`MIX_SHARE` of the windows of ``x`` ``(batch, 1, n_mels, frames)`` (normalised EfficientAT log-mel)
    with another window of the batch added in mel power, 0-:data:`MIX_BELOW_DB` dB below; targets ``y`` joined by
    their maximum."""
    batch = len(x)
    if batch < 2:
        return x, y
    device = x.device
    partner = (torch.arange(batch, device=device) + torch.randint(1, batch, (batch,), device=device)) % batch
    mixed = torch.rand(batch, device=device) < MIX_SHARE  # partner: never the window itself
    below = torch.rand(batch, device=device) * MIX_BELOW_DB * math.log(10) / 10  # dB as a natural-log power ratio
    a, b = x * LOG_SCALE - LOG_OFFSET, x[partner] * LOG_SCALE - LOG_OFFSET - below.view(-1, 1, 1, 1).to(x.dtype)
    together = (torch.logaddexp(a, b) + LOG_OFFSET) / LOG_SCALE
    keep = mixed.view(-1, 1, 1, 1)
    return torch.where(keep, together, x), torch.where(mixed.view(-1, 1, 1), torch.maximum(y, y[partner]), y)


def augment_windows(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The module docstring's batch augmentations: mixing, gain, a frequency mask."""
    x, y = mix_windows(x, y)
    gain = (torch.rand(len(x), device=x.device) * 2 - 1) * GAIN_DB * math.log(10) / 10 / LOG_SCALE
    x = x + gain.view(-1, 1, 1, 1).to(x.dtype)
    return spec_augment(x, freq_mask=FREQ_MASK_BINS, time_mask=0, n_masks=1), y


class FrameFinetune(L.LightningModule):
    """A frame network (``frame_logits``) trained whole on :class:`FrameCrops` with :func:`augment_windows`,
    binary cross-entropy per frame and class; BatchNorm layers stay in eval mode."""

    def __init__(self, network: nn.Module, *, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.network, self.lr, self.weight_decay = network, lr, weight_decay

    def on_train_epoch_start(self) -> None:
        self.network.train()
        for module in self.network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        x, y = augment_windows(*batch)
        logits = self.network.frame_logits(x).float()
        steps = min(logits.shape[1], y.shape[1])
        loss = nn.functional.binary_cross_entropy_with_logits(logits[:, :steps], y[:, :steps])
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.network.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def finetune_frames(network: nn.Module, config: Config, features: Sequence[np.ndarray], strong: Sequence[Sequence],
                    *, labels: Sequence[str], accelerator: str, precision: str, state: Path | None = None,
                    resume: bool = False) -> nn.Module:
    """``network`` (its frame head fitted) trained whole on ``features`` against ``strong`` (clip ``i``'s events)
    for ``events.finetune_epochs`` epochs; returned in eval mode. ``state``: where the fit keeps its state at every
    epoch's end (weights of the whole network, optimizer, epoch); ``resume`` goes on from it when it exists.

    Raises:
        ConfigError: a frontend other than EfficientAT's.
        KeyboardInterrupt: Ctrl-C or SIGTERM stopped the fit (``state`` holds its finished epochs).
    """
    if config.features.frontend != "efficientat":
        raise ConfigError(f"events.finetune_epochs mixes windows on EfficientAT's log-mel scale; features.frontend="
                          f"{config.features.frontend}: set events.finetune_epochs=0")
    start_time = time.perf_counter()
    epochs = config.events.finetune_epochs
    crops = FrameCrops(features, strong, labels, config=config, step_frames=network.frame_step_frames)
    L.seed_everything(config.train.seed + 1, workers=True, verbose=False)
    loader = torch.utils.data.DataLoader(crops, batch_size=config.train.batch_size, shuffle=True,
                                         drop_last=len(crops) > config.train.batch_size,
                                         generator=torch.Generator().manual_seed(config.train.seed + 1))
    module = FrameFinetune(network, lr=config.train.lr * config.transfer.trunk_lr_scale,
                           weight_decay=config.train.weight_decay)
    fit_stage(module, loader, what="fine-tuning the frame network", state=state, resume=resume,  # minutes a CPU
              max_epochs=epochs, accelerator=accelerator, precision=precision)
    log.info("frame network fine-tuned: %d clips, %d epochs of %d batches, %.1f s", len(crops), epochs, len(loader),
             time.perf_counter() - start_time)
    return network.cpu().eval()
