"""install_frozen leaves no .unverified file behind: the bug was a failure other than an EnvsoundError (a label file
that is not UTF-8, an interrupt) leaving the network's .unverified copy in the models folder, and the next download
from --url taking that leftover as "already downloaded" (download_file keeps an existing file when no sha256 is
known). The networks are the tiny ones of tests/tinytflite.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))  # the tiny networks' label files

from test_frozen_networks_tiny import birdnet_folder, yamnet_files  # noqa: E402 (after the skips)


def test_install_frozen_leaves_no_unverified_file_when_the_label_file_is_not_utf8(envsound_main, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = birdnet_folder(tmp_path / "copy")
    labels = folder / "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
    latin1 = labels.read_bytes().replace(b"Common 7\n", b"Pic \xe9peiche\n")  # Latin-1, not UTF-8
    labels.write_bytes(latin1)
    where = latin1.index(b"\xe9")
    ran = envsound_main("download", "birdnet-v2.4", "--from", folder)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].endswith(
        f"BirdNET_GLOBAL_6K_V2.4_Labels.txt: not UTF-8 text (byte {where}); pass the label file "
        "distributed with birdnet-v2.4")
    assert list((tmp_path / "models" / "birdnet-v2.4").iterdir()) == []


def test_install_frozen_ignores_an_unverified_file_an_interrupted_run_left(envsound_main, server, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = yamnet_files(tmp_path / "published")
    server.files.update({name: (folder / name).read_bytes() for name in ("yamnet.tflite", "yamnet_class_map.csv")})
    leftover = tmp_path / "models" / "yamnet" / "yamnet.tflite.unverified"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(server.files["yamnet.tflite"][:1000])  # what a killed download left
    ran = envsound_main("download", "yamnet", "--url", server.url)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "models" / "yamnet" / "yamnet.tflite").read_bytes() == server.files["yamnet.tflite"]
    assert sorted(p.name for p in leftover.parent.iterdir()) == ["yamnet.tflite", "yamnet_class_map.csv"]
