"""The data side of ``train_model``: validation split, features, offline augmented copies, leakage guard.

One function, so tests can run exactly what training runs (``tests/training/test_no_leakage.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.data.splits import check_augmentation_leakage, train_val_split
from envsound.errors import EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.models.registry import is_torch_model
from envsound.training.offline_augment import OfflineCopies, make_copies, noise_pool

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What a model is fitted on: training and validation clips with their features, and the training clips'
    offline augmented copies (each carrying its source record)."""

    train: Manifest
    val: Manifest
    train_features: list[np.ndarray]
    val_features: list[np.ndarray]
    copies: OfflineCopies = field(default_factory=OfflineCopies)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def train_variants(self) -> list[list[np.ndarray]]:
        """``[i]``: the features of the copies of training clip ``i``."""
        return self.copies.variants(self.train.records)


def prepare_training_data(
    manifest: Manifest,
    config: Config,
    *,
    held_out: Sequence[Manifest] = (),
    cache: FeatureCache | None = None,
    on_error: str = "raise",
    progress: bool = True,
) -> TrainingData:
    """Split validation off ``manifest`` (torch models only), extract features, and make ``config.augment.copies``
    augmented copies of the **training** clips only (never of validation clips, nor of ``held_out``).

    ``held_out``: manifests that must not reach training (the test fold in cross-validation, the folds left out by
    ``envsound train --folds``); they are only used by the leakage guard
    (:func:`~envsound.data.splits.check_augmentation_leakage`), run before any copy is made and again on the copies'
    provenance.

    Raises:
        DatasetLayoutError: a leak (a background-noise file that is a validation or test clip, a shared source
            recording, a copy of a non-training clip); a background folder without usable audio.
        AudioLoadError: bad audio with ``on_error="raise"``.
        EnvsoundError: fewer than two usable training clips.
    """
    aug = config.augment
    augmenting = aug.copies > 0 and is_torch_model(config.model.name)
    val_fraction = config.train.val_fraction if is_torch_model(config.model.name) else 0.0
    train_set, val_set = train_val_split(manifest, val_fraction=val_fraction, seed=config.train.seed)
    excluded = [val_set, *held_out]
    folder_pool = None
    if augmenting and aug.background_folder is not None:  # refuse a leaky folder before any work is done
        folder_pool = noise_pool(train_set.records, aug)
        check_augmentation_leakage(train_set, excluded,
                                   noise_files=[n.listed or n.path for n in folder_pool.sources])
    records, features, skipped = extract_features(train_set.records + val_set.records, config.features,
                                                  cache=cache, on_error=on_error, progress=progress)
    kept = {r.clip_id for r in records}
    train_set = train_set.subset([r for r in train_set.records if r.clip_id in kept])
    val_set = val_set.subset([r for r in val_set.records if r.clip_id in kept])
    if len(train_set) < 2:  # before any copy is made
        raise EnvsoundError(f"only {len(train_set)} usable training clip(s) in dataset {manifest.name!r}; "
                            "need at least 2")
    by_id = {r.clip_id: f for r, f in zip(records, features)}
    data = TrainingData(train=train_set, val=val_set, train_features=[by_id[r.clip_id] for r in train_set.records],
                        val_features=[by_id[r.clip_id] for r in val_set.records], skipped=skipped)
    if not augmenting:
        if aug.copies:
            log.warning("augment.copies=%d ignored: %s is a baseline fitted on MFCC statistics", aug.copies,
                        config.model.name)
        check_augmentation_leakage(train_set, excluded)
        return data
    pool = folder_pool if folder_pool is not None else noise_pool(train_set.records, aug)  # kept clips only
    check_augmentation_leakage(train_set, excluded, noise_files=[n.listed or n.path for n in pool.sources])
    data.copies = make_copies(train_set.records, aug, config.features, seed=config.train.seed, cache=cache,
                              pool=pool, progress=progress)
    check_augmentation_leakage(train_set, excluded, copy_sources=[c.source for c in data.copies.copies],
                               noise_files=[c.noise_path for c in data.copies.copies if c.noise_path])
    return data
