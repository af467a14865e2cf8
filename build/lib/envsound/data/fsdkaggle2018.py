"""FSDKaggle2018 (Fonseca et al. 2018): 9,473 training clips of 0.3-30 s, 41 classes, no official folds.

Two layouts under ``root`` are accepted:

- Zenodo release (record 2552860)::

      FSDKaggle2018.meta/train_post_competition.csv   fname,label,manually_verified,freesound_id,license
      FSDKaggle2018.audio_train/<fname>

- Kaggle competition::

      train.csv                                      fname,label,manually_verified (no freesound_id)
      audio_train/<fname>

``source_id`` is ``freesound_id`` (``fname`` in the Kaggle layout). Labels are sorted by name. As there are no official
folds, ``n_folds`` stratified folds that keep one Freesound id on one side are assigned
(:func:`envsound.data.splits.stratified_group_folds`) over every row of the CSV, before filtering, so a clip's fold does
not change with ``verified_only`` or with other files being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import stratified_group_folds
from envsound.data.validate import check_on_error, check_records, drop_missing, finish_manifest, parse_bool, read_table
from envsound.errors import DatasetLayoutError

ZENODO_META = Path("FSDKaggle2018.meta") / "train_post_competition.csv"
ZENODO_AUDIO = Path("FSDKaggle2018.audio_train")
KAGGLE_META = Path("train.csv")
KAGGLE_AUDIO = Path("audio_train")
COLUMNS = ("fname", "label", "manually_verified")


def prepare_fsdkaggle2018(root: str | os.PathLike, *, on_error: str = "raise", n_folds: int = 5, seed: int = 0,
                          verified_only: bool = False) -> Manifest:
    """List the FSDKaggle2018 training set with ``n_folds`` assigned folds.

    Args:
        root: the dataset folder, in the Zenodo or the Kaggle layout (see the module docstring).
        on_error: ``"raise"`` or ``"skip"`` (see :func:`envsound.data.validate.check_records`).
        n_folds: number of folds to assign, >= 2 (numbered 1..n_folds).
        seed: seed of the fold assignment.
        verified_only: keep only clips whose label was manually verified (``manually_verified`` = 1).

    Returns:
        A manifest named ``"fsdkaggle2018"``.

    Raises:
        DatasetLayoutError: neither layout found, a missing column, a bad value, a row naming a missing file.
        AudioLoadError: an unreadable or empty audio file (with ``on_error="raise"``).
        ConfigError: ``on_error`` or ``n_folds`` out of range.

    >>> manifest = prepare_fsdkaggle2018("data/FSDKaggle2018", verified_only=True)
    >>> len(manifest.labels)  # 41
    """
    check_on_error(on_error)
    root = Path(root)
    if (root / ZENODO_META).is_file():
        csv_path, audio_dir, source_column = root / ZENODO_META, root / ZENODO_AUDIO, "freesound_id"
    elif (root / KAGGLE_META).is_file():
        csv_path, audio_dir, source_column = root / KAGGLE_META, root / KAGGLE_AUDIO, None
    else:
        raise DatasetLayoutError(f"{root}: no {ZENODO_META} (Zenodo layout) or {KAGGLE_META} (Kaggle layout); "
                                 "pass the FSDKaggle2018 folder as --root or run 'envsound download'")
    required = COLUMNS + ((source_column,) if source_column else ())
    listed: list[tuple[int, ClipRecord, bool]] = []
    for line, row in read_table(csv_path, required=required):
        if not row["fname"] or not row["label"]:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty fname or label; fix the CSV")
        verified = parse_bool(row["manually_verified"], csv_path=csv_path, line=line, column="manually_verified")
        source = (row[source_column] if source_column else "") or row["fname"]
        listed.append((line, ClipRecord(path=audio_dir / row["fname"], labels=(row["label"],), fold=None,
                                        source_id=source, clip_id=row["fname"]), verified))
    if not listed:
        raise DatasetLayoutError(f"{csv_path}: the CSV lists no clips; re-download the dataset")
    labels = sorted({rec.labels[0] for _, rec, _ in listed})
    folds = stratified_group_folds([rec for _, rec, _ in listed], n_folds=n_folds, seed=seed)
    chosen = [(line, _with_fold(rec, fold)) for (line, rec, verified), fold in zip(listed, folds)
              if verified or not verified_only]
    present, missing = drop_missing(chosen, csv_path=csv_path, on_error=on_error)
    good, bad = check_records(present, on_error=on_error)
    return finish_manifest("fsdkaggle2018", good, labels, skipped=missing + bad, where=csv_path)


def _with_fold(record: ClipRecord, fold: int) -> ClipRecord:
    return ClipRecord(path=record.path, labels=record.labels, fold=fold, source_id=record.source_id,
                      clip_id=record.clip_id)
