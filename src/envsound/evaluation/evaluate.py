"""Score a trained model on the clips of a manifest (a held-out fold)."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envsound.data.records import ClipRecord, Manifest
from envsound.errors import DatasetLayoutError
from envsound.evaluation.metrics import classification_report
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.features.fingerprint import seen_in_training
from envsound.models.clip import ClipModel

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """A report (see :func:`classification_report`), the clip probabilities and the clips they belong to."""

    report: dict[str, Any]
    records: list[ClipRecord]
    y_true: np.ndarray
    y_prob: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def predictions_csv(self, labels: list[str], *, fold_of: dict[str, int] | None = None) -> str:
        """One row per clip: file, fold, true label, predicted label, its probability."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file", "fold", "label", "predicted", "score"])
        for record, true, probs in zip(self.records, self.y_true, self.y_prob):
            best = int(probs.argmax())
            writer.writerow([str(record.path), record.fold, labels[true], labels[best], f"{probs[best]:.4f}"])
        return out.getvalue()


def evaluate_model(model: ClipModel, manifest: Manifest, *, cache: FeatureCache | None = None,
                   on_error: str = "raise", progress: bool = True) -> Evaluation:
    """Predict every clip of ``manifest`` (window probabilities averaged) and compare with its label.

    The model's label list must contain every label of ``manifest`` (class indices follow the model).

    Raises:
        DatasetLayoutError: a label the model was not trained on, or no usable clip.
    """
    index = {label: i for i, label in enumerate(model.labels)}
    unknown = sorted({r.label for r in manifest.records} - set(index))
    if unknown:
        raise DatasetLayoutError(f"dataset {manifest.name!r} has labels the model does not know: "
                                 f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    records, features, skipped = extract_features(manifest.records, model.config.features, cache=cache,
                                                  on_error=on_error, progress=progress)
    if not records:
        raise DatasetLayoutError(f"dataset {manifest.name!r}: no usable clip to evaluate")
    y_prob = model.predict_clips(features)
    y_true = np.asarray([index[r.label] for r in records])
    report = classification_report(y_true, y_prob, labels=model.labels)
    report["seen_in_training"] = _seen_in_training(model, records, cache)
    return Evaluation(report=report, records=list(records), y_true=y_true, y_prob=y_prob, skipped=skipped)


def _seen_in_training(model: ClipModel, records: list[ClipRecord], cache: FeatureCache | None) -> int | None:
    """How many of ``records`` the model was trained on (warned about), or ``None`` when it does not record that."""
    if model.trained_on is None:
        log.info("this checkpoint does not record the clips it was trained on (an older checkpoint): whether these "
                 "clips were seen in training could not be checked")
        return None
    seen = seen_in_training([r.path for r in records], model.trained_on, cache=cache)
    if seen:
        log.warning("%d of the %d clips evaluated were in this model's training data, so this is not a test score "
                    "(e.g. %s)", len(seen), len(records), seen[0])
    return len(seen)
