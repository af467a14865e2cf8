"""Dataset loaders and the registry on tiny fake trees of each layout (real WAV files), plus the real ESC-50 copy."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest
from audiofactory import write_not_audio, write_tone, write_zero_bytes

from envsound.data.registry import DATASETS, dataset_names, dataset_root, load_dataset
from envsound.data.splits import check_no_leakage, cv_splits
from envsound.data.validate import check_records
from envsound.errors import AudioLoadError, ConfigError, DatasetLayoutError

SHARED_ESC50 = Path(__file__).resolve().parents[3] / "shared" / "data" / "esc50"
ESC_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def _wav(path: Path, seed: int = 0) -> Path:
    return write_tone(path, seconds=0.2, sample_rate=8000, freq=200 + 50 * seed, seed=seed)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_esc50(root: Path, *, ext: str = "wav", missing: tuple[str, ...] = ()) -> Path:
    """3 classes (targets 0, 1, 40; 0 and 1 are ESC-10) x 2 folds x 2 clips; clip pairs share a src_file."""
    classes = [(40, "helicopter", True), (0, "dog", True), (1, "rooster", False)]  # listed out of target order
    rows = []
    for target, category, esc10 in classes:
        for fold in (1, 2):
            src = f"{fold}{target:02d}"
            for take in "AB":
                name = f"{fold}-{src}-{take}-{target}.{ext}"
                rows.append([name, fold, target, category, esc10, src, take])
                if name not in missing:
                    _wav(root / "audio" / name, seed=target)
    _write_csv(root / "meta" / "esc50.csv", ESC_COLUMNS, rows)
    return root


# --------------------------------------------------------------------------------------------------------- ESC-50

def test_esc50_labels_ordered_by_target_folds_and_sources(tmp_path):
    manifest = load_dataset("esc50", make_esc50(tmp_path))
    assert manifest.name == "esc50"
    assert manifest.labels == ["dog", "rooster", "helicopter"]
    assert len(manifest) == 12 and manifest.folds == [1, 2]
    record = next(r for r in manifest.records if r.clip_id == "1-100-A-0.wav")
    assert record.path == tmp_path / "audio" / "1-100-A-0.wav"
    assert record.labels == ("dog",) and record.fold == 1 and record.source_id == "100"
    assert manifest.skipped == []


def test_esc10_keeps_only_esc10_rows(tmp_path):
    manifest = load_dataset("esc10", make_esc50(tmp_path))
    assert manifest.name == "esc10"
    assert manifest.labels == ["dog", "helicopter"]
    assert Counter(r.label for r in manifest.records) == {"dog": 4, "helicopter": 4}


def test_esc50_reads_file_names_from_the_csv_flac(tmp_path):
    manifest = load_dataset("esc50", make_esc50(tmp_path, ext="flac"))
    assert all(r.path.suffix == ".flac" for r in manifest.records)


def test_esc50_accepts_the_github_zip_folder(tmp_path):
    make_esc50(tmp_path / "ESC-50-master")
    assert len(load_dataset("esc50", tmp_path)) == 12


def test_esc50_missing_file_raises_naming_csv_line_and_file(tmp_path):
    make_esc50(tmp_path, missing=("2-201-B-1.wav",))
    with pytest.raises(DatasetLayoutError) as err:
        load_dataset("esc50", tmp_path)
    message = str(err.value)
    assert "esc50.csv" in message and "2-201-B-1.wav" in message and "line 13" in message


def test_esc50_missing_file_skipped_and_counted(tmp_path, caplog):
    make_esc50(tmp_path, missing=("2-201-B-1.wav", "1-100-A-0.wav"))
    with caplog.at_level(logging.WARNING, logger="envsound"):
        manifest = load_dataset("esc50", tmp_path, on_error="skip")
    assert len(manifest) == 10
    assert sorted(p.name for p, _ in manifest.skipped) == ["1-100-A-0.wav", "2-201-B-1.wav"]
    assert any("2 clip(s)" in r.getMessage() for r in caplog.records)


def test_esc50_unreadable_audio_raises_by_default_and_skips_on_request(tmp_path):
    make_esc50(tmp_path)
    write_not_audio(tmp_path / "audio" / "1-100-B-0.wav")
    with pytest.raises(AudioLoadError, match="1-100-B-0.wav"):
        load_dataset("esc50", tmp_path)
    manifest = load_dataset("esc50", tmp_path, on_error="skip")
    assert len(manifest) == 11 and [p.name for p, _ in manifest.skipped] == ["1-100-B-0.wav"]


def test_esc50_missing_column_names_csv_column_and_columns_found(tmp_path):
    _write_csv(tmp_path / "meta" / "esc50.csv", ["filename", "fold", "target", "esc10", "src_file"],
               [["a.wav", 1, 0, True, "1"]])
    with pytest.raises(DatasetLayoutError) as err:
        load_dataset("esc50", tmp_path)
    message = str(err.value)
    assert "esc50.csv" in message and "category" in message and "found columns filename, fold" in message


def test_esc50_bad_fold_value_names_line_and_value(tmp_path):
    _write_csv(tmp_path / "meta" / "esc50.csv", ESC_COLUMNS, [["a.wav", "one", 0, "dog", True, "1", "A"]])
    with pytest.raises(DatasetLayoutError, match=r"line 2: column 'fold' holds 'one'"):
        load_dataset("esc50", tmp_path)


def test_esc50_no_metadata_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="esc50.csv"):
        load_dataset("esc50", tmp_path)


# --------------------------------------------------------------------------------------------------- UrbanSound8K

def test_urbansound8k_layout(tmp_path):
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    rows = []
    for class_id, name in ((3, "dog_bark"), (0, "air_conditioner")):
        for fold in (1, 2, 10):
            for part in (0, 1):
                fname = f"{fold}{class_id}-{class_id}-0-{part}.wav"
                rows.append([fname, f"{fold}{class_id}", 0, 1, 1, fold, class_id, name])
                _wav(tmp_path / "audio" / f"fold{fold}" / fname, seed=class_id)
    _write_csv(tmp_path / "metadata" / "UrbanSound8K.csv", header, rows)
    manifest = load_dataset("urbansound8k", tmp_path)
    assert manifest.labels == ["air_conditioner", "dog_bark"]
    assert manifest.folds == [1, 2, 10] and len(manifest) == 12
    record = next(r for r in manifest.records if r.clip_id == "103-3-0-1.wav")
    assert record.path == tmp_path / "audio" / "fold10" / "103-3-0-1.wav" and record.source_id == "103"
    for _, train, test in cv_splits(manifest, [1, 2, 10]):
        check_no_leakage(train, test)


# -------------------------------------------------------------------------------------------------- FSDKaggle2018

def _fsd_rows(n_per_class: int = 6):
    rows = []
    for c, label in enumerate(["Bark", "Cello", "Applause"]):
        for i in range(n_per_class):
            freesound = f"{c}{i // 2}"  # two clips per Freesound recording
            rows.append([f"{c}{i:03d}.wav", label, int(i % 3 != 0), freesound, "CC0"])
    return rows


def test_fsdkaggle2018_zenodo_layout_folds_grouped_and_verified_only(tmp_path):
    rows = _fsd_rows()
    _write_csv(tmp_path / "FSDKaggle2018.meta" / "train_post_competition.csv",
               ["fname", "label", "manually_verified", "freesound_id", "license"], rows)
    for c, row in enumerate(rows):
        _wav(tmp_path / "FSDKaggle2018.audio_train" / row[0], seed=c % 5)
    manifest = load_dataset("fsdkaggle2018", tmp_path, n_folds=3)
    assert manifest.labels == ["Applause", "Bark", "Cello"] and len(manifest) == 18
    assert manifest.folds == [1, 2, 3]
    for fold in manifest.folds:  # stratified: every class in every fold
        assert {r.label for r in manifest.records if r.fold == fold} == set(manifest.labels)
    sides = {}
    for r in manifest.records:
        assert sides.setdefault(r.source_id, r.fold) == r.fold  # a Freesound id never spans two folds
    again = load_dataset("fsdkaggle2018", tmp_path, n_folds=3)
    assert [r.fold for r in again.records] == [r.fold for r in manifest.records]  # deterministic

    verified = load_dataset("fsdkaggle2018", tmp_path, n_folds=3, verified_only=True)
    assert len(verified) == 12
    folds = {r.clip_id: r.fold for r in manifest.records}
    assert all(folds[r.clip_id] == r.fold for r in verified.records)  # folds do not move with the filter


def test_fsdkaggle2018_kaggle_layout_uses_fname_as_source(tmp_path):
    rows = [row[:3] for row in _fsd_rows()]
    _write_csv(tmp_path / "train.csv", ["fname", "label", "manually_verified"], rows)
    for row in rows:
        _wav(tmp_path / "audio_train" / row[0])
    manifest = load_dataset("fsdkaggle2018", tmp_path)
    assert manifest.folds == [1, 2, 3, 4, 5]
    assert all(r.source_id == r.clip_id for r in manifest.records)


def test_fsdkaggle2018_without_metadata_names_both_layouts(tmp_path):
    with pytest.raises(DatasetLayoutError, match="train_post_competition.csv.*train.csv"):
        load_dataset("fsdkaggle2018", tmp_path)


# ------------------------------------------------------------------------------------------------------- folder

def make_folder(root: Path) -> Path:
    for i in range(3):
        _wav(root / "siren" / f"s{i}.wav", seed=i)
        _wav(root / "dog" / "park" / f"d{i}.flac", seed=i)
    _wav(root / "dog" / ".hidden" / "x.wav")
    (root / "siren" / ".DS_Store").write_bytes(b"\0\1")
    (root / "README.txt").write_text("top-level files are ignored")
    return root


def test_folder_labels_sorted_nested_files_hidden_ignored(tmp_path):
    manifest = load_dataset("folder", make_folder(tmp_path))
    assert manifest.labels == ["dog", "siren"] and len(manifest) == 6
    assert {r.clip_id for r in manifest.records if r.label == "dog"} == {f"dog/park/d{i}.flac" for i in range(3)}
    assert all(r.fold is None for r in manifest.records)
    assert manifest.folds == []


def test_folder_n_folds_assigns_stratified_folds(tmp_path):
    manifest = load_dataset("folder", make_folder(tmp_path), n_folds=3)
    assert manifest.folds == [1, 2, 3]
    assert Counter((r.fold, r.label) for r in manifest.records) == {(f, c): 1 for f in (1, 2, 3)
                                                                    for c in ("dog", "siren")}


def test_folder_broken_audio_raises_by_default_and_skip_counts(tmp_path, caplog):
    make_folder(tmp_path)
    write_not_audio(tmp_path / "dog" / "fake.wav")
    write_zero_bytes(tmp_path / "dog" / "empty.wav")
    with pytest.raises(AudioLoadError, match="empty.wav"):  # audio files are checked in sorted order
        load_dataset("folder", tmp_path)
    (tmp_path / "siren" / "notes.TXT").write_text("not audio either")
    with caplog.at_level(logging.INFO, logger="envsound"):
        manifest = load_dataset("folder", tmp_path, on_error="skip")
    assert len(manifest) == 6
    assert sorted(p.name for p, _ in manifest.skipped) == ["empty.wav", "fake.wav"]  # notes.TXT is no error
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 file(s) that are not audio (e.g. siren/notes.TXT)" in messages
    assert "2 unusable audio file(s)" in messages


def test_folder_non_audio_files_are_skipped_and_counted_as_predict_does(tmp_path, caplog):
    # issue 40: a notes.txt beside the clips stopped `train` with advice naming a Python parameter
    _wav(tmp_path / "a" / "x.wav")
    _wav(tmp_path / "b" / "y.wav", seed=1)
    (tmp_path / "a" / "notes.txt").write_text("hi")
    with caplog.at_level(logging.INFO, logger="envsound"):
        manifest = load_dataset("folder", tmp_path)
    assert [r.path.name for r in manifest.records] == ["x.wav", "y.wav"] and not manifest.skipped
    assert "left out 1 file(s) that are not audio (e.g. a/notes.txt)" in caplog.text


def test_folder_without_class_folders_is_a_layout_error(tmp_path):
    _wav(tmp_path / "loose.wav")
    with pytest.raises(DatasetLayoutError, match="no class folders"):
        load_dataset("folder", tmp_path)


# ---------------------------------------------------------------------------------------------------------- csv

def test_csv_manifest_relative_absolute_folds_sources(tmp_path):
    a = _wav(tmp_path / "clips" / "a.wav")
    b = _wav(tmp_path / "elsewhere" / "b.wav", seed=1)
    csv_path = _write_csv(tmp_path / "data" / "list.csv", ["path", "label", "fold", "source_id"],
                          [["../clips/a.wav", "dog", 1, "rec1"], [str(b), "siren", "", ""]])
    for root in (csv_path, csv_path.parent):  # the CSV itself, or its folder
        manifest = load_dataset("csv", root)
        assert manifest.labels == ["dog", "siren"] and not manifest.multi_label
        first, second = manifest.records
        assert first.path.resolve() == a.resolve() and first.fold == 1 and first.source_id == "rec1"
        assert second.path == b and second.fold is None and second.source_id == str(b)


def test_csv_manifest_multi_label(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav", seed=1)
    _write_csv(tmp_path / "m.csv", ["path", "label"], [["a.wav", "rain; thunder"], ["b.wav", "wind"]])
    manifest = load_dataset("csv", tmp_path / "m.csv")
    assert manifest.multi_label
    assert manifest.labels == ["rain", "thunder", "wind"]
    assert manifest.records[0].labels == ("rain", "thunder")


def test_csv_manifest_missing_column(tmp_path):
    _write_csv(tmp_path / "m.csv", ["file", "label"], [["a.wav", "dog"]])
    with pytest.raises(DatasetLayoutError) as err:
        load_dataset("csv", tmp_path / "m.csv")
    message = str(err.value)
    assert "m.csv" in message and "missing column(s) path" in message and "found columns file, label" in message


def test_csv_folder_with_two_csvs_is_ambiguous(tmp_path):
    _write_csv(tmp_path / "a.csv", ["path", "label"], [])
    _write_csv(tmp_path / "b.csv", ["path", "label"], [])
    with pytest.raises(DatasetLayoutError, match="a.csv, b.csv"):
        load_dataset("csv", tmp_path)


def test_csv_duplicate_path_is_an_error(tmp_path):
    _wav(tmp_path / "a.wav")
    _write_csv(tmp_path / "m.csv", ["path", "label"], [["a.wav", "dog"], ["a.wav", "cat"]])
    with pytest.raises(DatasetLayoutError, match="listed twice"):
        load_dataset("csv", tmp_path / "m.csv")


# ----------------------------------------------------------------------------------------------------- registry

def test_registry_names_include_every_loader():
    assert dataset_names() == sorted(DATASETS)
    assert {"esc50", "esc10", "urbansound8k", "fsdkaggle2018", "folder", "csv", "synthetic"} <= set(dataset_names())


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_dataset("esc51", tmp_path)
    assert "esc51" in str(err.value) and "esc50" in str(err.value) and "urbansound8k" in str(err.value)


def test_bad_on_error_and_unknown_option_are_config_errors(tmp_path):
    make_esc50(tmp_path)
    with pytest.raises(ConfigError, match="on_error='ignore'"):
        load_dataset("esc50", tmp_path, on_error="ignore")
    with pytest.raises(ConfigError, match="verified_only"):
        load_dataset("esc50", tmp_path, verified_only=True)
    with pytest.raises(ConfigError, match="on_error"):
        check_records([], on_error="warn")


def test_root_from_environment(tmp_path, monkeypatch):
    make_esc50(tmp_path / "data" / "esc50")
    monkeypatch.delenv("ENVSOUND_DATA_ESC50", raising=False)
    monkeypatch.delenv("ENVSOUND_DATA_ESC10", raising=False)
    monkeypatch.setenv("ENVSOUND_DATA", str(tmp_path / "data"))
    assert len(load_dataset("esc50")) == 12
    assert len(load_dataset("esc10")) == 8  # ESC-10 is found in the ESC-50 folder
    monkeypatch.setenv("ENVSOUND_DATA_ESC50", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetLayoutError, match="nowhere.*does not exist"):
        load_dataset("esc50")


def test_no_root_says_to_pass_root(monkeypatch):
    for var in ("ENVSOUND_DATA", "ENVSOUND_DATA_URBANSOUND8K"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DatasetLayoutError, match="--root"):
        dataset_root("urbansound8k")


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match="missing-dir"):
        load_dataset("folder", tmp_path / "missing-dir")


# -------------------------------------------------------------------------------------------------- real ESC-50

@pytest.mark.realdata
def test_real_esc50_subset_counts_and_folds_do_not_leak():
    if not (SHARED_ESC50 / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real ESC-50 data not found at {SHARED_ESC50}")
    esc10 = load_dataset("esc10", SHARED_ESC50)
    assert len(esc10) == 320 and esc10.folds == [1, 2, 3, 4] and len(esc10.labels) == 10
    assert set(Counter(r.label for r in esc10.records).values()) == {32}
    esc50 = load_dataset("esc50", SHARED_ESC50)
    assert len(esc50.labels) == 50 and esc50.labels[0] == "dog"
    fold4 = Counter(r.label for r in esc50.records if r.fold == 4)
    assert len(fold4) == 50 and set(fold4.values()) == {8}
    for _, train, test in cv_splits(esc50, [1, 2, 3, 4]):
        check_no_leakage(train, test)
