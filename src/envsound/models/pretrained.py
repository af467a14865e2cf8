"""EfficientAT's official AudioSet weight files, used as they are: recognised by their tensors, checked against the
network built here, and presented as an ordinary :class:`~envsound.models.checkpoint.Checkpoint` (an AudioSet
tagger: 527 classes, multi-label), so ``predict``, ``evaluate``, ``serve``, ``embed``, ``export``, ``load_model``
and ``--init`` take one wherever they take a ``model.ckpt``.

A file's label names are AudioSet's ``class_labels_indices.csv`` (index, mid, display_name), read from beside the
weights; ``envsound download efficientat-mn04`` puts both in :func:`~envsound.models.releases.models_dir`. Nothing
here downloads; :func:`envsound.models.files.open_model_file` is what opens such a file (or an installed name).
"""

from __future__ import annotations

import csv
import difflib
import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from envsound.config.files import bare_config
from envsound.errors import CheckpointError
from envsound.models.checkpoint import Checkpoint
from envsound.models.efficientat import BLOCKS, EfficientAT, make_divisible, official_key, release_key
from envsound.models.families import family_releases
from envsound.models.releases import LABELS_FILE, PRETRAINED, installed_path, models_dir
from envsound.task import MULTI_LABEL, Task

log = logging.getLogger(__name__)


def is_official_state(payload: Any) -> bool:
    """Whether a loaded file is a plain state dict in EfficientAT's layout (``features.*`` and ``classifier.*``
    tensors, as the release saves them), rather than an envsound checkpoint."""
    return (isinstance(payload, Mapping) and bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())
            and any(str(k).startswith("features.0.") for k in payload) or _is_dymn(payload))


def _is_dymn(payload: Any) -> bool:
    return isinstance(payload, Mapping) and any(str(k).startswith("layers.0.depth_conv") for k in payload)


def width_of(state: Mapping[str, torch.Tensor]) -> float | None:
    """The official width whose last 1x1 conv has the input channels of ``state``'s (``None``: none does)."""
    last = state.get("features.16.0.weight")
    if last is None or last.dim() != 4:
        return None
    for spec in PRETRAINED.values():
        if make_divisible(BLOCKS[-1][3] * spec.options["width"]) == last.shape[1]:
            return spec.options["width"]
    return None


def check_official_state(state: Mapping[str, torch.Tensor], *, source: str) -> tuple[float, int]:
    """``(width, n_classes)`` of an official state dict, after checking every tensor against the network built
    here.

    Raises:
        CheckpointError: a ``dymn`` file (not supported), or no official width fits: the message names the first
            tensor that differs and the names envsound knows.
    """
    known = ", ".join(PRETRAINED)
    if _is_dymn(state):
        raise CheckpointError(f"{source}: an EfficientAT dymn (dynamic convolution) file; envsound runs the mn "
                              f"family: {known}")
    width = width_of(state) or 0.4
    head = state.get("classifier.5.bias")
    n_classes = int(head.shape[0]) if head is not None and head.dim() == 1 else 527
    expected = EfficientAT(n_classes=n_classes, in_channels=1, n_mels=128, n_frames=100, width=width).state_dict()
    given = {official_key(k): v for k, v in state.items()}
    for key, tensor in expected.items():
        if key not in given:
            raise CheckpointError(f"{source}: not a known EfficientAT network: tensor {release_key(key)} is missing "
                                  f"(compared with the width-{width} mn network; known: {known})")
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: not a known EfficientAT network: tensor {release_key(key)} has shape "
                                  f"{tuple(given[key].shape)}, the width-{width} mn network {tuple(tensor.shape)} "
                                  f"(known: {known})")
    extra = sorted(set(given) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: not a known EfficientAT network: unexpected tensor {extra[0]} "
                              f"(known: {known})")
    return width, n_classes


def official_checkpoint(state: Mapping[str, torch.Tensor], *, path: Path, labels_required: bool = True
                        ) -> Checkpoint:
    """An official weight file as a :class:`~envsound.models.checkpoint.Checkpoint`: an AudioSet tagger
    (multi-label) whose config is this network at the file's width with the EfficientAT frontend.

    ``labels_required=False`` (``--init``, where only shared class names matter) names the classes ``class_0`` ...
    when no label file is beside the weights, with a warning.

    Raises:
        CheckpointError: the tensors fit no official network, or (``labels_required``) the label file is missing or
            does not have one row per output.
    """
    from envsound.models.registry import model_preset  # every model class: only when a release file is read

    width, n_classes = check_official_state(state, source=str(path))
    labels = read_labels(path, n_classes=n_classes, required=labels_required)
    config = bare_config(preset=model_preset("efficientat"), model="efficientat",
                         overrides=[f"model.options.width={width}"])
    spec = next((p for p in PRETRAINED.values() if p.options["width"] == width), None)
    meta = {"kind": "classifier", "pretrained": {"name": spec.name if spec else None, "file": str(path),
                                                 "audioset_map": spec.audioset_map if spec else None}}
    return Checkpoint(config=config, labels=labels, task=Task(MULTI_LABEL),
                      state_dict={official_key(k): v for k, v in state.items()}, meta=meta)


def read_labels(path: Path, *, n_classes: int, required: bool = True) -> list[str]:
    """The display names of ``class_labels_indices.csv`` beside ``path`` (or in :func:`models_dir`), in index order.

    Raises:
        CheckpointError: (``required``) no such file, or not ``n_classes`` rows.
    """
    for candidate in (path.parent / LABELS_FILE, models_dir() / LABELS_FILE):
        if candidate.is_file():
            with candidate.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            names = [row.get("display_name", "").strip() for row in rows]
            if len(names) != n_classes or not all(names):
                raise CheckpointError(f"{candidate}: expected {n_classes} rows with a display_name (AudioSet's "
                                      f"class_labels_indices.csv), found {len(names)}")
            return names
    if required:
        raise CheckpointError(f"{path}: the AudioSet label names are missing: put AudioSet's {LABELS_FILE} beside "
                              f"the weights or in {models_dir()} ('envsound download efficientat-mn04' fetches it)")
    log.warning("%s: no %s beside it: its %d classes are named class_0 ... (no head rows copied by name)",
                path, LABELS_FILE, n_classes)
    return [f"class_{i}" for i in range(n_classes)]


def closest_labels(name: str, labels: list[str], n: int = 3) -> list[str]:
    """The ``n`` label names closest to ``name`` (for messages about a misspelt class)."""
    folded = {label.casefold(): label for label in labels}
    return [folded[m] for m in difflib.get_close_matches(name.casefold(), list(folded), n=n, cutoff=0.5)]


def pretrained_table() -> list[dict[str, Any]]:
    """One row per official file of every torch family (:mod:`envsound.models.families`): name, parameters, size in MB
    (float32), AudioSet mAP, installed path or None."""
    return [{"name": spec.download_name, "parameters": spec.parameters, "megabytes": round(spec.parameters * 4 / 1e6, 1),
             "audioset_map": spec.audioset_map, "installed": installed_path(spec)} for spec in family_releases("torch")]
