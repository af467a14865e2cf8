"""Strong labels: when each sound of a clip starts and ends, from a dataset's ``strong_labels.csv``.

``envsound mix`` writes one (``fname,subset,label,onset,offset,...``, seconds) beside the clips it makes; a set of
your own can carry the same file (``subset`` ``curated`` for ``train_curated/``). The keys are the clips' ``clip_id``
(``train_curated/<fname>``), so a manifest's records find their events. Every row is checked as it is read: a bad
one stops the reading with one line naming the file, the row and the problem.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from envsound.errors import DatasetLayoutError

STRONG_NAME = "strong_labels.csv"


@dataclass(frozen=True)
class StrongEvent:
    label: str
    onset: float  # seconds from the clip's start
    offset: float
    row: int = field(default=0, compare=False)  # its row in strong_labels.csv (the header is row 1), for messages


def read_strong_labels(root: str | Path, *, labels: Iterable[str] | None = None) -> dict[str, list[StrongEvent]] | None:
    """``{clip_id: events sorted by onset}`` from ``root/strong_labels.csv``, or ``None`` when there is none.

    Raises:
        DatasetLayoutError: a row without its columns, a time that is not a number or is negative, an onset at or
            after its offset, or (with ``labels``) a label not among them; the message names the row.
    """
    path = Path(root) / STRONG_NAME
    if not path.is_file():
        return None
    known = set(labels) if labels is not None else None
    events: dict[str, list[StrongEvent]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"fname", "subset", "label", "onset", "offset"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetLayoutError(f"{path}: no column {', '.join(sorted(missing))} (the header needs fname, subset, "
                                     "label, onset, offset)")
        for row_number, row in enumerate(reader, start=2):
            where = f"{path}: row {row_number}"
            onset, offset = _seconds(row["onset"], where, "onset"), _seconds(row["offset"], where, "offset")
            if onset >= offset:
                raise DatasetLayoutError(f"{where}: onset {onset:g} s is not before offset {offset:g} s")
            if known is not None and row["label"] not in known:
                raise DatasetLayoutError(f"{where}: label {row['label']!r} is not one of the dataset's labels")
            events.setdefault(f"train_{row['subset']}/{row['fname']}", []).append(
                StrongEvent(row["label"], onset, offset, row_number))
    return {clip: sorted(found, key=lambda e: (e.onset, e.label)) for clip, found in events.items()}


def check_within(events: dict[str, list[StrongEvent]], durations: dict[str, float]) -> None:
    """Refuse events that end after their clip (``durations``: seconds by clip_id; 10 ms of rounding allowed)."""
    for clip, seconds in durations.items():
        for event in events.get(clip, ()):
            if event.offset > seconds + 0.01:
                raise DatasetLayoutError(f"{STRONG_NAME}: row {event.row}: {clip}: {event.label} ends at "
                                         f"{event.offset:g} s, after the clip's end ({seconds:.2f} s)")


def _seconds(text: str | None, where: str, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DatasetLayoutError(f"{where}: {column} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetLayoutError(f"{where}: {column} {value:g} is not a time in the clip (>= 0)")
    return value


def frame_targets(events: Sequence, labels: Sequence[str], *, begin: float, steps: int, step: float) -> np.ndarray:
    """``(steps, K)``: 1 where an event of the class covers the step's centre (``begin + m x step`` seconds)."""
    index = {label: k for k, label in enumerate(labels)}
    centres = begin + np.arange(steps) * step
    target = np.zeros((steps, len(labels)), dtype=np.float32)
    for event in events:
        if event.label in index:
            target[(centres >= event.onset) & (centres < event.offset), index[event.label]] = 1.0
    return target
