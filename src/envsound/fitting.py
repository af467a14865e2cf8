"""A Lightning fit that stops so that it can go on: the Lightning half of stopping a run (the light half,
SIGTERM raised as Ctrl-C, is :mod:`envsound.stopping`, on the ground floor: no torch). It sits above ``models`` and
below the two stages that fit with Lightning, ``transfer`` (its own small fits, ``transfer/stages.py``) and
``training`` (``training/loop/fit.py``), so that both import it (``tests/test_layering.py``'s ``ORDER``).

Lightning has its own handling of SIGTERM: inside ``Trainer.fit`` it sets a flag and the fit ends at the next batch's
end (``SIGTERMException``, a ``SystemExit``). :func:`fit_until_stopped` makes a first Ctrl-C do the same (a second
one stops at once, as Lightning's own Ctrl-C handling does: ``sys.exit(1)`` after its shutdown), and
:class:`KeepState` writes the fit's Lightning checkpoint there, at that batch's end, as well as every
:data:`CHECKPOINT_EVERY_S` of training: a stop loses at most the batch it arrived in, a crash (``kill -9``) at most
:data:`CHECKPOINT_EVERY_S`.

Resuming from a checkpoint written inside an epoch (Lightning 2.6, ``loops/fit_loop.py`` and
``loops/training_epoch_loop.py``): it was written at a training batch's end, so the loops restart "on train batch
end": the global step, the batch counters, the optimizer and the per-step schedule come back, and the epoch ends
after the batches it had left, so a resumed run makes as many optimizer steps as one never stopped. The training
loader is not fast-forwarded (envsound's have no ``state_dict``; Lightning's warning that the loader "is not
resumable" is filtered here, this paragraph says what follows): the rest of the interrupted epoch is the first
batches of a fresh pass. **The interrupted epoch's samples**: its first k of N batches were trained before the stop;
the N - k after the resume are the first N - k batches of a new shuffle (seeded again by ``train.seed``, as at any
resume), so in that one epoch some clips are drawn twice and some not at all, as in an epoch drawn with replacement;
windows are cut anew every epoch anyway, and the epochs after it are whole passes. A per-epoch schedule
(``train.scheduler=step``) is stepped at the resumed epoch's end as at any other (only ``ReduceLROnPlateau``, which
envsound does not use, is not: its metrics are not in the checkpoint).
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from envsound.stopping import STOPPED, stops_at_a_batch_end

__all__ = ["STOPPED", "CHECKPOINT_EVERY_S", "fit_until_stopped", "KeepState"]

# A long fit writes its Lightning checkpoint this often (seconds of training), so that a crash loses at most this much
# (a stop loses nothing: KeepState writes at the batch it stops after). Every few minutes, as issue 68 asks; writing
# costs little against it: the largest network here (efficientat at width 4.0, EfficientAT's mn40: 68 M parameters,
# a 0.82 GB checkpoint with Adam's state) took 1.5-1.7 s to write and sync on a 2-core AMD EPYC (0.6 % of 5 minutes);
# piczak2015's 29 M, 0.4 s; the default cnn, milliseconds. A crash is rarer than a stop, so more often buys little.
CHECKPOINT_EVERY_S = 300.0


def fit_until_stopped(trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit(*args, **kwargs)`` (a Lightning ``Trainer``), raising :class:`KeyboardInterrupt` when Ctrl-C or
    SIGTERM stopped it, or arrived after its last batch (the run stops there; its last checkpoint is complete).
    A first Ctrl-C while it trains or validates stops it as SIGTERM does, at the batch's end, where
    :class:`KeepState` writes the fit's state; a second one stops it at once.

    >>> fit_until_stopped(trainer, module, loader, ckpt_path=None)  # Ctrl-C: KeyboardInterrupt(STOPPED)
    """
    try:
        with (stops_at_a_batch_end(), _lightning_alone_on_sigterm(), _first_ctrl_c_at_batch_end(trainer),
              warnings.catch_warnings()):
            # the training loader is not fast-forwarded at a resume inside an epoch: the module's docstring says why
            # that is sound and what becomes of the interrupted epoch's samples
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            trainer.fit(*args, **kwargs)
    except SystemExit as exc:  # Ctrl-C: sys.exit(1) after Lightning's shutdown; SIGTERM: SIGTERMException
        if trainer.interrupted:
            raise KeyboardInterrupt(STOPPED) from exc
        raise
    except RuntimeError as exc:  # a loader worker ended by the same Ctrl-C (the terminal signals its whole group);
        # not wider: a state that could not be saved at the stop (a full disk) must not be reported as kept
        if trainer.received_sigterm:
            raise KeyboardInterrupt(STOPPED) from exc
        raise
    if trainer.received_sigterm:
        raise KeyboardInterrupt(STOPPED)


@contextmanager
def _lightning_alone_on_sigterm() -> Iterator[None]:
    """In the block, SIGTERM is Lightning's alone: Lightning calls the handler it finds set (after its own), and one
    that raises cuts the batch short, before :class:`KeepState` can write the state at its end. Ray's driver sets such
    a handler (``sys.exit``) in ``ray.init`` and leaves it, so a fit after a Ray scan in the same process, or a test
    after a Ray test, stopped mid-batch. The handler found is set again after the block. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _during_a_fit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _during_a_fit(signum, frame) -> None:
    """Nothing: Lightning's own handler, set when the fit starts, stops it at the batch's end (a SIGTERM before it is
    set goes unanswered, as :func:`~envsound.stopping.sigterm_as_interrupt` leaves one during a fit)."""


@contextmanager
def _first_ctrl_c_at_batch_end(trainer) -> Iterator[None]:
    """In the block, a first Ctrl-C (SIGINT) while ``trainer`` trains or validates goes to Lightning's SIGTERM
    handler (registered by then), which stops the fit at the batch's end; a second one, or one before the loop
    runs, is Python's ``KeyboardInterrupt`` (Lightning's own shutdown). Only where a handler can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum, frame):
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        lightning_handler = signal.getsignal(signal.SIGTERM)
        if not (trainer.training or trainer.validating) or not callable(lightning_handler):
            raise KeyboardInterrupt
        lightning_handler(signal.SIGTERM, frame)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is first:
            signal.signal(signal.SIGINT, previous)


class KeepState(Checkpoint):
    """Write the fit's Lightning checkpoint to ``path`` (replacing the one before; Lightning writes it whole or not
    at all) every ``every_s`` seconds of training (default :data:`CHECKPOINT_EVERY_S`), at the end of the batch a stop
    (SIGTERM, a first Ctrl-C) arrived in, and, with ``epochs``, at every training epoch's end. The seconds count
    from the last checkpoint any callback wrote. ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only beside
    a top-k copy: two files an epoch where one resumes the fit. A ``Checkpoint``, so Lightning calls it after the
    other callbacks and adds no ``ModelCheckpoint`` of its own. A stop that arrives during validation ends the fit
    at a validation batch (Lightning's), where no state is written: the one before it is kept.

    >>> trainer = L.Trainer(max_epochs=40, callbacks=[KeepState(Path("run/frame_head/last.ckpt"))])
    """

    def __init__(self, path: Path, *, epochs: bool = True, every_s: float | None = None) -> None:
        self.path, self.epochs = Path(path), epochs
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else every_s
        self.saved_at = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.saved_at = time.monotonic()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.saved_at = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if batch_idx + 1 < trainer.num_training_batches and self._due(trainer):  # the epoch's end saves the last
            trainer.save_checkpoint(self.path)  # every process calls it; process 0 writes

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._due(trainer) or self.epochs:
            trainer.save_checkpoint(self.path)

    def _due(self, trainer: L.Trainer) -> bool:
        """Whether to write now: process 0 decides for all (each must call ``save_checkpoint``)."""
        due = trainer.received_sigterm or time.monotonic() - self.saved_at >= self.every_s
        return bool(trainer.strategy.broadcast(due))

