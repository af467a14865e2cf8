"""The small Lightning fits of transfer's own stages (the frame head on the frozen trunk's steps, the fine-tuning of
the frame network after it), each keeping a resumable state in the run folder: ``<out_dir>/<stage>/last.ckpt``,
Lightning's checkpoint (weights, optimizer, epoch) written at every epoch's end. ``resume`` continues a stage from it, at the epoch after the saved one; Ctrl-C or SIGTERM keep it and raise :class:`KeyboardInterrupt`
(:mod:`envsound.stopping`). A ``--preset sed`` run on 1,200 mixtures spent 67 minutes on these two stages on a
2-core CPU and, stopped at minute 80, had kept nothing (issue 68)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from envsound.stopping import fit_until_stopped
from envsound.transfer.progress import EpochLines

__all__ = ["FRAME_HEAD", "FRAME_FINETUNE", "stage_state", "fit_stage", "KeepState"]

log = logging.getLogger(__name__)

FRAME_HEAD, FRAME_FINETUNE = "frame_head", "frame_finetune"  # the stages' folders in a run folder


def stage_state(out_dir: str | Path | None, stage: str) -> Path | None:
    """Where stage ``stage`` of the run in ``out_dir`` keeps its state (``None`` without a run folder)."""
    return None if out_dir is None else Path(out_dir) / stage / "last.ckpt"


def fit_stage(module: L.LightningModule, loader: torch.utils.data.DataLoader, *, what: str, state: Path | None,
              resume: bool, **trainer_options) -> None:
    """Fit ``module`` on ``loader`` in a Trainer of ``trainer_options`` (``max_epochs``, ``accelerator``,
    ``precision``, ...) with no logger or bar, a line an epoch (``<what>: epoch k/N``), and, when ``state`` is a
    path, its state written there at every epoch's end; ``resume`` with a ``state`` on disk continues from it.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM stopped the fit (``state`` holds its last finished epoch).
    """
    callbacks: list[L.Callback] = [EpochLines(what)]
    if state is not None:
        callbacks.append(KeepState(state))
    trainer = L.Trainer(logger=False, enable_checkpointing=state is not None, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=False, callbacks=callbacks, devices=1,
                        **trainer_options)
    ckpt_path = None
    if resume and state is not None and state.exists():
        ckpt_path = str(state)
    elif resume and state is not None:
        log.info("%s: no %s to resume from; starting it", what, state)
    fit_until_stopped(trainer, module, loader, ckpt_path=ckpt_path)


class KeepState(Checkpoint):
    """Write the fit's Lightning checkpoint to ``path`` at every training epoch's end, replacing the one before
    (Lightning writes it whole or not at all). ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only beside a
    top-k copy: two files an epoch where one resumes the fit. A ``Checkpoint``, so Lightning calls it after the other
    callbacks and adds no ``ModelCheckpoint`` of its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)  # every process calls it; process 0 writes
