"""birdnet-v2.4 and yamnet where a model name goes: 'envsound download NAME' (--from a file or folder, or from a
server on 127.0.0.1), 'envsound models', 'envsound predict' and load_model(NAME).predict. The networks are the real
files in ../shared/pretrained (these tests skip without it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envsound.models.frozen import FROZEN

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BIRDNET = SHARED / "pretrained" / "birdnet"
YAMNET = SHARED / "pretrained" / "yamnet"
DOG = SHARED / "data" / "esc50" / "audio" / "1-100032-A-0.flac"
ROOSTER = SHARED / "data" / "esc50" / "audio" / "1-26806-A-1.flac"


def needs(*paths: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} not found (../shared is beside the clone only on the project's machines)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A models folder holding both networks, installed once by the library call the CLI makes."""
    needs(BIRDNET, YAMNET)
    from envsound.transfer.install_frozen import install_frozen

    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVSOUND_MODELS", str(folder))
        install_frozen("birdnet-v2.4", source=BIRDNET, progress=False)
        install_frozen("yamnet", source=YAMNET, progress=False)
    return folder


def test_download_from_a_folder_installs_birdnet_and_says_its_licence(envsound_main, tmp_path, monkeypatch):
    needs(BIRDNET)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    ran = envsound_main("download", "birdnet-v2.4", "--from", BIRDNET)
    assert ran.returncode == 0, ran.stderr
    assert "(the distributed file)" in ran.stdout
    assert "licence: CC BY-NC-SA 4.0 (envsound never bundles it" in ran.stdout
    assert "species-range model: installed (for --lat/--lon/--week)" in ran.stdout  # the shared folder holds it
    assert (tmp_path / "birdnet-v2.4" / "BirdNET_GLOBAL_6K_V2.4_Labels.txt").is_file()


def test_download_from_a_file_takes_the_label_file_beside_it(envsound_main, tmp_path, monkeypatch):
    needs(YAMNET)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    ran = envsound_main("download", "yamnet", "--from", YAMNET / "yamnet.tflite")
    assert ran.returncode == 0, ran.stderr
    assert "a re-export with quantized weights, recognised by its structure" in ran.stdout
    assert "licence: Apache-2.0" in ran.stdout
    assert (tmp_path / "yamnet" / "yamnet_class_map.csv").is_file()


def test_download_from_a_server_fetches_the_network_and_its_class_map(envsound_main, server, tmp_path, monkeypatch):
    needs(YAMNET)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    server.files.update({"yamnet.tflite": (YAMNET / "yamnet.tflite").read_bytes(),
                         "yamnet_class_map.csv": (YAMNET / "yamnet_class_map.csv").read_bytes()})
    ran = envsound_main("download", "yamnet", "--url", server.url)
    assert ran.returncode == 0, ran.stderr
    assert {path for path, _ in server.requests} == {"/yamnet.tflite", "/yamnet_class_map.csv"}
    assert (tmp_path / "yamnet" / "yamnet.tflite").read_bytes() == server.files["yamnet.tflite"]


def test_a_network_of_the_other_member_is_refused_and_not_kept(envsound_main, tmp_path, monkeypatch):
    needs(YAMNET)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    ran = envsound_main("download", "birdnet-v2.4", "--from", YAMNET / "yamnet.tflite")
    assert ran.returncode == 1
    assert "holds yamnet, not birdnet-v2.4; 'envsound download yamnet --from" in ran.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "birdnet-v2.4").iterdir())


def test_a_folder_without_the_label_file_is_refused_in_one_line(envsound_main, tmp_path, monkeypatch):
    needs(YAMNET)
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    (tmp_path / "copy").mkdir()
    shutil.copyfile(YAMNET / "yamnet.tflite", tmp_path / "copy" / "yamnet.tflite")
    ran = envsound_main("download", "yamnet", "--from", tmp_path / "copy")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].endswith(
        "copy: no yamnet_class_map.csv here; put yamnet's label file beside its .tflite")


def test_models_lists_licence_rate_window_hop_embedding_and_classes(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    ran = envsound_main("models")
    assert ran.returncode == 0
    lines = {line.split()[0]: line for line in ran.stdout.splitlines() if line.startswith("  ")}
    assert ("6,522 classes  48 kHz  window 3 s  hop 3 s  embedding 1024  licence CC BY-NC-SA 4.0  not installed"
            in lines["birdnet-v2.4"])
    assert "521 classes  16 kHz  window 0.975 s  hop 0.48 s  embedding 1024  licence Apache-2.0" in lines["yamnet"]


def test_predict_birdnet_hears_the_dog_in_every_window(envsound_main, installed, monkeypatch):
    needs(DOG)
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    ran = envsound_main("predict", "birdnet-v2.4", DOG, "--top-k", "5", "--segments", "--json")
    assert ran.returncode == 0, ran.stderr
    import json

    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["top"][0]["label"] == "Dog_Dog" and len(result["top"]) == 5
    assert [(s["start"], s["end"], s["label"]) for s in result["segments"]] == [(0.0, 3.0, "Dog_Dog"),
                                                                               (2.0, 5.0, "Dog_Dog")]


def test_load_model_by_name_predicts_from_python(installed, monkeypatch):
    needs(ROOSTER)
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    from envsound import load_model

    model = load_model("yamnet")
    assert len(model.labels) == FROZEN["yamnet"].n_classes and model.file.kind == "frozen"
    assert model.describe()["training"]["licence"] == "Apache-2.0"
    top = model.predict(ROOSTER, top_k=3).top
    assert "Fowl" in [row["label"] for row in top]


def test_birdnet_on_a_gpu_is_refused_in_one_line(installed, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    from envsound import load_model
    from envsound.errors import ConfigError

    with pytest.raises(ConfigError, match="a TFLite network runs on the CPU in float32 through LiteRT"):
        load_model("birdnet-v2.4", device="cuda")


def test_an_offline_download_names_both_addresses_and_the_from_folder_way(envsound_main, tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    ran = envsound_main("download", "birdnet-v2.4", "--url", f"http://127.0.0.1:{closed_port}/")
    assert ran.returncode == 1
    line = ran.stderr.strip().splitlines()[-1]
    assert "cannot connect" in line and "'envsound download birdnet-v2.4 --from FOLDER'" in line
    assert FROZEN["birdnet-v2.4"].url in line and FROZEN["birdnet-v2.4"].labels_url in line
    assert not list((tmp_path / "birdnet-v2.4").iterdir())


def test_predict_with_a_network_not_installed_gives_the_download_command(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"")
    ran = envsound_main("predict", "birdnet-v2.4", clip)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        f"envsound predict: error: birdnet-v2.4: the weights are not installed in {tmp_path}; run 'envsound "
        "download birdnet-v2.4' (or 'envsound download birdnet-v2.4 --from FOLDER')")


def test_a_use_that_takes_no_frozen_network_says_so_in_one_line(installed, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(installed))
    from envsound.errors import CheckpointError
    from envsound.models.files import CLASSIFIER, open_model_file

    with pytest.raises(CheckpointError, match=r"^yamnet: a BirdNET V2.4 or YAMNet .tflite \(or its installed name"):
        open_model_file("yamnet").require(CLASSIFIER, purpose="embedding")


def test_predict_help_names_the_frozen_networks(envsound_main):
    ran = envsound_main("predict", "--help")
    assert "birdnet-v2.4 or yamnet ('envsound download NAME')" in " ".join(ran.stdout.split())
