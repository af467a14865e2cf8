"""The torch models: shapes, gradients, bf16 autocast + channels_last, embeddings, argument errors."""

from __future__ import annotations

import pytest
import torch

from envsound.config import FeatureConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.cnn import CNN
from envsound.models.dtu import DTUClassifier, DTUEncoder
from envsound.models.crnn import CRNN
from envsound.models.piczak import Piczak
from envsound.models.registry import build_model, model_preset
from envsound.models.resnet import ResNet

# (name, in_channels, n_mels, n_frames, expected embedding size); small sizes keep the tests fast.
CASES = [
    ("cnn", 1, 64, 100, 128),
    ("cnn", 2, 40, 37, 128),
    ("piczak", 2, 60, 41, 5000),
    ("dtu", 1, 64, 88, 128),
    ("crnn", 1, 64, 100, 128),
    ("crnn", 2, 40, 37, 128),
    ("resnet", 1, 64, 100, 128),
    ("resnet", 2, 40, 37, 128),
]


def _build(name: str, in_channels: int, n_mels: int, n_frames: int, n_classes: int = 7) -> torch.nn.Module:
    cfg = bare_config(model=name).model
    return build_model(cfg, n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames)


@pytest.mark.parametrize("name,in_channels,n_mels,n_frames,embed_dim", CASES)
def test_forward_backward_embed(name, in_channels, n_mels, n_frames, embed_dim):
    torch.manual_seed(0)
    model = _build(name, in_channels, n_mels, n_frames)
    x = torch.randn(3, in_channels, n_mels, n_frames) * 20 - 40  # dB-like levels
    logits = model(x)
    assert logits.shape == (3, 7) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        emb = model.embed(x)
        assert emb.shape == (3, embed_dim)
        # embed is the representation the output layer reads
        assert torch.allclose(model.head(emb), model(x), atol=1e-5)


@pytest.mark.parametrize("name,in_channels,n_mels,n_frames,embed_dim", CASES)
def test_bf16_autocast_channels_last_matches_fp32(name, in_channels, n_mels, n_frames, embed_dim):
    torch.manual_seed(0)
    model = _build(name, in_channels, n_mels, n_frames).eval()
    x = torch.randn(2, in_channels, n_mels, n_frames)
    with torch.no_grad():
        ref = model(x)
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fast(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert torch.allclose(out.float(), ref, atol=0.1 * ref.abs().max().item() + 1e-2)
    # training step under autocast + channels_last
    fast.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fast(x.contiguous(memory_format=torch.channels_last)).float().logsumexp(1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters() if p.grad is not None)


@pytest.mark.parametrize("n_frames", [216, 431, 9, 1])
def test_cnn_accepts_any_length(n_frames):
    model = CNN(n_classes=5, in_channels=1, n_mels=128, n_frames=216).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 128, n_frames)).shape == (2, 5)


def test_cnn_defaults_fit_default_features():
    features = FeatureConfig()
    model = CNN(n_classes=10, in_channels=1, n_mels=features.n_mels, n_frames=features.window_frames)
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 2_000_000
    assert model(torch.randn(2, 1, features.n_mels, features.window_frames)).shape == (2, 10)


def test_cnn_filters_and_dropout_are_used():
    small = CNN(n_classes=3, in_channels=1, n_mels=32, n_frames=32, filters=8, dropout=0.0)
    big = CNN(n_classes=3, in_channels=1, n_mels=32, n_frames=32, filters=16)
    assert small.embed_dim == 64 and big.embed_dim == 128
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
    small.train()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(small.head(small.embed(x)), small(x))  # dropout 0 -> train forward is deterministic


def test_input_of_wrong_channels_or_mels_is_config_error():
    model = CNN(n_classes=3, in_channels=2, n_mels=64, n_frames=50)
    with pytest.raises(ConfigError, match="features.deltas"):
        model(torch.randn(1, 1, 64, 50))
    with pytest.raises(ConfigError, match="64"):
        model(torch.randn(1, 2, 60, 50))


def test_piczak_matches_the_paper(capsys):
    cfg = bare_config(preset=model_preset("piczak"), model="piczak")
    features = cfg.features
    assert features.n_mels == 60 and features.deltas and features.window_frames == 41
    assert features.eval_hop_frames == 20
    model = build_model(cfg.model, n_classes=50, in_channels=2, n_mels=60, n_frames=features.window_frames)
    n_params = sum(p.numel() for p in model.parameters())
    with capsys.disabled():
        print(f"\npiczak parameters (50 classes): {n_params:,}")
    # conv1 2*57*6*80, conv2 80*80*3, FC 240->5000->5000->50: about 26.3 M, dominated by the 5000x5000 layer
    assert 25_500_000 < n_params < 27_000_000
    assert model.flat_dim == 80 * 1 * 3
    conv1 = model.features[0]
    assert conv1.kernel_size == (57, 6) and conv1.out_channels == 80


def test_piczak_rejects_too_small_input_and_wrong_length():
    with pytest.raises(ConfigError, match="n_mels >= 60"):
        Piczak(n_classes=10, in_channels=2, n_mels=40, n_frames=41)
    model = Piczak(n_classes=10, in_channels=2, n_mels=60, n_frames=41)
    with pytest.raises(ConfigError, match="window"):
        model(torch.randn(1, 2, 60, 80))


def test_dtu_encoder_returns_switches_that_unpool():
    torch.manual_seed(0)
    encoder = DTUEncoder(in_channels=1, n_mels=64, n_frames=27, filters=8)
    x = torch.randn(2, 1, 64, 27)
    z, indices, sizes = encoder(x, return_indices=True)
    assert z.shape == (2, 8, 8, 3) and encoder.out_shape == (8, 8, 3)
    assert [tuple(s) for s in sizes] == [(2, 8, 64, 27), (2, 8, 32, 13), (2, 8, 16, 6)]
    assert [tuple(i.shape) for i in indices] == [(2, 8, 32, 13), (2, 8, 16, 6), (2, 8, 8, 3)]
    assert torch.equal(encoder(x), z)
    # the switches invert the last pool exactly where the maxima were (odd 27 -> 13 restored via output_size)
    unpool = torch.nn.MaxUnpool2d(2)
    restored = unpool(z, indices[-1], output_size=sizes[-1])
    assert restored.shape == sizes[-1] and torch.equal(restored.amax(dim=(2, 3)), z.amax(dim=(2, 3)))
    first = unpool(torch.ones(sizes[0][0], 8, *indices[0].shape[2:]), indices[0], output_size=sizes[0])
    assert first.shape == sizes[0] and first.sum() == indices[0].numel()


def test_dtu_classifier_structure_and_weight_transfer():
    model = DTUClassifier(n_classes=10, in_channels=1, n_mels=128, n_frames=216)
    assert [c.kernel_size for c in model.encoder.convs] == [(5, 5), (3, 3), (3, 3)]
    assert all(c.out_channels == 64 for c in model.encoder.convs)
    assert model.flat_dim == 64 * 16 * 27 and model.fc[0].out_features == 128
    other = DTUEncoder(in_channels=1, n_mels=128, n_frames=216)
    model.encoder.load_state_dict(other.state_dict())  # strict: the names match
    assert torch.equal(model.encoder.convs[0].weight, other.convs[0].weight)
    with pytest.raises(ConfigError, match="built for"):
        model(torch.randn(1, 1, 128, 100))
    with pytest.raises(ConfigError, match="too small"):
        DTUEncoder(in_channels=1, n_mels=4, n_frames=100)


@pytest.mark.parametrize("cls", [CNN, Piczak, DTUClassifier, CRNN, ResNet])
def test_bad_constructor_arguments_are_config_errors(cls):
    ok = dict(n_classes=3, in_channels=2, n_mels=64, n_frames=41)
    with pytest.raises(ConfigError, match="n_classes=0"):
        cls(**{**ok, "n_classes": 0})
    with pytest.raises(ConfigError, match="filters=0"):
        cls(**ok, filters=0)
    with pytest.raises(ConfigError, match="dropout=1.5"):
        cls(**ok, dropout=1.5)


@pytest.mark.parametrize("cls", [CNN, Piczak, DTUClassifier, CRNN, ResNet])
def test_contract_attributes(cls):
    assert cls.input_kind == "logmel" and isinstance(cls.preset, dict)


@pytest.mark.parametrize("in_channels, height, channels_last, banded", [
    (2, 60, False, True), (2, 60, True, True), (1, 57, False, True), (3, 64, False, True),
    (2, 70, False, False),  # 14 offsets > MAX_OFFSETS: the plain Conv2d
])
def test_band_conv_gives_conv2d_outputs_and_gradients(in_channels, height, channels_last, banded, monkeypatch):
    """piczak's conv1 trains as a Conv1d per mel offset (fast on CPU): the same numbers as the Conv2d it replaces,
    and the plain Conv2d wherever it does not train (eval mode, no_grad, inference_mode: evaluation and export)."""
    from envsound.models.blocks import BandConv2d

    conv1d_calls = []
    real_conv1d = torch.nn.functional.conv1d
    monkeypatch.setattr(torch.nn.functional, "conv1d", lambda *a, **k: conv1d_calls.append(1) or real_conv1d(*a, **k))
    torch.manual_seed(0)
    band = BandConv2d(in_channels, 8, (57, 6))
    plain = torch.nn.Conv2d(in_channels, 8, (57, 6))
    plain.load_state_dict(band.state_dict())  # the same keys: checkpoints of either load in the other
    x = torch.randn(3, in_channels, height, 41)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = band(xa), plain(xb)
    assert len(conv1d_calls) == int(banded)
    assert ya.shape == yb.shape == (3, 8, height - 56, 36)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(yb)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(band.weight.grad, plain.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(band.bias.grad, plain.bias.grad, atol=1e-4, rtol=1e-5)
    conv1d_calls.clear()
    with torch.no_grad():
        torch.testing.assert_close(band(x), plain(x), atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        band(x)
    band.eval()
    band(x.clone().requires_grad_())
    assert conv1d_calls == []
    assert band.train()(x[:0]).shape == (0, 8, height - 56, 36)  # an empty batch, as Conv2d allows
