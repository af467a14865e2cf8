"""Clip embeddings of any checkpoint (``envsound embed``): what the network's head sees, averaged over a clip's
evaluation windows, for a user's own search, clustering or classifier."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from envsound.audio.load import AUDIO_EXTENSIONS
from envsound.data.records import ClipRecord, Manifest
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.fileio import atomic_path
from envsound.inference.predictor import expand_inputs
from envsound.errors import CheckpointError
from envsound.models.clip import ClipModel
from envsound.models.files import CLASSIFIER, ONNX, RELEASE, open_model_file

log = logging.getLogger(__name__)


@dataclass
class Embeddings:
    """``embeddings[i]`` belongs to ``files[i]`` (and ``labels[i]``, ``;``-joined, when they came from a dataset)."""

    embeddings: np.ndarray
    files: list[str]
    labels: list[str] | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def embed_inputs(checkpoint: str | Path, inputs: str | Path | Sequence[str | Path] = (), *, manifest: Manifest | None = None,
                 device: str = "auto", cache: FeatureCache | None = None, progress: bool = True) -> Embeddings:
    """Embed audio files or folders (searched recursively), or the clips of ``manifest`` (labels kept). A file that
    cannot be read is listed in ``skipped`` and the others go on.

    Raises:
        CheckpointError: not a checkpoint of one network (an ONNX export has no embedding output).
        ConfigError: the model has no embedding (a baseline, an ensemble).
    """
    source = open_model_file(checkpoint)
    if source.kind == ONNX:  # its graph's outputs are probabilities (onnx_model.OUTPUTS): there is nothing to embed
        raise CheckpointError(f"{checkpoint}: an ONNX export carries no embedding output, only probabilities; "
                              "embeddings need the model.ckpt it was exported from (or an AudioSet release such as "
                              "efficientat-mn04)")
    source.require(CLASSIFIER, RELEASE, purpose="embedding")
    model = ClipModel.from_checkpoint(source.checkpoint, source=str(checkpoint), device=device)
    records, skipped = [], []
    for path in expand_inputs(inputs):
        if path.is_dir():
            skipped.append((path, f"no audio files in this folder (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"))
        else:
            records.append(ClipRecord(path=path, labels=(), fold=None, source_id=str(path), clip_id=str(path)))
    if manifest is not None:
        records += manifest.records
    kept, features, bad = extract_features(records, model.config.features, cache=cache, on_error="skip",
                                           progress=progress)
    embeddings = model.embed_clips(features)
    labels = [";".join(r.labels) for r in kept] if manifest is not None else None
    return Embeddings(embeddings=embeddings, files=[str(r.path) for r in kept], labels=labels, skipped=skipped + bad)


def save_embeddings(path: str | Path, result: Embeddings) -> Path:
    """Write ``embeddings`` (n, d) float32, ``files`` and (for a dataset) ``labels`` to an ``.npz``, atomically."""
    arrays = {"embeddings": result.embeddings, "files": np.asarray(result.files, dtype=str)}
    if result.labels is not None:
        arrays["labels"] = np.asarray(result.labels, dtype=str)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # np.savez on a path would append ".npz" to the temporary name
            np.savez(handle, **arrays)
    return Path(path)
