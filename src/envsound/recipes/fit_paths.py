"""The ways ``train_model`` fits a model, one function each, chosen from one table (:data:`FIT_PATHS`) by
:func:`fit_path`: a frozen-trunk probe, a scikit-learn baseline, one network, an ensemble of networks, or
self-training rounds. ``probe_full`` probes first, then fine-tunes through the network paths from the probed weights.
Each path takes a :class:`FitJob` and returns a :class:`~envsound.training.loop.result.FitResult`; Lightning is
imported only by the network paths."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.errors import ConfigError
from envsound.models.frames import check_frame_task
from envsound.models.registry import get_model_class, is_torch_model
from envsound.recipes.context import RunContext
from envsound.task import Task
from envsound.training.loop.clips import ClipSet, FitData
from envsound.training.loop.result import FitResult
from envsound.transfer.frozen_probe import FrozenPlan
from envsound.transfer.source import InitPlan, plan_from_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitJob:
    """What a fit path is given: the config, the clips, the task and label order, the ``--init`` plan with the
    transfer mode it trains in (``None`` without one), the run folder and the run context."""

    config: Config
    clips: FitData
    task: Task
    labels: list[str]
    plan: InitPlan | FrozenPlan | None
    mode: str | None
    out_dir: Path
    context: RunContext


def fit_path(config: Config, mode: str | None) -> str:
    """The name in :data:`FIT_PATHS` of the path a run with ``config`` trained in transfer ``mode`` takes."""
    if mode == "probe":
        return "probe"
    if not is_torch_model(config.model.name):
        return "baseline"
    if config.semi.method == "self_training":
        return "self_training"
    return "ensemble" if config.train.ensemble > 1 else "network"


def check_frame_start(config: Config, plan: InitPlan | None, has_strong: bool) -> None:
    """Refuse, before any audio is decoded, ``--preset sed`` (an ``efficientat`` frame head) on a set with strong labels
    and no ``--init``: the head learns strong labels on a pre-trained trunk only, and trained whole from random
    weights on clip labels the preset found events of unseen clips at event F1 0.124 (issue 54; docs/results.md).

    Raises:
        ConfigError: naming ``--init efficientat-mn04`` and ``events.train_on=clip``.
    """
    if config.model.name == "efficientat" and config.model.options.get("frame_head") and plan is None \
            and config.events.train_on == "auto" and has_strong:
        raise ConfigError("a frame head learns where each sound is from the strong labels on a pre-trained trunk: "
                          "add --init efficientat-mn04 (trained from scratch on clip labels instead, it found events "
                          "of unseen clips at event F1 0.12: docs/results.md); or set events.train_on=clip to "
                          "train the whole network on clip labels anyway")


def hint_noisy_strong(config: Config, manifest: Manifest, *,
                      init: str | Path | Mapping[int, str | Path] | None) -> None:
    """Warn when a frame head is about to learn strong labels (a probe from ``init``: the only path that reads them)
    from the curated clips alone while ``strong_labels.csv`` holds the true events of the noisy part too (an
    ``envsound mix`` set: only its clip labels are corrupted): five times the audio, and event F1 0.47 -> 0.51 on
    mixtures of unseen clips (docs/results.md, three seeds). ``train`` and ``cv`` say it (``cv`` scores the curated
    clips alone, :func:`~envsound.data.splits.cv_splits`)."""
    probe = init is not None and config.transfer.mode in ("auto", "probe") and config.semi.method == "none"
    if not (probe and config.model.options.get("frame_head") and config.events.train_on != "clip"
            and manifest.strong):
        return
    if any(r.origin == "noisy" for r in manifest.records):
        return
    if any(clip.startswith("train_noisy/") for clip in manifest.strong):
        log.warning("strong_labels.csv also gives the true events of the noisy part's clips (only their clip labels "
                    "are noisy): --subset all (subset='all') trains the frame detector on them as well")


def fit_model(job: FitJob) -> FitResult:
    """Fit ``job`` by its path; ``probe_full`` (LP-FT) first fits the probe, then trains everything from the probed
    network, its head kept.

    Raises:
        ConfigError: a frame head on a single-label set, or asked to train on strong labels
            (``events.train_on=strong``) other than on a frozen trunk (the network paths train on clip labels).
    """
    if job.config.model.options.get("frame_head"):
        check_frame_task(job.task.multi_label)
    if job.config.model.options.get("frame_head") and job.config.events.train_on == "strong" \
            and job.mode not in ("probe", "probe_full"):
        raise ConfigError("events.train_on=strong trains a frame head on a frozen trunk: start from a network "
                          "(--init efficientat-mn04) with transfer.mode probe (auto picks it); trained whole, the "
                          "network learns from clip labels (events.train_on=auto or clip)")
    if isinstance(job.plan, FrozenPlan):  # plan_frozen let through the probe only
        return fit_frozen_probe_path(job)
    if job.mode == "probe_full":
        probed = _probe_weights(job)
        job = replace(job, mode="full",
                      plan=plan_from_weights(probed, job.labels, source=f"{job.plan.source} + probe"))
    return FIT_PATHS[fit_path(job.config, job.mode)](job)


def _probe_weights(job: FitJob) -> dict:
    train = job.clips.train
    if job.config.model.options.get("frame_head"):
        from envsound.transfer.frame_probe import fit_frame_head

        return fit_frame_head(job.plan, job.config, train.features, train.targets, labels=job.labels, task=job.task,
                              strong=frame_labels(job.config, train), out_dir=job.out_dir, resume=job.context.resume)
    from envsound.transfer.probe import fit_probe

    return fit_probe(job.plan, job.config, train.features, train.targets, variants=train.variants, task=job.task)


def fit_probe_path(job: FitJob) -> FitResult:
    """Logistic regression on the frozen trunk's embeddings (a frame model: its frame head trained on the trunk's
    frames, then with ``events.finetune_epochs`` the whole network, :mod:`envsound.transfer.frame_probe`): the
    probed network is the model; with ``train.ensemble`` N > 1 (frame models), N of them from seeds ``seed ..
    seed + N - 1``, their frame logits averaged (:class:`~envsound.models.ensemble.Ensemble`)."""
    if job.config.train.ensemble > 1:  # frame heads only (transfer/modes.py): a probe, fine-tuned, a member
        from envsound.recipes.ensemble import fit_ensemble

        members = fit_ensemble(job.config, lambda config, run_dir: FitResult(
            state_dict=_probe_weights(replace(job, config=config, out_dir=run_dir))), out_dir=job.out_dir,
            resume=job.context.resume)
        fitted = FitResult(state_dict=members.state_dict)  # as one probe: no loop's thresholds or runtime
    else:
        fitted = FitResult(state_dict=_probe_weights(job))
    if job.config.model.options.get("frame_head"):
        strong = frame_labels(job.config, job.clips.train) is not None
        fitted.meta["frame_head"] = {"labels": "strong" if strong else "clip"}
        # the head's epochs on the frozen trunk, then the whole network's (events.finetune_epochs, strong labels)
        finetuned = job.config.events.finetune_epochs if strong else 0
        fitted.epochs = job.config.train.max_epochs + finetuned
        fitted.meta["frame_head"]["finetune_epochs"] = finetuned  # the trunk trained too when > 0
    return fitted


def fit_frozen_probe_path(job: FitJob) -> FitResult:
    """The probe over a frozen network (:func:`~envsound.transfer.frozen_probe.fit_frozen_probe`): its head as a
    learned head's checkpoint holds it (``head.weight``, ``head.bias``; ``meta`` naming the trunk by digest and its
    licence), which :meth:`~envsound.models.litert.FrozenModel.from_checkpoint` opens."""
    import torch

    from envsound.transfer.frozen_probe import fit_frozen_probe, learned_meta

    train = job.clips.train
    weight, bias = fit_frozen_probe(job.plan, job.config, train.features, train.targets, variants=train.variants,
                                    task=job.task)
    return FitResult(state_dict={"head.weight": torch.from_numpy(weight), "head.bias": torch.from_numpy(bias)},
                     meta=learned_meta(job.plan))


def frame_labels(config: Config, train: ClipSet):
    """The training clips' events a frame head trains on (``events.train_on``), or ``None``: their clip labels.

    Raises:
        ConfigError: ``events.train_on=strong`` on a set without strong labels.
    """
    if config.events.train_on == "strong" and train.strong is None:
        raise ConfigError("events.train_on=strong: this set has no strong labels (a strong_labels.csv with each "
                          "event's onset and offset, as envsound mix writes); use events.train_on=clip")
    return None if config.events.train_on == "clip" else train.strong


def fit_baseline_path(job: FitJob) -> FitResult:
    """A scikit-learn baseline on the MFCC statistics of every window of the training clips."""
    train = job.clips.train
    return FitResult(sklearn_bytes=fit_baseline(job.config, train.features, train.targets, len(job.labels)))


def fit_network_path(job: FitJob) -> FitResult:
    """One network (a semi-supervised module when ``semi.method`` says so)."""
    return _fit_on(job)(job.config, job.out_dir, job.clips.train)


def fit_ensemble_path(job: FitJob) -> FitResult:
    """``train.ensemble`` networks, one after another (:func:`~envsound.recipes.ensemble.fit_ensemble`)."""
    from envsound.recipes.ensemble import fit_ensemble

    fit_on = _fit_on(job)
    return fit_ensemble(job.config, lambda config, run_dir: fit_on(config, run_dir, job.clips.train),
                        out_dir=job.out_dir, resume=job.context.resume)


def fit_self_training_path(job: FitJob) -> FitResult:
    """Rounds of supervised fits on the labelled clips plus pseudo-labelled pool clips
    (:func:`~envsound.recipes.self_training.fit_self_training`)."""
    from envsound.recipes.self_training import fit_self_training

    fit, rounds = fit_self_training(job.config, _fit_on(job), labelled=job.clips.train, pool=job.clips.pool,
                                    labels=job.labels, task=job.task, out_dir=job.out_dir, resume=job.context.resume)
    fit.meta["self_training"] = rounds
    return fit


FIT_PATHS: dict[str, Callable[[FitJob], FitResult]] = {
    "probe": fit_probe_path,
    "baseline": fit_baseline_path,
    "network": fit_network_path,
    "ensemble": fit_ensemble_path,
    "self_training": fit_self_training_path,
}


def _fit_on(job: FitJob) -> Callable[..., FitResult]:
    """``fit_on(config, run_dir, train, start=None)``: one network fitted on ``train`` with the job's validation
    clips and pool, from ``start`` (a self-training round's previous weights) or the job's ``--init`` plan."""
    from envsound.training.loop.fit import LoopRun, fit_network  # Lightning only when a network is trained
    from envsound.training.loop.module import ClassifierModule
    from envsound.training.semi import SemiModule

    def fit_on(config: Config, run_dir: Path, train: ClipSet, start: InitPlan | None = None):
        return fit_network(config, job.clips.with_train(train), task=job.task,
                           run=LoopRun(run_dir, resume=job.context.resume, progress=job.context.progress),
                           init=start or job.plan, transfer_mode=job.mode,
                           module_class=SemiModule if config.semi.method != "none" else ClassifierModule)

    return fit_on


def fit_baseline(config: Config, features: list[np.ndarray], targets: np.ndarray, n_classes: int) -> bytes:
    """Fit a scikit-learn baseline on the MFCC statistics of every evaluation window of the training clips."""
    from envsound.features.mfcc import mfcc_summary
    from envsound.features.windows import eval_windows

    feats = config.features
    rows, labels = [], []
    for clip, target in zip(features, targets.argmax(axis=1)):
        for window in eval_windows(clip, feats)[0]:
            rows.append(mfcc_summary(window, n_mfcc=feats.n_mfcc))
            labels.append(target)
    baseline = get_model_class(config.model.name)(n_classes=n_classes, filters=config.model.filters,
                                                   dropout=config.model.dropout)
    baseline.fit(np.stack(rows), np.asarray(labels))
    return baseline.to_bytes()
