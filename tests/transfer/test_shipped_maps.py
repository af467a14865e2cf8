"""Label maps shipped in the package (envsound/transfer/maps): found by their short name, packaged, usable by
``evaluate --label-map``; and a map whose AudioSet name holds an unquoted comma stopped in one line naming the line."""

from __future__ import annotations

import csv
import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import torch

from envsound.errors import ConfigError
from envsound.models.efficientat import EfficientAT, release_key
from envsound.transfer.source import read_label_map

from audiofactory import write_tone

REPO = Path(__file__).resolve().parents[2]
ESC10 = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
         "helicopter", "chainsaw"]


def tiny_esc10(root: Path) -> Path:
    """``root/meta/esc50.csv`` + one 1-s tone per ESC-10 class, all in fold 1."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for target, name in enumerate(ESC10):
            write_tone(root / "audio" / f"1-{target}-A-{target}.wav", freq=200.0 + 150 * target)
            writer.writerow([f"1-{target}-A-{target}.wav", 1, target, name, True, f"{target}", "A"])
    return root


def test_the_short_name_audioset_esc10_reads_the_map_shipped_in_the_package():
    from envsound.transfer.maps import SHIPPED, label_map_path

    path = label_map_path("audioset-esc10")
    assert path.parent == REPO / "src" / "envsound" / "transfer" / "maps" and path.is_file()
    mapping = read_label_map("audioset-esc10")
    assert sorted(mapping.values()) == sorted(ESC10) and mapping["Chicken, rooster"] == "rooster"
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in SHIPPED.values():  # a wheel carries every shipped map
        assert any(fnmatch.fnmatch(f"transfer/maps/{name}", glob) for glob in package_data["envsound"]), name


def test_evaluate_a_tagger_on_esc10_through_the_shipped_map_by_its_short_name(tmp_path, envsound_main, monkeypatch):
    mapping = read_label_map("audioset-esc10")
    tagger = tmp_path / "mn01_as_mAP_298.pt"
    torch.manual_seed(0)  # a release file at random weights: a state dict named as the release names it
    network = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=100, width=0.1)
    torch.save({release_key(k): v for k, v in network.state_dict().items()}, tagger)
    names = list(mapping) + [f"Sound {i}" for i in range(len(mapping), 527)]  # the map's AudioSet classes first
    with open(tmp_path / "class_labels_indices.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["index", "mid", "display_name"]]
                                     + [[i, f"/m/{i}", name] for i, name in enumerate(names)])
    root = tiny_esc10(tmp_path / "esc50")
    monkeypatch.chdir(tmp_path)  # no file named audioset-esc10 here: the name is the shipped map's
    ran = envsound_main("evaluate", tagger, "--dataset", "esc10", "--root", root, "--label-map", "audioset-esc10",
                        "--json", "--precision", "32")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert 0 <= report["accuracy"] <= 1 and sorted(c["label"] for c in report["per_class"]) == sorted(ESC10)


def test_an_unquoted_comma_in_a_label_map_is_one_line_naming_the_file_the_line_and_the_quoting(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("source,target\nDog,dog\nChicken, rooster,rooster\n")
    with pytest.raises(ConfigError) as info:
        read_label_map(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "line 3" in message
    assert "'Chicken, rooster,rooster'" in message and '"Chicken, rooster",rooster' in message
