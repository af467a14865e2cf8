"""Getting a frozen network of the ``litert`` family (``envsound download birdnet-v2.4`` / ``yamnet``): downloaded
from its published address (with resume and progress) or copied ``--from`` a file or a folder the user has, the
network recognised by its structure (LiteRT opens it) and its label file counted before either is kept. Here
beside :mod:`envsound.transfer.install` because it downloads (``data.download``), which a model never imports.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from envsound.data.download import download_file, sha256_of
from envsound.errors import CheckpointError, ConfigError, DownloadError
from envsound.fileio import atomic_path
from envsound.models.birdnet_range import RANGE_MODELS, RangeModel, RangeRelease
from envsound.models.frozen import FROZEN, FrozenRelease, is_tflite, official_or_not, read_frozen_labels
from envsound.models.frozen_head import copy_hashed
from envsound.models.releases import models_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Installed:
    """What :func:`install_frozen` put in place: the network's file, its label file, the member, which file it
    is (:func:`~envsound.models.frozen.official_or_not`), and its species-range model (BirdNET's, for
    ``--lat/--lon``: :mod:`~envsound.models.birdnet_range`) when one was found beside it or published (else
    ``None``)."""

    path: Path
    labels: Path
    release: FrozenRelease
    which: str
    range_model: Path | None = None


def install_frozen(name: str, *, source: str | Path | None = None, url: str | None = None,
                   progress: bool = True) -> Installed:
    """Put the network ``name`` (``birdnet-v2.4``, ``yamnet``) and its label file into
    :func:`~envsound.models.releases.models_dir` (``<models>/<name>/``): downloaded from the published addresses
    (or ``url``, a folder holding both files under their published names), or copied from ``source``, a file (its
    label file beside it) or a folder holding the network and its label file. A file that is not the member's
    network (by structure), or a label file without one name per class, is not kept. BirdNET's species-range model
    comes too when the source's folder holds it or the address publishes it (optional: without it, only
    ``--lat/--lon`` are unavailable). No ``.unverified`` file outlives the call, whatever stops it (a download
    broken off keeps only :func:`~envsound.data.download.download_file`'s ``.part``, which the next run resumes).

    >>> install_frozen("birdnet-v2.4", source="../shared/pretrained/birdnet").path

    Raises:
        ConfigError: an unknown name (the known ones listed); LiteRT is not installed.
        DownloadError: a download failed, or BirdNET's sha256 differs from the distributed file's.
        CheckpointError: the source holds no such network, or its label file is missing or miscounted.
    """
    release = FROZEN.get(name)
    if release is None:
        raise ConfigError(f"{name!r} is not a frozen network envsound knows; known: {', '.join(FROZEN)}")
    dest, labels = models_dir() / release.file, models_dir() / release.labels_file
    dest.parent.mkdir(parents=True, exist_ok=True)
    unverified = dest.with_name(dest.name + ".unverified")
    pending = labels.with_name(labels.name + ".unverified")
    base = url.rstrip("/") + "/" if url else None
    # An .unverified file is never kept past this call: one left by a process killed mid-install is removed first
    # (download_file would otherwise take it as already downloaded), and any failure below removes both.
    unverified.unlink(missing_ok=True)
    pending.unlink(missing_ok=True)
    try:
        if source is not None:
            model_file, quantized = _source_network(release, Path(source))
            with atomic_path(unverified) as tmp:
                digest = copy_hashed(model_file, tmp)
            labels_from = str(_labels_in(release, model_file.parent))
            with atomic_path(pending) as tmp:
                shutil.copyfile(labels_from, tmp)
        else:
            shown = base + Path(release.file).name if base else release.url
            download_file(shown, unverified, sha256=None if base else release.sha256, progress=progress)
            quantized = _check_network(unverified, release, shown=shown)
            digest = sha256_of(unverified)
            labels_from = base + Path(release.labels_file).name if base else release.labels_url
            download_file(labels_from, pending, progress=progress)
        read_frozen_labels(release, pending, shown=labels_from)
        companion = RANGE_MODELS.get(release.name)  # BirdNET's species-range model, when there: a wrong one fails all
        in_range = None if companion is None else _install_range(
            companion, folder=model_file.parent if source is not None else None, base=base, progress=progress)
        which = official_or_not(release, digest, quantized=quantized)
        os.replace(unverified, dest)
        os.replace(pending, labels)
    finally:  # a download cut short, a wrong file, an interrupt: no partial file stays behind
        unverified.unlink(missing_ok=True)
        pending.unlink(missing_ok=True)
    log.debug("%s: %s (%s)", release.name, which, dest)
    return Installed(path=dest, labels=labels, release=release, which=which, range_model=in_range)


def _install_range(release: RangeRelease, *, folder: Path | None, base: str | None, progress: bool) -> Path | None:
    """The member's species-range model into the models folder, from ``folder`` when it holds it, else from the
    address (``base``, or the published one); ``None`` when neither has it (what was installed before is kept)."""
    dest = models_dir() / release.file
    unverified = dest.with_name(dest.name + ".unverified")
    unverified.unlink(missing_ok=True)  # as install_frozen: never taken from an earlier, interrupted run
    try:
        if folder is not None:
            if not (folder / release.file_name).is_file():
                return dest if dest.is_file() else None
            with atomic_path(unverified) as tmp:
                shutil.copyfile(folder / release.file_name, tmp)
        else:
            download_file(base + release.file_name if base else release.url, unverified,
                          sha256=None if base else release.sha256, progress=progress)
        RangeModel.open(unverified, release)
        os.replace(unverified, dest)
    except DownloadError as exc:  # optional: the network goes in without it; --lat/--lon will say how to add it
        log.warning("%s: its species-range model was not fetched (%s); --lat/--lon need it", release.member, exc)
        return dest if dest.is_file() else None
    finally:
        unverified.unlink(missing_ok=True)
    return dest


def _source_network(release: FrozenRelease, source: Path) -> tuple[Path, bool]:
    """The network in ``source`` and whether its weights are quantized (:func:`_check_network`, LiteRT opening it
    once): the file itself, or in a folder the network under its published name, else the one ``.tflite`` there of
    the member's structure (its label file is then looked for beside it).

    Raises:
        CheckpointError: no such file or folder; the file is not the member's network; no file in the folder is.
    """
    if source.is_file():
        return source, _check_network(source, release, shown=str(source))
    if not source.is_dir():
        raise CheckpointError(f"{source}: no such file or folder; pass {release.name}'s .tflite or the folder "
                              "holding it and its label file")
    named = source / Path(release.file).name
    candidates = [named] if named.is_file() else sorted(p for p in source.glob("*.tflite") if is_tflite(p))
    for candidate in candidates:
        try:
            return candidate, _check_network(candidate, release, shown=str(candidate))
        except CheckpointError:
            continue
    raise CheckpointError(f"{source}: no .tflite here is {release.name} (looked for "
                          f"{Path(release.file).name} or any of the same structure)")


def _labels_in(release: FrozenRelease, folder: Path) -> Path:
    labels = folder / Path(release.labels_file).name
    if not labels.is_file():
        raise CheckpointError(f"{folder}: no {labels.name} here; put {release.name}'s label file beside its .tflite")
    return labels


def _check_network(path: Path, release: FrozenRelease, *, shown: str) -> bool:
    """Whether the network's weights are stored quantized (a tensor named ``..._dequantize``), from one LiteRT
    interpreter that also checks ``path`` holds ``release``'s network (by structure).

    Raises:
        CheckpointError: not a TFLite file, or another network.
    """
    from envsound.models.litert import LiteRTNetwork

    if not is_tflite(path):
        raise CheckpointError(f"{shown}: not a TFLite file; pass {release.name}'s .tflite")
    network = LiteRTNetwork.open(path, embedding=False, interpreters=1)
    if network.release.name != release.name:
        raise CheckpointError(f"{shown}: holds {network.release.name}, not {release.name}; 'envsound download "
                              f"{network.release.name} --from {shown}'")
    return any("_dequantize" in d["name"] for d in network.interpreter.get_tensor_details())
