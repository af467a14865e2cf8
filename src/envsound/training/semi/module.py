"""The Lightning module of a semi-supervised run: a :class:`ClassifierModule` whose step adds an unlabelled term."""

from __future__ import annotations

import math

import torch
from torch.optim.swa_utils import AveragedModel

from envsound.augment.batch import mixup, time_roll
from envsound.augment.strong import strong_view
from envsound.errors import ConfigError
from envsound.task import Task
from envsound.training.loop.module import ClassifierModule, LoopSettings
from envsound.training.semi.losses import (DistributionAlignment, SelfAdaptiveThreshold, mixmatch_loss,
                                           pseudo_label_loss, remixmatch_loss, sharpen)

METHODS = ("fixmatch", "mean_teacher", "mixmatch", "remixmatch")
SINGLE_LABEL_ONLY = ("mixmatch", "remixmatch")


class SemiModule(ClassifierModule):
    """A :class:`ClassifierModule` whose ``training_step`` adds the unlabelled loss of ``settings.semi.method``
    (see :mod:`envsound.training.semi`).

    Logged per epoch besides ``train_loss`` (the total): ``sup_loss``, ``unsup_loss``, ``unsup_weight`` (lambda_u
    after the ramp-up) and, for FixMatch,
    ``mask_rate`` (share of unlabelled windows confident enough to get a pseudo-label) and, with
    ``semi.fixmatch.threshold_mode=adaptive``, ``threshold`` (the windows' mean threshold); with distribution
    alignment, ``guess_entropy`` (of the aligned guesses' mean: log K when they are spread evenly over K classes).

    Raises:
        ConfigError: ``semi.method`` is not a semi-supervised method, or a single-label method on a multi-label task.
    """

    def __init__(self, network: torch.nn.Module, settings: LoopSettings, *, n_classes: int, task: Task | None = None,
                 class_weights: torch.Tensor | None = None, channels_last: bool = False) -> None:
        semi = settings.semi
        method = semi.method
        if method not in METHODS:
            raise ConfigError(f"semi.method={method!r}: SemiModule needs one of {', '.join(METHODS)}")
        multi_label = task is not None and task.multi_label
        if method in SINGLE_LABEL_ONLY and multi_label:
            raise ConfigError(f"semi.method={method} is for single-label tasks; on a multi-label dataset use "
                              "fixmatch or mean_teacher")
        if semi.fixmatch.threshold_mode == "adaptive" and multi_label:
            raise ConfigError("semi.fixmatch.threshold_mode=adaptive is for single-label tasks; on a multi-label "
                              "dataset use semi.fixmatch.threshold_mode=fixed")
        super().__init__(network, settings, n_classes=n_classes, task=task, class_weights=class_weights,
                         channels_last=channels_last)
        self.teacher = None
        if method == "mean_teacher" or semi.fixmatch.guesser == "ema":  # weights and BatchNorm statistics averaged
            self.teacher = AveragedModel(self.model, avg_fn=warmed_up_ema(semi.ema_decay), use_buffers=True)
            self.teacher.requires_grad_(False)  # not trained: DDP would wait for its gradients
        aligned = semi.distribution_alignment and method != "mean_teacher" and not multi_label
        self.align = DistributionAlignment(n_classes) if aligned else None
        adaptive = method == "fixmatch" and semi.fixmatch.threshold_mode == "adaptive"
        self.adaptive_threshold = SelfAdaptiveThreshold(n_classes) if adaptive else None

    def training_step(self, batch, batch_idx):
        steps = {"fixmatch": self._fixmatch, "mean_teacher": self._mean_teacher, "mixmatch": self._mixmatch,
                 "remixmatch": self._remixmatch}
        sup, unsup, weight, n_l = steps[self.settings.semi.method](batch["labelled"], batch["unlabelled"][0])
        loss = sup + weight * unsup
        for name, value in (("train_loss", loss), ("sup_loss", sup), ("unsup_loss", unsup), ("unsup_weight", weight)):
            self.log(name, value, on_step=False, on_epoch=True, prog_bar=name == "train_loss", batch_size=n_l)
        return loss

    def _labelled(self, batch):
        """The labelled windows with ``augment``'s on-the-fly augmentation; mixup only with ``semi.labelled_mixup``
        (its soft targets keep the network's confidence below FixMatch's threshold)."""
        return self.augmented(batch, mix=self.settings.semi.labelled_mixup)

    def _guess(self, probs: torch.Tensor, y_l: torch.Tensor) -> torch.Tensor:
        """The unlabelled guesses after distribution alignment, when it is on."""
        if self.align is None:
            return probs
        aligned = self.align(probs, y_l)
        mean = aligned.mean(dim=0).clamp(min=1e-12)
        self.log("guess_entropy", -(mean * mean.log()).sum(), on_step=False, on_epoch=True, batch_size=len(probs))
        return aligned

    def _fixmatch(self, labelled, x_u):
        """Sohn et al. 2020: the strong view is trained towards the weak view's confident argmax. Labelled, weak and
        strong windows go through the network in one batch, so BatchNorm normalises them together, as in the
        reference implementation: a weak view guessed in a batch of its own (without gradients, a third cheaper)
        opened the mask to 18 % instead of 49 % after 500 steps on ESC-10 fold 1 (docs/results.md). With
        ``semi.fixmatch.guesser=ema`` the EMA teacher guesses instead, and the student's batch is labelled + strong."""
        semi = self.settings.semi
        x_l, y_l, noisiness = self._labelled(labelled)
        n_l, n_u = len(x_l), len(x_u)
        if self.teacher is None:
            logits = self(torch.cat([x_l, time_roll(x_u), self._strong(x_u)])).float()
            l_logits, w_logits, s_logits = logits.split([n_l, n_u, n_u])
        else:  # semi.fixmatch.guesser=ema: the teacher guesses with its running statistics, as it would at test time
            l_logits, s_logits = self(torch.cat([x_l, self._strong(x_u)])).float().split([n_l, n_u])
            w_logits = self._teacher_logits(time_roll(x_u))
        probs = self._guess(self.task.activation(w_logits.detach()), y_l)
        threshold = semi.fixmatch.threshold if self.adaptive_threshold is None else self.adaptive_threshold(probs)
        unsup, mask = pseudo_label_loss(probs, s_logits, threshold=threshold, multi_label=self.task.multi_label)
        self.log("mask_rate", mask.mean(), on_step=False, on_epoch=True, batch_size=n_u)
        if self.adaptive_threshold is not None:
            self.log("threshold", threshold.mean(), on_step=False, on_epoch=True, batch_size=n_u)
        return self.loss(l_logits, y_l, noisiness), unsup, semi.unlabelled_weight, n_l

    def _mean_teacher(self, labelled, x_u):
        """Tarvainen & Valpola 2017: the student's probabilities on a strong view pulled towards the EMA teacher's on
        a weak view (squared error summed over classes, averaged over windows), weight ramped up."""
        semi = self.settings.semi
        x_l, y_l, noisiness = self._labelled(labelled)
        n_l, n_u = len(x_l), len(x_u)
        logits = self(torch.cat([x_l, self._strong(x_u)])).float()
        l_logits, s_logits = logits.split([n_l, n_u])
        teacher_probs = self.task.activation(self._teacher_logits(time_roll(x_u)))
        unsup = ((self.task.activation(s_logits) - teacher_probs) ** 2).sum(dim=-1).mean()
        return self.loss(l_logits, y_l, noisiness), unsup, semi.unlabelled_weight * self._ramp(), n_l

    def _mixmatch(self, labelled, x_u):
        """Berthelot et al. 2019: the guess is the mean prediction over ``semi.mixmatch.views`` weak views of each
        unlabelled window, sharpened (``semi.mixmatch.temperature``); labelled and unlabelled windows with their targets
        / guesses are mixed together (``semi.mixmatch.mix_alpha``); soft cross-entropy on the labelled rows, squared
        error on the others. Class-balance loss weights and per-origin losses do not apply: every row's target is a
        blend."""
        semi = self.settings.semi
        x_l, y_l, _ = self.augmented(labelled, mix=False)  # MixMatch does its own mixing, below
        views = [time_roll(x_u) for _ in range(semi.mixmatch.views)]
        with torch.no_grad():
            probs = torch.stack([torch.softmax(self(v).float(), dim=-1) for v in views]).mean(dim=0)
            guess = sharpen(self._guess(probs, y_l), temperature=semi.mixmatch.temperature)
        x = torch.cat([x_l, *views])
        y = torch.cat([y_l.float(), guess.repeat(semi.mixmatch.views, 1)])
        x_mixed, y_mixed = mixup(x, y, alpha=semi.mixmatch.mix_alpha, per_example=True)
        sup, unsup = mixmatch_loss(self(x_mixed).float(), y_mixed, len(x_l))
        return sup, unsup, semi.unlabelled_weight * self._ramp(), len(x_l)

    def _remixmatch(self, labelled, x_u):
        """Berthelot et al. 2020, without its rotation loss (images) and CTAugment (our strong view instead): the guess
        is the weak view's prediction, aligned to the labelled classes and sharpened (``semi.mixmatch.temperature``);
        ``semi.mixmatch.views`` strong views of each unlabelled window take it as their target (augmentation anchoring);
        labelled and strong windows are mixed together (``semi.mixmatch.mix_alpha``), and one strong view also counts
        unmixed (:func:`~envsound.training.semi.losses.remixmatch_loss`)."""
        semi = self.settings.semi
        x_l, y_l, _ = self.augmented(labelled, mix=False)  # mixed below, with the strong views
        n_l, n_u = len(x_l), len(x_u)
        strong = [self._strong(x_u) for _ in range(semi.mixmatch.views)]
        with torch.no_grad():  # guessed beside labelled and strong windows, for FixMatch's reason (BatchNorm)
            weak_logits = self(torch.cat([x_l, time_roll(x_u), strong[0]])).float()[n_l:n_l + n_u]
            guess = sharpen(self._guess(torch.softmax(weak_logits, dim=-1), y_l), temperature=semi.mixmatch.temperature)
        targets = torch.cat([y_l.float(), guess.repeat(semi.mixmatch.views, 1)])
        x_mixed, y_mixed = mixup(torch.cat([x_l, *strong]), targets, alpha=semi.mixmatch.mix_alpha, per_example=True)
        logits = self(torch.cat([x_mixed, strong[0]])).float()
        mixed_logits, strong_logits = logits.split([len(x_mixed), n_u])
        sup, unsup = remixmatch_loss(mixed_logits, y_mixed, n_l, strong_logits, guess)
        return sup, unsup, semi.unlabelled_weight * self._ramp(), n_l

    @torch.no_grad()
    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The EMA teacher's logits in eval mode (running BatchNorm statistics), float32."""
        self.teacher.eval()
        return self.teacher(self.to_memory_format(x)).float()

    def _ramp(self) -> float:
        """The ramp-up factor of mean teacher's and MixMatch's weight at this step: ``semi.rampup`` is a share of the
        run's optimizer steps, so the ramp keeps its shape whether an epoch is one step or a hundred; 1 outside a
        Trainer (a step called on its own, as in benchmarks)."""
        if self.settings.semi.rampup == 0 or self._trainer is None:  # no run, no length to ramp over: full weight
            return 1.0
        return rampup(self.global_step / self.trainer.estimated_stepping_batches, self.settings.semi.rampup)

    def _strong(self, x_u: torch.Tensor) -> torch.Tensor:
        semi = self.settings.semi
        return strong_view(x_u, gain_db=semi.strong_gain_db, snr_db=semi.strong_snr_db, max_speed=semi.strong_speed,
                           max_shift_bins=semi.strong_shift_bins).to(x_u.dtype)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.teacher is not None:
            self.teacher.update_parameters(self.model)


def warmed_up_ema(decay: float):
    """Mean teacher's average for :class:`~torch.optim.swa_utils.AveragedModel`: ``teacher = d * teacher + (1 - d) *
    student`` with ``d = min(decay, 1 - 1 / (n + 1))`` after n updates, so the first steps follow the student closely
    instead of averaging in its random start."""
    def average(teacher: torch.Tensor, student: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, 1.0 - 1.0 / (int(n) + 1))
        return teacher * d + student.detach() * (1.0 - d)
    return average


def rampup(progress: float, length: float) -> float:
    """The sigmoid ramp-up ``exp(-5 (1 - t)^2)``, ``t = min(progress / length, 1)`` (Laine & Aila 2017); 1 when
    ``length == 0``."""
    if length <= 0:
        return 1.0
    t = min(max(progress, 0.0) / length, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)
