"""The step budget of runs on a few labelled clips (``train.min_steps``), and the steps an epoch makes on one process
and on several (what the budget is computed from)."""

import csv

import numpy as np
import pytest
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from torch.utils.data import DataLoader

from conftest import TINY_OVERRIDES
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model
from envsound.training.loop.clips import ClipSet, FitData
from envsound.training.loop.data import ClipDataModule
from envsound.training.loop.fit import SMALL_LABEL_MIN_STEPS, min_steps

SEMI = TINY_OVERRIDES + ("model.filters=4", "semi.fixmatch.threshold=0.2", "semi.mu=1", "train.batch_size=4",
                         "train.val_fraction=0", "train.label_fraction=0.25", "train.max_epochs=1")


def _epochs_logged(run_dir) -> int:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return len([r for r in csv.DictReader(handle) if r["train_loss"]])


@pytest.mark.parametrize(("method", "epoch", "epochs"), [("mean_teacher", "labelled", 3), ("mean_teacher", "pool", 1),
                                                      ("none", "labelled", 3)])
def test_a_run_on_few_labels_lasts_train_min_steps(tmp_path, synthetic_manifest, method, epoch, epochs):
    # 10 labelled clips in batches of 4: 2 steps an epoch, so at least 5 steps take 3 epochs; a pass over the pool
    # (30 clips, 7 steps) already makes them
    config = bare_config(overrides=SEMI + (f"semi.method={method}", f"semi.epoch={epoch}", "train.min_steps=5"))
    result = train_model(synthetic_manifest.select_folds([1, 2]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    assert load_checkpoint(result.checkpoint).meta["epochs"] == epochs == _epochs_logged(tmp_path)


def test_min_steps_defaults_to_the_measured_budget_for_label_shares_semi_or_not():
    def least(*overrides):
        return min_steps(bare_config(overrides=overrides))

    assert least() == least("train.shots=2") == least("train.max_epochs=3") == least("semi.method=fixmatch") == 0
    assert least("train.label_fraction=0.1") == least("train.label_fraction=0.1", "semi.method=fixmatch") == 1500
    assert SMALL_LABEL_MIN_STEPS == 1500
    assert least("train.label_fraction=0.1", "train.min_steps=0") == 0 and least("train.min_steps=40") == 40
    with pytest.raises(ConfigError, match="train.min_steps"):
        bare_config(overrides=("train.min_steps=-1",))


def _per_process_batches(loader: DataLoader, processes: int) -> int:
    """Batches of process 0 once Lightning has given ``loader`` the distributed sampler it gives it under DDP."""
    if processes == 1:
        return len(loader)
    sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=processes, rank=0)
    return len(DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, drop_last=loader.drop_last))


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize(("n_labelled", "epoch"), [(24, "labelled"), (100, "labelled"), (24, "pool")])
def test_steps_per_epoch_is_what_the_loaders_yield_on_one_process_and_under_ddp(processes, n_labelled, epoch):
    config = bare_config(overrides=("train.batch_size=8", "semi.method=fixmatch", "semi.mu=2",
                                    f"semi.epoch={epoch}"))
    clip = np.zeros((1, 8), dtype=np.float32)
    data = ClipDataModule(config, FitData(ClipSet([clip] * n_labelled,
                                                  np.eye(2, dtype=np.float32)[np.arange(n_labelled) % 2]),
                                          pool=ClipSet.unlabelled([clip] * 216)))
    loaders = data.training_loader(processes).iterables
    batches = [_per_process_batches(loaders[name], processes) for name in ("labelled", "unlabelled")]
    # semi.epoch=labelled: one unlabelled batch for each labelled one, on every process
    assert data.steps_per_epoch(processes) == (batches[0] if epoch == "labelled" else max(batches))
    if epoch == "labelled":
        assert batches[1] == batches[0]
