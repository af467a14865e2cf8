"""The Lightning runs behind ``train_model`` and ``pretrain_autoencoder``: loaders, callbacks, precision, resume."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from envsound.config import Config
from envsound.training.balance import choose_class_balance, class_weights, sample_weights
from envsound.training.data import AllWindowsDataset, RandomWindowDataset
from envsound.training.finetune import apply_init, finetune_callbacks
from envsound.training.module import ClassifierModule

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]
    epochs: int
    best_score: float | None  # the monitored metric at the best epoch


def monitored(config: Config, *, multi_label: bool) -> tuple[str, str]:
    """The logged metric that selects the best epoch, and whether higher is better."""
    if config.train.monitor == "accuracy" and not multi_label:
        return "val_score", "max"
    return "val_loss", "min"


def fit_network(
    config: Config,
    train_features: list[np.ndarray],
    train_targets: np.ndarray,
    val_features: list[np.ndarray],
    val_targets: np.ndarray,
    *,
    multi_label: bool,
    out_dir: Path,
    resume: bool,
    progress: bool,
    init_encoder: dict[str, torch.Tensor] | None = None,
    unlabelled_features: list[np.ndarray] | None = None,
    train_variants: Sequence[Sequence[np.ndarray]] | None = None,
) -> FitResult:
    """Fit with early stopping on the monitored validation metric (when there is a validation set) and return the
    best epoch's weights.

    Lightning's own checkpoints (``out_dir/lightning/last.ckpt``) make ``resume=True`` continue an interrupted run.
    ``init_encoder`` (from :func:`~envsound.training.finetune.resolve_init`) initialises the model's encoder.
    With ``config.semi.method`` other than ``"none"``, :class:`~envsound.training.semi.SemiModule` trains on the
    labelled clips and ``unlabelled_features`` (whole-clip features, labels unknown) together.
    ``train_variants[i]``: offline augmented copies of training clip ``i`` (see :class:`RandomWindowDataset`).
    ``train.class_balance`` picks a class-weighted loss, a class-balanced sampler or neither
    (:func:`~envsound.training.balance.choose_class_balance`). With ``train.ensemble`` N > 1, N members are fitted
    (:func:`~envsound.training.ensemble.fit_ensemble`) and the result holds the ensemble's weights.
    """
    if config.train.ensemble > 1:
        from envsound.training.ensemble import fit_ensemble

        def fit_member(member: Config, member_dir: Path) -> FitResult:
            return fit_network(member, train_features, train_targets, val_features, val_targets,
                               multi_label=multi_label, out_dir=member_dir, resume=resume, progress=progress,
                               init_encoder=init_encoder, unlabelled_features=unlabelled_features,
                               train_variants=train_variants)

        return fit_ensemble(config, fit_member, out_dir=out_dir, resume=resume)
    balance = choose_class_balance(train_targets, config.train.class_balance)
    weights = torch.from_numpy(class_weights(train_targets)) if balance == "loss" else None
    L.seed_everything(config.train.seed, workers=True, verbose=False)  # before the weights are initialised
    if config.semi.method != "none":
        from envsound.training.semi import SemiModule

        module = SemiModule(config, train_targets.shape[1], multi_label=multi_label, class_weights=weights)
    else:
        module = ClassifierModule(config, train_targets.shape[1], multi_label=multi_label, class_weights=weights)
    apply_init(module.model, init_encoder)
    epochs, best = run_lightning(module, config, train_features, train_targets, val_features, val_targets,
                                 monitor=monitored(config, multi_label=multi_label), out_dir=out_dir, resume=resume,
                                 progress=progress, callbacks=finetune_callbacks(config), reseed=False,
                                 unlabelled_features=unlabelled_features if config.semi.method != "none" else None,
                                 train_variants=train_variants,
                                 sampler_weights=sample_weights(train_targets) if balance == "sampler" else None)
    weights = {k.removeprefix("model."): v.contiguous() for k, v in module.state_dict().items()
               if k.startswith("model.")}
    return FitResult(state_dict=weights, epochs=epochs, best_score=best)


def run_lightning(
    module: L.LightningModule,
    config: Config,
    train_features: list[np.ndarray],
    train_targets: np.ndarray,
    val_features: list[np.ndarray],
    val_targets: np.ndarray,
    *,
    monitor: tuple[str, str],
    out_dir: Path,
    resume: bool,
    progress: bool,
    callbacks: Sequence[L.Callback] = (),
    check_resumable: Callable[[Path], None] | None = None,
    reseed: bool = True,
    unlabelled_features: list[np.ndarray] | None = None,
    train_variants: Sequence[Sequence[np.ndarray]] | None = None,
    sampler_weights: np.ndarray | None = None,
) -> tuple[int, float | None]:
    """Fit ``module`` on random training windows, validating on every window of the validation clips; early stopping
    and best-epoch selection on ``monitor = (logged metric, "min" | "max")``. Loads the best epoch's weights into
    ``module`` and returns (epochs run, best monitored value).

    Lightning's own checkpoints (``out_dir/lightning/last.ckpt``) make ``resume=True`` continue an interrupted run;
    ``check_resumable(last_ckpt)`` may refuse one made with other settings. Shared by classifier training and
    autoencoder pre-training. ``reseed`` seeds the data order with ``train.seed`` here (pass False when the caller
    seeded just before building ``module``, so weights and data order follow from one seed).
    ``unlabelled_features``: a second training loader of random windows, ``semi.mu x train.batch_size`` per step;
    each batch is then ``{"labelled": (x, y), "unlabelled": (x, _)}``, an epoch being one pass over the labelled
    clips or over the longer loader (``semi.epoch``).
    ``train_variants``: offline augmented copies per training clip; ``sampler_weights``: per-clip weights for a class-balanced
    ``WeightedRandomSampler`` (with replacement, one epoch = as many draws as clips) instead of shuffling.
    """
    train, feats = config.train, config.features
    if reseed:
        L.seed_everything(train.seed, workers=True, verbose=False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sampler = None
    if sampler_weights is not None:
        sampler = WeightedRandomSampler(torch.as_tensor(sampler_weights, dtype=torch.double),
                                        num_samples=len(train_features), replacement=True)
    train_loader = DataLoader(
        RandomWindowDataset(train_features, train_targets, cfg=feats, seed=train.seed, variants=train_variants),
        batch_size=train.batch_size, shuffle=sampler is None, sampler=sampler,
        drop_last=len(train_features) > train.batch_size, num_workers=train.num_workers)
    if unlabelled_features:
        from lightning.pytorch.utilities import CombinedLoader

        u_batch = config.semi.mu * train.batch_size
        u_dataset = RandomWindowDataset(unlabelled_features, np.zeros((len(unlabelled_features), 0), dtype=np.float32),
                                        cfg=feats, seed=train.seed + 1)
        if config.semi.epoch == "labelled":  # exactly one unlabelled batch per labelled one, reshuffled each pass
            order = {"sampler": RandomSampler(u_dataset, num_samples=len(train_loader) * u_batch)}
        else:
            order = {"shuffle": True, "drop_last": len(unlabelled_features) > u_batch}
        unlabelled_loader = DataLoader(u_dataset, batch_size=u_batch, num_workers=train.num_workers, **order)
        train_loader = CombinedLoader({"labelled": train_loader, "unlabelled": unlabelled_loader},
                                      mode="max_size_cycle")
    has_val = len(val_features) > 0
    val_loader = None
    if has_val:
        val_loader = DataLoader(
            AllWindowsDataset(val_features, val_targets, cfg=feats),
            batch_size=max(train.batch_size, 64), num_workers=train.num_workers)

    ckpt_dir = out_dir / "lightning"
    metric, mode = monitor
    keeper = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=metric if has_val else None,
                             mode=mode, save_top_k=1, save_last=True)
    all_callbacks = [keeper, *callbacks]
    if has_val and train.patience > 0:
        all_callbacks.append(EarlyStopping(monitor=metric, mode=mode, patience=train.patience))
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision=train.precision, max_epochs=train.max_epochs,
        callbacks=all_callbacks, logger=CSVLogger(out_dir, name="logs", version=""),
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=1, limit_val_batches=1.0 if has_val else 0, deterministic=False)
    last = ckpt_dir / "last.ckpt"
    ckpt_path = None
    if resume and last.exists():
        if check_resumable is not None:
            check_resumable(last)
        ckpt_path = str(last)
    elif resume:
        log.warning("--resume: no %s yet; starting from scratch", last)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path)

    best_path = keeper.best_model_path if has_val and keeper.best_model_path else str(last)
    module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"], strict=True)
    best = keeper.best_model_score
    return trainer.current_epoch, float(best) if best is not None else None
