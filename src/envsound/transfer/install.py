"""Getting AudioSet weights: ``envsound download efficientat-mn04`` (the release, with resume and progress) or
``--from FILE`` (a copy the user has), each checked before it is kept. Here rather than in ``models`` because it
downloads (``data.download``), which a model never imports.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from envsound.data.download import download_file, sha256_of
from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import atomic_path
from envsound.models.pretrained import check_official_state, is_official_state, read_labels
from envsound.models.releases import (LABELS_FILE, LABELS_URL, PRETRAINED, RELEASE_URL, Pretrained, by_download_name,
                                      models_dir)

log = logging.getLogger(__name__)


def install_pretrained(name: str, *, source_file: str | Path | None = None, url: str | None = None,
                       progress: bool = True) -> Path:
    """Put the official file ``name`` (``efficientat-mn04``, ``mn04_as`` ...) and AudioSet's label names into
    :func:`models_dir`: downloaded from the release (or from ``url``, a folder holding ``<file>`` and
    ``class_labels_indices.csv``) with resume and a progress bar, or copied from ``source_file``, a copy the user
    already has (its labels file is taken from beside it when there). The weights are checked by sha256 where it
    is known and by every tensor's shape always; a file that fails is not kept.

    >>> install_pretrained("efficientat-mn04", source_file="downloads/mn04_as_mAP_432.pt")

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
        DownloadError: the download failed or its sha256 differs.
        CheckpointError: the file is not the network ``name`` says (first mismatching tensor named), or unreadable.
    """
    spec = by_download_name(name)
    if spec is None:
        known = ", ".join(p.download_name for p in PRETRAINED.values())
        raise ConfigError(f"{name!r} is not a pre-trained model envsound knows; known: {known}")
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / spec.file
    unverified = folder / (spec.file + ".unverified")
    base = url.rstrip("/") + "/" if url else None
    if source_file is not None:
        source = Path(source_file)
        if not source.is_file():
            raise CheckpointError(f"{source}: file not found")
        with atomic_path(unverified) as tmp:
            shutil.copyfile(source, tmp)
        if spec.sha256 and sha256_of(unverified) != spec.sha256:
            unverified.unlink()
            raise CheckpointError(f"{source}: its sha256 is not that of the official {spec.file}; pass the file "
                                  "from the EfficientAT release")
    else:
        download_file((base or RELEASE_URL) + spec.file, unverified, sha256=spec.sha256, progress=progress)
    try:
        _check_installed(unverified, spec)
    except CheckpointError:
        unverified.unlink(missing_ok=True)
        raise
    os.replace(unverified, dest)
    labels = folder / LABELS_FILE
    beside = Path(source_file).parent / LABELS_FILE if source_file is not None else None
    if not labels.is_file():
        if beside is not None and beside.is_file():
            with atomic_path(labels) as tmp:
                shutil.copyfile(beside, tmp)
        elif source_file is None:
            download_file(base + LABELS_FILE if base else LABELS_URL, labels, progress=progress)
        else:
            log.warning("no %s beside %s: put AudioSet's label file in %s to predict AudioSet classes",
                        LABELS_FILE, source_file, folder)
    if labels.is_file():
        read_labels(dest, n_classes=527)
    return dest


def _check_installed(path: Path, spec: Pretrained) -> None:
    """Raise :class:`CheckpointError` unless ``path`` holds ``spec``'s network."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name.removesuffix('.unverified')}: not a readable torch file "
                              f"({reason[:120]})") from exc
    if not is_official_state(state):
        raise CheckpointError(f"{path.name.removesuffix('.unverified')}: not an EfficientAT state dict")
    width, _ = check_official_state(state, source=path.name.removesuffix(".unverified"))
    if width != spec.options["width"]:
        raise CheckpointError(f"{path.name.removesuffix('.unverified')}: holds the width-{width} network, not "
                              f"{spec.name} (width {spec.options['width']})")

