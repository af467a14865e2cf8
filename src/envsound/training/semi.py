"""Semi-supervised training: labelled and unlabelled batches in every step (``semi.method``).

- ``fixmatch`` (Sohn et al. 2020): each unlabelled window gives a *weak* view (random crop, done by the dataset, plus
  a random time roll) and a *strong* view (time roll, SpecAugment masks, random gain and noise:
  :func:`~envsound.training.augment.strong_view`). Where the weak view's top class probability is at least
  ``semi.threshold``, its argmax is the pseudo-label the strong view is trained towards (cross-entropy):
  ``loss = supervised + semi.lambda_u * mean(mask * CE(strong, pseudo))``. Labelled, weak and strong windows go through
  the network in one batch, so BatchNorm sees them together (as in the reference implementation).
- ``mean_teacher`` (Tarvainen & Valpola 2017): the teacher is an exponential moving average of the student
  (``semi.ema_decay``, warmed up as ``min(decay, 1 - 1/(step + 1))``); the student's class probabilities on the strong
  view are pulled towards the teacher's on the weak view by a squared error (summed over classes, averaged over
  windows) weighted ``semi.lambda_u * exp(-5 (1 - t)^2)``, t ramping 0 -> 1 over ``semi.rampup_epochs``.

The supervised part is exactly :class:`ClassifierModule`'s (same augmentation ``train`` asks for), and validation and
the saved weights are the student's, so a semi-supervised run differs from a supervised one only by the unlabelled
term.

Multi-label tasks: FixMatch pseudo-labels each class on its own (1 where the weak view's sigmoid is at least
``semi.threshold``, 0 where it is at most ``1 - semi.threshold``, no target in between) and trains the strong view
with BCE on the confident (window, class) pairs; ``mask_rate`` is their share. Mean teacher compares sigmoid outputs.

Batches come from a :class:`~lightning.pytorch.utilities.CombinedLoader`: a dict ``{"labelled": (x, y),
"unlabelled": (x, _)}`` per step, the unlabelled part ``semi.mu x train.batch_size`` windows. With ``semi.epoch``
``labelled`` (the default) an epoch is one pass over the labelled clips, so a semi-supervised run takes as many
optimizer steps as the supervised run it is compared with, however large the pool; with ``pool`` it is one pass over
the longer of the two loaders.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from envsound.config import Config
from envsound.errors import ConfigError
from envsound.task import Task
from envsound.training.augment import strong_view, time_roll
from envsound.training.module import ClassifierModule

METHODS = ("fixmatch", "mean_teacher")


class SemiModule(ClassifierModule):
    """A :class:`ClassifierModule` whose ``training_step`` adds the unlabelled loss of ``config.semi.method``.

    Logged per epoch besides ``train_loss`` (the total): ``sup_loss``, ``unsup_loss`` and, for FixMatch,
    ``mask_rate`` (share of unlabelled windows confident enough to get a pseudo-label).

    Raises:
        ConfigError: ``semi.method`` is not a semi-supervised method.
    """

    def __init__(self, config: Config, n_classes: int, *, task: Task | None = None,
                 class_weights: torch.Tensor | None = None, channels_last: bool = False) -> None:
        if config.semi.method not in METHODS:
            raise ConfigError(f"semi.method={config.semi.method!r}: SemiModule needs one of {', '.join(METHODS)}")
        super().__init__(config, n_classes, task=task, class_weights=class_weights, channels_last=channels_last)
        self.teacher = None
        if config.semi.method == "mean_teacher":
            self.teacher = copy.deepcopy(self.model)
            for param in self.teacher.parameters():
                param.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        (x_u, _), semi = batch["unlabelled"], self.config.semi
        x_l, y_l, noisiness = self.augmented(batch["labelled"])
        weak = time_roll(x_u)
        strong = strong_view(x_u, gain_db=semi.strong_gain_db, snr_db=semi.strong_snr_db).to(x_u.dtype)
        n_l, n_u = len(x_l), len(x_u)
        if semi.method == "fixmatch":
            logits = self(torch.cat([x_l, weak, strong])).float()
            l_logits, w_logits, s_logits = logits.split([n_l, n_u, n_u])
            unsup, mask = self._pseudo_label_loss(w_logits.detach(), s_logits)
            weight = semi.lambda_u
            self.log("mask_rate", mask.mean(), on_step=False, on_epoch=True, batch_size=n_u)
        else:
            logits = self(torch.cat([x_l, strong])).float()
            l_logits, s_logits = logits.split([n_l, n_u])
            with torch.no_grad():
                self.teacher.eval()
                teacher_probs = self.task.activation(self._teacher_forward(weak).float())
            unsup = ((self.task.activation(s_logits) - teacher_probs) ** 2).sum(dim=-1).mean()
            weight = semi.lambda_u * rampup(self.current_epoch, semi.rampup_epochs)
        sup = self.loss(l_logits, y_l, noisiness)
        loss = sup + weight * unsup
        for name, value in (("train_loss", loss), ("sup_loss", sup), ("unsup_loss", unsup)):
            self.log(name, value, on_step=False, on_epoch=True, prog_bar=name == "train_loss", batch_size=n_l)
        return loss

    def _pseudo_label_loss(self, weak: torch.Tensor, strong: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """FixMatch's unlabelled loss and its mask (which windows, or (window, class) pairs, got a pseudo-label)."""
        threshold = self.config.semi.threshold
        if self.task.multi_label:
            probs = torch.sigmoid(weak)
            mask = ((probs >= threshold) | (probs <= 1 - threshold)).float()
            targets = (probs >= threshold).float()
            return (F.binary_cross_entropy_with_logits(strong, targets, reduction="none") * mask).mean(), mask
        confidence, pseudo = torch.softmax(weak, dim=-1).max(dim=-1)
        mask = (confidence >= threshold).float()
        return (F.cross_entropy(strong, pseudo, reduction="none") * mask).mean(), mask

    def _teacher_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(self.to_memory_format(x))

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.teacher is None:
            return
        decay = min(self.config.semi.ema_decay, 1.0 - 1.0 / (self.global_step + 1))
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.model.parameters()):
                t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
            for t, s in zip(self.teacher.buffers(), self.model.buffers()):
                t.copy_(s)


def rampup(epoch: int, epochs: int) -> float:
    """Mean teacher's sigmoid ramp-up ``exp(-5 (1 - t)^2)``, ``t = min(epoch / epochs, 1)``; 1 when ``epochs == 0``."""
    if epochs <= 0:
        return 1.0
    t = min(max(epoch, 0) / epochs, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)
