"""Train one model on the clips of a manifest: split off validation, extract features, fit, save a checkpoint.

``train_model`` is what ``envsound train`` calls and what cross-validation calls once per fold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from envsound.config import Config
from envsound.data.records import Manifest
from envsound.data.splits import exclude_clips_of, labelled_subset, merge_unlabelled, train_val_split
from envsound.errors import ConfigError, EnvsoundError
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.fileio import write_text_atomic
from envsound.models.checkpoint import Checkpoint, save_checkpoint
from envsound.models.registry import check_feature_kind, get_model_class, is_torch_model
from envsound.training.data import target_matrix

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.ckpt"


@dataclass
class TrainResult:
    """Where the model went and how training ended."""

    checkpoint: Path
    n_train: int
    n_val: int
    n_unlabelled: int = 0  # clips in the unlabelled pool of a semi-supervised run
    epochs: int = 0
    best_score: float | None = None  # the monitored validation metric (train.monitor) at the kept epoch
    seconds: float = 0.0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "n_train": self.n_train, "n_val": self.n_val,
                "n_unlabelled": self.n_unlabelled,
                "epochs": self.epochs, "best_score": self.best_score, "seconds": round(self.seconds, 1),
                "skipped": [[str(p), reason] for p, reason in self.skipped]}


def train_model(
    manifest: Manifest,
    config: Config,
    *,
    out_dir: str | Path,
    cache: FeatureCache | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_error: str = "raise",
    meta: dict[str, Any] | None = None,
    init: str | Path | None = None,
    unlabelled: Manifest | None = None,
) -> TrainResult:
    """Train ``config.model`` on every clip of ``manifest`` and write ``out_dir/model.ckpt``.

    A validation split (``config.train.val_fraction`` of the clips, grouped by source recording) is taken from
    ``manifest`` itself for early stopping and best-checkpoint selection of torch models (baselines fit on every
    clip): pass only training folds. Also writes ``config.yaml`` (the resolved config) and ``logs/metrics.csv``.
    ``init``: an ``autoencoder.ckpt`` from ``envsound pretrain`` whose encoder initialises the model's trunk
    (``dtu``/``cnn`` only; see ``train.freeze_encoder_epochs`` and ``train.encoder_lr_scale``).

    With ``train.label_fraction`` p < 1 only a stratified share p of ``manifest``'s clips (grouped by source,
    chosen from ``train.seed``: :func:`~envsound.data.splits.labelled_subset`) keeps its labels; the validation split
    comes from those. With ``semi.method`` other than ``"none"`` the clips left unlabelled plus ``unlabelled`` (any
    manifest; labels ignored; clips sharing a source with the validation clips left out) are the unlabelled pool.

    Raises:
        CheckpointError: ``init`` is not an autoencoder checkpoint, or its encoder does not fit the model.
        ConfigError: ``features.kind`` is not the input kind of ``config.model`` (e.g. ``aclnet`` with log-mel).
        EnvsoundError: ``out_dir`` already holds a model (unless ``overwrite`` or ``resume``), bad audio with
            ``on_error="raise"``, or fewer than two clips to train on.
        ConfigError: ``semi.method`` set with no unlabelled clips, or for a baseline model.

    >>> result = train_model(load_dataset("esc10", root).select_folds([1, 2, 3]), Config(), out_dir="runs/esc10")
    >>> result.checkpoint
    """
    start = time.perf_counter()
    config.validate()
    check_feature_kind(config.model.name, config.features.kind)  # before any audio is decoded
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.exists() and not (overwrite or resume):
        raise EnvsoundError(f"{ckpt_path} already exists; pass --overwrite to replace it, --resume to continue, "
                            "or choose another --out")
    init_state = None
    if init is not None or config.train.freeze_encoder_epochs:  # checked before any work is done
        from envsound.training.finetune import resolve_init

        init_state = resolve_init(init, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    # baselines have no epochs to choose between: they fit on every training clip
    val_fraction = config.train.val_fraction if is_torch_model(config.model.name) else 0.0
    labelled, rest = labelled_subset(manifest, fraction=config.train.label_fraction, seed=config.train.seed)
    train_set, val_set = train_val_split(labelled, val_fraction=val_fraction, seed=config.train.seed)
    pool = _unlabelled_pool(config, rest, unlabelled, val_set)
    records, features, skipped = extract_features(train_set.records + val_set.records + pool.records,
                                                  config.features, cache=cache, on_error=on_error, progress=progress)
    kept = {r.clip_id for r in records}
    train_set = train_set.subset([r for r in train_set.records if r.clip_id in kept])
    val_set = val_set.subset([r for r in val_set.records if r.clip_id in kept])
    if len(train_set) < 2:
        raise EnvsoundError(f"only {len(train_set)} usable training clip(s) in dataset {manifest.name!r}; "
                            "need at least 2")
    by_id = {r.clip_id: f for r, f in zip(records, features)}
    train_feats = [by_id[r.clip_id] for r in train_set.records]
    val_feats = [by_id[r.clip_id] for r in val_set.records]
    pool_feats = [by_id[r.clip_id] for r in pool.records if r.clip_id in by_id]
    log.info("training %s on %d clips, validating on %d%s", config.model.name, len(train_set), len(val_set),
             f", with {len(pool_feats)} unlabelled clips ({config.semi.method})" if pool.records else "")

    checkpoint = Checkpoint(config=config, labels=manifest.labels, multi_label=manifest.multi_label,
                            meta={"dataset": manifest.name, "n_train_clips": len(train_set),
                                  "label_fraction": config.train.label_fraction, "n_unlabelled_clips": len(pool_feats),
                                  **({"init": str(init)} if init is not None else {}), **(meta or {})})
    result = TrainResult(checkpoint=ckpt_path, n_train=len(train_set), n_val=len(val_set),
                         n_unlabelled=len(pool_feats), skipped=skipped)
    if is_torch_model(config.model.name):
        from envsound.training.fit import fit_network  # Lightning is imported only when a network is trained

        fit = fit_network(config, train_feats, target_matrix(train_set), val_feats, target_matrix(val_set),
                          multi_label=manifest.multi_label, out_dir=out_dir, resume=resume, progress=progress,
                          init_encoder=init_state, unlabelled_features=pool_feats)
        checkpoint.state_dict = fit.state_dict
        result.epochs, result.best_score = fit.epochs, fit.best_score
    else:
        checkpoint.sklearn_bytes = fit_baseline(config, train_feats, target_matrix(train_set), len(manifest.labels))
    checkpoint.meta.update({"epochs": result.epochs, "best_score": result.best_score,
                            "monitor": config.train.monitor})
    save_checkpoint(ckpt_path, checkpoint)
    result.seconds = time.perf_counter() - start
    log.info("wrote %s (%.1f s)", ckpt_path, result.seconds)
    return result


def _unlabelled_pool(config: Config, rest: Manifest, unlabelled: Manifest | None, val_set: Manifest) -> Manifest:
    """The unlabelled clips of a semi-supervised run (an empty manifest for a supervised one)."""
    method = config.semi.method
    if method == "none":
        if unlabelled is not None and len(unlabelled):
            log.warning("ignoring %d unlabelled clips: semi.method is 'none'", len(unlabelled))
        return merge_unlabelled()
    if not is_torch_model(config.model.name):
        raise ConfigError(f"semi.method={method!r} needs a network; model {config.model.name!r} is a baseline")
    extra = [] if unlabelled is None else [exclude_clips_of(unlabelled, val_set)]
    pool = merge_unlabelled(rest, *extra)
    if len(pool) == 0:
        raise ConfigError(f"semi.method={method!r} has no unlabelled clips: set train.label_fraction below 1 "
                          "(--label-fraction) or pass --unlabelled-dataset/--unlabelled-root")
    return pool


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

