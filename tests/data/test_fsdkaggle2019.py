"""FSDKaggle2019 on tiny fake trees of both layouts (real WAV files): subsets, origins, vocabulary, folds, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from audiofactory import write_tone

from envsound.data.fsdkaggle2019 import prepare_fsdkaggle2019
from envsound.data.registry import dataset_names, load_dataset
from envsound.errors import ConfigError, DatasetLayoutError

# Curated: 12 clips of Bark / Cello / Applause, every fourth with a second label. Noisy: 8 clips, one class
# (Walk_and_footsteps) only there, so the vocabulary must come from both CSVs.
CURATED = [[f"c{i:03d}.wav", ["Bark", "Cello", "Applause"][i % 3] + (",Cello" if i in (0, 8) else "")]
           for i in range(12)]
NOISY = [[f"n{i:03d}.wav", ["Bark", "Walk_and_footsteps"][i % 2]] for i in range(8)]
ALL_LABELS = ["Applause", "Bark", "Cello", "Walk_and_footsteps"]
ZENODO_META = "FSDKaggle2019.meta"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)  # quotes a labels cell holding commas, as the real CSVs do
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _wavs(folder: Path, rows: list[list]) -> None:
    for i, row in enumerate(rows):
        write_tone(folder / row[0], seconds=0.05, sample_rate=8000, freq=200 + 40 * (i % 7), seed=i)


def make_kaggle(root: Path, curated=CURATED, noisy=NOISY, *, header=("fname", "labels"), audio=True) -> Path:
    _write_csv(root / "train_curated.csv", list(header), curated)
    _write_csv(root / "train_noisy.csv", list(header), noisy)
    if audio:
        _wavs(root / "train_curated", curated)
        _wavs(root / "train_noisy", noisy)
    return root


def make_zenodo(root: Path) -> Path:
    """Zenodo layout: curated clips share a Freesound id in pairs; vocabulary.csv has one class no clip uses."""
    meta = root / ZENODO_META
    _write_csv(meta / "train_curated_post_competition.csv", ["fname", "labels", "freesound_id", "license"],
               [row + [str(1000 + i // 2), "CC0"] for i, row in enumerate(CURATED)])
    _write_csv(meta / "train_noisy_post_competition.csv", ["fname", "labels", "flickr_video_URL", "license"],
               [row + [f"http://flickr.example/{i}", "CC-BY"] for i, row in enumerate(NOISY)])
    test = [["t000.wav", "Bark,Applause", "Public", "77", "CC0"], ["t001.wav", "Cello", "Private", "78", "CC0"]]
    _write_csv(meta / "test_post_competition.csv", ["fname", "labels", "usage", "freesound_id", "license"], test)
    (meta / "vocabulary.csv").write_text("".join(f"{i},{name}\n" for i, name in enumerate(ALL_LABELS + ["Zipper"])))
    _wavs(root / "FSDKaggle2019.audio_train_curated", CURATED)
    _wavs(root / "FSDKaggle2019.audio_train_noisy", NOISY)
    _wavs(root / "FSDKaggle2019.audio_test", test)
    return root


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory) -> Path:
    return make_kaggle(tmp_path_factory.mktemp("fsd19k"))


def test_registered():
    assert "fsdkaggle2019" in dataset_names()


def test_curated_subset_is_multi_label_with_vocabulary_of_both_csvs(kaggle_root):
    manifest = load_dataset("fsdkaggle2019", kaggle_root, n_folds=3)
    assert manifest.name == "fsdkaggle2019" and manifest.multi_label and len(manifest) == 12
    assert manifest.labels == ALL_LABELS  # Walk_and_footsteps comes from the noisy CSV
    assert {r.origin for r in manifest.records} == {"curated"}
    first = manifest.records[0]
    assert first.labels == ("Bark", "Cello") and first.clip_id == "train_curated/c000.wav"
    assert first.source_id == "c000.wav"  # the Kaggle CSVs give no recording ids
    assert manifest.folds == [1, 2, 3] and all(r.fold is not None for r in manifest.records)


def test_subsets_origins_and_stable_folds(kaggle_root):
    curated = prepare_fsdkaggle2019(kaggle_root, subset="curated", n_folds=2)
    noisy = prepare_fsdkaggle2019(kaggle_root, subset="noisy", n_folds=2)
    both = prepare_fsdkaggle2019(kaggle_root, subset="all", n_folds=2)
    assert len(noisy) == 8 and {r.origin for r in noisy.records} == {"noisy"}
    assert len(both) == 20 and [r.origin for r in both.records] == ["curated"] * 12 + ["noisy"] * 8
    assert len({r.clip_id for r in both.records}) == 20
    assert curated.labels == noisy.labels == both.labels == ALL_LABELS  # same class indices whatever the subset
    assert all(r.fold in (1, 2) for r in both.records)
    folds = {r.clip_id: r.fold for r in both.records}
    assert all(folds[r.clip_id] == r.fold for r in curated.records + noisy.records)  # folds do not move


def test_bad_subset_lists_the_valid_ones(kaggle_root):
    with pytest.raises(ConfigError, match="curated, noisy, all, test"):
        prepare_fsdkaggle2019(kaggle_root, subset="verified")


def test_fold_column_is_used(tmp_path):
    curated = [row + [str(1 + i % 4)] for i, row in enumerate(CURATED)]
    noisy = [row + ["9"] for row in NOISY]
    make_kaggle(tmp_path, curated, noisy, header=("fname", "labels", "fold"))
    manifest = prepare_fsdkaggle2019(tmp_path, subset="all")
    assert [r.fold for r in manifest.records] == [1 + i % 4 for i in range(12)] + [9] * 8


def test_zenodo_layout_vocabulary_sources_and_test_set(tmp_path):
    root = make_zenodo(tmp_path)
    manifest = prepare_fsdkaggle2019(root, subset="all", n_folds=3)
    assert manifest.labels == ALL_LABELS + ["Zipper"]  # vocabulary.csv decides, sorted
    assert manifest.records[0].source_id == "1000" and manifest.records[12].source_id == "http://flickr.example/0"
    side = {}
    for r in manifest.records:
        assert side.setdefault(r.source_id, r.fold) == r.fold  # one Freesound id, one fold
    test = prepare_fsdkaggle2019(root, subset="test")
    assert [r.clip_id for r in test.records] == ["test/t000.wav", "test/t001.wav"]
    assert test.records[0].labels == ("Bark", "Applause") and test.labels == manifest.labels
    assert {r.origin for r in test.records} == {"curated"} and test.folds == []


def test_noisy_clip_sharing_a_recording_takes_the_curated_fold(tmp_path):
    noisy = [["c000.wav", "Bark,Cello"]] + NOISY  # same name and labels as a curated clip: one recording
    make_kaggle(tmp_path, CURATED, noisy)
    for subset in ("all", "noisy"):
        manifest = prepare_fsdkaggle2019(tmp_path, subset=subset, n_folds=3)
        folds = {r.clip_id: r.fold for r in manifest.records}
        curated = prepare_fsdkaggle2019(tmp_path, subset="curated", n_folds=3)
        assert folds["train_noisy/c000.wav"] == curated.records[0].fold


def test_missing_audio_folder_names_csv_and_folder(tmp_path):
    make_kaggle(tmp_path, audio=False)
    _wavs(tmp_path / "train_curated", CURATED)
    assert len(prepare_fsdkaggle2019(tmp_path, subset="curated", n_folds=3)) == 12  # noisy audio not needed
    with pytest.raises(DatasetLayoutError, match=r"train_noisy\.csv lists 8 clips but train_noisy/ does not exist"):
        prepare_fsdkaggle2019(tmp_path, subset="all", on_error="skip")


def test_missing_file_is_skipped_when_asked(tmp_path):
    make_kaggle(tmp_path)
    (tmp_path / "train_curated" / "c003.wav").unlink()
    with pytest.raises(DatasetLayoutError, match=r"train_curated\.csv: line 5 names .*c003\.wav"):
        prepare_fsdkaggle2019(tmp_path, n_folds=3)
    manifest = prepare_fsdkaggle2019(tmp_path, on_error="skip", n_folds=3)
    assert len(manifest) == 11 and len(manifest.skipped) == 1


@pytest.mark.parametrize("csv_name, rows, pattern", [
    ("train_curated.csv", CURATED[:3] + [["c099.wav", ""]], r"train_curated\.csv: line 5: c099\.wav has no labels"),
    ("train_curated.csv", CURATED[:3] + [["c099.wav", ","]], r"train_curated\.csv: line 5: c099\.wav has no labels"),
    ("train_noisy.csv", NOISY[:2] + [["n000.wav", "Cello"]],
     r"train_noisy\.csv: line 4: n000\.wav is listed with labels Cello \(line 2 gives Bark\)"),
    ("train_noisy.csv", NOISY[:2] + [["n001.wav", "Walk_and_footsteps"]],
     r"train_noisy\.csv: line 4: n001\.wav is listed again \(also on line 3\)"),
    ("train_noisy.csv", NOISY[:2] + [["c001.wav", "Bark"]],
     r"train_noisy\.csv: line 4: c001\.wav has labels Bark but .*train_curated\.csv line 3 gives it Cello"),
    ("train_curated.csv", [row + ["1"] for row in CURATED[:2]] + [["c099.wav", "Bark", "x"]],
     r"train_curated\.csv: line 4: column 'fold' holds 'x'"),
    ("train_curated.csv", [row + ["1"] for row in CURATED[:2]] + [["c099.wav", "Bark", ""]],
     r"train_curated\.csv: line 4: empty fold"),
])
def test_bad_rows_name_file_and_line(tmp_path, csv_name, rows, pattern):
    make_kaggle(tmp_path, audio=False)
    header = ["fname", "labels", "fold"] if any(len(row) == 3 for row in rows) else ["fname", "labels"]
    _write_csv(tmp_path / csv_name, header, rows)
    with pytest.raises(DatasetLayoutError, match=pattern):
        prepare_fsdkaggle2019(tmp_path)


def test_unknown_label_against_a_vocabulary_file(tmp_path):
    make_kaggle(tmp_path, audio=False)
    (tmp_path / "classes.txt").write_text("Bark\nCello\nApplause\n")
    with pytest.raises(DatasetLayoutError, match=r"train_noisy\.csv: line 3: n001\.wav has unknown label\(s\) "
                                                 r"'Walk_and_footsteps'.*3 classes of .*classes\.txt"):
        prepare_fsdkaggle2019(tmp_path)


def test_unknown_test_label_without_a_vocabulary_file(tmp_path):
    make_kaggle(tmp_path)
    _write_csv(tmp_path / "test.csv", ["fname", "labels"], [["t0.wav", "Bark"], ["t1.wav", "Zipper"]])
    _wavs(tmp_path / "test", [["t0.wav"], ["t1.wav"]])
    with pytest.raises(DatasetLayoutError, match=r"test\.csv: line 3: t1\.wav has unknown label\(s\) 'Zipper', "
                                                 r"not among the 4 classes of the labels of train_curated\.csv"):
        prepare_fsdkaggle2019(tmp_path, subset="test")


def test_missing_column_missing_csv_and_no_layout(tmp_path):
    make_kaggle(tmp_path, header=("fname", "label"), audio=False)
    with pytest.raises(DatasetLayoutError, match=r"train_curated\.csv: missing column\(s\) labels"):
        prepare_fsdkaggle2019(tmp_path)
    (tmp_path / "train_noisy.csv").unlink()
    _write_csv(tmp_path / "train_curated.csv", ["fname", "labels"], CURATED)
    with pytest.raises(DatasetLayoutError, match=r"train_noisy\.csv: metadata file not found"):
        prepare_fsdkaggle2019(tmp_path)
    make_kaggle(tmp_path, audio=False)
    with pytest.raises(DatasetLayoutError, match=r"test\.csv: test metadata not found; the Kaggle release"):
        prepare_fsdkaggle2019(tmp_path, subset="test")
    with pytest.raises(DatasetLayoutError, match="train_curated_post_competition.csv.*train_curated.csv"):
        prepare_fsdkaggle2019(tmp_path / "elsewhere")
