"""Model files made here, for any test: ``from modelfiles import release_file`` (``tests/`` is on ``sys.path`` while
pytest runs)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from envsound.models.efficientat import EfficientAT, release_key


def release_file(folder: Path, name: str = "mn01_as_mAP_298.pt", *, width: float = 0.1) -> Path:
    """An EfficientAT release file of the network at ``width`` (a bare state dict named as the release names it;
    random weights) and AudioSet's label file beside it."""
    torch.manual_seed(0)
    state = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=100, width=width).state_dict()
    torch.save({release_key(k): v for k, v in state.items()}, folder / name)
    with (folder / "class_labels_indices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows([i, f"/m/{i}", "Dog" if i == 0 else f"Sound {i}"] for i in range(527))
    return folder / name


def installed_mn04(shared_weights: Path) -> None:
    """``efficientat-mn04`` installed in :func:`~envsound.models.releases.models_dir` (set ``ENVSOUND_MODELS`` first):
    the shared AudioSet weights where they are beside the clone, else a release-format file at random weights put
    there as ``install`` would leave it (``install`` itself refuses it: its SHA-256 is not the release's)."""
    from envsound.models.releases import models_dir
    from envsound.transfer.install import install_pretrained

    if shared_weights.exists():
        install_pretrained("efficientat-mn04", source_file=shared_weights, progress=False)
    else:
        models_dir().mkdir(parents=True, exist_ok=True)
        release_file(models_dir(), "mn04_as_mAP_432.pt", width=0.4)
