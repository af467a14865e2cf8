"""The raw-waveform models (aclnet, envnet2): shapes, limits, kind checks, and a real few-step training run of each
on synthetic WAV files through checkpoint, evaluation and streaming prediction."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from envsound.config import ModelConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.evaluation.evaluate import evaluate_model
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.features.windows import window_starts
from envsound.inference.predictor import Predictor
from envsound.models import aclnet, envnet2
from envsound.models.checkpoint import load_checkpoint
from envsound.models.clip import ClipModel, build_network, input_shape
from envsound.models.registry import build_model, check_feature_kind, feature_kind, model_names, model_preset
from envsound.recipes.context import RunContext
from envsound.recipes.train import train_model

WAVEFORM = ("aclnet", "envnet2")

# small and fast: 16 kHz; aclnet 0.5-s windows at width 4, envnet2 1.5-s windows (its minimum is 1.48 s at 16 kHz)
# at its smallest width 10
TINY = {
    "aclnet": ("features.sample_rate=16000", "features.window_seconds=0.5", "features.eval_hop_seconds=0.25",
               "model.filters=4"),
    "envnet2": ("features.sample_rate=16000", "features.window_seconds=1.5", "features.eval_hop_seconds=0.5",
                "model.filters=10"),
}
TRAIN = ("train.max_epochs=2", "train.patience=0", "train.batch_size=16", "train.lr=0.003",
         "train.val_fraction=0.25", "augment.mixup_alpha=0.2", "augment.time_roll=true", "augment.spec_augment=true")


def tiny_config(name: str, *extra: str):
    return bare_config(preset=model_preset(name), model=name, overrides=TINY[name] + TRAIN + extra)


def build(name: str, n_samples: int, filters: int | None = None, n_classes: int = 7):
    return build_model(ModelConfig(name=name, filters=filters), n_classes=n_classes, in_channels=1, n_mels=1,
                       n_frames=n_samples)


def test_registry_lists_the_waveform_models_with_waveform_presets():
    names = model_names()
    for name in WAVEFORM:
        assert name in names
        assert feature_kind(name) == "waveform"
        config = bare_config(preset=model_preset(name), model=name)
        assert config.features.kind == "waveform"
        assert input_shape(config.features) == (1, 1, config.features.window_samples)
    assert [feature_kind(n) for n in ("cnn", "piczak", "dtu", "knn", "random_forest")] == ["logmel"] * 5
    assert bare_config(preset=model_preset("aclnet"), model="aclnet").features.window_samples == 20480
    assert bare_config(preset=model_preset("envnet2"), model="envnet2").features.window_samples == 33325


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("n_samples", [aclnet.MIN_SAMPLES, 4000, 20480])
def test_aclnet_shapes_for_any_length_and_both_layouts(batch, n_samples):
    model = build("aclnet", 20480, filters=4).eval()
    with torch.no_grad():
        a = model(torch.randn(batch, n_samples))
        b = model(torch.randn(batch, 1, n_samples))
    assert a.shape == b.shape == (batch, 7)
    assert model.embed(torch.randn(batch, n_samples)).shape == (batch, 64)


def test_aclnet_llf_pool_sets_the_frame_rate_and_the_shortest_input():
    # the aclnet2018 preset's 44.1-kHz windows of 1.28 s: 128 frames of 440 samples, as the paper's 10-ms LLF frames
    model = build_model(ModelConfig(name="aclnet", filters=4, options={"llf_pool": 110}), n_classes=3, in_channels=1,
                        n_mels=1, n_frames=56448).eval()
    with torch.no_grad():
        assert model.llf(torch.randn(1, 1, 56448)).shape == (1, 64, 128)
        assert model(torch.randn(2, model.min_samples)).shape == (2, 3)
    assert model.min_samples == aclnet.min_samples(110) > aclnet.MIN_SAMPLES == aclnet.min_samples(40)
    with pytest.raises(ConfigError, match="too short"):
        model(torch.randn(1, model.min_samples - 1))
    with pytest.raises(ConfigError, match="llf_pool"):
        build_model(ModelConfig(name="aclnet", options={"llf_pool": 0}), n_classes=3, in_channels=1, n_mels=1,
                    n_frames=56448)


def test_aclnet_separable_makes_conv4_to_11_depthwise_separable():
    standard = build("aclnet", 20480, filters=8)
    separable = build_model(ModelConfig(name="aclnet", filters=8, options={"separable": True}), n_classes=7,
                            in_channels=1, n_mels=1, n_frames=20480)
    depthwise = [m for m in separable.hlf.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 8  # conv4-11; conv3 has one input channel and stays standard
    assert all(m.groups == m.in_channels == m.out_channels and m.kernel_size == (3, 3) for m in depthwise)
    n_params = [sum(p.numel() for p in m.parameters()) for m in (standard, separable)]
    assert n_params[1] < n_params[0] / 5
    assert separable(torch.randn(2, 20480)).shape == (2, 7)
    # no options is the architecture of aclnet checkpoints written before the options existed
    assert list(standard.state_dict()) == list(build("aclnet", 20480, filters=8).state_dict())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("n_samples, filters", [(envnet2.MIN_SAMPLES, 10), (33325, 12)])
def test_envnet2_shapes_at_its_built_length(batch, n_samples, filters):
    model = build("envnet2", n_samples, filters=filters).eval()
    with torch.no_grad():
        assert model(torch.randn(batch, n_samples)).shape == (batch, 7)
        assert model(torch.randn(batch, 1, n_samples)).shape == (batch, 7)
    assert model.embed(torch.randn(2, n_samples)).shape == (2, 128 * filters)


def test_envnet2_paper_size_matches_the_released_code():
    """66,650 samples and the paper's widths give the authors' fc11 input of 256 x 10 x 8."""
    model = envnet2.EnvNet2(n_classes=50, in_channels=1, n_mels=1, n_frames=66650)
    assert model.flat_dim == 256 * 10 * 8
    assert model.fc[0].out_features == 4096


@pytest.mark.parametrize("name", WAVEFORM)
def test_too_short_windows_name_the_minimum(name):
    minimum = {"aclnet": aclnet.MIN_SAMPLES, "envnet2": envnet2.MIN_SAMPLES}[name]
    with pytest.raises(ConfigError, match=rf"{name}.*>= {minimum} samples"):
        build(name, minimum - 1, filters=10)
    model = build(name, minimum, filters=10)
    with pytest.raises(ConfigError, match=rf"{minimum - 1} samples is too short.*>= {minimum}"):
        model(torch.randn(2, minimum - 1))
    config = tiny_config(name, "features.window_seconds=0.005")
    with pytest.raises(ConfigError, match=f">= {minimum} samples"):
        build_network(config, 10)


def test_input_layout_and_width_errors():
    with pytest.raises(ConfigError, match="not a waveform batch"):
        build("aclnet", 8000, filters=4)(torch.randn(2, 1, 32, 100))
    with pytest.raises(ConfigError, match="mono waveform"):
        build_model(ModelConfig(name="aclnet"), n_classes=3, in_channels=1, n_mels=64, n_frames=8000)
    with pytest.raises(ConfigError, match="model.filters=8 is too small; need >= 10"):
        build("envnet2", 33325, filters=8)
    model = build("envnet2", 33325, filters=10)
    with pytest.raises(ConfigError, match="does not match the 33325"):
        model(torch.randn(1, 40000))


@pytest.mark.parametrize("name, n_samples", [("aclnet", 8000), ("envnet2", envnet2.MIN_SAMPLES)])
def test_bf16_channels_last_training_step(name, n_samples):
    """As the Lightning module runs them: weights in channels_last, 3-D input as it comes, bf16 autocast."""
    torch.manual_seed(0)
    model = build(name, n_samples, filters=10).to(memory_format=torch.channels_last).train()
    x = torch.randn(4, 1, n_samples)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.shape == (4, 7) and logits.dtype == torch.bfloat16
    torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():  # channels_last and contiguous weights compute the same function
        fast = model(x)
        plain = model.to(memory_format=torch.contiguous_format)(x)
    assert torch.allclose(fast, plain, atol=1e-4)


def test_kind_mismatch_is_a_config_error(tmp_path, synthetic_manifest):
    with pytest.raises(ConfigError, match="'aclnet' takes features.kind=waveform.*features.kind=logmel"):
        build_network(tiny_config("aclnet", "features.kind=logmel"), 10)
    mel_with_waveform = bare_config(overrides=("model.name=cnn", "features.kind=waveform"))
    with pytest.raises(ConfigError, match="'cnn' takes features.kind=logmel"):
        build_network(mel_with_waveform, 10)
    with pytest.raises(ConfigError, match="'knn' takes features.kind=logmel"):
        check_feature_kind("knn", "waveform")
    with pytest.raises(ConfigError, match="'envnet2' takes features.kind=waveform"):  # before any audio is decoded
        train_model(synthetic_manifest.select_folds([1]), tiny_config("envnet2", "features.kind=logmel"),
                    out_dir=tmp_path / "run", context=RunContext(progress=False))
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def aclnet_run(tmp_path_factory, synthetic_manifest):
    out = tmp_path_factory.mktemp("aclnet")
    result = train_model(synthetic_manifest.select_folds([1, 2]), tiny_config("aclnet"), out_dir=out,
                         context=RunContext(cache=FeatureCache(out / "cache"), progress=False))
    return result


@pytest.mark.parametrize("name", WAVEFORM)
def test_waveform_model_trains_reloads_and_evaluates(tmp_path, synthetic_manifest, aclnet_run, name):
    if name == "aclnet":
        result = aclnet_run
    else:
        result = train_model(synthetic_manifest.select_folds([1, 2]), tiny_config(name), out_dir=tmp_path,
                             context=RunContext(cache=FeatureCache(tmp_path / "cache"), progress=False))
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.config.model.name == name and checkpoint.config.features.kind == "waveform"
    assert result.epochs == 2 and result.n_val > 0 and result.best_score is not None  # validated on waveform windows
    model = ClipModel.from_checkpoint(checkpoint)
    evaluation = evaluate_model(model, synthetic_manifest.select_folds([5]), progress=False)
    assert evaluation.y_prob.shape == (len(synthetic_manifest.select_folds([5])), len(synthetic_manifest.labels))
    assert np.allclose(evaluation.y_prob.sum(axis=1), 1, atol=1e-4)


def test_waveform_predictor_agrees_with_evaluation(aclnet_run, synthetic_manifest):
    """A clip shorter than a block is scored by predict exactly as evaluation scores it."""
    records = synthetic_manifest.select_folds([5]).records[:3]
    model = ClipModel.from_checkpoint(load_checkpoint(aclnet_run.checkpoint))
    _, feats, _ = extract_features(records, model.config.features, cache=None, progress=False)
    assert feats[0].shape == (1, int(1.5 * 16000))
    expected = model.predict_clips(feats)
    predictor = Predictor.from_checkpoint(aclnet_run.checkpoint)
    predictor.model.open_set = None  # the closed-set probabilities, as evaluation scores them (no open-set gate)
    for record, probs in zip(records, expected):
        got = {t["label"]: t["score"] for t in predictor.predict_file(record.path, top_k=10).top}
        assert [got[label] for label in predictor.labels] == pytest.approx(probs.tolist(), abs=2e-4)


def test_waveform_predictor_streams_a_long_file_with_segments(tmp_path, aclnet_run, synthetic_manifest):
    clips = [sf.read(r.path, dtype="float32")[0] for r in synthetic_manifest.records[:6]]
    rate = sf.info(synthetic_manifest.records[0].path).samplerate
    audio = np.concatenate(clips)
    path = tmp_path / "long.wav"
    sf.write(path, audio, rate)
    whole = Predictor.from_checkpoint(aclnet_run.checkpoint, block_seconds=600).predict_file(path, segments=True)
    blocked = Predictor.from_checkpoint(aclnet_run.checkpoint, block_seconds=2).predict_file(path, segments=True)
    feats = load_checkpoint(aclnet_run.checkpoint).config.features
    n = int(round(len(audio) * feats.sample_rate / rate))
    starts = window_starts(n, window=feats.window_samples, hop=int(round(feats.eval_hop_seconds * 16000)))
    assert len(whole.segments) == len(starts)
    assert [s["start"] for s in whole.segments] == [round(s / 16000, 3) for s in starts]
    assert [s["start"] for s in blocked.segments] == [s["start"] for s in whole.segments]
    assert whole.segments[-1]["end"] == pytest.approx(len(audio) / rate, abs=0.01)
    assert blocked.top[0]["label"] == whole.top[0]["label"]
    assert blocked.top[0]["score"] == pytest.approx(whole.top[0]["score"], abs=0.02)
