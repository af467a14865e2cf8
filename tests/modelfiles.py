"""Model files made here, for any test: ``from modelfiles import release_file`` (``tests/`` is on ``sys.path`` while
pytest runs)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from envsound.models.efficientat import EfficientAT, release_key


def release_file(folder: Path, name: str = "mn01_as_mAP_298.pt") -> Path:
    """An EfficientAT release file (a bare state dict named as the release names it; random weights) and AudioSet's
    label file beside it."""
    torch.manual_seed(0)
    state = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=100, width=0.1).state_dict()
    torch.save({release_key(k): v for k, v in state.items()}, folder / name)
    with (folder / "class_labels_indices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows([i, f"/m/{i}", "Dog" if i == 0 else f"Sound {i}"] for i in range(527))
    return folder / name
