"""A Lightning fit stopped inside an epoch (issue 68: an epoch of a big dataset on a 2-core CPU takes half an hour):
SIGTERM or a first Ctrl-C keep its state at the batch it stopped after, and the fit resumed from there ends with the
optimizer steps and the learning rate of one never stopped; every few minutes (here: every batch) the state is kept
even without a stop. A tiny module on fixed tensors: seconds."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from envsound import fitting, stopping
from envsound.fitting import KeepState, fit_until_stopped
from envsound.stopping import sigterm_as_interrupt

BATCHES, EPOCHS = 8, 3  # optimizer steps an epoch, epochs a fit


class Tiny(L.LightningModule):
    """A linear layer with a per-epoch schedule (x0.1 after the 2nd epoch) that sends itself ``stop`` at global step
    ``stop_at`` (once); records the learning rate of each step it trained."""

    def __init__(self, *, stop: signal.Signals | None = None, stop_at: int = -1) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.stop, self.stop_at, self.rates = stop, stop_at, []

    def training_step(self, batch, batch_idx):
        if self.stop is not None and self.global_step == self.stop_at:
            self.stop_at = -1
            os.kill(os.getpid(), self.stop)  # the handler runs in this (the main) thread, before the next line
        self.rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * 4, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4, shuffle=True)


def fit(module: Tiny, state, *, resume: bool = False) -> L.Trainer:
    trainer = L.Trainer(max_epochs=EPOCHS, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[KeepState(state)], accelerator="cpu", devices=1)
    fit_until_stopped(trainer, module, loader(), ckpt_path=str(state) if resume else None)
    return trainer


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_fit_stopped_inside_an_epoch_resumes_there_with_the_steps_and_schedule_of_an_unstopped_one(tmp_path, stop):
    unstopped = Tiny()
    whole = fit(unstopped, tmp_path / "whole.ckpt")
    assert whole.global_step == BATCHES * EPOCHS and unstopped.rates[-1] == pytest.approx(0.01)

    state = tmp_path / "last.ckpt"
    stopped = Tiny(stop=stop, stop_at=BATCHES + 3)  # the 4th batch of the 2nd epoch
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        fit(stopped, state)
    assert len(stopped.rates) == BATCHES + 4  # the batch the stop arrived in ran to its end
    kept = torch.load(state, weights_only=False)
    assert (kept["epoch"], kept["global_step"]) == (1, BATCHES + 4)

    resumed = Tiny()
    trainer = fit(resumed, state, resume=True)
    assert trainer.global_step == whole.global_step and trainer.current_epoch == whole.current_epoch == EPOCHS
    # the epoch's other batches, then the last epoch, at the rates of the unstopped fit (the schedule steps at the
    # resumed epoch's end: the last epoch trains at 0.01)
    assert resumed.rates == pytest.approx(unstopped.rates[BATCHES + 4:])


def test_a_fit_keeps_its_state_every_checkpoint_every_s_without_a_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(fitting, "CHECKPOINT_EVERY_S", 0.0)  # every batch
    state = tmp_path / "last.ckpt"

    class Watch(L.Callback):
        steps: list[int] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step:
                Watch.steps.append(torch.load(state, weights_only=False)["global_step"])

    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Watch(), KeepState(state, epochs=False)], accelerator="cpu", devices=1)
    fit_until_stopped(trainer, Tiny(), loader())
    assert Watch.steps == list(range(1, BATCHES))


def test_a_sigterm_handler_left_by_ray_does_not_cut_the_stopped_batch_short(tmp_path):
    """Ray's ``ray.init`` leaves a SIGTERM handler that calls ``sys.exit`` in the driver; Lightning calls the handler
    it finds after its own, so in the suite (after a Ray test) the batch a stop arrived in ended at once, unsaved."""
    def ray_like(signum, frame):
        raise SystemExit(signum)

    previous = signal.signal(signal.SIGTERM, ray_like)
    try:
        stopped = Tiny(stop=signal.SIGTERM, stop_at=3)
        with pytest.raises(KeyboardInterrupt, match="--resume"):
            fit(stopped, tmp_path / "last.ckpt")
        assert len(stopped.rates) == 4 and torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 4
        assert signal.getsignal(signal.SIGTERM) is ray_like  # what was set before the fit, set again
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_as_interrupt_raises_in_its_block_but_leaves_a_fit_to_stop_at_its_batch_end(tmp_path):
    """The light half (``envsound.stopping``) and the Lightning half (``envsound.fitting``) share one count of the fits
    running: a run's SIGTERM outside a fit is a KeyboardInterrupt at once; inside one, the batch ends and is kept."""
    with pytest.raises(KeyboardInterrupt, match="--resume"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    stopped = Tiny(stop=signal.SIGTERM, stop_at=3)
    with pytest.raises(KeyboardInterrupt, match="--resume"), sigterm_as_interrupt():
        fit(stopped, tmp_path / "last.ckpt")
    assert len(stopped.rates) == 4 and torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 4


@pytest.mark.parametrize("name", ["fit_until_stopped", "KeepState", "CHECKPOINT_EVERY_S"])
def test_the_lightning_names_moved_to_fitting_are_still_found_in_stopping_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=f"envsound.fitting.{name}"):
        assert getattr(stopping, name) is getattr(fitting, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        stopping.no_such_name
