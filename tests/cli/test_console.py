"""What a console shows during a run, as a new user meets it: each line once, no library noise."""

from __future__ import annotations

import csv
import re

import pytest
import torch

from envsound.models.efficientat import EfficientAT, release_key


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    """An AudioSet release file (mn01's format: a bare state dict) at random weights, with its label list."""
    folder = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    state = EfficientAT(n_classes=527, in_channels=1, n_mels=128, n_frames=100, width=0.1).state_dict()
    torch.save({release_key(k): v for k, v in state.items()}, folder / "mn01_as_mAP_298.pt")
    with (folder / "class_labels_indices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows([i, f"/m/{i}", f"Sound {i}"] for i in range(527))
    return folder / "mn01_as_mAP_298.pt"


def test_cv_from_an_audioset_file_says_each_transfer_line_and_each_fold_result_once(
        envsound_main, synthetic_root, release_file, tmp_path):
    ran = envsound_main("cv", "--dataset", "synthetic", "--root", synthetic_root, "--folds", "1,2", "--init",
                        release_file, "--out", tmp_path / "cv", "--no-cache", "--set", "features.window_seconds=1",
                        "--set", "features.eval_hop_seconds=1")
    assert ran.returncode == 0, ran.stderr
    console = ran.stdout + ran.stderr
    for line in ("transfer.mode=auto: probe", "an AudioSet network (trained on YouTube clips", "loaded from ",
                 "head: replaced (527 -> 10 classes)"):
        assert console.count(line) == 1, (line, console)
    for fold in (1, 2):
        assert len(re.findall(rf"^fold {fold}: accuracy \d", console, flags=re.M)) == 1, console
        assert re.search(rf"^fold {fold}: accuracy \d\.\d{{4}} \(20 clips\)$", ran.stdout, flags=re.M)
