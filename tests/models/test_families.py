"""Model families and frontends as plug-ins (issue 66, item 4): a second family (``tests/toyfamily.py``: one module
and two records) is recognised by the one door for model files, predicts its reference outputs, and exports to ONNX
with the same probabilities, with no other change to the package. No real second family's weights can be had here
(YAMNet's and PANNs' are on no package registry this machine reaches), so the family is a toy with random weights and
its reference outputs come from its own numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import toyfamily
from envsound.config import FeatureConfig
from envsound.config.frontends import FRONTENDS, frontend_spec
from envsound.errors import ConfigError
from envsound.features.mel import logmel_frontend
from envsound.features.windows import window_pad_value
from envsound.models.families import FAMILIES, by_download_name, installed_names
from envsound.models.files import RELEASE, open_model_file

RATE = toyfamily.SETTINGS["sample_rate"]
PARITY = 1e-4
"""Probabilities against the family's float64 numpy code; measured 1.2e-7 (float32 against float64)."""
ONNX_PARITY = 1e-4
"""ONNX against torch (tests/inference/test_onnx.py asks 1e-3 of envsound's own models); measured 1.5e-6."""


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(FRONTENDS, "toy", toyfamily.FRONTEND)
    monkeypatch.setitem(FAMILIES, "toy", toyfamily.FAMILY)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    return toyfamily.release_file(tmp_path)


def reference_inputs() -> dict[str, np.ndarray]:
    """Four one-second clips (one window each): a tone, noise, a chirp and digital silence."""
    t = np.arange(RATE) / RATE
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, RATE)
    clips = {"tone": 0.5 * np.sin(2 * np.pi * 440 * t), "noise": noise,
             "chirp": 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t), "silence": np.zeros(RATE)}
    return {name: clip.astype(np.float32) for name, clip in clips.items()}


def test_the_frontend_is_asked_not_named():
    assert frontend_spec("efficientat").lost_samples == 1 and frontend_spec("envsound").mel_scale == "slaney"
    efficientat = FeatureConfig(frontend="efficientat", sample_rate=32000, win_length=800, f_max=15000.0)
    assert efficientat.frames(32000) == 1 + 31999 // 512 and window_pad_value(efficientat) == pytest.approx((-1.4025,),
                                                                                                          abs=1e-4)
    with pytest.raises(ConfigError, match="features.frontend='toy'.*'envsound' or 'efficientat'"):
        FeatureConfig(frontend="toy").validate()


def test_a_second_family_is_recognised_by_the_one_door(toy):
    source = open_model_file(toy)
    assert source.kind == RELEASE and source.checkpoint.labels == toyfamily.LABELS
    features = source.checkpoint.config.features
    assert source.checkpoint.config.model.name == "toy" and features.frontend == toyfamily.FAMILY.frontend == "toy"
    assert features.window_frames == 101 and window_pad_value(features) == (toyfamily.SILENCE,)
    assert isinstance(logmel_frontend(features), toyfamily.ToyMel)
    assert "toy-tiny" in installed_names() and by_download_name("toy-tiny") is toyfamily.RELEASES["tiny_as"]
    (toy.parent / "models").mkdir()
    toy.rename(toy.parent / "models" / toy.name)  # installed: found by its name
    assert open_model_file("toy-tiny").kind == RELEASE


def test_the_second_family_predicts_its_reference_outputs(toy):
    from envsound.inference.predictor import Predictor

    state = torch.load(toy, weights_only=True)
    model = Predictor.from_checkpoint(toy, device="cpu", precision="32").model
    worst = 0.0
    for name, clip in reference_inputs().items():
        probs, starts = model.waveform_probs(clip)
        assert list(starts) == [0], name
        worst = max(worst, float(np.abs(probs[0] - toyfamily.reference_probs(clip, state)).max()))
    assert worst < PARITY, worst


def test_the_second_family_exports_to_onnx_with_the_same_probabilities(toy, tmp_path):
    from envsound.inference.onnx_export import export_onnx
    from envsound.inference.predictor import Predictor

    torch_model = Predictor.from_checkpoint(toy, device="cpu", precision="32").model
    onnx_model = Predictor.from_checkpoint(export_onnx(toy, tmp_path / "toy.onnx")).model
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, 3 * RATE).astype(np.float32)
    for length in (int(0.3 * RATE), RATE, int(2.5 * RATE)):  # padded with the frontend's silence, one, several
        expected, starts = torch_model.waveform_probs(noise[:length])
        got, onnx_starts = onnx_model.waveform_probs(noise[:length])
        assert list(onnx_starts) == list(starts)
        assert np.abs(got - expected).max() < ONNX_PARITY
