"""The small Lightning fits of transfer's own stages (the frame head on the frozen trunk's steps, the fine-tuning of
the frame network after it), each keeping a resumable state in the run folder: ``<out_dir>/<stage>/last.ckpt``,
Lightning's checkpoint (weights, optimizer, loop counters) written at every epoch's end, every
:data:`~envsound.fitting.CHECKPOINT_EVERY_S` inside one, and at the batch a stop arrived in. ``resume`` continues a
stage from it, where it was saved; Ctrl-C or SIGTERM keep it and raise :class:`KeyboardInterrupt`
(:mod:`envsound.fitting`). A ``--preset sed`` run on 1,200 mixtures spent 67 minutes on these two stages on a
2-core CPU and, stopped at minute 80, had kept nothing (issue 68)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from envsound.fitting import KeepState, fit_until_stopped
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
    path, its state written there (:class:`~envsound.fitting.KeepState`: at every epoch's end, every few minutes
    inside one, at a stop); ``resume`` with a ``state`` on disk continues from it.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM stopped the fit (``state`` holds it up to the batch it stopped after).
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

