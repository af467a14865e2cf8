"""EfficientAT's official AudioSet weight files, used as they are: recognised by their tensors, checked against the
network built here, and presented as an ordinary :class:`~envsound.models.checkpoint.Checkpoint` (an AudioSet
tagger: 527 classes, multi-label), so ``predict``, ``evaluate``, ``serve``, ``embed``, ``export``, ``load_model``
and ``--init`` take one wherever they take a ``model.ckpt``.

A file's label names are AudioSet's ``class_labels_indices.csv`` (index, mid, display_name), read from beside the
weights; ``envsound download efficientat-mn04`` puts both in :func:`models_dir`. Nothing here downloads.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from envsound.config import resolve_config
from envsound.errors import CheckpointError
from envsound.models.efficientat import BLOCKS, EfficientAT, make_divisible, official_key, release_key
from envsound.task import MULTI_LABEL, Task

log = logging.getLogger(__name__)

RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
LABELS_FILE = "class_labels_indices.csv"
LABELS_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
MODELS_ENV = "ENVSOUND_MODELS"


@dataclass(frozen=True)
class Pretrained:
    """One official file: its width multiplier, release file name, AudioSet mAP, parameter count and sha256
    (``None``: not known here; the file is then checked by its tensor shapes alone)."""

    name: str
    width: float
    file: str
    audioset_map: float
    parameters: int
    sha256: str | None = None

    @property
    def url(self) -> str:
        return RELEASE_URL + self.file

    @property
    def download_name(self) -> str:
        """``efficientat-mn04``: the name ``envsound download`` and ``--init`` accept."""
        return "efficientat-" + self.name.removesuffix("_as")


PRETRAINED = {p.name: p for p in (
    Pretrained("mn01_as", 0.1, "mn01_as_mAP_298.pt", 0.298, 126_402),
    Pretrained("mn02_as", 0.2, "mn02_as_mAP_378.pt", 0.378, 329_733),
    Pretrained("mn04_as", 0.4, "mn04_as_mAP_432.pt", 0.432, 993_485,
               "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"),
    Pretrained("mn05_as", 0.5, "mn05_as_mAP_443.pt", 0.443, 1_443_637),
    Pretrained("mn10_as", 1.0, "mn10_as_mAP_471.pt", 0.471, 4_901_277),
    Pretrained("mn20_as", 2.0, "mn20_as_mAP_478.pt", 0.478, 17_958_133),
    Pretrained("mn30_as", 3.0, "mn30_as_mAP_482.pt", 0.482, 39_159_613),
    Pretrained("mn40_as", 4.0, "mn40_as_mAP_484.pt", 0.484, 68_524_949),
)}
"""The ``mn`` family's AudioSet files (EfficientAT release v0.0.1); ``parameters`` counts every tensor of the file."""


def models_dir() -> Path:
    """``$ENVSOUND_MODELS`` if set, else ``~/.cache/envsound/models`` (read when called)."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "envsound" / "models"


def by_download_name(name: str) -> Pretrained | None:
    """The file ``efficientat-mn04`` (or ``mn04_as``, ``mn04``) names; ``None`` for any other string."""
    key = name.removeprefix("efficientat-")
    key = key if key.endswith("_as") else key + "_as"
    return PRETRAINED.get(key)


def installed_path(spec: Pretrained) -> Path | None:
    """Where ``envsound download`` put ``spec``'s file, when it did."""
    path = models_dir() / spec.file
    return path if path.is_file() else None


def resolve_name(path: str | Path) -> Path:
    """``path`` itself, or for a name such as ``efficientat-mn04`` that is not a file, the installed weights.

    Raises:
        CheckpointError: a known name whose weights are not installed (the message gives the download command).
    """
    spec = None if Path(path).exists() else by_download_name(str(path))
    if spec is None:
        return Path(path)
    found = installed_path(spec)
    if found is None:
        raise CheckpointError(f"{path}: the weights are not installed in {models_dir()}; run 'envsound download "
                              f"{spec.download_name}' (or 'envsound download {spec.download_name} --from FILE')")
    return found


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
        if make_divisible(BLOCKS[-1][3] * spec.width) == last.shape[1]:
            return spec.width
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


def official_checkpoint(state: Mapping[str, torch.Tensor], *, path: Path, labels_required: bool = True):
    """An official weight file as a :class:`~envsound.models.checkpoint.Checkpoint`: an AudioSet tagger
    (multi-label) whose config is this network at the file's width with the EfficientAT frontend.

    ``labels_required=False`` (``--init``, where only shared class names matter) names the classes ``class_0`` ...
    when no label file is beside the weights, with a warning.

    Raises:
        CheckpointError: the tensors fit no official network, or (``labels_required``) the label file is missing or
            does not have one row per output.
    """
    from envsound.models.checkpoint import Checkpoint  # it imports this module
    from envsound.models.registry import model_preset  # every model class: only when a release file is read

    width, n_classes = check_official_state(state, source=str(path))
    labels = read_labels(path, n_classes=n_classes, required=labels_required)
    config = resolve_config(preset=model_preset("efficientat"), model="efficientat",
                            overrides=[f"model.options.width={width}"])
    spec = next((p for p in PRETRAINED.values() if p.width == width), None)
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
    """One row per official file: name, parameters, size in MB (float32), AudioSet mAP, installed path or None."""
    return [{"name": spec.download_name, "parameters": spec.parameters, "megabytes": round(spec.parameters * 4 / 1e6, 1),
             "audioset_map": spec.audioset_map, "installed": installed_path(spec)} for spec in PRETRAINED.values()]
