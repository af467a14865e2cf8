"""Train one model on the clips of a manifest: validate the request, prepare the clips, fit, save a checkpoint.

``train_model`` is what ``envsound train`` calls and what cross-validation calls once per fold; the ways it fits
(probe, baseline, one network, ensemble, self-training) are the table of :mod:`envsound.recipes.fit_paths`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.errors import ConfigError
from envsound.features.fingerprint import clip_fingerprints, exact_ids, trained_excerpts
from envsound.models.checkpoint import Checkpoint
from envsound.models.frozen import FROZEN
from envsound.models.open_set import OpenSet
from envsound.models.registry import check_feature_kind, is_torch_model
from envsound.recipes.context import RunContext
from envsound.recipes.fit_paths import FitJob, check_frame_start, fit_model
from envsound.recipes.run_folder import RunFolder
from envsound.task import Task, fit_class_thresholds
from envsound.training.loop.data import clip_noisiness
from envsound.training.loop.result import FitResult
from envsound.training.prepare import TrainingData, prepare_training_data
from envsound.transfer.frozen_probe import FrozenPlan, frozen_init, frozen_open_set, plan_frozen
from envsound.transfer.guard import check_init_unseen
from envsound.transfer.modes import resolve_mode
from envsound.transfer.notes import note
from envsound.transfer.source import InitPlan, plan_init

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.ckpt"


@dataclass
class TrainResult:
    """What ``train_model`` returns: where the model went (``checkpoint``), the clips it saw and how training ended
    (epochs, best monitored score, seconds, files left out). The weights themselves are in the checkpoint; what a fit
    made in memory before it was written is a :class:`~envsound.training.loop.result.FitResult`."""

    checkpoint: Path
    n_train: int
    n_val: int
    n_unlabelled: int = 0  # clips in the unlabelled pool of a semi-supervised run
    epochs: int = 0
    best_score: float | None = None  # the monitored validation metric (train.monitor) at the kept epoch
    events_tuned: dict[str, Any] | None = None  # events.tune's choice on the validation clips (meta["events_tuned"])
    seconds: float = 0.0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    written: bool = True  # False in the other processes of a multi-process run (process 0 writes the checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "n_train": self.n_train, "n_val": self.n_val,
                "n_unlabelled": self.n_unlabelled,
                "epochs": self.epochs, "best_score": self.best_score, "events_tuned": self.events_tuned,
                "seconds": round(self.seconds, 1),
                "skipped": [[str(p), reason] for p, reason in self.skipped]}


def train_model(
    manifest: Manifest,
    config: Config,
    *,
    out_dir: str | Path,
    context: RunContext = RunContext(),
    meta: dict[str, Any] | None = None,
    init: str | Path | None = None,
    unlabelled: Manifest | None = None,
    held_out: Sequence[Manifest] = (),
) -> TrainResult:
    """Train ``config.model`` on every clip of ``manifest`` and write ``out_dir/model.ckpt``.

    A validation split (``config.train.val_fraction`` of the clips, grouped by source recording; none by default)
    is taken from ``manifest`` itself for early stopping and best-checkpoint selection of torch models (baselines fit
    on every clip): pass only training folds. Also writes ``config.yaml`` (the resolved config) and ``logs/metrics.csv``.
    ``context``: the feature cache, resume / overwrite of ``out_dir``, progress bars and bad audio
    (:class:`~envsound.recipes.context.RunContext`).
    ``init``: a classifier ``model.ckpt`` of envsound (every layer but the head is loaded; head rows of the classes
    both label sets share are copied) or an ``autoencoder.ckpt`` from ``envsound pretrain`` (its encoder, for
    ``dtu``/``cnn``); ``config.transfer`` says how the model trains from it (``full``, ``gradual``, ``probe``). The
    ``features`` and ``model`` sections must match the source's (the CLI inherits them from it). A frozen network
    (``birdnet-v2.4``, ``yamnet`` or its .tflite) is probed (:mod:`envsound.transfer.frozen_probe`): the checkpoint
    is a head learned over it, as ``envsound learn`` writes.
    ``held_out``: the clips this model will be tested on (test fold, folds left out); nothing of them may reach
    training: ``config.augment`` copies come only from the training clips left after the validation split, and a
    background-noise folder holding any validation or ``held_out`` clip is refused.

    With ``train.label_fraction`` p < 1 only a stratified share p of ``manifest``'s clips (grouped by source,
    chosen from ``train.seed``: :func:`~envsound.data.splits.labelled_subset`) keeps its labels; the validation split
    comes from those. With ``semi.method`` other than ``"none"`` the clips left unlabelled plus ``unlabelled`` (any
    manifest; labels ignored; clips sharing a source with the validation clips left out) are the unlabelled pool.

    Raises:
        CheckpointError: ``init`` is not a classifier or autoencoder checkpoint, its weights do not fit the model
            (every mismatch named), or its model was trained on this split's validation or test clips.
        ConfigError: ``features.kind`` is not the input kind of ``config.model`` (e.g. ``aclnet`` with log-mel).
        DatasetLayoutError: a leak through augmentation (see :func:`prepare_training_data`).
        EnvsoundError: ``out_dir`` already holds a model (unless ``context.overwrite`` or ``context.resume``), bad
            audio with ``context.on_error="raise"``, or fewer than two clips to train on.
        ConfigError: ``semi.method`` set with no unlabelled clips, or ``semi.method`` or ``train.ensemble`` > 1 for a
            baseline model.

    >>> result = train_model(load_dataset("esc10", root).select_folds([1, 2, 3]), Config(), out_dir="runs/esc10")
    >>> result.checkpoint
    """
    start = time.perf_counter()
    check_request(manifest, config)
    folder = RunFolder(out_dir, checkpoint_name=CHECKPOINT_NAME, context=context)
    folder.check_free()
    plan = plan_for(init, config, manifest.labels)  # the source fits: checked first
    mode = resolve_mode(config, plan)
    check_frame_start(config, plan, manifest.strong is not None)
    with folder.writing(config):
        data = prepare_training_data(manifest, config, held_out=held_out, unlabelled=unlabelled,
                                     cache=context.cache, on_error=context.on_error, progress=context.progress)
        if isinstance(plan, FrozenPlan):
            note(log, "%s: a frozen network (trained on recordings it does not list): overlap with this split cannot "
                      "be checked", init)
        elif init is not None:
            check_init_unseen(init, [r.path for m in (data.val, *held_out) for r in m.records], cache=context.cache,
                              allow_overlap=config.leakage.allow_overlap)
        log.info("training %s on %d clips, validating on %d%s", config.model.name, len(data.train), len(data.val),
                 f", with {len(data.unlabelled_features)} unlabelled clips ({config.semi.method})"
                 if data.unlabelled_features else "")
        result = TrainResult(checkpoint=folder.checkpoint, n_train=len(data.train), n_val=len(data.val),
                             n_unlabelled=len(data.unlabelled_features), skipped=data.skipped)
        job = FitJob(config, data.fit_data(), manifest.task, manifest.labels, plan, mode, folder.path, context)
        fit = fit_model(job)
        result.epochs, result.best_score = fit.epochs, fit.best_score
        result.written = fit.is_global_zero  # process 0 of a multi-process run writes the model
        if result.written:
            checkpoint = _checkpoint(job, manifest.name, data, fit, result, meta or {})
            result.events_tuned = checkpoint.meta.get("events_tuned")
            if fit.runtime is not None:
                folder.note_runtime(checkpoint.config, fit.runtime)
            elif checkpoint.config is not config:  # events.tune's choice: config.yaml says what the model decodes with
                folder.rewrite_config(checkpoint.config)
            folder.save(checkpoint)
        return _finished(result, start)


def plan_for(init: str | Path | None, config: Config, labels: Sequence[str]) -> InitPlan | FrozenPlan | None:
    """What ``init`` starts the run from: a frozen network's probe (:func:`~envsound.transfer.frozen_probe.
    plan_frozen`), a model file's weights (:func:`~envsound.transfer.source.plan_init`), or nothing.

    Raises:
        ConfigError: ``model.name`` is a frozen network's and ``init`` is not it; see the two planners.
        CheckpointError: see the two planners.
    """
    frozen = frozen_init(init)
    if frozen is not None:
        return plan_frozen(init, frozen, config, labels)
    if config.model.name in FROZEN:
        raise ConfigError(f"model.name={config.model.name}: a frozen network; its head is learned from --init "
                          f"{config.model.name} (train, cv) or with envsound learn")
    return plan_init(init, config, labels) if init is not None else None


def check_request(manifest: Manifest, config: Config) -> None:
    """Refuse, before any audio is decoded, a request no fit path can serve: a model given input it does not take,
    fewer than 2 classes, a baseline on multi-label clips or as an ensemble, self-training where it does not apply.
    A frozen network's settings are checked against the network by :func:`plan_for`.

    Raises:
        ConfigError: naming the setting and what to choose instead.
    """
    config.validate()
    if config.model.name in FROZEN:
        check_class_counts(manifest)
        return
    check_feature_kind(config.model.name, config.features.kind)
    check_class_counts(manifest)
    if manifest.multi_label and not is_torch_model(config.model.name):
        raise ConfigError(f"model {config.model.name!r} is a single-label baseline; dataset {manifest.name!r} is "
                          "multi-label: choose a network (envsound models)")
    if config.semi.method == "self_training" and (manifest.multi_label or config.train.ensemble > 1
                                                  or clip_noisiness(manifest) is not None):
        raise ConfigError("semi.method=self_training trains single networks on single-label clips of one origin; "
                          f"dataset {manifest.name!r} is multi-label or has noisy clips, or train.ensemble > 1")
    if config.train.ensemble > 1 and not is_torch_model(config.model.name):
        raise ConfigError(f"train.ensemble={config.train.ensemble} needs a network; model {config.model.name!r} "
                          "is a baseline (set train.ensemble=1)")


def _checkpoint(job: FitJob, dataset: str, data: TrainingData, fit: FitResult, result: TrainResult,
                meta: dict[str, Any]) -> Checkpoint:
    """The self-describing checkpoint of a finished fit: weights, labels, task (multi-label thresholds fitted on the
    validation clips), the config, what the model heard, and the run's metadata."""
    config, plan, mode = job.config, job.plan, job.mode
    checkpoint = Checkpoint(config=config, labels=job.labels, task=job.task,
                            state_dict=fit.state_dict, sklearn_bytes=fit.sklearn_bytes,
                            meta={"dataset": dataset, "n_train_clips": len(data.train),
                                  "label_fraction": config.train.label_fraction,
                                  "n_unlabelled_clips": len(data.unlabelled_features),
                                  "shots": config.train.shots, **meta, **fit.meta})
    if plan is not None:
        checkpoint.meta["transfer"] = {"mode": mode, **plan.to_meta()}
        if mode in ("probe", "probe_full"):  # the fitted regression replaces every head row
            head = "frame head" + (", then the whole network fine-tuned on strong labels"
                                   if fit.meta.get("frame_head", {}).get("finetune_epochs") else "") \
                if config.model.options.get("frame_head") else "logistic regression"
            checkpoint.meta["transfer"].update(copied_rows={}, new_rows=[], head=head +
                                               (", then fine-tuned" if mode == "probe_full" else ""))
    # what the model heard (validation clips chose its epoch): kept so --init and evaluate can check for leaks
    prints = clip_fingerprints([r.path for r in data.train.records + data.val.records], cache=job.context.cache)
    checkpoint.trained_on, checkpoint.trained_prints = exact_ids(prints), trained_excerpts(prints)
    if fit.from_loop:
        if job.task.multi_label and len(data.val):
            checkpoint.task = _fitted_thresholds(checkpoint, job.clips.val.features, job.clips.val.targets)
        if fit.runtime is not None:
            checkpoint.meta["runtime"] = fit.runtime.to_dict()
    if config.events.tune and len(data.val) and data.val.strong is not None:
        checkpoint.config = tuned_decoding(checkpoint, data.val, job.clips.val.features)
    elif config.events.tune:
        log.warning("events.tune: no validation clips with strong labels (train.val_fraction > 0 on a set with a "
                    "strong_labels.csv): the events settings are kept as given")
    if config.events.open_set > 0 and not job.task.multi_label and fit.state_dict is not None:
        checkpoint.open_set = _open_set(checkpoint, job.clips.train.features, job.clips.train.targets, plan)
    if data.copies.copies:
        checkpoint.meta["augmented_copies"] = len(data.copies.copies)
    checkpoint.meta.update({"epochs": result.epochs, "best_score": result.best_score,
                            "monitor": config.train.monitor})
    return checkpoint


MIN_CLIPS_PER_CLASS = 5  # below this a class's accuracy rests on a clip or two: warned about


def check_class_counts(manifest: Manifest) -> None:
    """Raise :class:`ConfigError` when the training clips hold fewer than 2 classes (a classifier of one class
    learns nothing: its loss reaches 0 at once); warn about every class with fewer than :data:`MIN_CLIPS_PER_CLASS`
    clips."""
    counts: dict[str, int] = {}
    for record in manifest.records:
        for label in record.labels:
            counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise ConfigError(f"dataset {manifest.name!r}: its training clips hold {len(counts)} class(es) "
                          f"({', '.join(counts) or 'none'}); a classifier needs at least 2 (for a folder dataset: "
                          "one sub-folder of clips per class)")
    few = sorted((n, label) for label, n in counts.items() if n < MIN_CLIPS_PER_CLASS)
    if few:
        log.warning("%d class(es) of %s have fewer than %d training clips (%s): their scores will rest on a clip or "
                    "two", len(few), manifest.name, MIN_CLIPS_PER_CLASS,
                    ", ".join(f"{label} {n}" for n, label in few[:5]) + (" ..." if len(few) > 5 else ""))


def _fitted_thresholds(checkpoint: Checkpoint, val_features: list[np.ndarray], val_targets: np.ndarray) -> Task:
    """The checkpoint's multi-label task with per-class thresholds fitted on the validation clips (F1-optimal each);
    ``--threshold`` at evaluate / predict still replaces them with one global threshold."""
    from envsound.models.clip import ClipModel

    probs = ClipModel.from_checkpoint(checkpoint, device="cpu").predict_clips(val_features)
    thresholds = fit_class_thresholds(val_targets, probs, default=checkpoint.task.threshold)
    log.info("per-class thresholds fitted on %d validation clips: %s", len(val_targets),
             ", ".join(f"{label} {t:.2f}" for label, t in zip(checkpoint.labels, thresholds)))
    return replace(checkpoint.task, class_thresholds=thresholds)


def _open_set(checkpoint: Checkpoint, features: list[np.ndarray], targets: np.ndarray,
              plan: InitPlan | FrozenPlan | None = None) -> dict | None:
    """The "none of these" gate of a single-label network, calibrated on its training clips
    (:func:`envsound.models.open_set.calibrate`; a probe over a frozen network on that network's embeddings:
    :func:`~envsound.transfer.frozen_probe.frozen_open_set`); ``None`` for a network whose logits are not a head
    over an embedding (a frame model, an ensemble)."""
    if isinstance(plan, FrozenPlan):
        gate = frozen_open_set(plan, checkpoint.config, features, targets)
    else:
        gate = _network_open_set(checkpoint, features, targets)
        if gate is None:
            return None
    share = checkpoint.config.events.open_set
    log.info("open set: a window counts as a class when its embedding is as close to the class's training clips as "
             "%.0f%% of theirs were (cosine thresholds %s); below every class: none of them", 100 * (1 - share),
             gate.describe(checkpoint.labels))
    return gate.to_payload()


def _network_open_set(checkpoint: Checkpoint, features: list[np.ndarray], targets: np.ndarray) -> OpenSet | None:
    """:func:`_open_set` of a torch network: its ``network.embed``, the windows :class:`ClipModel` cuts."""
    import torch

    from envsound.models.clip import ClipModel, splits_at_embedding
    from envsound.models.open_set import calibrate

    model = ClipModel.from_checkpoint(checkpoint, device="cpu", precision="32")
    sample = model.clip_windows(features[0])[0][:2] if len(features) else None
    if sample is None or not splits_at_embedding(model.network, torch.from_numpy(sample)):
        log.info("open set: model %s has no embedding its head reads alone: every window is one of its classes",
                 checkpoint.config.model.name)
        return None
    return calibrate(features, np.asarray(targets).argmax(axis=1), embed=model.window_embeddings,
                     cut=model.clip_windows, share=checkpoint.config.events.open_set, n_classes=model.n_classes)


def tuned_decoding(checkpoint: Checkpoint, val: Manifest, val_features: list[np.ndarray]) -> Config:
    """``events.tune``: the checkpoint's config with the events settings best on the validation clips (their strong
    labels), recorded in ``meta["events_tuned"]``."""
    from envsound.evaluation.sed import TUNED, clip_timeline, reference_events, tune_decoding
    from envsound.models.clip import ClipModel

    model = ClipModel.from_checkpoint(checkpoint, device="cpu")
    timelines = {r.clip_id: clip_timeline(model, r, clip)[0] for r, clip in zip(val.records, val_features)}
    tuned = tune_decoding(timelines, reference_events(val.strong, timelines), model.labels)
    checkpoint.meta["events_tuned"] = tuned
    log.info("events tuned on %d validation clips: threshold %.2f, median filter %.1f s, shortest %.1f s, gaps up "
             "to %.1f s joined, hysteresis %.2f (event F1 %.3f there)", tuned["clips"], tuned["threshold"],
             tuned["median_seconds"], tuned["min_seconds"], tuned["gap_seconds"], tuned["hysteresis"],
             tuned["event_f1"])
    return checkpoint.config.with_overrides([f"events.{key}={tuned[key]}" for key in TUNED])


def _finished(result: TrainResult, start: float) -> TrainResult:
    result.seconds = time.perf_counter() - start
    if result.written:
        log.info("wrote %s (%.1f s)", result.checkpoint, result.seconds)
    return result
