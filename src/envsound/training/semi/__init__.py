"""Semi-supervised training (``semi.method``): labelled and unlabelled batches in every step (below), or
``self_training``: supervised rounds on the labelled clips plus the pool clips the previous round's model is surest
of, its guesses as labels (:mod:`~envsound.recipes.self_training`; ``train_model`` runs it, not this module).

- ``fixmatch`` (Sohn et al. 2020): each unlabelled window gives a *weak* view (random crop, done by the dataset, plus a
  random time roll) and a *strong* view (time roll, SpecAugment masks, random gain and noise:
  :func:`~envsound.augment.strong.strong_view`). Where the weak view's top class probability is at least
  ``semi.fixmatch.threshold``, its argmax is the pseudo-label the strong view is trained towards (cross-entropy): ``loss
  = supervised + lambda_u * mean(mask * CE(strong, pseudo))``. With ``semi.distribution_alignment`` the weak view's
  probabilities are first aligned to the labelled clips' class distribution (ReMixMatch's trick, as in "FixMatch + DA"),
  which spreads pseudo-labels over the classes while the network is still unsure. Labelled, weak and strong windows go
  through the network in one batch, so BatchNorm normalises them together. With
  ``semi.fixmatch.threshold_mode=adaptive`` the fixed threshold gives way to FreeMatch's self-adaptive one (a running
  mean of the model's confidence, lowered for the classes it predicts less often:
  :class:`~.losses.SelfAdaptiveThreshold`); off by default, as it let wrong pseudo-labels in on ESC-10
  (docs/results.md).
- ``mixmatch`` (Berthelot et al. 2019, single-label): the guess for an unlabelled window is its mean prediction over
  ``semi.mixmatch.views`` weak views, sharpened (``semi.mixmatch.temperature``); labelled and unlabelled windows are
  mixed together (mixup, ``semi.mixmatch.mix_alpha``); soft cross-entropy on the labelled rows plus ``lambda_u`` x
  squared error on the rest.
- ``mean_teacher`` (Tarvainen & Valpola 2017): the teacher is an exponential moving average of the student's weights
  and BatchNorm statistics (torch's ``AveragedModel``; ``semi.ema_decay``, warmed up as
  ``min(decay, 1 - 1/(step + 1))``); the student's class probabilities on the strong
  view are pulled towards the teacher's on the weak view by a squared error (summed over classes, averaged over
  windows) weighted ``lambda_u * exp(-5 (1 - t)^2)``, t ramping 0 -> 1 over the first ``semi.rampup`` share of
  the run's optimizer steps (MixMatch's weight ramps up the same way).

``lambda_u`` is ``semi.lambda_u``, or the method's own default when it is unset (:attr:`SemiConfig.unlabelled_weight`).
The labelled part is :class:`~envsound.training.loop.module.ClassifierModule`'s loss on windows with ``augment``'s
on-the-fly augmentation, without mixup unless ``semi.labelled_mixup`` (mixup's soft targets keep the network from
the confidence FixMatch's threshold asks for). Validation and the saved weights are the student's.

Multi-label tasks (FixMatch and mean teacher): FixMatch pseudo-labels each class on its own (1 where the weak view's
sigmoid is at least ``semi.fixmatch.threshold``, 0 where it is at most ``1 - semi.fixmatch.threshold``, no target in
between) and trains the strong view with BCE on the confident (window, class) pairs; ``mask_rate`` is their share. Mean
teacher compares sigmoid outputs. Distribution alignment is single-label only.

Batches come from a :class:`~lightning.pytorch.utilities.CombinedLoader`: a dict ``{"labelled": (x, y),
"unlabelled": (x, _)}`` per step, the unlabelled part ``semi.mu x train.batch_size`` windows. With ``semi.epoch``
``labelled`` (the default) an epoch is one pass over the labelled clips, so a semi-supervised run takes as many
optimizer steps as the supervised run it is compared with, however large the pool; with ``pool`` it is one pass over
the longer of the two loaders.
"""

from envsound.training.semi.module import METHODS, SemiModule, rampup

__all__ = ["METHODS", "SemiModule", "rampup"]
