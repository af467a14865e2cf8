"""train.ensemble: N networks from N seeds in one checkpoint, scored as the mean of their logits."""

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only

from envsound.errors import ConfigError
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel
from envsound.models.ensemble import Ensemble
from envsound.recipes.context import RunContext
from envsound.recipes.ensemble import MEMBER_WEIGHTS
from envsound.recipes.train import CHECKPOINT_NAME, train_model


def test_an_ensemble_trains_saves_and_scores_as_the_mean_of_its_members(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.train.ensemble, tiny_config.train.max_epochs = 2, 2
    cache = FeatureCache(tmp_path / "cache")
    result = train_model(synthetic_manifest.select_folds([1, 2]), tiny_config, out_dir=tmp_path / "run",
                         context=RunContext(cache=cache, progress=False))
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.config.train.ensemble == 2
    network = ClipModel.from_checkpoint(checkpoint).network
    assert isinstance(network, Ensemble) and len(network.members) == 2
    first, second = (dict(m.named_parameters()) for m in network.members)
    assert not torch.equal(first["head.1.weight"], second["head.1.weight"])  # seeds 0 and 1 differ
    for member in (1, 2):
        assert (tmp_path / "run" / f"member_{member}" / MEMBER_WEIGHTS).exists()

    _, feats, _ = extract_features(synthetic_manifest.select_folds([5]).records, checkpoint.config.features,
                                   cache=cache, progress=False)
    window = torch.from_numpy(np.stack([f[..., :checkpoint.config.features.window_frames] for f in feats[:3]]))
    with torch.inference_mode():
        expected = (network.members[0](window) + network.members[1](window)) / 2
        assert torch.allclose(network(window), expected, atol=1e-5)


def test_resume_skips_finished_members(tmp_path, synthetic_manifest, tiny_config, monkeypatch):
    tiny_config.train.ensemble, tiny_config.train.max_epochs = 2, 1
    run = tmp_path / "run"
    train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=run, context=RunContext(progress=False))
    finished = (run / "member_1" / MEMBER_WEIGHTS).stat().st_mtime_ns
    (run / "member_2" / MEMBER_WEIGHTS).unlink()  # as if interrupted while member 2 was training
    train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=run,
                context=RunContext(resume=True, progress=False))
    assert (run / "member_1" / MEMBER_WEIGHTS).stat().st_mtime_ns == finished
    assert (run / "member_2" / MEMBER_WEIGHTS).exists()

    # every member read back: in another process of a multi-process run (rank 1) nothing is written
    (run / CHECKPOINT_NAME).unlink()
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert not train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=run,
                           context=RunContext(resume=True, progress=False)).written
    assert not (run / CHECKPOINT_NAME).exists()


def test_a_baseline_ensemble_is_refused(tmp_path, synthetic_manifest, tiny_config):
    tiny_config.model.name, tiny_config.model.filters, tiny_config.train.ensemble = "knn", None, 3
    with pytest.raises(ConfigError, match="train.ensemble=3 needs a network; model 'knn' is a baseline"):
        train_model(synthetic_manifest.select_folds([1]), tiny_config, out_dir=tmp_path,
                    context=RunContext(progress=False))
