"""Resuming autoencoder pre-training from a Lightning checkpoint written while ``AutoencoderModule`` took the whole
Config (its hyperparameters then held it under ``"config"``; the module now keeps its own sections)."""

import pytest
import torch

from conftest import TINY_OVERRIDES
from envsound.errors import CheckpointError
from envsound.models.checkpoint import load_checkpoint
from envsound.recipes.config import resolve
from envsound.recipes.context import RunContext
from envsound.recipes.pretrain import pretrain_autoencoder

PRETRAIN = TINY_OVERRIDES + ("model.filters=4", "train.max_epochs=1", "train.pretrain_val_fraction=0")


def test_a_run_interrupted_when_the_module_took_the_whole_config_still_resumes(tmp_path, synthetic_manifest):
    """Such a run is still checked against its model settings before it resumes, and then continues from its
    weights."""
    config = resolve(model="dtu", overrides=PRETRAIN)
    manifest = synthetic_manifest.select_folds([1])
    pretrain_autoencoder(manifest, config, decoder="upsample", out_dir=tmp_path, context=RunContext(progress=False))
    last = tmp_path / "lightning" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    state["hyper_parameters"] = {"config": config.to_dict(), "decoder": "upsample"}  # the layout written before
    state["state_dict"]["model.decoder.2.0.bias"] += 123.0  # a marker only a resumed run can carry over
    torch.save(state, last)
    (tmp_path / "autoencoder.ckpt").unlink()  # as if killed before the end
    other = resolve(model="dtu", overrides=PRETRAIN + ("model.filters=8",))
    with pytest.raises(CheckpointError, match="other model settings"):
        pretrain_autoencoder(manifest, other, decoder="upsample", out_dir=tmp_path,
                             context=RunContext(resume=True, progress=False))
    result = pretrain_autoencoder(manifest, config, decoder="upsample", out_dir=tmp_path,
                                  context=RunContext(resume=True, progress=False))
    assert float(load_checkpoint(result.checkpoint).state_dict["decoder.2.0.bias"].mean()) > 100
