"""The model registry: names, errors listing them, presets, build_model."""

from __future__ import annotations

import pytest
import torch

from envsound.config import ModelConfig
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.baselines import KNNBaseline, RandomForestBaseline
from envsound.models.cnn import CNN
from envsound.models.registry import (MODELS, build_model, get_model_class, is_torch_model,
                                      model_names, model_preset)


def test_names_and_classes():
    assert model_names() == ["cnn", "piczak", "dtu", "knn", "random_forest", "aclnet", "envnet2", "crnn", "resnet",
                             "wrn28", "efficientat"]
    assert get_model_class("cnn") is CNN and MODELS["knn"] is KNNBaseline
    assert [is_torch_model(n) for n in model_names()] == [True, True, True, False, False, True, True, True, True, True, True]
    for name in model_names():
        assert get_model_class(name).input_kind in ("logmel", "mfcc_stats", "waveform")


@pytest.mark.parametrize("call", [get_model_class, model_preset, is_torch_model])
def test_unknown_name_lists_valid_names(call):
    with pytest.raises(ConfigError) as info:
        call("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message and all(name in message for name in model_names())


def test_presets_are_copies_and_resolve():
    preset = model_preset("piczak")
    preset["features"]["n_mels"] = 1
    assert model_preset("piczak")["features"]["n_mels"] == 60
    for name in model_names():
        bare_config(preset=model_preset(name), model=name)  # every preset is valid config


def test_build_model_passes_settings():
    model = build_model(ModelConfig(name="cnn", filters=8, dropout=0.1), n_classes=4, in_channels=1, n_mels=32,
                        n_frames=40)
    assert isinstance(model, CNN) and model.embed_dim == 64
    assert model(torch.randn(1, 1, 32, 40)).shape == (1, 4)
    forest = build_model(ModelConfig(name="random_forest"), n_classes=4, in_channels=1, n_mels=32, n_frames=40)
    assert isinstance(forest, RandomForestBaseline) and forest.n_classes == 4
    with pytest.raises(ConfigError, match="model.filters"):
        build_model(ModelConfig(name="knn", filters=8), n_classes=4, in_channels=1, n_mels=32, n_frames=40)
    with pytest.raises(ConfigError, match="model.dropout"):
        build_model(ModelConfig(name="cnn", dropout=2.0), n_classes=4, in_channels=1, n_mels=32, n_frames=40)
    with pytest.raises(ConfigError, match="nope"):
        build_model(ModelConfig(name="nope"), n_classes=4, in_channels=1, n_mels=32, n_frames=40)


