"""Installing your own network with a spec (issue 76): what a spec may say, what the file contradicts refused at
install in one line naming the field (nothing installed then, a member installed before kept), and a network with no
classes of its own (embeddings only). The networks are the tiny ONNX one the tests export (tests/tinyonnx.py) and the
tiny YAMNet-shaped TFLite file (tests/tinytflite.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinyonnx
from envsound.errors import CheckpointError, ConfigError
from envsound.models.frozen import FROZEN
from envsound.models.spec import SPEC_FILE, read_spec
from envsound.transfer.install_spec import install_spec

SPEC = {"name": "my-onnx", "licence": "CC0-1.0", "sample_rate": 16000, "window": 1600, "hop": 800,
        "embedding": "frames/embed", "logits": "logits", "activation": "sigmoid", "labels": "labels.txt"}


@pytest.fixture()
def mine(tmp_path, monkeypatch) -> Path:
    """A folder holding the tiny ONNX network, three labels, and an empty models folder set as $ENVSOUND_MODELS."""
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = tmp_path / "mine"
    tinyonnx.write_tiny_onnx(folder / "tiny.onnx", metadata={"sample_rate": "16000"})
    (folder / "labels.txt").write_text("bark\nsiren\nrain\n")
    return folder


def spec_file(folder: Path, **changes) -> Path:
    """The spec, with ``changes`` (a value ``None`` drops the field), written as YAML beside the network."""
    fields = {key: value for key, value in {**SPEC, **changes}.items() if value is not None}
    path = folder / "spec.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in fields.items()))
    return path


def test_an_installed_member_is_a_frozen_network_by_name(mine, tmp_path):
    release = install_spec(mine / "tiny.onnx", spec_file(mine))
    assert "my-onnx" in FROZEN and FROZEN["my-onnx"] == release
    assert (release.runtime, release.embedding_width, release.n_classes, release.input_samples) == ("onnx", 16, 3,
                                                                                                    1600)
    assert (release.window_seconds, release.hop_seconds, release.licence) == (0.1, 0.05, "CC0-1.0")
    assert sorted(p.name for p in (tmp_path / "models" / "my-onnx").iterdir()) == [SPEC_FILE, "labels.txt",
                                                                                   "tiny.onnx"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"embedding": "nope"}, "embedding: no tensor 'nope' in tiny.onnx \\(outputs: logits\\)"),
    ({"logits": "scores"}, "logits: no tensor 'scores' in tiny.onnx"),
    ({"window": 1800, "hop": 900}, "window: tiny.onnx takes 1600 samples a window, not 1800"),
    ({"sample_rate": 22050}, "sample_rate: tiny.onnx's metadata says sample_rate=16000 Hz; the spec says 22050"),
    ({"input": "batch,1,samples"}, "input: tiny.onnx takes batch,samples \\(shape \\[None, 1600\\]\\), not "
                                   "batch,1,samples"),
])
def test_what_the_file_contradicts_is_refused_naming_the_field(mine, tmp_path, changes, message):
    with pytest.raises(ConfigError, match=f"spec.yaml: {message}"):
        install_spec(mine / "tiny.onnx", spec_file(mine, **changes))
    assert not (tmp_path / "models" / "my-onnx" / SPEC_FILE).exists() and "my-onnx" not in FROZEN


def test_a_window_the_network_refuses_is_refused_at_install(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    network = tinyonnx.write_tiny_onnx(tmp_path / "free.onnx", samples="t")  # any length: it reshapes by 16
    (tmp_path / "labels.txt").write_text("bark\nsiren\nrain\n")
    with pytest.raises(ConfigError, match="window: free.onnx refused a window of 1601 samples"):
        install_spec(network, spec_file(tmp_path, window=1601))
    assert install_spec(network, spec_file(tmp_path, window=1616, hop=808)).input_samples == 1616


def test_labels_must_be_one_a_logit(mine):
    (mine / "labels.txt").write_text("bark\nsiren\n")
    with pytest.raises(ConfigError, match="spec.yaml: labels: 2 names in labels.txt, but logits has 3 columns"):
        install_spec(mine / "tiny.onnx", spec_file(mine))


@pytest.mark.parametrize(("changes", "message"), [
    ({"colour": "red"}, "colour: not a spec field"),
    ({"name": "yamnet"}, "name: 'yamnet' is one of envsound's own networks"),
    ({"name": "cnn"}, "name: 'cnn' is one of envsound's own networks"),
    ({"hop": 3200}, "hop: 3200 samples, longer than the window"),
    ({"window": "0.1"}, "window: 0.1; a positive whole number \\(samples\\)"),
    ({"labels": None}, "labels: missing; logits without labels"),
    ({"activation": "relu"}, "activation: 'relu'; one of sigmoid, softmax, none"),
    ({"licence": None}, "licence: missing"),
])
def test_a_spec_is_checked_field_by_field(mine, changes, message):
    with pytest.raises(ConfigError, match=f"spec.yaml: {message}"):
        read_spec(spec_file(mine, **changes))


def test_a_refused_reinstall_keeps_the_member_installed_before(mine, tmp_path):
    install_spec(mine / "tiny.onnx", spec_file(mine))
    with pytest.raises(ConfigError):
        install_spec(mine / "tiny.onnx", spec_file(mine, embedding="nope"))
    assert FROZEN["my-onnx"].embedding_tensor == "frames/embed"


def test_a_network_without_classes_embeds_and_refuses_to_predict(mine):
    from envsound.models.contract import open_family_model
    from envsound.models.litert import FrozenModel

    install_spec(mine / "tiny.onnx", spec_file(mine, name="my-embedder", logits=None, labels=None))
    model = open_family_model("my-embedder")
    windows = np.random.default_rng(1).uniform(-0.5, 0.5, (4, 1600)).astype(np.float32)
    assert model.labels == [] and not model.has_classes
    np.testing.assert_allclose(model.window_embeddings(windows), tinyonnx.reference(windows)[1], atol=1e-6)
    with pytest.raises(ConfigError, match="no classes of its own"):
        model.window_probs(windows)
    with pytest.raises(CheckpointError, match="my-embedder has no classes of its own .*learn a head"):
        FrozenModel.load(model.path).waveform_probs(np.zeros(3200, np.float32))


def test_a_file_that_is_no_network_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a network at all")
    (tmp_path / "labels.txt").write_text("bark\nsiren\nrain\n")
    with pytest.raises(CheckpointError, match="junk.onnx: neither a TFLite nor a readable ONNX network"):
        install_spec(junk, spec_file(tmp_path))
