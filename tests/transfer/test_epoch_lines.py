"""A fit resumed from a state kept inside its first epoch (a stop before any epoch was whole) says it resumed, as
one resumed after a whole epoch does: the line the stopped-stage tests wait for."""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import nn

from envsound.transfer.progress import EpochLines


class _Tiny(L.LightningModule):
    def __init__(self, keep: str | None = None) -> None:
        super().__init__()
        self.layer, self.keep = nn.Linear(2, 1), keep

    def training_step(self, batch, index):
        if self.keep and self.current_epoch == 0 and index == 2:  # the state at its third batch, as a stop keeps it
            self.trainer.save_checkpoint(self.keep)
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(max_epochs: int) -> L.Trainer:
    return L.Trainer(max_epochs=max_epochs, callbacks=[EpochLines("frame head")], logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def test_a_fit_resumed_inside_its_first_epoch_says_it_resumed(tmp_path, caplog):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
    _trainer(1).fit(_Tiny(keep=str(tmp_path / "last.ckpt")), loader)
    kept = torch.load(tmp_path / "last.ckpt", weights_only=True)["loops"]["fit_loop"]["epoch_progress"]
    assert kept["current"]["completed"] == 0  # no epoch whole
    with caplog.at_level(logging.INFO, logger="envsound.transfer.progress"):
        _trainer(1).fit(_Tiny(), loader, ckpt_path=tmp_path / "last.ckpt")
    assert "frame head: resumed after epoch 0/1" in caplog.text
