"""The original project's path, FSDKaggle2018 (41 classes) -> UrbanSound8K, on small stand-ins of both layouts (real
WAV files, nothing downloaded): one train command, one cv command with --init and --label-map."""

import csv
import json
from pathlib import Path

from audiofactory import write_tone

from conftest import TINY_OVERRIDES
from envsound.cli.main import main
from envsound.models.checkpoint import load_checkpoint

FREQS = {"Bark": 300, "Cello": 700, "Applause": 1500, "dog_bark": 300, "air_conditioner": 2500, "siren": 1100}


def _rows(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def make_fsd(root: Path) -> Path:
    rows = []
    for c, label in enumerate(["Bark", "Cello", "Applause"]):
        for i in range(6):
            name = f"{c}{i:03d}.wav"
            rows.append([name, label, 1, f"{c}{i // 2}", "CC0"])
            write_tone(root / "FSDKaggle2018.audio_train" / name, seconds=1.0, sample_rate=16000,
                       freq=FREQS[label] * (1 + 0.02 * i), seed=i)
    _rows(root / "FSDKaggle2018.meta" / "train_post_competition.csv",
          ["fname", "label", "manually_verified", "freesound_id", "license"], rows)
    return root


def make_us8k(root: Path) -> Path:
    rows = []
    for class_id, label in enumerate(["air_conditioner", "dog_bark", "siren"]):
        for fold in (1, 2, 3):
            for part in (0, 1):
                name = f"{fold}{class_id}-{class_id}-0-{part}.wav"
                rows.append([name, f"{fold}{class_id}", 0, 1, 1, fold, class_id, label])
                write_tone(root / "audio" / f"fold{fold}" / name, seconds=1.0, sample_rate=16000,
                           freq=FREQS[label] * (1.013 + 0.03 * part + 0.011 * fold), seed=fold)
    _rows(root / "metadata" / "UrbanSound8K.csv",
          ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    return root


def test_fsdkaggle2018_to_urbansound8k_with_a_label_map(tmp_path, capsys):
    fsd, us8k = make_fsd(tmp_path / "fsd"), make_us8k(tmp_path / "us8k")
    sets = [arg for item in TINY_OVERRIDES + ("train.max_epochs=4",) for arg in ("--set", item)]
    assert main(["train", "--dataset", "fsdkaggle2018", "--root", str(fsd), "--out", str(tmp_path / "source"),
                 "--no-cache", "-q", *sets]) == 0
    label_map = tmp_path / "map.csv"
    label_map.write_text("source,target\nBark,dog_bark\n")
    assert main(["cv", "--dataset", "urbansound8k", "--root", str(us8k), "--folds", "1,2,3", "--init",
                 str(tmp_path / "source" / "model.ckpt"), "--transfer", "full", "--label-map", str(label_map), "--out", str(tmp_path / "cv"),
                 "--no-cache", "-q", "--set", "train.max_epochs=2", "--set", "augment.copies=0"]) == 0
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["n_folds"] == 3
    fold = load_checkpoint(tmp_path / "cv" / "fold_1" / "model.ckpt")
    assert fold.labels == ["air_conditioner", "dog_bark", "siren"]
    assert fold.config.features.sample_rate == 16000 and fold.config.features.n_mels == 32  # from the source
    assert fold.meta["transfer"]["copied_rows"] == {"dog_bark": "Bark"}
    assert fold.meta["transfer"]["new_rows"] == ["air_conditioner", "siren"]
