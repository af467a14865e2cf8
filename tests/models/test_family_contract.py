"""The family contract (:mod:`envsound.models.contract`), one set of tests for every runtime: the toy torch family
(tests/toyfamily.py, registered as tests/models/test_families.py does), the tiny BirdNET and YAMNet LiteRT runs
(tests/tinytflite.py), and the spec family: a tiny ONNX network the test exports (tests/tinyonnx.py) and the tiny
YAMNet-shaped TFLite file, each installed with a spec under a name of its own. Each is installed under its name, recognised, opened by path and by name, and asked for its
labels, licence, digest, window, embeddings and probabilities, checked against what the family computes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import tinyonnx
import tinytflite
import toyfamily
from envsound.config.frontends import FRONTENDS
from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import file_digest
from envsound.models.contract import FamilyModel, Window, open_family_model, recognise_file
from envsound.models.checkpoint import save_checkpoint
from envsound.models.families import FAMILIES

TOLERANCE = 1e-5
"""float32 against the families' numpy references (measured below 1e-6 for the tiny networks, 1.2e-7 for the toy)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def toy_reference(path: Path, windows: np.ndarray) -> tuple[np.ndarray, None]:
    state = torch.load(path, weights_only=True)
    return np.stack([toyfamily.reference_probs(window, state) for window in windows]), None


def toy_head(path: Path, embeddings: np.ndarray) -> np.ndarray:
    state = torch.load(path, weights_only=True)
    weight, bias = state[toyfamily.PREFIX + "head.weight"].numpy(), state[toyfamily.PREFIX + "head.bias"].numpy()
    return sigmoid(embeddings @ weight.T + bias)


def tiny_reference(member: str) -> Callable:
    def reference(path: Path, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        output, embedding = tinytflite.reference(member, windows)
        return (output if tinytflite.SHAPES[member][3] else sigmoid(output)), embedding  # BirdNET's are logits
    return reference


def tiny_head(member: str) -> Callable:
    def head(path: Path, embeddings: np.ndarray) -> np.ndarray:  # each class is one embedding value, as a sigmoid
        return sigmoid(embeddings[:, tinytflite.index(tinytflite.SHAPES[member][1])])
    return head


def onnx_reference(path: Path, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, embedding = tinyonnx.reference(windows)
    return sigmoid(logits), embedding


def onnx_head(path: Path, embeddings: np.ndarray) -> np.ndarray:
    return sigmoid(embeddings @ tinyonnx.WEIGHTS[:, :3] + tinyonnx.BIAS[:3])


TFLITE_SPEC = ("name: my-tflite\nlicence: MIT\nsample_rate: 16000\nwindow: 15600\nhop: 7680\n"
               "embedding: yamnet_frames/global_average_pooling2d/Mean\nlogits: Identity\nactivation: none\n"
               "labels: labels.txt\n")


def onnx_install(models: Path) -> Path:
    network = tinyonnx.write_tiny_onnx(models.parent / "mine" / "tiny.onnx")
    return tinyonnx.install_with_spec(models, network, tinyonnx.ONNX_SPEC, ["bark", "siren", "rain"])


def tflite_install(models: Path) -> Path:
    (models.parent / "mine").mkdir()
    network = tinytflite.write_tiny("yamnet", models.parent / "mine" / "tagger.tflite")
    return tinyonnx.install_with_spec(models, network, TFLITE_SPEC, [f"Class {i}" for i in range(521)])


@dataclass(frozen=True)
class Case:
    """One family's file as its user installs it, and what the contract must answer for it."""

    name: str  # the installed name
    family: str
    licence: str
    window: Window
    width: int  # embedding
    n_classes: int
    first_label: str
    install: Callable[[Path], Path]  # models folder -> the file
    reference: Callable  # (path, windows) -> (probabilities, embeddings or None)
    head: Callable  # (path, embeddings) -> probabilities: how the family's classes read its embedding


CASES = {
    "toy": Case("toy-tiny", "toy", "CC0-1.0", Window(16_000, 1.0, 0.5), 8, 3, "Dog", toyfamily.release_file,
                toy_reference, toy_head),
    "birdnet": Case("birdnet-v2.4", "litert", "CC BY-NC-SA 4.0", Window(48_000, 3.0, 3.0), 1024, 6522,
                    "Genus species0_Common 0",
                    lambda models: tinytflite.birdnet_folder(models / "birdnet-v2.4") / tinytflite.BIRDNET_FILES[0],
                    tiny_reference("birdnet-v2.4"), tiny_head("birdnet-v2.4")),
    "yamnet": Case("yamnet", "litert", "Apache-2.0", Window(16_000, 0.975, 0.48), 1024, 521, "Class 0",
                   lambda models: tinytflite.yamnet_files(models / "yamnet") / "yamnet.tflite",
                   tiny_reference("yamnet"), tiny_head("yamnet")),
    "spec-onnx": Case("my-onnx", "spec", "CC0-1.0", Window(16_000, 0.1, 0.05), 16, 3, "bark", onnx_install,
                      onnx_reference, onnx_head),
    # the tiny YAMNet-shaped file: installed with a spec, it is the spec's network, not YAMNet
    "spec-tflite": Case("my-tflite", "spec", "MIT", Window(16_000, 0.975, 0.48), 1024, 521, "Class 0",
                        tflite_install, tiny_reference("yamnet"), tiny_head("yamnet")),
}


@pytest.fixture(params=list(CASES))
def installed(request, monkeypatch, tmp_path) -> tuple[Case, Path]:
    """A family's file installed under ``$ENVSOUND_MODELS`` (the toy family registered with its frontend)."""
    monkeypatch.setitem(FRONTENDS, "toy", toyfamily.FRONTEND)
    monkeypatch.setitem(FAMILIES, "toy", toyfamily.FAMILY)
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    case = CASES[request.param]
    return case, case.install(models)


def opened(path_or_name) -> FamilyModel:
    """The file opened on the CPU in float32 (``auto`` would time the toy's precisions first: seconds)."""
    return open_family_model(path_or_name, device="cpu", precision="32")


def noise_windows(window: Window, n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, (n, window.samples)).astype(np.float32)


def test_its_file_is_recognised_by_its_own_family(installed):
    case, path = installed
    family, _ = recognise_file(path)
    assert family.name == case.family and family is FAMILIES[case.family]


def test_it_opens_by_path_and_by_installed_name_as_one_file(installed):
    case, path = installed
    by_path, by_name = opened(path), opened(case.name)
    assert isinstance(by_path, FamilyModel) and by_path.family.name == by_name.family.name == case.family
    assert by_path.path == by_name.path == path
    assert by_path.digest == by_name.digest == file_digest(path)


def test_it_says_its_labels_licence_and_window(installed):
    case, path = installed
    model = opened(path)
    assert len(model.labels) == case.n_classes and model.labels[0] == case.first_label and model.has_classes
    assert model.licence == case.licence
    assert model.window == case.window


def test_it_embeds_a_window_batch(installed):
    case, path = installed
    model = opened(path)
    windows = noise_windows(model.window)
    embeddings = model.window_embeddings(windows)
    assert embeddings.shape == (3, case.width) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all() and not np.allclose(embeddings[0], embeddings[1])
    _, expected = case.reference(path, windows)
    if expected is not None:
        assert np.abs(embeddings - expected).max() < TOLERANCE


def test_its_probabilities_are_its_classes_read_from_its_embedding(installed):
    case, path = installed
    model = opened(path)
    windows = noise_windows(model.window)
    probs = model.window_probs(windows)
    assert probs.shape == (3, case.n_classes) and probs.dtype == np.float32
    expected, _ = case.reference(path, windows)
    assert np.abs(probs - expected).max() < TOLERANCE
    assert np.abs(case.head(path, model.window_embeddings(windows)) - probs).max() < TOLERANCE


def test_a_window_of_another_length_is_refused(installed):
    _, path = installed
    model = opened(path)
    with pytest.raises(ConfigError, match=f"takes \\(n, {model.window.samples}\\)"):
        model.window_embeddings(np.zeros((2, model.window.samples + 1), np.float32))


def test_a_file_of_no_family_is_refused_in_one_line(tmp_path, monkeypatch):
    text = tmp_path / "notes.pt"
    text.write_text("not weights\n")
    other = tinytflite.write_tiny_range(tmp_path / "range.tflite", *tinytflite.tiny_range_weights(4))
    assert recognise_file(text) is None and recognise_file(other) is None and recognise_file(tmp_path) is None
    with pytest.raises(CheckpointError, match="notes.pt: not a model file"):
        open_family_model(text)
    with pytest.raises(CheckpointError, match="range.tflite: a model file no family recognises .*; expected an "
                                              "EfficientAT"):
        open_family_model(other)
    monkeypatch.setitem(FRONTENDS, "toy", toyfamily.FRONTEND)
    monkeypatch.setitem(FAMILIES, "toy", toyfamily.FAMILY)
    release = toyfamily.release_file(tmp_path)
    checkpoint = save_checkpoint(tmp_path / "model.ckpt", toyfamily.toy_checkpoint(  # a model, not a family's file
        torch.load(release, weights_only=True), path=release))
    with pytest.raises(CheckpointError, match="model.ckpt: an envsound model.ckpt; a family's model takes an "
                                              "EfficientAT AudioSet release"):
        open_family_model(checkpoint)


def test_a_litert_family_file_opens_through_the_contract_without_torch(tmp_path):
    """A TFLite family's file is recognised and run by LiteRT alone: the light install (no torch) opens it."""
    path = tinytflite.yamnet_files(tmp_path) / "yamnet.tflite"
    code = ("import sys, numpy as np; from envsound.models.contract import open_family_model; "
            f"m = open_family_model({str(path)!r}); m.window_probs(np.zeros((1, m.window.samples), np.float32)); "
            "print(m.family.name, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["litert", "False"], done.stderr[-2000:]
