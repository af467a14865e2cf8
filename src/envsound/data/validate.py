"""Checks every dataset loader runs while listing a dataset: bad audio is decided here, not during training.

``on_error="raise"`` (the default) stops at the first problem with a one-line message naming the file;
``on_error="skip"`` leaves the bad clips out, returns them as ``(path, reason)`` pairs (they end up in
:attr:`Manifest.skipped <envsound.data.records.Manifest.skipped>`) and logs one warning with the count (not the
files: the caller names each once, so that a file met by listing and again by each fold is not named many times).
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

from envsound.data.records import ClipRecord, Manifest
from envsound.errors import AudioLoadError, ConfigError, DatasetLayoutError

logger = logging.getLogger(__name__)

ON_ERROR_CHOICES = ("raise", "skip")
PROGRESS_MIN_FILES = 200  # a progress bar appears when more files than this are checked


def check_on_error(on_error: str) -> str:
    """Return ``on_error`` if it is ``"raise"`` or ``"skip"``; anything else raises :class:`ConfigError`."""
    if on_error not in ON_ERROR_CHOICES:
        raise ConfigError(f"on_error={on_error!r} is not valid; use 'raise' (stop at the first bad file) "
                          "or 'skip' (leave bad files out and count them)")
    return on_error


def check_records(records: Sequence[ClipRecord], *, on_error: str = "raise",
                  progress: bool = True) -> tuple[list[ClipRecord], list[tuple[Path, str]]]:
    """Read the header of every clip's file (:func:`envsound.audio.load.audio_info`; no samples are decoded).

    Args:
        records: the clips to check, in order.
        on_error: ``"raise"`` or ``"skip"``.
        progress: show a tqdm bar when more than 200 files are checked (never when stderr is not a terminal).

    Returns:
        ``(good, skipped)``: the usable records in their original order, and ``(path, reason)`` for each left out
        (always empty with ``on_error="raise"``).

    Raises:
        AudioLoadError: with ``on_error="raise"``, the first missing, empty or unreadable file (the message names it).
        ConfigError: ``on_error`` is not ``"raise"`` or ``"skip"``.

    >>> good, skipped = check_records(manifest.records, on_error="skip")
    >>> len(skipped)
    """
    from envsound.audio.load import audio_info  # soundfile is loaded only when a dataset is listed

    check_on_error(on_error)
    good: list[ClipRecord] = []
    skipped: list[tuple[Path, str]] = []
    for record in _progress(records, enabled=progress, desc="checking audio"):
        try:
            audio_info(record.path)
        except AudioLoadError as exc:
            if on_error == "raise":
                raise
            skipped.append((Path(record.path), str(exc)))
            continue
        good.append(record)
    if skipped:  # a count: the caller names each file once (they are returned), however many steps meet them
        logger.warning("left out %d unusable audio file(s) of %d (on_error='skip')", len(skipped), len(records))
    return good, skipped


def drop_missing(listed: Iterable[tuple[int, ClipRecord]], *, csv_path: str | os.PathLike,
                 on_error: str = "raise") -> tuple[list[ClipRecord], list[tuple[Path, str]]]:
    """Check that each metadata row's audio file exists.

    Args:
        listed: ``(line number in the CSV, record)`` pairs (the header is line 1).
        csv_path: the metadata file the rows come from (named in messages).
        on_error: ``"raise"`` or ``"skip"``.

    Returns:
        ``(present, skipped)`` as :func:`check_records`.

    Raises:
        DatasetLayoutError: with ``on_error="raise"``, the first row whose file does not exist (names the CSV, the
            line and the file).
    """
    check_on_error(on_error)
    present: list[ClipRecord] = []
    skipped: list[tuple[Path, str]] = []
    for line, record in listed:
        if Path(record.path).is_file():
            present.append(record)
            continue
        reason = f"{csv_path}: line {line} names {record.path}, which does not exist"
        if on_error == "raise":
            raise DatasetLayoutError(f"{reason}; restore the file, fix the CSV, or pass on_error='skip' (--skip-bad)")
        skipped.append((Path(record.path), reason))
    if skipped:
        logger.warning("left out %d clip(s) listed in %s whose audio file is missing (on_error='skip')",
                       len(skipped), csv_path)
    return present, skipped


def read_table(csv_path: str | os.PathLike, *, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with a header row; return ``(line number, row)`` pairs with cell values stripped.

    Raises:
        DatasetLayoutError: the file is missing or unreadable, or lacks one of the ``required`` columns (the message
            names the file, the missing column(s) and the columns found).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetLayoutError(f"{csv_path}: metadata file not found; check the dataset root "
                                 "(pass --root) or re-download the dataset")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise DatasetLayoutError(
                    f"{csv_path}: missing column(s) {', '.join(missing)}; found columns "
                    f"{', '.join(columns) or '(none)'}; expected at least {', '.join(required)}")
            rows = []
            for row in reader:
                cells = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
                if not any(cells.values()):
                    continue  # a blank line
                rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(f"{csv_path}: cannot read the CSV ({exc}); check the file") from exc
    return rows


def parse_int(value: str, *, csv_path: str | os.PathLike, line: int, column: str) -> int:
    """``int(value)`` or a :class:`DatasetLayoutError` naming the file, line, column and value."""
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and number.is_integer():
            return int(number)
        raise DatasetLayoutError(f"{csv_path}: line {line}: column {column!r} holds {value!r}, "
                                 "expected an integer; fix the CSV") from None


def parse_bool(value: str, *, csv_path: str | os.PathLike, line: int, column: str) -> bool:
    """``True``/``False``/``1``/``0`` (any case) or a :class:`DatasetLayoutError`."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise DatasetLayoutError(f"{csv_path}: line {line}: column {column!r} holds {value!r}, "
                             "expected True or False; fix the CSV")


def finish_manifest(name: str, records: list[ClipRecord], labels: list[str], *, skipped: list[tuple[Path, str]],
                    where: str | os.PathLike, multi_label: bool = False) -> Manifest:
    """Build the manifest.

    Raises:
        DatasetLayoutError: a clip id listed twice, or an empty manifest (nothing listed, or everything skipped).
    """
    seen: dict[str, ClipRecord] = {}
    for record in records:
        first = seen.setdefault(record.clip_id, record)
        if first is not record:
            raise DatasetLayoutError(f"{where}: clip {record.clip_id!r} is listed twice ({first.path} and "
                                     f"{record.path}); list each clip once")
    if not records:
        extra = f" ({len(skipped)} left out as unusable; first: {skipped[0][1]})" if skipped else ""
        raise DatasetLayoutError(f"{where}: no usable clips found for dataset {name!r}{extra}; "
                                 "check the dataset root (pass --root)")
    logger.info("dataset %s: %d clips, %d classes, folds %s", name, len(records), len(labels),
                sorted({r.fold for r in records if r.fold is not None}) or "none")
    return Manifest(name=name, records=records, labels=labels, multi_label=multi_label, skipped=list(skipped))


def _progress(items: Sequence, *, enabled: bool, desc: str):
    if not enabled or len(items) <= PROGRESS_MIN_FILES or not getattr(sys.stderr, "isatty", lambda: False)():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", leave=False)
