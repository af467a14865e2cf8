"""A line of progress every few epochs where no progress bar is drawn (a log file, ``nohup``, a batch job).

A paper preset trains for hours: without a terminal, Lightning's bar is off and a run was silent from its start to
its end. :class:`ProgressLog` logs the epoch, the metrics of the epoch and the time left, about 20 times a run and at
least every :data:`MAX_SILENCE_S` seconds."""

from __future__ import annotations

import logging
import math
import time

import lightning as L
import torch

__all__ = ["ProgressLog", "MAX_SILENCE_S", "LINES_PER_RUN"]

log = logging.getLogger(__name__)

LINES_PER_RUN = 20
MAX_SILENCE_S = 600.0


class ProgressLog(L.Callback):
    """Logs ``epoch E/N: metric value, ..., S s an epoch, about M min left`` (process 0 only)."""

    def __init__(self) -> None:
        self.started = self.last_line = 0.0
        self.first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = self.last_line = time.monotonic()
        self.first_epoch = trainer.current_epoch  # > 0 after a resume: only this process's epochs are timed

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        done, total = trainer.current_epoch + 1, trainer.max_epochs  # run_lightning always sets max_epochs >= 1
        now = time.monotonic()
        if done % math.ceil(total / LINES_PER_RUN) and done != total and now - self.last_line < MAX_SILENCE_S:
            return
        self.last_line = now
        per_epoch = (now - self.started) / max(1, done - self.first_epoch)
        metrics = ", ".join(f"{name} {float(value):.4g}" for name, value in sorted(trainer.callback_metrics.items())
                            if isinstance(value, (int, float, torch.Tensor)) and torch.as_tensor(value).numel() == 1)
        left = f", about {_duration(per_epoch * (total - done))} left" if total > done else ""
        log.info("epoch %d/%d: %s%s%.1f s an epoch%s", done, total, metrics, ", " if metrics else "", per_epoch, left)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
