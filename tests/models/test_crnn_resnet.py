"""The crnn and resnet models: shapes for any length, embeddings, options, gradients, transfer's head contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from envsound.config import ModelConfig
from envsound.errors import ConfigError
from envsound.models.crnn import CRNN
from envsound.models.registry import build_model, model_names
from envsound.models.resnet import BasicBlock, ResNet
from envsound.transfer.source import head_linear

# small inputs keep the tests fast; the defaults are built for (1, 128, 216)
N_MELS = 40


def build(name: str, *, n_classes: int = 5, in_channels: int = 1, n_mels: int = N_MELS, n_frames: int = 64,
          filters: int | None = 8, **options) -> nn.Module:
    cfg = ModelConfig(name=name, filters=filters, options=options)
    cfg.validate()
    return build_model(cfg, n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames)


def test_registered():
    assert {"crnn", "resnet"} <= set(model_names())
    assert CRNN.input_kind == ResNet.input_kind == "logmel"
    assert CRNN.preset == {} and ResNet.preset == {}


@pytest.mark.parametrize("name", ["crnn", "resnet"])
@pytest.mark.parametrize("n_frames", [1, 2, 7, 64, 131])
@pytest.mark.parametrize("in_channels", [1, 2])
def test_any_length_gives_logits_and_embeddings(name, n_frames, in_channels):
    model = build(name, in_channels=in_channels).eval()
    x = torch.randn(3, in_channels, N_MELS, n_frames)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert emb.shape == (3, model.embed_dim) and (emb >= 0).all()
    assert torch.allclose(model.head(emb), logits, atol=1e-5)


@pytest.mark.parametrize("name, options, embed_dim", [
    ("crnn", {}, 128),
    ("crnn", {"hidden": 16}, 32),
    ("crnn", {"rnn": "lstm", "layers": 2, "pool": "mean"}, 128),
    ("crnn", {"pool": "max"}, 128),
    ("resnet", {}, 64),
    ("resnet", {"depth": 18}, 64),
    ("resnet", {"depth": 34}, 64),
])
@pytest.mark.parametrize("multi_label", [False, True])
def test_backward_single_and_multi_label(name, options, embed_dim, multi_label):
    torch.manual_seed(0)
    model = build(name, **options).train()
    assert model.embed_dim == embed_dim
    x = torch.randn(4, 1, N_MELS, 50) * 20 - 40  # dB-like levels
    logits = model(x)
    assert logits.shape == (4, 5)  # the models return logits: the task picks the loss
    if multi_label:
        targets = (torch.rand(4, 5) > 0.5).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits, targets)
    else:
        loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert head_linear(model).weight.grad.abs().sum() > 0
    assert model.norm.bn.weight.grad.abs().sum() > 0  # the gradient reaches the input layer


def test_options_change_the_architecture():
    gru, lstm = build("crnn"), build("crnn", rnn="lstm", hidden=32, layers=2)
    assert isinstance(gru.rnn, nn.GRU) and gru.rnn.hidden_size == 64 and gru.rnn.num_layers == 1
    assert gru.rnn.bidirectional and gru.attention is not None
    assert isinstance(lstm.rnn, nn.LSTM) and lstm.rnn.hidden_size == 32 and lstm.rnn.num_layers == 2
    assert build("crnn", pool="mean").attention is None
    # frequency is pooled 32x, time 4x: 40 mel bins -> 2, the recurrent input is 4 x filters x 2
    assert gru.rnn.input_size == 4 * 8 * 2
    assert gru.sequence(torch.randn(2, 1, N_MELS, 64)).shape == (2, 16, 128)
    for depth, per_stage in ((10, [1, 1, 1, 1]), (18, [2, 2, 2, 2]), (34, [3, 4, 6, 3])):
        net = build("resnet", depth=depth)
        assert [len(stage) for stage in net.stages] == per_stage
        assert all(isinstance(block, BasicBlock) for stage in net.stages for block in stage)
    widths = [stage[0].conv2.out_channels for stage in build("resnet", filters=8).stages]
    assert widths == [8, 16, 32, 64]


def test_resnet_shortcut_is_a_projection_only_where_the_shape_changes():
    net = build("resnet", depth=18)
    first, second = net.stages[1][0], net.stages[1][1]
    assert isinstance(net.stages[0][0].shortcut, nn.Identity) and isinstance(second.shortcut, nn.Identity)
    assert isinstance(first.shortcut, nn.Sequential) and first.shortcut[0].stride == (2, 2)
    y = first(torch.randn(2, 8, 21, 33))
    assert y.shape == (2, 16, 11, 17)  # odd sizes: ceil(H / 2), as the strided 3x3 conv gives


def test_defaults_fit_the_default_features_and_stay_small():
    for cls, low, high in ((CRNN, 100_000, 1_000_000), (ResNet, 100_000, 1_000_000)):
        model = cls(n_classes=10, in_channels=1, n_mels=128, n_frames=216)
        assert low < sum(p.numel() for p in model.parameters()) < high
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 1, 128, 216)).shape == (1, 10)


@pytest.mark.parametrize("cls", [CRNN, ResNet])
def test_bad_input_is_a_config_error(cls):
    """(Bad constructor arguments: test_torch_models.test_bad_constructor_arguments_are_config_errors.)"""
    model = cls(n_classes=3, in_channels=2, n_mels=64, n_frames=41)
    with pytest.raises(ConfigError, match="features.deltas"):
        model(torch.randn(1, 1, 64, 41))
    with pytest.raises(ConfigError, match="64"):
        model(torch.randn(1, 2, 60, 41))


def test_constructor_options_are_checked_too():
    with pytest.raises(ConfigError, match=r"model 'crnn': model.options.rnn='rnn' is not valid; valid: gru\|lstm"):
        CRNN(n_classes=3, in_channels=1, n_mels=40, n_frames=41, rnn="rnn")
    with pytest.raises(ConfigError, match=r"model 'resnet': model.options.depth=50 .* valid: 10\|18\|34"):
        ResNet(n_classes=3, in_channels=1, n_mels=40, n_frames=41, depth=50)
