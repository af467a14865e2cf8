"""The data side of ``train_model``: labelled share, validation split, unlabelled pool, features, offline augmented
copies, leakage guard.

One function, so tests can run exactly what training runs (``tests/training/test_no_leakage.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from envsound.augment.offline import OfflineCopies, make_copies, noise_pool
from envsound.config import Config
from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import (check_augmentation_leakage, exclude_clips_of, few_shot_subset, labelled_subset,
                                  merge_unlabelled, train_val_split)
from envsound.errors import ConfigError, EnvsoundError
from envsound.features.cache import ClipFeatures, FeatureCache
from envsound.features.extract import extract_features
from envsound.features.fingerprint import guard_content
from envsound.models.registry import is_network
from envsound.training.loop.clips import ClipSet, FitData
from envsound.training.loop.data import clip_noisiness, target_matrix

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What a model is fitted on: training and validation clips with their features, and the training clips'
    offline augmented copies (each carrying its source record)."""

    train: Manifest
    val: Manifest
    train_features: ClipFeatures  # memory-mapped from the feature store when there is one
    val_features: ClipFeatures
    copies: OfflineCopies = field(default_factory=OfflineCopies)
    unlabelled_features: ClipFeatures = field(default_factory=ClipFeatures)  # semi-supervised pool, labels unknown
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    unlabelled: list[ClipRecord] = field(default_factory=list)  # the pool's clips (unlabelled_features[i] is [i]'s)
    # self_training only: the pool's copies, which a pseudo-labelled clip trains on as a labelled one does on its own
    unlabelled_copies: OfflineCopies = field(default_factory=OfflineCopies)

    @property
    def train_variants(self) -> list[ClipFeatures]:
        """``[i]``: the features of the copies of training clip ``i``."""
        return self.copies.variants(self.train.records)

    @property
    def unlabelled_variants(self) -> list[ClipFeatures]:
        """``[i]``: the features of the copies of unlabelled clip ``i`` (empty unless ``self_training`` made them)."""
        return self.unlabelled_copies.variants(self.unlabelled)

    def fit_data(self) -> FitData:
        """The clips as every fit takes them: training (targets, offline copies, noisiness), validation, pool."""
        strong = self.train.strong
        train = ClipSet(self.train_features, target_matrix(self.train),
                        self.train_variants if self.copies.copies else (), clip_noisiness(self.train),
                        None if strong is None else [strong.get(r.clip_id, []) for r in self.train.records])
        pool = ClipSet.unlabelled(self.unlabelled_features,
                                  self.unlabelled_variants if self.unlabelled_copies.copies else ())
        return FitData(train, ClipSet(self.val_features, target_matrix(self.val)), pool)


def prepare_training_data(
    manifest: Manifest,
    config: Config,
    *,
    held_out: Sequence[Manifest] = (),
    unlabelled: Manifest | None = None,
    cache: FeatureCache | None = None,
    on_error: str = "raise",
    progress: bool = True,
) -> TrainingData:
    """Split validation off ``manifest`` (torch models only), extract features, and make ``config.augment.copies``
    augmented copies of the **training** clips only (never of validation clips, nor of ``held_out``).

    With ``train.label_fraction`` p < 1 only a stratified share p of ``manifest`` keeps its labels, with
    ``train.shots`` K only K clips a class (the validation split comes from those); with ``semi.method`` set, the rest
    plus ``unlabelled`` (labels ignored, clips sharing a source with a validation clip left out) are the unlabelled
    pool. ``self_training`` also makes the pool's copies: a pseudo-labelled clip trains as a labelled one does.

    ``held_out``: manifests that must not reach training (the test fold in cross-validation, the folds left out by
    ``envsound train --folds``); they are only used by the leakage guard
    (:func:`~envsound.data.splits.check_augmentation_leakage`), run before any copy is made and again on the copies'
    provenance.

    Raises:
        DatasetLayoutError: a leak (a background-noise file that is a validation or test clip, a shared source
            recording, a copy of a non-training clip); a background folder without usable audio.
        AudioLoadError: bad audio with ``on_error="raise"``.
        EnvsoundError: fewer than two usable training clips.
        ConfigError: ``semi.method`` set with no unlabelled clips, or for a baseline model.
    """
    aug = config.augment
    augmenting = aug.copies > 0 and is_network(config.model.name)
    val_fraction = config.train.val_fraction if is_network(config.model.name) else 0.0
    if config.train.shots:
        labelled, rest = few_shot_subset(manifest, shots=config.train.shots, seed=config.train.seed)
    else:
        labelled, rest = labelled_subset(manifest, fraction=config.train.label_fraction, seed=config.train.seed)
    train_set, val_set = train_val_split(labelled, val_fraction=val_fraction, seed=config.train.seed)
    pool = _unlabelled_pool(config, rest, unlabelled, val_set)
    for other in held_out:  # unlabelled clips reach training too: none of the test clips or their recordings
        pool = exclude_clips_of(pool, other)
    excluded = [val_set, *held_out]
    check_augmentation_leakage(pool, held_out)
    folder_pool = None
    if augmenting and aug.background_folder is not None:  # refuse a leaky folder before any work is done
        folder_pool = noise_pool(train_set.records, aug)
        check_augmentation_leakage(train_set, excluded,
                                   noise_files=[n.listed or n.path for n in folder_pool.sources])
    # the same doors by what the audio sounds like: a copy, re-encode or MP3 of a test clip under another name
    protected = [r.path for m in excluded for r in m.records]
    guard = {"cache": cache, "allow_overlap": config.leakage.allow_overlap, "threshold": config.leakage.match_ber}
    if folder_pool is not None:
        guard_content([n.path for n in folder_pool.sources], protected, what="background sounds", **guard)
    guard_content([r.path for r in pool.records], protected, what="unlabelled clips", **guard)
    records, features, skipped = extract_features(train_set.records + val_set.records + pool.records,
                                                  config.features, cache=cache, on_error=on_error, progress=progress)
    kept = {r.clip_id for r in records}
    train_set = train_set.subset([r for r in train_set.records if r.clip_id in kept])
    val_set = val_set.subset([r for r in val_set.records if r.clip_id in kept])
    if len(train_set) < 2:  # before any copy is made
        raise EnvsoundError(f"only {len(train_set)} usable training clip(s) in dataset {manifest.name!r}; "
                            "need at least 2")
    pool = pool.subset([r for r in pool.records if r.clip_id in kept])
    data = TrainingData(train=train_set, val=val_set, train_features=features_of(train_set.records, records, features),
                        val_features=features_of(val_set.records, records, features),
                        unlabelled_features=features_of(pool.records, records, features), skipped=skipped,
                        unlabelled=pool.records)
    if not augmenting:
        if aug.copies:
            log.info("augment.copies=%d ignored: %s is a baseline fitted on MFCC statistics", aug.copies,
                     config.model.name)
        check_augmentation_leakage(train_set, excluded)
        return data
    noise = folder_pool if folder_pool is not None else noise_pool(train_set.records, aug)  # kept clips only
    check_augmentation_leakage(train_set, excluded, noise_files=[n.listed or n.path for n in noise.sources])
    data.copies = make_copies(train_set.records, aug, config.features, seed=config.train.seed, cache=cache,
                              pool=noise, progress=progress)
    check_augmentation_leakage(train_set, excluded, copy_sources=[c.source for c in data.copies.copies],
                               noise_files=[c.noise_path for c in data.copies.copies if c.noise_path])
    if config.semi.method == "self_training":  # a pseudo-labelled clip trains as a labelled one does, copies included
        data.unlabelled_copies = make_copies(pool.records, aug, config.features, seed=config.train.seed, cache=cache,
                                             pool=noise, progress=progress)
        check_augmentation_leakage(pool, excluded, copy_sources=[c.source for c in data.unlabelled_copies.copies],
                                   noise_files=[c.noise_path for c in data.unlabelled_copies.copies if c.noise_path])
    return data


def features_of(wanted: Sequence[ClipRecord], kept: Sequence[ClipRecord], features: ClipFeatures) -> ClipFeatures:
    """The features of the ``wanted`` records that are among ``kept`` (``features[i]`` is ``kept[i]``'s), in the
    order of ``wanted``; nothing is read."""
    index = {r.clip_id: i for i, r in enumerate(kept)}
    return features.select([index[r.clip_id] for r in wanted if r.clip_id in index])


def _unlabelled_pool(config: Config, rest: Manifest, unlabelled: Manifest | None, val_set: Manifest) -> Manifest:
    """The unlabelled clips of a semi-supervised run (an empty manifest for a supervised one)."""
    method = config.semi.method
    if method == "none":
        if unlabelled is not None and len(unlabelled):
            log.warning("ignoring %d unlabelled clips: semi.method is 'none'", len(unlabelled))
        return merge_unlabelled()
    if not is_network(config.model.name):
        raise ConfigError(f"semi.method={method!r} needs a network; model {config.model.name!r} is a baseline")
    extra = [] if unlabelled is None else [exclude_clips_of(unlabelled, val_set)]
    pool = merge_unlabelled(rest, *extra)
    if len(pool) == 0:
        raise ConfigError(f"semi.method={method!r} has no unlabelled clips: set train.label_fraction below 1 "
                          "(--label-fraction) or pass --unlabelled-dataset/--unlabelled-root")
    return pool
