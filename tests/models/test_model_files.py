"""One door for model files (envsound.models.files): every kind a user may pass as a model is recognised once, by its
bytes or its name; anything else is one line naming the file and every kind accepted; load_checkpoint reads envsound's
own format only; an --init source is read once per file however often a run asks; embed says why an ONNX export
cannot be embedded; the model arguments' help names every kind."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from envsound.config.files import bare_config
from envsound.errors import CheckpointError
from envsound.models.autoencoder import autoencoder_checkpoint, build_autoencoder
from envsound.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from envsound.models.clip import build_network
from envsound.models.files import AUTOENCODER, CLASSIFIER, ONNX, RELEASE, open_model_file
from envsound.models.registry import model_names
from envsound.models.releases import PRETRAINED
from modelfiles import release_file

TINY = ["model.filters=8", "features.n_mels=32"]


def classifier_file(path: Path, *, model: str = "cnn") -> Path:
    config = bare_config(overrides=TINY)
    if model == "cnn":
        return save_checkpoint(path, Checkpoint(config=config, labels=["a", "b"],
                                                state_dict=build_network(config, 2).state_dict()))
    config.model.name = model  # a scikit-learn baseline: fitted estimator bytes, no network weights
    return save_checkpoint(path, Checkpoint(config=config, labels=["a", "b"], sklearn_bytes=b"\x00"))


def onnx_file(path: Path) -> Path:
    """A real (if tiny) ONNX model: what the bytes of any exported model start with."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), path)
    return path


def test_each_kind_of_model_file_is_recognised(tmp_path, monkeypatch):
    classifier = open_model_file(classifier_file(tmp_path / "model.ckpt"))
    assert classifier.kind == CLASSIFIER and classifier.checkpoint.labels == ["a", "b"]
    config = bare_config(overrides=TINY)
    save_checkpoint(tmp_path / "autoencoder.ckpt",
                    autoencoder_checkpoint(build_autoencoder(config, decoder="upsample"), config))
    assert open_model_file(tmp_path / "autoencoder.ckpt").kind == AUTOENCODER
    release = open_model_file(release_file(tmp_path))
    assert release.kind == RELEASE and release.checkpoint.labels[0] == "Dog"
    assert release.checkpoint.config.model.options == {"width": 0.1}
    installed = tmp_path / "models"
    installed.mkdir()
    release_file(installed)
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    by_name = open_model_file("efficientat-mn01")
    assert (by_name.kind, by_name.path, by_name.given) == (RELEASE, installed / "mn01_as_mAP_298.pt", "efficientat-mn01")
    assert open_model_file(onnx_file(tmp_path / "model.onnx")).kind == ONNX
    renamed = tmp_path / "exported.bin"  # an ONNX model under another name: known by its first bytes
    renamed.write_bytes((tmp_path / "model.onnx").read_bytes())
    assert open_model_file(renamed).kind == ONNX


def test_unusable_model_files_are_one_line_naming_the_file_and_what_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "none"))
    (tmp_path / "notes.ckpt").write_text("hello, this is not a model\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "truncated.pt").write_bytes(release_file(tmp_path).read_bytes()[:4000])
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    cases = {"notes.ckpt": "a text file, starting", "empty.pt": "an empty file",
             "truncated.pt": "a damaged or truncated torch file", "other.pt": "neither an envsound checkpoint",
             "missing.ckpt": "model file not found", "efficientat-mn99": "model file not found"}
    for name, problem in cases.items():
        given = name if name.startswith("efficientat") else tmp_path / name
        with pytest.raises(CheckpointError) as info:
            open_model_file(given)
        message = str(info.value)
        assert message.startswith(f"{given}: ") and problem in message and "\n" not in message, message
        assert "none is installed" in message and "'envsound download efficientat-mn04'" in message, message
        assert not [spec for spec in PRETRAINED.values() if f"{spec.download_name}," in message], message
        assert "model.ckpt" in message and "model.onnx" in message and ".pt" in message, message
    with pytest.raises(CheckpointError, match=r"efficientat-mn1: model file not found \(did you mean efficientat-mn10 or efficientat-mn01\?\)"):
        open_model_file("efficientat-mn1")
    with pytest.raises(CheckpointError, match="efficientat-mn10: the weights are not installed.*envsound download "
                                              "efficientat-mn10"):
        open_model_file("efficientat-mn10")


def test_predict_on_a_text_file_names_every_kind_of_model(tmp_path, envsound_main):
    """It used to say 'pass the model.ckpt written by envsound train, a model.onnx, or an EfficientAT .pt': no
    installed name."""
    (tmp_path / "notes.txt").write_text("hello")
    ran = envsound_main("predict", tmp_path / "notes.txt", tmp_path / "notes.txt")
    assert ran.returncode == 1 and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "notes.txt: " in ran.stderr and "efficientat-mn04" in ran.stderr and "model.onnx" in ran.stderr


def test_a_text_file_as_a_model_lists_only_the_names_installed(tmp_path, monkeypatch):
    """Issue 69: the message listed efficientat-mn01 ... mn40 as installed names though only mn04 was."""
    installed = tmp_path / "models"
    installed.mkdir()
    release_file(installed)
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError) as info:
        open_model_file(tmp_path / "notes.txt")
    assert "an installed name (efficientat-mn01)" in str(info.value), str(info.value)
    assert not [spec for spec in PRETRAINED.values() if spec.download_name != "efficientat-mn01"
                and spec.download_name in str(info.value)]


def test_load_checkpoint_refuses_a_release_file_and_names_the_door(tmp_path):
    release = release_file(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(release)
    message = str(info.value)
    assert message.startswith(f"{release}: not an envsound checkpoint (bare weights, such as an EfficientAT AudioSet "
                              "release)") and "envsound.models.files.open_model_file" in message, message


def test_an_init_source_is_opened_once_per_file_and_modification_time(tmp_path):
    """resolve(init=), then every fold's plan and leakage check read the source: one cross-validation loaded and
    checked the same file 11 times."""
    from envsound.transfer.source import read_source

    path = release_file(tmp_path)
    first = read_source(path)
    assert read_source(path) is first and read_source(str(path)) is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file rewritten: read again
    assert read_source(path) is not first


def test_init_refuses_a_baseline_naming_every_network_of_the_registry(tmp_path):
    """The list of networks --init takes was written out by hand and had gone stale (5 names; the registry has 9)."""
    from envsound.transfer.source import read_source

    with pytest.raises(CheckpointError) as info:
        read_source(classifier_file(tmp_path / "knn.ckpt", model="knn"))
    networks = [name for name in model_names() if name not in ("knn", "random_forest")]
    assert len(networks) == 9 and all(name in str(info.value) for name in networks), str(info.value)
    with pytest.raises(CheckpointError, match=r"model\.onnx: a model\.onnx from 'envsound export'; init"):
        read_source(onnx_file(tmp_path / "model.onnx"))


def test_embed_refuses_an_onnx_export_in_one_line_saying_it_needs_the_ckpt(trained_run, synthetic_root, tmp_path,
                                                                          envsound_main):
    """An export's graph outputs probabilities only (no embedding), yet embed answered 'not an envsound checkpoint
    ...; pass ... a model.onnx'. A renamed export is still an export to predict."""
    exported = tmp_path / "model.onnx"
    assert envsound_main("export", trained_run.checkpoint, "--out", exported).returncode == 0
    assert [output.name for output in onnx.load(exported).graph.output] == ["probs"]
    clip = next(Path(synthetic_root).rglob("*.wav"))
    ran = envsound_main("embed-clips", exported, clip, "--out", tmp_path / "e.npz")
    assert ran.returncode == 1 and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "model.onnx: an ONNX export carries no embedding output" in ran.stderr
    assert "need the model.ckpt it was exported from" in ran.stderr and not (tmp_path / "e.npz").exists()
    from envsound.inference.api import load_model

    renamed = tmp_path / "model.bin"
    renamed.write_bytes(exported.read_bytes())
    got, expected = load_model(renamed).predict(clip).top, load_model(exported).predict(clip).top
    assert got == expected and load_model(renamed).runtime.engine == "onnxruntime"


@pytest.mark.parametrize("command", ["predict", "listen", "serve", "evaluate", "export", "embed", "embed-clips"])
def test_the_model_argument_help_names_every_kind(command, envsound_main):
    text = " ".join(envsound_main(command, "--help").stdout.split())
    model = text[text.index("MODEL the model: "):]
    assert all(kind in model for kind in ("model.ckpt", "efficientat-mn04", "release .pt")), model
    assert ("a model.onnx from export" in model) == (command in ("predict", "listen", "serve")), model


@pytest.mark.parametrize("command", ["train", "cv"])
def test_the_init_help_names_every_kind(command, envsound_main):
    text = " ".join(envsound_main(command, "--help").stdout.split())
    init = text[text.index("--init"):]
    assert all(kind in init for kind in ("model.ckpt", "autoencoder.ckpt", "efficientat-mn04", "release .pt")), init


def test_a_model_files_digest_is_read_once_and_shared_by_predict_scan_and_serve(trained_run, monkeypatch):
    """One digest, on ModelFile: the server, a sensor and a scan's fingerprint used to hash the file each their own
    way (and an installed name got none)."""
    import hashlib

    import envsound
    from envsound.models import files

    reads = []
    monkeypatch.setattr(files, "file_digest", lambda path: reads.append(path) or "ab" * 32)
    source = open_model_file(trained_run.checkpoint)
    assert (source.digest, source.short_digest, source.digest) == ("ab" * 32, "ab" * 8, "ab" * 32)
    assert len(reads) == 1
    monkeypatch.undo()
    model = envsound.load_model(trained_run.checkpoint)
    expected = hashlib.sha256(Path(trained_run.checkpoint).read_bytes()).hexdigest()
    assert model.file.kind == CLASSIFIER and model.file.digest == expected and model.file.checkpoint is None
