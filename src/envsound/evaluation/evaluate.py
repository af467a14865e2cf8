"""Score a trained model on the clips of a manifest (a held-out fold)."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from envsound.data.records import ClipRecord, Manifest
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.events.context import context_seconds
from envsound.evaluation.metrics import task_report
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.features.fingerprint import seen_in_training
from envsound.models.clip import ClipModel
from envsound.task import Task

if TYPE_CHECKING:
    from envsound.evaluation.frozen import FrozenClips

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """A report (see :func:`~envsound.evaluation.metrics.task_report`), the clip probabilities, the target rows
    (one-hot or multi-hot) and the clips they belong to."""

    report: dict[str, Any]
    records: list[ClipRecord]
    targets: np.ndarray  # (n_clips, n_classes)
    y_prob: np.ndarray  # (n_clips, n_classes)
    task: Task = field(default_factory=Task)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def y_true(self) -> np.ndarray:
        """Class indices (single-label)."""
        return self.targets.argmax(axis=1)

    def predictions_csv(self, labels: list[str]) -> str:
        """One row per clip: file, fold, true label(s), predicted label(s), the best probability. Several labels
        (multi-label) are joined with ``;``; predicted are those at or above the task's threshold."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file", "fold", "label", "predicted", "score"])
        decided = self.task.decide(self.y_prob)
        for record, probs, chosen in zip(self.records, self.y_prob, decided):
            writer.writerow([str(record.path), record.fold, ";".join(record.labels),
                             ";".join(labels[i] for i in np.flatnonzero(chosen)), f"{probs.max():.4f}"])
        return out.getvalue()


def evaluate_model(model: ClipModel | FrozenClips, manifest: Manifest, *, cache: FeatureCache | None = None,
                   on_error: str = "raise", progress: bool = True) -> Evaluation:
    """Predict every clip of ``manifest`` (window probabilities averaged; a learned detector's with its context, as
    ``predict`` scores a file: :func:`~envsound.evaluation.sed.window_track`) with ``model`` (a network, or a frozen
    one: :mod:`envsound.evaluation.frozen`) and score them against their labels with the model's task (accuracy and
    confusion matrix, or lwlrap, mAP and F1); a manifest with strong labels adds the
    event metrics of :func:`~envsound.evaluation.sed.sed_report` (``segment_f1``, ``event_f1``, ``psds``).

    The model's label list must contain every label of ``manifest`` (class indices follow the model).

    Raises:
        DatasetLayoutError: a label the model was not trained on, or no usable clip.
        ConfigError: a single-label model on a multi-label dataset, or the reverse.
    """
    check_task(model, manifest)
    index = {label: i for i, label in enumerate(model.labels)}
    unknown = sorted({label for r in manifest.records for label in r.labels} - set(index))
    if unknown:
        raise DatasetLayoutError(f"dataset {manifest.name!r} has labels the model does not know: "
                                 f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    records, features, skipped = extract_features(manifest.records, model.config.features, cache=cache,
                                                  on_error=on_error, progress=progress)
    if not records:
        raise DatasetLayoutError(f"dataset {manifest.name!r}: no usable clip to evaluate")
    timelines = None
    if manifest.strong is not None:  # strong labels: each clip's windows are kept for its events, and averaged
        from envsound.evaluation.sed import clip_timeline

        timelines, clip_probs = zip(*[clip_timeline(model, r, f) for r, f in zip(records, features)])
        y_prob = np.stack(clip_probs)
    elif context_seconds(getattr(model, "meta", None)):  # a learned detector's context: each clip's windows alone
        from envsound.evaluation.sed import window_track
        from envsound.features.windows import start_seconds

        y_prob = np.stack([window_track(model, windows, start_seconds(starts, model.config.features)).mean(axis=0)
                           for windows, starts in (model.clip_windows(clip) for clip in features)])
    else:
        y_prob = model.predict_clips(features)
    targets = model.task.targets([r.labels for r in records], model.labels)
    report = task_report(model.task, targets, y_prob, labels=model.labels)
    report["seen_in_training"] = _seen_in_training(model, records, cache)
    if report["seen_in_training"]:  # in the report itself (text and JSON), not only in a log line on stderr
        report["leakage"] = {"seen_in_training": report["seen_in_training"], "clips": len(records),
                             "note": leakage_note(report["seen_in_training"], len(records))}
    if timelines is not None:  # when each sound is, too
        from envsound.evaluation.sed import sed_report

        report.update(sed_report(model, records, timelines, manifest.strong))
    return Evaluation(report=report, records=list(records), targets=targets, y_prob=y_prob, task=model.task,
                      skipped=skipped)


def check_task(model: ClipModel, manifest: Manifest) -> None:
    """Refuse to score a model with the other task's metrics: a softmax model on clips with several labels, or a
    multi-label model on a single-label dataset.

    Raises:
        ConfigError: naming both tasks.
    """
    if model.task.multi_label == manifest.multi_label:
        return
    if manifest.multi_label:
        raise ConfigError(f"this model is {model.task.describe()} but dataset {manifest.name!r} is multi-label: "
                          "multi-label metrics need a multi-label model; train one on this dataset")
    raise ConfigError(f"this model is {model.task.describe()} but dataset {manifest.name!r} is single-label: "
                      "score it on a multi-label dataset, or train a single-label model for this one")


def leakage_note(seen: int, clips: int) -> str:
    """The one line a report carries when ``seen`` of its ``clips`` were in the model's training data."""
    return (f"LEAKAGE: {seen} of the {clips} clips evaluated were in this model's training data (the same audio, "
            "re-encoded or resampled copies included), so this is not a test score")


def _seen_in_training(model: ClipModel, records: list[ClipRecord], cache: FeatureCache | None) -> int | None:
    """How many of ``records`` the model was trained on (warned about), or ``None`` when it does not record that.
    The content check of training's guard: exact copies, and re-encoded, resampled or re-levelled ones where the
    checkpoint kept its clips' robust fingerprints (:func:`~envsound.features.fingerprint.seen_in_training`)."""
    if model.trained_on is None:
        why = "an AudioSet network: its training clips are not listed" if "pretrained" in model.meta \
            else f"the frozen network {model.meta['network']}: its training recordings are not listed" \
            if model.meta.get("kind") == "frozen" else "an older checkpoint"
        log.info("this checkpoint does not record the clips it was trained on (%s): whether these clips were seen "
                 "in training could not be checked", why)
        return None
    if model.trained_prints is None:
        log.info("this checkpoint records its training clips' exact content only (an older checkpoint): re-encoded "
                 "or resampled copies of them cannot be recognised")
    seen = seen_in_training([r.path for r in records], model.trained_on, excerpts=model.trained_prints, cache=cache,
                            threshold=model.config.leakage.match_ber)  # the bit error rate its training's guard used
    if seen:
        log.warning("%s (e.g. %s)", leakage_note(len(seen), len(records)), seen[0])
    return len(seen)
