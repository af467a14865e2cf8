"""The multi-stage schedule for curated + noisy multi-label sets (FSDKaggle2019; ``envsound mix`` output), run as
leave-one-fold-out like :func:`~envsound.recipes.crossval.run_cv`.

Per test fold, on the other folds' clips (tested on the test fold's curated clips only: noisy labels measure nothing):

0. ``baseline``: curated clips only, for as many epochs as the stages below together (the same budget), and
   ``naive``: curated and noisy clips together with the task's own loss (BCE), the same budget;
1. ``warm-up``: the noisy clips (loss ``noisy.noisy_loss``), or with ``stages.warmup_on`` ``all`` the curated and
   noisy clips together (each origin its own loss), ``stages.warmup_epochs``;
2. ``fine-tune``: the curated clips from the warm-up's weights, ``stages.finetune_epochs``, at
   ``stages.tune_lr_scale`` of the learning rate (as stage 2);
3. ``filter``: the fine-tuned model scores the noisy clips; a clip is kept when each of its labels reaches
   ``stages.keep_threshold`` (on ``envsound mix`` output, ``strong_labels.csv`` says how many kept labels are right);
4. ``final``: curated + kept noisy clips from the fine-tuned weights, ``stages.final_epochs``; with
   ``stages.pseudo_label`` a semi-supervised method also learns from the noisy clips not kept, their labels unused.

Every stage's model is a ``model.ckpt`` in ``OUT/fold_<k>/<stage>/``; with ``context.resume`` a finished one is reused,
so an interrupted run goes on stage by stage. Writes ``OUT/stages.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from envsound.config import Config, NoisyConfig
from envsound.data.records import Manifest
from envsound.data.splits import check_no_leakage, exclude_clips_of, scored_clips
from envsound.data.strong_labels import read_strong_labels
from envsound.errors import ConfigError, DatasetLayoutError
from envsound.evaluation.evaluate import evaluate_model
from envsound.evaluation.metrics import summarize_folds
from envsound.features.extract import extract_features
from envsound.fileio import run_lock, write_json_atomic
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.recipes.context import RunContext
from envsound.recipes.train import CHECKPOINT_NAME, train_model

log = logging.getLogger(__name__)

STAGES = ("baseline", "naive", "warmup", "finetune", "final")
TITLES = {"baseline": "curated only (same epochs)", "naive": "curated + noisy, BCE (same epochs)",
          "warmup": "stage 0: warm-up",
          "finetune": "stage 1: fine-tune on curated", "final": "stage 2: curated + kept noisy"}


def run_stages(manifest: Manifest, config: Config, *, folds: Sequence[int] | None = None,
               test_folds: Sequence[int] | None = None, out_dir: str | Path, context: RunContext = RunContext(),
               truth: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """Run the schedule of ``config.stages`` over ``folds`` of ``manifest`` (curated and noisy clips, ``origin``
    set), holding out each of ``test_folds`` (default: every fold) in turn, and return the ``stages.json`` dict:
    ``{"stages": [{"name", "title", "lwlrap", "mAP", "std_lwlrap", "folds": [...]}, ...],
    "filter": [{"fold", "noisy", "kept", "label_precision"}], ...}``.

    ``context`` (:class:`~envsound.recipes.context.RunContext`) reaches every stage's
    :func:`~envsound.recipes.train.train_model` as given.
    ``truth``: ``{clip_id: true labels}`` of noisy clips (see :func:`read_mixture_truth`), for the filter's precision.

    Raises:
        DatasetLayoutError: not a multi-label set with curated and noisy clips, fewer than two folds, a leak.
        ConfigError: as :func:`~envsound.recipes.train.train_model`.

    >>> summary = run_stages(load_dataset("fsdkaggle2019", root, subset="all"), Config(), out_dir="runs/stages")
    """
    out_dir = Path(out_dir)
    folds = list(folds) if folds else manifest.folds
    origins = {r.origin for r in manifest.records}
    if not manifest.multi_label or not {"curated", "noisy"} <= origins:
        raise DatasetLayoutError(f"dataset {manifest.name!r}: the stages need a multi-label set with curated and "
                                 f"noisy clips (origins found: {', '.join(sorted(origins)) or 'none'}); load it with "
                                 "subset 'all'")
    if len(folds) < 2:
        raise DatasetLayoutError(f"the stages run leave-one-fold-out and need at least 2 folds; got {folds}")
    if not set(test_folds or folds) <= set(folds):
        raise DatasetLayoutError(f"test folds {list(test_folds or [])} are not all among the folds {folds}")
    stages = config.stages
    budget = stages.warmup_epochs + stages.finetune_epochs + stages.final_epochs
    names = [s for s in STAGES if s != "final" or stages.final_epochs > 0]
    start = time.perf_counter()
    per_stage: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    filters = []
    with run_lock(out_dir):
        for test_fold in test_folds or folds:
            train_folds = [f for f in folds if f != test_fold]
            test = scored_clips(manifest.select_folds([test_fold]))
            pool = exclude_clips_of(manifest.select_folds(train_folds), test)
            check_no_leakage(pool, test)
            curated = pool.subset([r for r in pool.records if r.origin == "curated"])
            noisy = pool.subset([r for r in pool.records if r.origin == "noisy"])
            fold_dir = out_dir / f"fold_{test_fold}"
            common = {"context": context, "held_out": [test], "fold_dir": fold_dir}
            meta = {"train_folds": train_folds, "test_fold": test_fold}

            def stage(name: str, train_set: Manifest, epochs: int, *, init: Path | None = None,
                      unlabelled: Manifest | None = None, semi: str = "none") -> Path:
                staged = _stage_config(config, epochs, semi=semi, init=init is not None)
                if name == "naive":  # every clip's labels taken at face value
                    staged.noisy = NoisyConfig()
                return _train_stage(name, train_set, staged, init=init,
                                    unlabelled=unlabelled, meta={**meta, "stage": name}, **common)

            models = {"baseline": stage("baseline", curated, budget), "naive": stage("naive", pool, budget)}
            models["warmup"] = stage("warmup", noisy if stages.warmup_on == "noisy" else pool, stages.warmup_epochs)
            models["finetune"] = stage("finetune", curated, stages.finetune_epochs, init=models["warmup"])
            kept, rest = _filter_noisy(models["finetune"], noisy, stages.keep_threshold,
                                       cache=context.cache, on_error=context.on_error, progress=context.progress)
            filters.append({"fold": test_fold, "noisy": len(noisy), "kept": len(kept),
                            **_label_precision(kept, truth)})
            log.info("fold %d: the filter kept %d of %d noisy clips", test_fold, len(kept), len(noisy))
            if "final" in names:
                final_set = curated.subset(curated.records + kept.records)
                semi = stages.pseudo_label if len(rest) else "none"
                models["final"] = stage("final", final_set, stages.final_epochs, init=models["finetune"],
                                        unlabelled=rest if semi != "none" else None, semi=semi)
            for name in names:
                model = ClipModel.from_checkpoint(load_checkpoint(models[name]))
                report = evaluate_model(model, test, cache=context.cache, on_error=context.on_error,
                                        progress=context.progress).report
                per_stage[name].append({"fold": test_fold, "lwlrap": report["lwlrap"], "mAP": report["mAP"],
                                        "n_test": report["n_clips"]})
                log.info("fold %d, %s: lwlrap %.4f, mAP %.4f", test_fold, name, report["lwlrap"], report["mAP"])
        summary = {"dataset": manifest.name, "model": config.model.name, "folds": list(test_folds or folds),
                   "stages": [_stage_summary(name, per_stage[name]) for name in names], "filter": filters,
                   "budget_epochs": budget, "seconds": round(time.perf_counter() - start, 1),
                   "config": config.to_dict()}
        write_json_atomic(out_dir / "stages.json", summary)
        return summary


def read_mixture_truth(root: str | Path) -> dict[str, set[str]] | None:
    """``{clip_id: true labels}`` of the noisy clips of an ``envsound mix`` set (its ``strong_labels.csv``), or
    ``None`` when ``root`` has none (a real FSDKaggle2019 copy: its noisy labels' truth is unknown)."""
    events = read_strong_labels(root)
    return None if events is None else {clip: {e.label for e in found} for clip, found in events.items()}


def _stage_config(config: Config, epochs: int, *, semi: str, init: bool) -> Config:
    """The run's config for one stage: its epochs, a full fine-tune at ``stages.tune_lr_scale`` of the learning rate
    when it starts from the previous stage (every layer trains), and the stage's semi-supervised method."""
    staged = Config.from_dict(config.to_dict())
    staged.train.max_epochs = epochs
    if init:
        staged.train.lr = config.train.lr * config.stages.tune_lr_scale
    staged.transfer = dataclasses.replace(staged.transfer, mode="full" if init else "auto")
    staged.semi = dataclasses.replace(staged.semi, method=semi)
    return staged.validate()


def _train_stage(name: str, train_set: Manifest, config: Config, *, init: Path | None, unlabelled: Manifest | None,
                 meta: dict[str, Any], fold_dir: Path, held_out: list[Manifest], context: RunContext) -> Path:
    run_dir = fold_dir / name
    if context.resume and (run_dir / CHECKPOINT_NAME).exists():
        log.info("%s: reusing finished %s", name, run_dir / CHECKPOINT_NAME)
        return run_dir / CHECKPOINT_NAME
    if len(train_set) < 2:
        raise ConfigError(f"stage {name!r} has {len(train_set)} training clip(s); it needs at least 2")
    log.info("%s: training on %d clips for %d epochs", name, len(train_set), config.train.max_epochs)
    return train_model(train_set, config, out_dir=run_dir, context=context, init=init, unlabelled=unlabelled,
                       held_out=held_out, meta=meta).checkpoint


def _filter_noisy(checkpoint: Path, noisy: Manifest, threshold: float, *, cache, on_error: str,
                  progress: bool) -> tuple[Manifest, Manifest]:
    """(noisy clips whose every label the model gives at least ``threshold``, the others)."""
    model = ClipModel.from_checkpoint(load_checkpoint(checkpoint))
    records, features, _ = extract_features(noisy.records, model.config.features, cache=cache, on_error=on_error,
                                            progress=progress)
    probs = model.predict_clips(features)
    index = {label: i for i, label in enumerate(model.labels)}
    keep = {r.clip_id for r, p in zip(records, probs) if all(p[index[label]] >= threshold for label in r.labels)}
    return (noisy.subset([r for r in records if r.clip_id in keep]),
            noisy.subset([r for r in records if r.clip_id not in keep]))


def _label_precision(kept: Manifest, truth: dict[str, set[str]] | None) -> dict[str, Any]:
    """How many of the kept clips' labels are true (and how many clips are wholly right), when the truth is known."""
    if truth is None or not len(kept):
        return {"label_precision": None, "clips_exact": None}
    labels = [(label in truth.get(r.clip_id, set())) for r in kept.records for label in r.labels]
    exact = [set(r.labels) == truth.get(r.clip_id, set()) for r in kept.records]
    return {"label_precision": round(float(np.mean(labels)), 4), "clips_exact": round(float(np.mean(exact)), 4)}


def _stage_summary(name: str, folds: list[dict[str, Any]]) -> dict[str, Any]:
    summary = summarize_folds(folds, key="lwlrap")
    return {"name": name, "title": TITLES[name], "lwlrap": summary["mean_lwlrap"],
            "std_lwlrap": summary["std_lwlrap"], "mAP": summary["mean_mAP"], "std_mAP": summary["std_mAP"],
            "folds": folds}
