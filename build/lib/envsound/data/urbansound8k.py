"""UrbanSound8K (Salamon et al. 2014): 8,732 excerpts of up to 4 s, 10 classes, 10 official folds.

Layout under ``root`` (as the archive unpacks, or ``root/UrbanSound8K/`` holding it)::

    metadata/UrbanSound8K.csv        slice_file_name,fsID,start,end,salience,fold,classID,class
    audio/fold<k>/<slice_file_name>

Labels are the class names ordered by ``classID``; ``source_id`` is ``fsID`` (the Freesound recording the slices come
from; the official folds keep each on one side). Use the official folds only: random splits leak.
"""

from __future__ import annotations

import os
from pathlib import Path

from envsound.data.records import ClipRecord, Manifest
from envsound.data.validate import check_on_error, check_records, drop_missing, finish_manifest, parse_int, read_table
from envsound.errors import DatasetLayoutError

META = Path("metadata") / "UrbanSound8K.csv"
COLUMNS = ("slice_file_name", "fsID", "fold", "classID", "class")


def prepare_urbansound8k(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """List UrbanSound8K: every row of ``metadata/UrbanSound8K.csv`` whose audio file is usable.

    Args:
        root: the dataset folder (holding ``metadata/`` and ``audio/``, or ``UrbanSound8K/`` with them inside).
        on_error: ``"raise"`` or ``"skip"`` (see :func:`envsound.data.validate.check_records`).

    Returns:
        A manifest named ``"urbansound8k"`` with folds 1..10.

    Raises:
        DatasetLayoutError: no metadata CSV, a missing column, a bad value, a row naming a missing file.
        AudioLoadError: an unreadable or empty audio file (with ``on_error="raise"``).
        ConfigError: ``on_error`` not ``"raise"``/``"skip"``.

    >>> manifest = prepare_urbansound8k("data/UrbanSound8K")
    >>> manifest.folds  # [1, 2, ..., 10]
    """
    check_on_error(on_error)
    root = Path(root)
    if not (root / META).is_file() and (root / "UrbanSound8K" / META).is_file():
        root = root / "UrbanSound8K"
    csv_path = root / META
    listed: list[tuple[int, ClipRecord]] = []
    names_by_id: dict[int, str] = {}
    for line, row in read_table(csv_path, required=COLUMNS):
        class_id = parse_int(row["classID"], csv_path=csv_path, line=line, column="classID")
        fold = parse_int(row["fold"], csv_path=csv_path, line=line, column="fold")
        name, label = row["slice_file_name"], row["class"]
        if not name or not label:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty slice_file_name or class; fix the CSV")
        known = names_by_id.setdefault(class_id, label)
        if known != label:
            raise DatasetLayoutError(f"{csv_path}: line {line}: classID {class_id} is {label!r} here but "
                                     f"{known!r} earlier; fix the CSV")
        listed.append((line, ClipRecord(path=root / "audio" / f"fold{fold}" / name, labels=(label,), fold=fold,
                                        source_id=row["fsID"] or name, clip_id=name)))
    labels = [names_by_id[i] for i in sorted(names_by_id)]
    present, missing = drop_missing(listed, csv_path=csv_path, on_error=on_error)
    good, bad = check_records(present, on_error=on_error)
    return finish_manifest("urbansound8k", good, labels, skipped=missing + bad, where=csv_path)
