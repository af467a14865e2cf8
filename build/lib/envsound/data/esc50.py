"""ESC-50 (Piczak 2015): 2,000 five-second clips, 50 classes, 5 official folds; ESC-10 is its 10-class subset.

Layout under ``root`` (the official release, or ``root/ESC-50-master/`` as GitHub's zip unpacks)::

    meta/esc50.csv     filename,fold,target,category,esc10,src_file,take
    audio/<filename>   the file names come from the CSV (the release has WAV; a FLAC copy with a CSV naming
                       .flac files works the same)

Labels are the category names ordered by ``target``; ``source_id`` is ``src_file`` (the Freesound clip that the
five-second excerpts were cut from; the official folds keep each on one side).
"""

from __future__ import annotations

import os
from pathlib import Path

from envsound.data.records import ClipRecord, Manifest
from envsound.data.validate import (check_on_error, check_records, drop_missing, finish_manifest, parse_bool,
                                    parse_int, read_table)
from envsound.errors import DatasetLayoutError

META = Path("meta") / "esc50.csv"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file")


def prepare_esc50(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """List ESC-50: every row of ``meta/esc50.csv`` whose audio file is usable.

    Args:
        root: the dataset folder (holding ``meta/`` and ``audio/``, or ``ESC-50-master/`` with them inside).
        on_error: ``"raise"`` (stop at the first missing or unreadable file) or ``"skip"`` (leave it out, counted in
            ``Manifest.skipped``).

    Returns:
        A manifest named ``"esc50"``: labels = category names ordered by ``target``, folds as in the CSV.

    Raises:
        DatasetLayoutError: no ``meta/esc50.csv``, a missing column, a bad value, a row naming a missing file.
        AudioLoadError: an unreadable or empty audio file (with ``on_error="raise"``).
        ConfigError: ``on_error`` not ``"raise"``/``"skip"``.

    >>> manifest = prepare_esc50("data/ESC-50")
    >>> len(manifest.labels), manifest.folds  # (50, [1, 2, 3, 4, 5])
    """
    return _prepare(root, name="esc50", esc10_only=False, on_error=on_error)


def prepare_esc10(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """List ESC-10: the rows of ESC-50's CSV with ``esc10`` True (10 classes, 400 clips in the full release).

    Same root, arguments and errors as :func:`prepare_esc50`; the manifest is named ``"esc10"``.

    >>> prepare_esc10("data/ESC-50").labels[:3]  # ['dog', 'rooster', 'rain']
    """
    return _prepare(root, name="esc10", esc10_only=True, on_error=on_error)


def esc50_root(root: str | os.PathLike) -> Path:
    """``root``, or ``root/ESC-50-master`` when only that holds ``meta/esc50.csv`` (GitHub's zip layout)."""
    root = Path(root)
    nested = root / "ESC-50-master"
    if not (root / META).is_file() and (nested / META).is_file():
        return nested
    return root


def _prepare(root: str | os.PathLike, *, name: str, esc10_only: bool, on_error: str) -> Manifest:
    check_on_error(on_error)
    root = esc50_root(root)
    csv_path = root / META
    rows = read_table(csv_path, required=COLUMNS)
    listed: list[tuple[int, ClipRecord]] = []
    names_by_target: dict[int, str] = {}
    for line, row in rows:
        if esc10_only and not parse_bool(row["esc10"], csv_path=csv_path, line=line, column="esc10"):
            continue
        target = parse_int(row["target"], csv_path=csv_path, line=line, column="target")
        category = row["category"]
        if not category or not row["filename"]:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty filename or category; fix the CSV")
        known = names_by_target.setdefault(target, category)
        if known != category:
            raise DatasetLayoutError(f"{csv_path}: line {line}: target {target} is {category!r} here but "
                                     f"{known!r} earlier; fix the CSV")
        listed.append((line, ClipRecord(
            path=root / "audio" / row["filename"], labels=(category,),
            fold=parse_int(row["fold"], csv_path=csv_path, line=line, column="fold"),
            source_id=row["src_file"] or row["filename"], clip_id=row["filename"])))
    if len(set(names_by_target.values())) != len(names_by_target):
        raise DatasetLayoutError(f"{csv_path}: one category has several target numbers; fix the CSV")
    labels = [names_by_target[t] for t in sorted(names_by_target)]
    present, missing = drop_missing(listed, csv_path=csv_path, on_error=on_error)
    good, bad = check_records(present, on_error=on_error)
    return finish_manifest(name, good, labels, skipped=missing + bad, where=csv_path)
