"""Lines of progress for transfer's own loops: the frame head's epochs on the frozen trunk's steps, the fine-tuning
of the frame network, and the trunk's pass over the training clips before either (a probe's embeddings, a frame
head's steps).

These loops run small Lightning ``Trainer``\\ s of their own, with no bar (a run is read in a log file as often as in
a terminal); the training loop's :class:`envsound.training.loop.progress.ProgressLog` sits above this stage
(training imports transfer, never the other way), so the same kind of line is written here: what, how far, the
time spent and the time left. A ``--preset sed`` run on 1,200 mixtures trained its frame head for 67 minutes on a
2-core CPU without a line (issue 69)."""

from __future__ import annotations

import logging
import time

import lightning as L
import torch

__all__ = ["EpochLines", "CountLines", "duration"]

log = logging.getLogger(__name__)

PASS_LINE_S = 30.0  # a loop over clips logs at most one line this often (and none when it takes less)


def duration(seconds: float) -> str:
    """``seconds`` (>= 0) as a person reads it: ``42 s``, ``17 min``, ``2.5 h``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


class EpochLines(L.Callback):
    """Logs ``<what>: epoch k/N, loss L, S elapsed, about M left`` at the end of every training epoch (process 0
    only); ``L`` is the epoch's ``train_loss`` where the module logs one. A fit resumed from a checkpoint first says
    ``<what>: resumed after epoch k/N``.

    >>> trainer = L.Trainer(max_epochs=40, callbacks=[EpochLines("frame head")], enable_progress_bar=False)
    """

    def __init__(self, what: str) -> None:
        self.what, self.started, self.first = what, 0.0, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.first = time.monotonic(), trainer.current_epoch
        # resumed from a checkpoint, also one kept inside its first epoch (then 0 epochs were whole)
        if (self.first or trainer.ckpt_path is not None) and trainer.is_global_zero:
            log.info("%s: resumed after epoch %d/%d", self.what, self.first, trainer.max_epochs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        elapsed = time.monotonic() - self.started
        loss = trainer.callback_metrics.get("train_loss")
        said = "" if loss is None or torch.as_tensor(loss).numel() != 1 else f", loss {float(loss):.4f}"
        ran = done - self.first  # epochs of this process: a resumed run's time is theirs
        left = f", about {duration(elapsed / ran * (total - done))} left" if total > done and ran > 0 else ""
        log.info("%s: epoch %d/%d%s, %s elapsed%s", self.what, done, total, said, duration(elapsed), left)


class CountLines:
    """Progress of a loop over ``total`` items (>= 0): ``<what>: i/total <unit>, S elapsed, about M left`` at most
    every :data:`PASS_LINE_S` seconds, so a loop of a few seconds says nothing and one of an hour says where it is.

    >>> lines = CountLines("frame head: the trunk's steps", len(clips), unit="clips")
    >>> for clip in clips: ...; lines.step()
    """

    def __init__(self, what: str, total: int, *, unit: str) -> None:
        self.what, self.total, self.unit, self.done = what, total, unit, 0
        self.started = self.last_line = time.monotonic()

    def step(self, n: int = 1) -> None:
        """Count ``n`` more items done; log a line when :data:`PASS_LINE_S` seconds have passed since the last."""
        self.done += n
        now = time.monotonic()
        if now - self.last_line < PASS_LINE_S or self.done >= self.total:
            return
        self.last_line = now
        elapsed = now - self.started
        log.info("%s: %d/%d %s, %s elapsed, about %s left", self.what, self.done, self.total, self.unit,
                 duration(elapsed), duration(elapsed / self.done * (self.total - self.done)))
