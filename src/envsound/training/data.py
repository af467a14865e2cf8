"""Torch datasets over cached clip features: random windows for training, every window for validation.

Features are whole clips, ``(C, n_mels, frames)`` log-mel or ``(1, samples)`` waveform (``features.kind``); a model sees
windows ``(C, n_mels, window_frames)`` or ``(1, window_samples)`` (batched: ``(batch, 1, window_samples)``, which the
waveform models accept). Targets are float vectors (one-hot or multi-hot) so mixup and multi-label need no special
cases.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from envsound.data.records import Manifest
from envsound.config import FeatureConfig
from envsound.features.windows import eval_windows, train_window


def target_matrix(manifest: Manifest) -> np.ndarray:
    """``(n_clips, n_classes)`` float32 one-hot / multi-hot targets in the manifest's label order."""
    index = manifest.label_index()
    targets = np.zeros((len(manifest), len(manifest.labels)), dtype=np.float32)
    for row, record in enumerate(manifest.records):
        for label in record.labels:
            targets[row, index[label]] = 1.0
    return targets


class RandomWindowDataset(Dataset):
    """One random window per clip per epoch (a random crop: the cheapest augmentation there is).

    ``variants[i]`` (optional) lists offline augmented copies of clip ``i``: each epoch the window is cut from the
    original or one of its copies, chosen uniformly. The epoch keeps one item per clip, so the number of steps, the
    learning-rate schedule and ``train.patience`` mean the same with or without copies.
    """

    def __init__(self, features: Sequence[np.ndarray], targets: np.ndarray, *, cfg: FeatureConfig, seed: int,
                 variants: Sequence[Sequence[np.ndarray]] | None = None) -> None:
        self.features = list(features)
        self.targets = torch.from_numpy(targets)
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.variants = [list(v) for v in variants] if variants is not None else [[] for _ in self.features]
        if len(self.variants) != len(self.features):
            raise ValueError(f"{len(self.variants)} variant lists for {len(self.features)} clips")

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        choice = int(self.rng.integers(0, 1 + len(self.variants[i]))) if self.variants[i] else 0
        clip = self.features[i] if choice == 0 else self.variants[i][choice - 1]
        window = train_window(clip, self.cfg, rng=self.rng)
        return torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)), self.targets[i]


class AllWindowsDataset(Dataset):
    """Every evaluation window of every clip, with the clip's index so predictions can be averaged per clip."""

    def __init__(self, features: Sequence[np.ndarray], targets: np.ndarray, *, cfg: FeatureConfig) -> None:
        self.items: list[tuple[int, np.ndarray]] = []
        for clip, feats in enumerate(features):
            for w in eval_windows(feats, cfg)[0]:
                self.items.append((clip, w))
        self.targets = torch.from_numpy(targets)
        self.n_clips = len(features)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        clip, window = self.items[i]
        return torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)), self.targets[clip], clip
