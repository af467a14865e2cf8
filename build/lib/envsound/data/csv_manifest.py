"""Any dataset described by a CSV file::

    path,label[,fold][,source_id]
    clips/a.wav,dog,1,rec7
    clips/b.wav,dog;siren,2,rec8        <- several labels separated by ';' make a multi-label dataset

``path`` is relative to the CSV's folder (absolute paths are allowed). ``fold`` may be empty (no fold) and
``source_id`` defaults to the ``path`` cell (each file its own recording). Labels are sorted by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from envsound.data.records import ClipRecord, Manifest
from envsound.data.validate import check_on_error, check_records, drop_missing, finish_manifest, parse_int, read_table
from envsound.errors import DatasetLayoutError

LABEL_SEPARATOR = ";"


def prepare_csv(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """List the dataset of a CSV manifest.

    Args:
        root: the CSV file, or a folder holding exactly one ``*.csv``.
        on_error: ``"raise"`` or ``"skip"`` (see :func:`read_csv_manifest`).

    Returns:
        A manifest named ``"csv"``.

    Raises:
        DatasetLayoutError: ``root`` does not exist, or is a folder with no or several ``*.csv`` files; and as
            :func:`read_csv_manifest`.

    >>> manifest = prepare_csv("my_sounds/labels.csv")
    """
    root = Path(root)
    if root.is_dir():
        found = sorted(p for p in root.glob("*.csv") if p.is_file())
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DatasetLayoutError(f"{root}: expected exactly one *.csv manifest in the folder, found {names}; "
                                     "pass the CSV file itself as --root")
        root = found[0]
    elif not root.is_file():
        raise DatasetLayoutError(f"{root}: no such CSV file or folder; pass a CSV manifest as --root")
    return read_csv_manifest(root, name="csv", on_error=on_error)


def read_csv_manifest(csv_path: str | os.PathLike, *, name: str, on_error: str = "raise") -> Manifest:
    """Read a ``path,label[,fold][,source_id]`` CSV into a manifest named ``name``.

    ``clip_id`` is the ``path`` cell as written. The manifest is multi-label when any ``label`` cell holds ``;``.

    Raises:
        DatasetLayoutError: a missing ``path`` or ``label`` column (names the CSV, the column and the columns found),
            an empty path or label, a non-integer fold, a path listed twice, a row naming a missing file (with
            ``on_error="raise"``), or no usable clips.
        AudioLoadError: an unreadable or empty audio file (with ``on_error="raise"``).
        ConfigError: ``on_error`` not ``"raise"``/``"skip"``.

    >>> manifest = read_csv_manifest("data/synthetic/synthetic.csv", name="synthetic")
    """
    check_on_error(on_error)
    csv_path = Path(csv_path)
    base = csv_path.parent
    listed: list[tuple[int, ClipRecord]] = []
    multi_label = False
    for line, row in read_table(csv_path, required=("path", "label")):
        labels = tuple(part.strip() for part in row["label"].split(LABEL_SEPARATOR) if part.strip())
        if not row["path"] or not labels:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty path or label; give every row a file and "
                                     "at least one label")
        multi_label = multi_label or LABEL_SEPARATOR in row["label"]
        fold_cell = row.get("fold", "")
        fold = parse_int(fold_cell, csv_path=csv_path, line=line, column="fold") if fold_cell else None
        listed.append((line, ClipRecord(path=base / row["path"], labels=labels, fold=fold,
                                        source_id=row.get("source_id", "") or row["path"], clip_id=row["path"])))
    labels = sorted({label for _, record in listed for label in record.labels})
    present, missing = drop_missing(listed, csv_path=csv_path, on_error=on_error)
    good, bad = check_records(present, on_error=on_error)
    return finish_manifest(name, good, labels, skipped=missing + bad, where=csv_path, multi_label=multi_label)
