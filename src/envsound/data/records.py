"""Datasets as manifests: a list of :class:`ClipRecord` plus the ordered label names.

Every dataset module exposes ``prepare_<name>(root, **options) -> Manifest`` and one line in
:mod:`envsound.data.registry`. A record's ``source_id`` names the recording a clip was cut from (ESC-50 ``src_file``,
UrbanSound8K ``fsID``, a Freesound id): clips of one source never straddle train and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from envsound.errors import DatasetLayoutError
from envsound.task import Task


@dataclass(frozen=True)
class ClipRecord:
    """One audio clip of a dataset.

    ``labels`` holds one label for single-label sets, any number for multi-label sets (empty for unlabelled audio).
    ``fold`` is the official fold (``None`` where the dataset has none). ``clip_id`` is unique within the manifest.
    ``origin`` says where the labels come from in a set that mixes qualities (FSDKaggle2019: ``"curated"`` or
    ``"noisy"``); empty elsewhere.
    """

    path: Path
    labels: tuple[str, ...]
    fold: int | None
    source_id: str
    clip_id: str
    origin: str = ""

    @property
    def label(self) -> str:
        """The single label of a single-label clip."""
        if len(self.labels) != 1:
            raise DatasetLayoutError(f"{self.path}: expected exactly one label, found {list(self.labels)}")
        return self.labels[0]


@dataclass
class Manifest:
    """An ordered list of clips with the dataset's label vocabulary (``labels[i]`` is class index ``i``)."""

    name: str
    records: list[ClipRecord]
    labels: list[str]
    multi_label: bool = False
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) left out with on_error="skip"
    # strong labels, {clip_id: events}, when the dataset has them (strong_labels.csv): evaluate adds event metrics
    strong: dict[str, list] | None = None
    # how source_id was found, in words, when the dataset infers it (a folder: from file names); said where folds
    # are made (:func:`~envsound.data.splits.with_made_folds`). Empty: the dataset's own source ids
    grouping: str = ""

    def __len__(self) -> int:
        return len(self.records)

    @property
    def task(self) -> Task:
        """The task a model of this dataset learns: multi-label when the dataset gives clips several labels."""
        return Task.from_flag(self.multi_label)

    @property
    def folds(self) -> list[int]:
        """The official folds present, sorted."""
        return sorted({r.fold for r in self.records if r.fold is not None})

    def select_folds(self, folds: Iterable[int]) -> "Manifest":
        """The clips of ``folds``; a fold the dataset does not have is a :class:`DatasetLayoutError`."""
        wanted = set(folds)
        missing = wanted - set(self.folds)
        if missing:
            raise DatasetLayoutError(
                f"dataset {self.name!r} has no fold {sorted(missing)}; its folds are {self.folds}")
        return self.subset([r for r in self.records if r.fold in wanted])

    def subset(self, records: Sequence[ClipRecord]) -> "Manifest":
        """A manifest of ``records`` keeping this manifest's label vocabulary (class indices stay the same)."""
        return replace(self, records=list(records), skipped=list(self.skipped))

    def label_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    def select_classes(self, keep: Iterable[str] = (), *, exclude: Iterable[str] = ()) -> "Manifest":
        """The clips of the classes ``keep`` (all when empty) minus ``exclude``, with the label vocabulary narrowed
        to them (in this manifest's order, so class indices are renumbered). A multi-label clip keeps its labels
        among them and is dropped when none is left.

        Raises:
            DatasetLayoutError: a name the dataset lacks (the message lists the valid names), or no class left.

        >>> esc40 = load_dataset("esc50", root).select_classes(exclude=ESC10_CLASSES)
        """
        keep, exclude = list(keep), list(exclude)
        unknown = [name for name in keep + exclude if name not in set(self.labels)]
        if unknown:
            raise DatasetLayoutError(f"dataset {self.name!r} has no class {', '.join(map(repr, unknown))}; its classes "
                                     f"are {', '.join(self.labels)}")
        wanted = set(keep or self.labels) - set(exclude)
        labels = [name for name in self.labels if name in wanted]
        if not labels:
            raise DatasetLayoutError(f"dataset {self.name!r}: no class left after --classes/--exclude-classes")
        records = []
        for record in self.records:
            kept = tuple(label for label in record.labels if label in wanted)
            if kept:
                records.append(replace(record, labels=kept) if kept != record.labels else record)
        strong = None if self.strong is None else {  # the other classes' events are not there to be found
            clip: [event for event in events if event.label in wanted] for clip, events in self.strong.items()}
        return replace(self, records=records, labels=labels, skipped=list(self.skipped), strong=strong)
