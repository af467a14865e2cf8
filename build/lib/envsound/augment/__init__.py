"""Augmentation of training clips, between the features and the training loop.

- :mod:`~envsound.augment.batch`: on the fly, on each training batch (time roll, SpecAugment, mixup), as
  ``config.augment`` asks (:func:`~envsound.augment.batch.batch_augment`);
- :mod:`~envsound.augment.between_class`: EnvNet-v2's between-class mixing of waveforms, loudness-aware;
- :mod:`~envsound.augment.strong`: the strong views of semi-supervised methods (speed, pitch, gain, noise);
- :mod:`~envsound.augment.offline`: augmented copies of each training clip (audiomentations), made once and cached.

Only ever applied to training clips; nothing here sees a validation or test clip.
"""
