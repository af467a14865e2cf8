"""The Lightning runs behind ``train_model`` and ``pretrain_autoencoder``: runtime choice, data module, callbacks,
multi-process strategy, resume."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from envsound.config import Config
from envsound.errors import ConfigError
from envsound.hardware import (Runtime, has_image_layers, keep_freed_memory, probe_candidates, release_freed_memory,
                               resolve_runtime, usable_cores)
from envsound.models.clip import build_network, window_shape
from envsound.fitting import KeepState, fit_until_stopped
from envsound.task import Task
from envsound.training.loop.balance import choose_class_balance, class_weights, sample_weights
from envsound.training.loop.clips import FitData
from envsound.training.loop.data import ClipDataModule
from envsound.training.loop.history import KeepHistory, rows_before_resume
from envsound.training.loop.module import ClassifierModule
from envsound.training.loop.progress import ProgressLog
from envsound.training.loop.result import FitResult
from envsound.transfer.modes import transfer_callbacks, trunk_modules
from envsound.transfer.source import InitPlan, apply_init

log = logging.getLogger(__name__)

# Lightning checkpoints a run without validation writes (plus one at its end): enough to resume it (--resume).
CHECKPOINTS_PER_RUN = 50
# train.min_steps when unset, for a run on a labelled share: FixMatch's mask rate on ESC-10 at 10 % labels (24 clips,
# one step an epoch) rises until about step 1,100 and levels off (docs/results.md, "The step budget"). It depends on the
# labelled clips only, so the supervised run a semi run is compared with takes the same steps.
SMALL_LABEL_MIN_STEPS = 1500


def saved_fit(state: dict) -> FitResult:
    """A :class:`FitResult` read back from a finished part of a run (an ensemble member, a self-training round), as
    the process reading it: only process 0 of a multi-process run writes what follows (the rank is Lightning's, from
    the launcher's environment)."""
    return FitResult(**state, from_loop=True, is_global_zero=rank_zero_only.rank == 0)


def training_runtime(config: Config, build: Callable[[], nn.Module]) -> Runtime:
    """Resolve ``runtime.accelerator/devices/precision/channels_last`` for this machine and the network ``build()``
    makes (probing it where :func:`~envsound.hardware.resolve_runtime` needs to), and set torch's CPU threads to the
    cores per process (oversubscribed threads made epochs about 15x slower on 2 cores), and keep freed memory in the
    process for the next step (:func:`~envsound.hardware.keep_freed_memory`)."""
    keep_freed_memory()
    train, wanted = config.train, config.runtime
    processes = wanted.processes
    if train.batch_size % processes:
        raise ConfigError(f"train.batch_size={train.batch_size} is the global batch and must divide evenly over "
                          f"{processes} processes (runtime.devices x runtime.num_nodes)")
    torch.set_num_threads(max(1, usable_cores() // wanted.devices))
    shape = window_shape(config.features)
    probe = probe_candidates(build, shape, mode="train", batch=train.batch_size // processes,
                             identity={"name": config.model.name, **asdict(config.model),
                                       "kind": config.features.kind})
    image_layers = len(shape) == 3 or (wanted.channels_last == "auto" and has_image_layers(build))
    runtime = resolve_runtime(accelerator=wanted.accelerator, devices=wanted.devices, precision=wanted.precision,
                              channels_last=wanted.channels_last, image_input=image_layers, probe=probe)
    release_freed_memory()  # the probe's networks are gone: the run's heap grows to what training needs
    log.info("runtime: %s", runtime.describe())
    return runtime


def min_steps(config: Config) -> int:
    """``train.min_steps``, or its default when unset: :data:`SMALL_LABEL_MIN_STEPS` for a run on a labelled share
    (``train.label_fraction`` < 1, with or without ``semi.method``), else 0. ``train.shots`` runs (transfer's
    few-shot protocol) keep their epochs."""
    if config.train.min_steps is not None:
        return config.train.min_steps
    return SMALL_LABEL_MIN_STEPS if config.train.label_fraction < 1 else 0


def with_step_budget(config: Config, steps_per_epoch: int) -> Config:
    """``config`` with ``train.max_epochs`` raised so that the run makes at least :func:`min_steps` optimizer steps
    (unchanged when it already does); the raise is logged."""
    least = min_steps(config)
    if config.train.max_epochs * steps_per_epoch >= least:
        return config
    epochs = math.ceil(least / steps_per_epoch)
    log.info("train.max_epochs %d -> %d: %d step(s) an epoch, and the run makes at least train.min_steps=%d "
             "optimizer steps (set train.min_steps=0 to keep max_epochs)", config.train.max_epochs, epochs,
             steps_per_epoch, least)
    return replace(config, train=replace(config.train, max_epochs=epochs))


def lightning_strategy(config: Config, runtime: Runtime):
    """Lightning's strategy: one process, or data-parallel (DDP; Lightning picks gloo on CPU, NCCL on CUDA)."""
    if runtime.devices * config.runtime.num_nodes == 1:
        return "auto"
    return "ddp" if config.runtime.strategy == "auto" else config.runtime.strategy


def monitored(config: Config) -> tuple[str, str]:
    """The logged metric that selects the best epoch, and whether higher is better: ``train.monitor=accuracy`` is
    the task's clip score (accuracy, or lwlrap for a multi-label task)."""
    if config.train.monitor == "accuracy":
        return "val_score", "max"
    return "val_loss", "min"


@dataclass(frozen=True)
class LoopRun:
    """Where one fit writes (``out_dir/lightning/``, ``out_dir/logs/``) and how it runs: ``resume`` continues from
    ``out_dir/lightning/last.ckpt``; ``progress`` shows a bar (else a line an epoch)."""

    out_dir: Path
    resume: bool = False
    progress: bool = False


def fit_network(
    config: Config,
    data: FitData,
    *,
    task: Task,
    run: LoopRun,
    init: InitPlan | None = None,
    transfer_mode: str | None = None,
    module_class: type[ClassifierModule] = ClassifierModule,
) -> FitResult:
    """Fit one network on ``data`` with early stopping on the monitored validation metric (when ``data.val`` has
    clips) and return the best epoch's weights.

    Lightning's own checkpoints (``run.out_dir/lightning/last.ckpt``) make ``run.resume`` continue an interrupted run.
    ``init`` (from :func:`~envsound.transfer.source.plan_init`) initialises the model; ``transfer_mode`` ``full``
    or ``gradual`` (:func:`~envsound.transfer.modes.resolve_mode`) says how its trunk trains.
    ``module_class`` is the LightningModule trained: a recipe's subclass of :class:`ClassifierModule`, e.g.
    :class:`~envsound.training.semi.SemiModule`, which trains on ``data.train`` and ``data.pool`` (whole-clip
    features, labels unknown) together when ``config.semi.method`` is not ``"none"`` (otherwise the pool is unused).
    ``data.train.variants[i]``: offline augmented copies of training clip ``i`` (see :class:`RandomWindowDataset`);
    ``data.train.noisiness[i]``: 1.0 when clip ``i``'s labels may be wrong (origin ``noisy``): its loss is
    ``noisy.noisy_loss`` and ``noisy.noisy_share`` sets how often it is drawn.
    ``train.class_balance`` picks a class-weighted loss, a class-balanced sampler or neither
    (:func:`~envsound.training.loop.balance.choose_class_balance`). One network: ``train.ensemble`` N > 1 is
    :func:`~envsound.recipes.ensemble.fit_ensemble` calling this once per member.
    """
    if config.train.ensemble > 1:
        raise ValueError("fit_network fits one network; an ensemble is fitted member by member by fit_ensemble")
    semi = config.semi.method != "none"
    if semi and module_class is ClassifierModule:
        raise ValueError(f"semi.method={config.semi.method!r} needs its recipe's module_class (SemiModule)")
    targets = data.train.targets
    n_classes = targets.shape[1]
    runtime = training_runtime(config, lambda: build_network(config, n_classes))
    balance = choose_class_balance(targets, config.train.class_balance)
    weights = torch.from_numpy(class_weights(targets)) if balance == "loss" else None
    loaders = ClipDataModule(config, data if semi else FitData(data.train, data.val),
                             sampler_weights=sample_weights(targets) if balance == "sampler" else None)
    # before the module, so that its saved hyperparameters hold the epochs the run makes
    config = with_step_budget(config, loaders.steps_per_epoch(runtime.devices * config.runtime.num_nodes))
    L.seed_everything(config.train.seed, workers=True, verbose=False)  # before the weights are initialised
    module = module_class.from_config(config, n_classes, task=task, class_weights=weights,
                                      channels_last=runtime.channels_last)
    apply_init(module.model, init)
    if init is not None:
        module.trunk = trunk_modules(module.model, init)
        if getattr(module, "teacher", None) is not None:  # an EMA teacher starts from the initialised student
            module.teacher.module.load_state_dict(module.model.state_dict())
    fit = run_lightning(module, config, loaders, runtime=runtime, monitor=monitored(config), run=run,
                        callbacks=transfer_callbacks(transfer_mode, config, init),
                        reseed=False, least_steps=min_steps(config))
    fit.state_dict = {k.removeprefix("model."): v.contiguous() for k, v in module.state_dict().items()
                      if k.startswith("model.")}
    release_freed_memory()  # the run's peak is not held after it (a notebook, the next fold's probe)
    return fit


def run_lightning(
    module: L.LightningModule,
    config: Config,
    data: ClipDataModule,
    *,
    runtime: Runtime,
    monitor: tuple[str, str],
    run: LoopRun,
    callbacks: Sequence[L.Callback] = (),
    check_resumable: Callable[[Path], None] | None = None,
    reseed: bool = True,
    least_steps: int = 0,
) -> FitResult:
    """Fit ``module`` on ``data`` (random training windows; every window of the validation clips) on ``runtime``;
    early stopping and best-epoch selection on ``monitor = (logged metric, "min" | "max")``. Loads the best epoch's
    weights into ``module`` and returns how the loop ran (a :class:`FitResult` of epochs run, best monitored value,
    ``runtime``, optimizer steps made, whether this is process 0; no ``state_dict``: the weights are ``module``'s).

    Lightning's own checkpoints (``run.out_dir/lightning/last.ckpt``: at epochs' ends, every
    :data:`~envsound.fitting.CHECKPOINT_EVERY_S` inside one, at a stop) make ``run.resume`` continue an interrupted
    run where it was saved; ``check_resumable(last_ckpt)`` may refuse one made with other settings. Shared by
    classifier training and autoencoder pre-training. ``reseed`` seeds the data order with ``train.seed`` here (pass
    False when the caller seeded just before building ``module``, so weights and data order follow from one seed).
    Early stopping waits for ``least_steps`` optimizer steps (Lightning's ``min_steps``, which never lengthens a run:
    the caller's ``train.max_epochs`` must allow them, see :func:`with_step_budget`).
    With ``runtime.devices`` > 1 (or ``runtime.num_nodes`` > 1) Lightning runs DDP: every process fits its share of
    each epoch; the weights are the same in every process, and only process 0 writes Lightning's checkpoints.
    """
    train = config.train
    if reseed:
        L.seed_everything(train.seed, workers=True, verbose=False)
    has_val = data.has_val
    out_dir = run.out_dir
    ckpt_dir = out_dir / "lightning"
    metric, mode = monitor
    # Without validation only the last weights matter; with one-step epochs (a few labelled clips) writing them every
    # epoch cost more than the step, so they are written about CHECKPOINTS_PER_RUN times a run, and at its end.
    every = 1 if has_val else max(1, train.max_epochs // CHECKPOINTS_PER_RUN)
    # enable_version_counter=False: a last.ckpt KeepState wrote is replaced, not kept beside a last-v1.ckpt
    keeper = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=metric if has_val else None,
                             mode=mode, save_top_k=1, save_last=not has_val, every_n_epochs=every,
                             enable_version_counter=False)
    last = ckpt_dir / "last.ckpt"
    # KeepState writes it inside the epochs every few minutes and at a stop (Ctrl-C, SIGTERM): an hour's epoch is not
    # lost whole; and with validation at every epoch's end, where ModelCheckpoint's save_last (Lightning 2.6) writes
    # it only with a better best.ckpt: a resume went back to the best epoch and trained the epochs after it again
    kept = [keeper, KeepState(last, epochs=has_val)]
    all_callbacks = [*kept, *callbacks] if run.progress else [*kept, ProgressLog(), *callbacks]  # a bar, or lines
    if has_val and train.patience > 0:
        all_callbacks.append(EarlyStopping(monitor=metric, mode=mode, patience=train.patience))
    ckpt_path = None
    if run.resume and last.exists():
        if check_resumable is not None:
            check_resumable(last)
        ckpt_path = str(last)
    elif run.resume:
        log.warning("resume: no %s yet; starting from scratch", last)
    logger = CSVLogger(out_dir, name="logs", version="")
    if ckpt_path is not None:
        all_callbacks.append(KeepHistory(*rows_before_resume(Path(logger.log_dir))))
    trainer = L.Trainer(
        accelerator=runtime.accelerator, devices=runtime.devices, num_nodes=config.runtime.num_nodes,
        strategy=lightning_strategy(config, runtime), precision=runtime.precision, max_epochs=train.max_epochs,
        min_steps=least_steps or None, callbacks=all_callbacks, logger=logger,
        enable_progress_bar=run.progress, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=1, limit_val_batches=1.0 if has_val else 0, deterministic=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        if ckpt_path is not None:  # KeepHistory writes the old rows back
            warnings.filterwarnings("ignore", message="Experiment logs directory .* will be deleted.*")
        fit_until_stopped(trainer, module, datamodule=data, ckpt_path=ckpt_path)  # Ctrl-C, SIGTERM: KeyboardInterrupt
    if every > 1:  # Lightning's save_last writes the end of the run only when nothing was written before it
        trainer.save_checkpoint(last)  # every process calls it; process 0 writes

    best_path = keeper.best_model_path if has_val and keeper.best_model_path else str(last)
    if trainer.world_size > 1:  # every process waits for process 0's last checkpoint before reading it
        trainer.strategy.barrier("envsound-best-checkpoint")
        best_path = trainer.strategy.broadcast(best_path)
    module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"], strict=True)
    best = keeper.best_model_score
    return FitResult(from_loop=True, epochs=trainer.current_epoch, best_score=float(best) if best is not None else None,
                     runtime=runtime, is_global_zero=trainer.is_global_zero, steps=trainer.global_step)
