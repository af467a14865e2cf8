"""The labelled share of the training clips (stratified, grouped by source, deterministic) and the unlabelled pool's
guard against the test fold (no audio needed)."""

from collections import Counter
from pathlib import Path

import pytest

from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import (check_no_leakage, exclude_clips_of, labelled_subset, merge_unlabelled,
                                  train_val_split)
from envsound.errors import ConfigError, DatasetLayoutError
from test_splits import make_manifest


def test_label_fraction_is_stratified_grouped_and_deterministic():
    manifest = make_manifest(classes=4, sources_per_class=10, clips_per_source=2)  # 20 clips per class
    labelled, rest = labelled_subset(manifest, fraction=0.3, seed=0)
    assert len(labelled) + len(rest) == len(manifest)
    assert Counter(r.label for r in labelled.records) == {f"class{c}": 6 for c in range(4)}  # 30 % of each class
    check_no_leakage(labelled, rest)  # no source recording on both sides
    assert labelled.labels == manifest.labels
    again, _ = labelled_subset(manifest, fraction=0.3, seed=0)
    assert [r.clip_id for r in again.records] == [r.clip_id for r in labelled.records]
    shuffled = manifest.subset(list(reversed(manifest.records)))  # the record order does not change the choice
    assert {r.clip_id for r in labelled_subset(shuffled, fraction=0.3, seed=0)[0].records} == \
        {r.clip_id for r in labelled.records}
    other, _ = labelled_subset(manifest, fraction=0.3, seed=1)
    assert {r.clip_id for r in other.records} != {r.clip_id for r in labelled.records}


def test_every_class_keeps_a_labelled_clip_and_fraction_one_keeps_all():
    manifest = make_manifest(classes=3, sources_per_class=3, clips_per_source=1)
    labelled, _ = labelled_subset(manifest, fraction=0.01, seed=0)
    assert Counter(r.label for r in labelled.records) == {f"class{c}": 1 for c in range(3)}
    labelled, rest = labelled_subset(manifest, fraction=1.0, seed=0)
    assert len(labelled) == len(manifest) and len(rest) == 0
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="label_fraction"):
            labelled_subset(manifest, fraction=bad, seed=0)


def test_unlabelled_pool_excludes_the_test_fold_and_shared_sources():
    manifest = make_manifest(classes=2, sources_per_class=5, clips_per_source=2, folds=5)
    test = manifest.select_folds([3])
    sneaky = [  # another corpus naming the same files and recordings differently
        ClipRecord(path=Path("/other/x.wav"), labels=("class0",), fold=1, source_id="c0s2", clip_id="x"),  # source
        ClipRecord(path=test.records[0].path, labels=(), fold=None, source_id="own", clip_id="y"),  # same file
        ClipRecord(path=Path("/other/z.wav"), labels=(), fold=None, source_id="z", clip_id=test.records[1].clip_id),
        ClipRecord(path=Path("/other/ok.wav"), labels=(), fold=None, source_id="ok", clip_id="ok"),
    ]
    pool = Manifest(name="pool", records=manifest.records + sneaky, labels=[])
    with pytest.raises(DatasetLayoutError, match="leak"):
        check_no_leakage(pool, test)
    kept = exclude_clips_of(pool, test, fold=3)
    check_no_leakage(kept, test)
    assert all(r.fold != 3 for r in kept.records)
    assert [r.clip_id for r in kept.records if r.fold is None] == ["ok"]
    assert "x" not in {r.clip_id for r in kept.records}
    assert len(kept) == len(manifest) - len(test) + 1


def test_merged_pool_has_no_labels_and_each_file_once():
    manifest = make_manifest(classes=2, sources_per_class=2, clips_per_source=1)
    train, val = train_val_split(manifest, val_fraction=0.5, seed=0)
    merged = merge_unlabelled(train, manifest)
    assert len(merged) == len(manifest) and merged.labels == []
    assert all(r.labels == () for r in merged.records)
    assert len({r.clip_id for r in merged.records}) == len(merged)
