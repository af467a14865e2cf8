import torch

import pytest

from envsound.config import resolve_config
from envsound.errors import CheckpointError
from envsound.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from envsound.models.clip import ClipModel, build_network


def test_checkpoint_round_trip_describes_itself(tmp_path):
    config = resolve_config(overrides=["model.filters=8", "features.n_mels=32"])
    net = build_network(config, 3)
    path = save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b", "c"],
                                                           state_dict=net.state_dict(), meta={"dataset": "x"}))
    loaded = load_checkpoint(path)
    assert loaded.config == config and loaded.labels == ["a", "b", "c"]
    assert loaded.meta["dataset"] == "x" and loaded.meta["torch_version"] == torch.__version__
    model = ClipModel.from_checkpoint(loaded)
    x = torch.randn(2, 1, 32, config.features.window_frames)
    net.eval()
    with torch.inference_mode():
        assert torch.allclose(model.network(x), net(x))
    assert not list(tmp_path.glob("*.tmp")), "atomic save left a temporary file"


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not an envsound checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="plain.ckpt: not an envsound checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_weights_that_do_not_fit_are_refused(tmp_path):
    config = resolve_config(overrides=["model.filters=8", "features.n_mels=32"])
    other = resolve_config(overrides=["model.filters=16", "features.n_mels=32"])
    state = build_network(other, 3).state_dict()
    save_checkpoint(tmp_path / "m.ckpt", Checkpoint(config=config, labels=["a", "b", "c"], state_dict=state))
    with pytest.raises(CheckpointError, match="do not fit"):
        ClipModel.from_checkpoint(load_checkpoint(tmp_path / "m.ckpt"))
