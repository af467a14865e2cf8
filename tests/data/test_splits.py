"""Leak-free splits: train/val, leave-one-fold-out, assigned folds, and the leakage guard (no audio files needed)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import check_no_leakage, cv_splits, stratified_group_folds, train_val_split
from envsound.errors import ConfigError, DatasetLayoutError


def make_manifest(*, classes: int = 4, sources_per_class: int = 10, clips_per_source: int = 2, folds: int = 5,
                  multi_label: bool = False) -> Manifest:
    records = []
    for c in range(classes):
        for s in range(sources_per_class):
            source = f"c{c}s{s}"
            for k in range(clips_per_source):
                labels = (f"class{c}", f"class{(c + 1) % classes}") if multi_label else (f"class{c}",)
                records.append(ClipRecord(path=Path(f"/data/{source}-{k}.wav"), labels=labels,
                                          fold=1 + s % folds, source_id=source, clip_id=f"{source}-{k}"))
    return Manifest(name="toy", records=records, labels=[f"class{c}" for c in range(classes)],
                    multi_label=multi_label)


# -------------------------------------------------------------------------------------------------- train / val

def test_train_val_split_is_grouped_stratified_and_deterministic():
    manifest = make_manifest()
    train, val = train_val_split(manifest, val_fraction=0.2, seed=3)
    assert len(train) + len(val) == len(manifest)
    check_no_leakage(train, val)  # no source on both sides
    assert Counter(r.label for r in val.records) == {f"class{c}": 4 for c in range(4)}  # 20 % of each class
    assert train.labels == manifest.labels and val.labels == manifest.labels
    again_train, again_val = train_val_split(manifest, val_fraction=0.2, seed=3)
    assert [r.clip_id for r in again_val.records] == [r.clip_id for r in val.records]
    _, other_val = train_val_split(manifest, val_fraction=0.2, seed=4)
    assert {r.clip_id for r in other_val.records} != {r.clip_id for r in val.records}


def test_train_val_split_zero_fraction_gives_empty_val():
    manifest = make_manifest()
    train, val = train_val_split(manifest, val_fraction=0.0, seed=0)
    assert len(train) == len(manifest) and len(val) == 0 and val.labels == manifest.labels


def test_every_class_keeps_a_training_clip():
    # class0 has a single source recording: it must stay in training however large the fraction
    manifest = make_manifest(classes=3, sources_per_class=2, clips_per_source=1)
    lonely = ClipRecord(path=Path("/data/lonely.wav"), labels=("class3",), fold=1, source_id="lonely",
                        clip_id="lonely")
    manifest = Manifest(name="toy", records=manifest.records + [lonely], labels=manifest.labels + ["class3"])
    for seed in range(5):
        train, val = train_val_split(manifest, val_fraction=0.9, seed=seed)
        assert {r.label for r in train.records} == set(manifest.labels)
        assert "lonely" not in {r.clip_id for r in val.records}


def label_sets_manifest(n_sources: int = 120, seed: int = 0) -> Manifest:
    """Clips with 1-3 of 6 labels, label frequencies from 10 % to 60 %, two clips per source recording."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rates = [0.6, 0.4, 0.3, 0.2, 0.15, 0.1]
    records = []
    for s in range(n_sources):
        labels = tuple(f"tag{k}" for k, rate in enumerate(rates) if rng.random() < rate) or ("tag0",)
        for k in range(2):
            records.append(ClipRecord(path=Path(f"/data/s{s}-{k}.wav"), labels=labels, fold=None,
                                      source_id=f"s{s}", clip_id=f"s{s}-{k}"))
    return Manifest(name="tags", records=records, labels=[f"tag{k}" for k in range(6)], multi_label=True)


def label_shares(records) -> dict[str, float]:
    counts = Counter(label for r in records for label in r.labels)
    return {label: n / len(records) for label, n in counts.items()}


def test_train_val_split_stratifies_label_sets():
    manifest = label_sets_manifest()
    train, val = train_val_split(manifest, val_fraction=0.25, seed=0)
    check_no_leakage(train, val)
    assert len(val) / len(manifest) == pytest.approx(0.25, abs=0.03)
    everywhere = label_shares(manifest.records)
    for label, share in label_shares(val.records).items():  # every tag about as common in validation as overall
        assert share == pytest.approx(everywhere[label], abs=0.05), label
    # by the first label alone (the old rule) tag0 dominated validation's strata; now each tag is counted
    assert set(label_shares(val.records)) == set(manifest.labels)


def test_assigned_folds_stratify_label_sets_and_keep_sources_together():
    manifest = label_sets_manifest()
    folds = stratified_group_folds(manifest.records, n_folds=4, seed=1)
    assert folds == stratified_group_folds(manifest.records, n_folds=4, seed=1)
    by_source: dict[str, set[int]] = {}
    for record, fold in zip(manifest.records, folds):
        by_source.setdefault(record.source_id, set()).add(fold)
    assert all(len(f) == 1 for f in by_source.values())
    everywhere = label_shares(manifest.records)
    for k in range(1, 5):
        members = [r for r, f in zip(manifest.records, folds) if f == k]
        assert len(members) == pytest.approx(len(manifest) / 4, abs=6)
        for label, share in everywhere.items():
            assert label_shares(members).get(label, 0.0) == pytest.approx(share, abs=0.07), (k, label)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_train_val_split_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        train_val_split(make_manifest(), val_fraction=fraction, seed=0)


# ------------------------------------------------------------------------------------------------------ cv folds

def test_cv_splits_leave_one_fold_out():
    manifest = make_manifest()
    splits = cv_splits(manifest, [1, 2, 3])
    assert [fold for fold, _, _ in splits] == [1, 2, 3]
    for test_fold, train, test in splits:
        assert {r.fold for r in test.records} == {test_fold}
        assert {r.fold for r in train.records} == {1, 2, 3} - {test_fold}  # folds 4 and 5 unused
        check_no_leakage(train, test)


def test_cv_splits_train_on_noisy_clips_but_never_score_them(caplog):
    manifest = make_manifest()
    records = [replace(r, origin="noisy" if i % 3 == 0 else "curated") for i, r in enumerate(manifest.records)]
    for test_fold, train, test in cv_splits(manifest.subset(records), [1, 2, 3]):
        assert {r.origin for r in train.records} == {"curated", "noisy"}
        assert {r.origin for r in test.records} == {"curated"} and {r.fold for r in test.records} == {test_fold}
    noisy_only = manifest.subset([replace(r, origin="noisy") for r in manifest.records])  # --subset noisy
    assert all(len(test.records) == 16 for _, _, test in cv_splits(noisy_only, [1, 2]))  # all it has: said
    assert "hold only clips of origin noisy" in caplog.text


def test_cv_splits_errors():
    manifest = make_manifest()
    with pytest.raises(DatasetLayoutError, match="at least 2 folds"):
        cv_splits(manifest, [1])
    with pytest.raises(DatasetLayoutError, match=r"no fold \[7\]"):
        cv_splits(manifest, [1, 7])
    with pytest.raises(DatasetLayoutError, match="more than once"):
        cv_splits(manifest, [1, 2, 2])


# ---------------------------------------------------------------------------------------------------- leakage

def _one(clip_id: str, source: str, path: str | None = None) -> Manifest:
    record = ClipRecord(path=Path(path or f"/data/{clip_id}.wav"), labels=("a",), fold=1, source_id=source,
                        clip_id=clip_id)
    return Manifest(name="toy", records=[record], labels=["a"])


@pytest.mark.parametrize("train, test, what", [
    (_one("x", "s1"), _one("y", "s1"), "source recording"),
    (_one("x", "s1"), _one("x", "s2", "/other/x.wav"), "clip id"),
    (_one("x", "s1", "/data/same.wav"), _one("y", "s2", "/data/../data/same.wav"), "file"),
])
def test_check_no_leakage_catches_a_constructed_leak(train, test, what):
    with pytest.raises(DatasetLayoutError, match=f"1 {what}"):
        check_no_leakage(train, test)


def test_check_no_leakage_catches_a_random_split_of_grouped_clips():
    # splitting clips (not sources) at random puts the two clips of some recording on both sides
    manifest = make_manifest()
    train = manifest.subset(manifest.records[0::2])
    test = manifest.subset(manifest.records[1::2])
    with pytest.raises(DatasetLayoutError, match="source recording"):
        check_no_leakage(train, test)


# --------------------------------------------------------------------------------------------- assigned folds

def test_stratified_group_folds_keep_groups_together_and_balance_classes():
    manifest = make_manifest(sources_per_class=10, clips_per_source=3)
    folds = stratified_group_folds(manifest.records, n_folds=5, seed=0)
    assert sorted(set(folds)) == [1, 2, 3, 4, 5]
    by_source: dict[str, set[int]] = {}
    for record, fold in zip(manifest.records, folds):
        by_source.setdefault(record.source_id, set()).add(fold)
    assert all(len(f) == 1 for f in by_source.values())
    per_fold_class = Counter((fold, r.label) for r, fold in zip(manifest.records, folds))
    assert set(per_fold_class.values()) == {6}  # 2 sources x 3 clips of every class in every fold
    assert stratified_group_folds(manifest.records, n_folds=5, seed=0) == folds
    assert stratified_group_folds(manifest.records, n_folds=5, seed=1) != folds


def test_stratified_group_folds_errors():
    records = make_manifest(classes=1, sources_per_class=2).records
    with pytest.raises(DatasetLayoutError, match="2 source recording"):
        stratified_group_folds(records, n_folds=3, seed=0)
    with pytest.raises(ConfigError, match="n_folds"):
        stratified_group_folds(records, n_folds=1, seed=0)


def test_folds_from_classes_too_small_to_stratify_are_a_clear_error():
    records = [ClipRecord(path=Path(f"/d/{i}.wav"), labels=(f"c{i}",), fold=None, source_id=str(i), clip_id=str(i))
               for i in range(6)]  # six classes of one clip each
    with pytest.raises(DatasetLayoutError, match="cannot make 5 stratified folds of 6 clips"):
        stratified_group_folds(records, n_folds=5, seed=0)
