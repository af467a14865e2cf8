"""wrn28 (Wide-ResNet-28-2 on log-mels): the published layout, any input length, gradients, options, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from envsound.config import ModelConfig
from envsound.errors import ConfigError
from envsound.models.registry import build_model, model_names
from envsound.models.wrn import PreActBlock, WideResNet


def build(**options) -> WideResNet:
    cfg = ModelConfig(name="wrn28", filters=options.pop("filters", 4), options=options)
    cfg.validate()
    return build_model(cfg, n_classes=5, in_channels=options.pop("in_channels", 1), n_mels=32, n_frames=40)


def test_the_default_is_wrn_28_2():
    assert "wrn28" in model_names() and WideResNet.input_kind == "logmel"
    net = WideResNet(n_classes=10, in_channels=1, n_mels=128, n_frames=216)
    blocks = [m for m in net.groups if isinstance(m, PreActBlock)]
    assert len(blocks) == 12 and [b.conv2.out_channels for b in blocks[::4]] == [32, 64, 128]  # 16 x 2 x (1, 2, 4)
    assert 1_400_000 < sum(p.numel() for p in net.parameters()) < 1_550_000  # WRN-28-2: 1.5 M parameters
    assert net.embed_dim == 128


@pytest.mark.parametrize("n_frames", [1, 3, 40, 77])
def test_any_length_gives_logits_and_gradients_reach_the_input_layer(n_frames):
    torch.manual_seed(0)
    net = build().train()
    x = torch.randn(4, 1, 32, n_frames) * 20 - 40
    logits = net(x)
    assert logits.shape == (4, 5) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.norm.bn.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(net.eval().head(net.embed(x)), net(x), atol=1e-5)


def test_options_and_bad_values():
    assert len(build(depth=10).groups) == 3 and build(widen=4).embed_dim == 4 * 4 * 4
    with pytest.raises(ConfigError, match="6n \\+ 4"):
        build(depth=12)
    with pytest.raises(ConfigError, match="widen"):
        build(widen=0)
    with pytest.raises(ConfigError, match="features.deltas"):
        build()(torch.randn(1, 2, 32, 40))


def test_wrn28_trains_and_exports(tmp_path, synthetic_manifest):
    from conftest import TINY_OVERRIDES
    from envsound.config.files import bare_config
    from envsound.inference.onnx_export import export_onnx, parity_check
    from envsound.recipes.context import RunContext
    from envsound.recipes.train import train_model

    config = bare_config(overrides=TINY_OVERRIDES + ("model.name=wrn28", "model.filters=4",
                                                     "model.options.depth=10", "train.max_epochs=2"))
    result = train_model(synthetic_manifest.select_folds([1]), config, out_dir=tmp_path,
                         context=RunContext(progress=False))
    assert parity_check(result.checkpoint, export_onnx(result.checkpoint, tmp_path / "m.onnx")) < 1e-3
