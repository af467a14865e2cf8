"""Folds made for a folder of clips that has none (issue 55, rough edge 1): k = min(5, recordings in the smallest
class), stratified by class, grouped by recording."""

from __future__ import annotations

from pathlib import Path

import pytest
from audiofactory import write_tone

from envsound.data.folder import prepare_folder
from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import with_made_folds


def make_folder(root: Path, sizes: dict[str, int]) -> Path:
    """``root/<label>/<i>.wav``: ``sizes[label]`` short tones a class (real WAV files)."""
    for k, (label, n) in enumerate(sizes.items()):
        for i in range(n):
            write_tone(root / label / f"{i}.wav", seconds=0.3, sample_rate=8000, freq=300 * (k + 1) + 40 * i, seed=i)
    return root


@pytest.mark.parametrize("sizes, k", [({"dog": 4, "rain": 4, "siren": 4}, 4),
                                      ({"dog": 4, "rain": 2, "siren": 3}, 2),
                                      ({"dog": 7, "rain": 6, "siren": 9}, 5)])
def test_a_small_folder_gets_as_many_folds_as_its_smallest_class_has_recordings(tmp_path, sizes, k):
    manifest = with_made_folds(prepare_folder(make_folder(tmp_path, sizes)))
    assert manifest.folds == list(range(1, k + 1))
    for fold in manifest.folds:  # stratified: every class is tested in every fold
        assert {r.labels[0] for r in manifest.records if r.fold == fold} == set(sizes)


def test_a_folder_with_a_class_of_one_recording_gets_no_folds_and_the_class_is_named(tmp_path):
    from envsound.data.splits import recordings_per_class, smallest_class

    manifest = with_made_folds(prepare_folder(make_folder(tmp_path, {"cat": 1, "dog": 4, "rain": 4, "siren": 4})))
    assert manifest.folds == [] and len(manifest) == 13  # training on every clip still works
    assert recordings_per_class(manifest) == {"cat": 1, "dog": 4, "rain": 4, "siren": 4}
    assert smallest_class(manifest) == ("cat", 1)
    assert with_made_folds(manifest.select_classes(exclude=["cat"])).folds == [1, 2, 3, 4]


def test_made_folds_count_recordings_not_clips_and_keep_a_recording_together():
    """Six clips of dog from two recordings allow 2 folds, not 5, and each recording's clips share one."""
    from envsound.data.splits import recordings_per_class

    records = [ClipRecord(path=Path(f"{label}/{rec}-{i}.wav"), labels=(label,), fold=None,
                          source_id=f"{label}/{rec}", clip_id=f"{label}/{rec}-{i}")
               for label, recordings in (("dog", 2), ("rain", 6)) for rec in range(recordings) for i in range(3)]
    manifest = with_made_folds(Manifest(name="clips", records=records, labels=["dog", "rain"]))
    assert recordings_per_class(manifest) == {"dog": 2, "rain": 6}
    assert manifest.folds == [1, 2]
    folds_of = {}
    for r in manifest.records:
        folds_of.setdefault(r.source_id, set()).add(r.fold)
    assert all(len(folds) == 1 for folds in folds_of.values())


def make_takes(root: Path, names: dict[str, list[str]]) -> Path:
    """``root/<label>/<name>.wav`` for each name of ``names[label]`` (short tones, real WAV files)."""
    for k, (label, stems) in enumerate(names.items()):
        for i, stem in enumerate(stems):
            write_tone(root / label / f"{stem}.wav", seconds=0.3, sample_rate=8000, freq=300 * (k + 1) + 40 * i,
                       seed=i)
    return root


def esc50_takes(fold: int, sources: range, takes: str = "ABC") -> list[str]:
    return [f"{fold}-{source}-{take}" for source in sources for take in takes]


def test_takes_of_one_recording_share_a_fold(tmp_path):
    """Issue 69, item 7: ESC-50's 4-125825-A and -B in a user's folder were two recordings and could land in
    different folds; with 4 recordings of 3 takes a class, the folds are 4 (not 5) and each recording's takes share
    one."""
    root = make_takes(tmp_path, {"dog": esc50_takes(4, range(125820, 125824)),
                                 "rain": esc50_takes(1, range(17360, 17364)),
                                 "siren": esc50_takes(2, range(90500, 90504), takes="AB") + ["2-90504-A-42"]})
    manifest = with_made_folds(prepare_folder(root))
    assert manifest.folds == [1, 2, 3, 4]
    by_id = {r.clip_id: r for r in manifest.records}
    assert by_id["dog/4-125820-A.wav"].source_id == by_id["dog/4-125820-C.wav"].source_id == "125820"
    assert by_id["siren/2-90504-A-42.wav"].source_id == "90504"  # the original archive's names end in -class
    folds_of: dict[str, set[int]] = {}
    for r in manifest.records:
        folds_of.setdefault(r.source_id, set()).add(r.fold)
    assert len(folds_of) == 13 and all(len(folds) == 1 for folds in folds_of.values())


def test_group_by_takes_a_regex_whose_first_group_is_the_recording(tmp_path):
    root = make_takes(tmp_path, {"dog": [f"park{p}_take{t}" for p in range(3) for t in range(2)] + ["lone"],
                                 "rain": [f"roof{p}_take{t}" for p in range(3) for t in range(2)]})
    plain = prepare_folder(root)  # not ESC-50's names: each file its own recording
    assert len({r.source_id for r in plain.records}) == 13
    assert plain.grouping.startswith("each file its own recording")
    manifest = prepare_folder(root, group_by=r"^(.+)_take\d+$")
    by_id = {r.clip_id: r.source_id for r in manifest.records}
    assert by_id["dog/park1_take0.wav"] == by_id["dog/park1_take1.wav"] == "park1"
    assert by_id["dog/lone.wav"] == "dog/lone.wav"  # not matched: its own recording
    assert "for 12 file(s), each other file its own" in manifest.grouping
    made = with_made_folds(manifest)
    assert made.folds == [1, 2, 3]
    assert all(len({r.fold for r in made.records if r.source_id == s}) == 1 for s in by_id.values())


@pytest.mark.parametrize("group_by, said", [("(unclosed", "is not a regular expression"),
                                            (r"_take\d+$", "has no group"),
                                            ("", "has no group")])
def test_a_group_by_without_a_group_or_not_a_regex_is_a_config_error_naming_it(tmp_path, group_by, said):
    from envsound.errors import ConfigError

    root = make_takes(tmp_path, {"dog": ["a", "b"], "rain": ["c", "d"]})
    with pytest.raises(ConfigError, match=said) as caught:
        prepare_folder(root, group_by=group_by)
    assert repr(group_by) in str(caught.value)


def test_cv_says_which_grouping_made_its_folds(tmp_path, caplog):
    """The line `cv` logs when it makes folds names the files, the recordings and how they were found, and
    --group-by reaches the folder dataset from the command line."""
    import logging

    from envsound.cli.dataset_flags import manifest_of
    from envsound.cli.main import build_parser

    root = make_takes(tmp_path / "sounds", {"dog": esc50_takes(4, range(3)), "rain": esc50_takes(1, range(3, 6))})
    args = build_parser().parse_args(["cv", "--dataset", "folder", "--root", str(root), "--out", str(tmp_path / "cv")])
    with caplog.at_level(logging.INFO, logger="envsound"):
        manifest = manifest_of(args, rotate=True)
    assert manifest.folds == [1, 2, 3]
    assert ("has no folds: made 3, stratified by class and grouped by source recording (seed 0): 18 files in 6 "
            "recordings, recordings from ESC-50's fold-source-take names") in caplog.text

    caplog.clear()
    args = build_parser().parse_args(["cv", "--dataset", "folder", "--root", str(root),
                                      "--group-by", "^[0-9]+-([0-9]+)", "--out", str(tmp_path / "cv")])
    with caplog.at_level(logging.INFO, logger="envsound"):
        manifest = manifest_of(args, rotate=True)
    assert ("18 files in 6 recordings, recordings from the first group of '^[0-9]+-([0-9]+)' for 18 file(s);"
            in caplog.text)
    assert manifest.folds == [1, 2, 3]
