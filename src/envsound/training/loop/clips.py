"""The clips a fit takes, in one shape: a :class:`ClipSet` (features, targets, offline copies, noisiness) and the
:class:`FitData` of a run (training, validation and an unlabelled pool), whatever path fits them: one network, an
ensemble member, a self-training round, the autoencoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def no_targets(n: int) -> np.ndarray:
    """Targets for clips whose labels are not used (pre-training, unlabelled pools): ``(n, 0)``."""
    return np.zeros((n, 0), dtype=np.float32)


@dataclass
class ClipSet:
    """Clips ready for a fit: one feature array per clip, their target rows, each clip's offline copies and its
    noisiness."""

    features: Sequence[np.ndarray]
    targets: np.ndarray  # (n_clips, n_classes); (n_clips, 0) for clips without labels (a pool, the autoencoder's)
    variants: Sequence[Sequence[np.ndarray]] = ()  # empty: no clip has copies
    # (n_clips,) 1.0 where the label may be wrong (origin noisy, or a pseudo-label: the `noisy` section's loss and share
    # apply), 0.0 where it is given; None: every label is given
    noisiness: np.ndarray | None = None
    # [i]: clip i's events (envsound.data.strong_labels.StrongEvent) when the set has strong labels; None: it has none
    strong: Sequence[Sequence] | None = None

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def unlabelled(cls, features: Sequence[np.ndarray], variants: Sequence[Sequence[np.ndarray]] = ()) -> "ClipSet":
        """Clips whose labels are unknown (a semi-supervised pool, pre-training clips): targets with no columns."""
        return cls(features, no_targets(len(features)), variants)

    def plus(self, other: "ClipSet") -> "ClipSet":
        """Both sets in one; a clip without copies gets an empty list when the other set has some."""
        variants = [] if not (self.variants or other.variants) else \
            [*(self.variants or [()] * len(self.features)), *(other.variants or [()] * len(other.features))]
        noisiness = None if self.noisiness is None and other.noisiness is None else \
            np.concatenate([s.noisiness if s.noisiness is not None else np.zeros(len(s.features), np.float32)
                            for s in (self, other)])
        return ClipSet([*self.features, *other.features], np.concatenate([self.targets, other.targets]), variants,
                       noisiness)


@dataclass
class FitData:
    """What one fit trains on: ``train``, ``val`` (may be empty: no early stopping) and ``pool``, unlabelled clips
    for a semi-supervised module (empty: none)."""

    train: ClipSet
    val: ClipSet = field(default_factory=lambda: ClipSet.unlabelled([]))
    pool: ClipSet = field(default_factory=lambda: ClipSet.unlabelled([]))

    def with_train(self, train: ClipSet) -> "FitData":
        """The same validation clips and pool, other training clips (an ensemble member, a self-training round)."""
        return FitData(train, self.val, self.pool)
