"""A training run stopped inside an epoch (issue 68: one epoch of a big dataset takes half an hour on a 2-core CPU)
keeps its work up to the batch it stopped after (``lightning/last.ckpt``, also written every few minutes: here every
batch), and ``--resume`` goes on inside that epoch: the run ends with the optimizer steps and the epochs of one never
stopped, its training curve logged once a step."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest
import torch

from conftest import TINY_OVERRIDES
from envsound import fitting
from envsound.config.files import bare_config
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model
from envsound.training.loop.history import logged_rows
from envsound.training.loop import fit

STOP_AT = 3  # the 4th batch of the first epoch (7 an epoch)


class SigtermAt(L.Callback):
    """Sends this process SIGTERM as global step ``step`` starts (a cluster's time limit, at a known batch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_stopped_inside_an_epoch_resumes_there_with_the_steps_of_an_unstopped_one(tmp_path, synthetic_manifest,
                                                                                        monkeypatch):
    monkeypatch.setattr(fitting, "CHECKPOINT_EVERY_S", 0.0)  # the state kept at every batch, as every 5 minutes
    config = bare_config(overrides=TINY_OVERRIDES + ("train.batch_size=4", "train.max_epochs=2",
                                                     "train.val_fraction=0.25"))
    manifest = synthetic_manifest.select_folds([1, 2])  # 40 clips: 30 train in 7 batches (the last 2 dropped)
    quiet = RunContext(progress=False)
    out = tmp_path / "run"
    monkeypatch.setattr(fit, "transfer_callbacks", lambda *args: [SigtermAt(STOP_AT)])
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        train_model(manifest, config, out_dir=out, context=quiet)
    kept = torch.load(out / "lightning" / "last.ckpt", weights_only=False)
    assert (kept["epoch"], kept["global_step"]) == (0, STOP_AT + 1)  # inside the first epoch, its 4th batch done
    assert not (out / "model.ckpt").exists()

    monkeypatch.undo()
    resumed = train_model(manifest, config, out_dir=out, context=RunContext(progress=False, resume=True))
    # an unstopped run makes 7 steps an epoch (tests/training/test_step_budget.py); last.ckpt is written at the last
    # epoch's end even when its score is not the best (Lightning's save_last wrote it only beside a better best.ckpt)
    assert torch.load(out / "lightning" / "last.ckpt", weights_only=False)["global_step"] == 2 * 7
    assert resumed.epochs == 2
    rows = logged_rows(out / "logs" / "metrics.csv")
    assert [float(r["step"]) for r in rows if "train_loss" in r] == [6, 13]  # each epoch's curve once
