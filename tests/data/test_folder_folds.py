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
