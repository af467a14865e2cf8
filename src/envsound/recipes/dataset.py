"""A dataset as one value: which corpus, where it lies, which classes and folds a run uses, and what to do with
unreadable audio. :func:`dataset` makes one; :func:`~envsound.recipes.api.train`,
:func:`~envsound.recipes.api.cross_validate` and :func:`~envsound.recipes.api.evaluate` take it, and the CLI's
``--dataset``, ``--root``, ``--classes``, ``--exclude-classes``, ``--subset``, ``--group-by``, ``--skip-bad`` and
``--folds`` make one.

>>> data = envsound.dataset("folder", root="my_sounds", skip_bad=True)
>>> data.load().labels, len(data.load())   # listed once, on first use
"""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Iterable

from envsound.data.records import Manifest
from envsound.errors import DatasetLayoutError


@dataclass(frozen=True)
class Dataset:
    """A dataset a run reads (make it with :func:`dataset`, whose arguments are these fields).

    ``folds`` are the folds a run uses: :func:`~envsound.recipes.api.train` trains on them and keeps the others as
    the clips the model must never see, :func:`~envsound.recipes.api.cross_validate` rotates over them,
    :func:`~envsound.recipes.api.evaluate` scores them; empty: every fold. :meth:`load` lists the files once (the
    first call; the value and those :meth:`with_folds` makes from it share that listing): make a new value to list
    the folder again.
    """

    name: str
    _: KW_ONLY
    root: Path | None = None
    classes: tuple[str, ...] = ()
    exclude_classes: tuple[str, ...] = ()
    subset: str | None = None
    group_by: str | None = None
    skip_bad: bool = False
    folds: tuple[int, ...] = ()
    # the one listing, [] until load(): a list so that a frozen value and its with_folds() copies share it
    _listing: list[Manifest] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from envsound.data.registry import check_dataset_name

        check_dataset_name(self.name)
        fixed = {"root": None if self.root is None else Path(self.root).expanduser(),
                 "classes": _names(self.classes), "exclude_classes": _names(self.exclude_classes),
                 "folds": tuple(self.folds or ()), "skip_bad": bool(self.skip_bad)}
        for key, value in fixed.items():
            object.__setattr__(self, key, value)

    @property
    def on_error(self) -> str:
        """``"skip"`` with ``skip_bad``, else ``"raise"``: what the listing and decoding do with unreadable audio."""
        return "skip" if self.skip_bad else "raise"

    def with_folds(self, folds: Iterable[int] | None) -> Dataset:
        """This dataset with ``folds`` as the folds a run uses (``None`` or empty: every fold), sharing its listing.

        >>> envsound.evaluate(run.model_path, data.with_folds(run.metrics["held_out_folds"]))
        """
        other = replace(self, folds=tuple(folds or ()))
        object.__setattr__(other, "_listing", self._listing)
        return other

    def load(self, *, rotate: bool = False) -> Manifest:
        """The clips, every fold (``folds`` says which a run takes): listed (bad files raised, or with ``skip_bad``
        left out and kept in ``manifest.skipped``), given folds where the dataset has none
        (:func:`~envsound.data.splits.with_made_folds`), narrowed to ``classes`` minus ``exclude_classes``.

        Args:
            rotate: the caller rotates folds (a cross-validation): a set that cannot be given folds stops here, as it
                does when ``folds`` are given.

        Raises:
            DatasetLayoutError: a class with fewer than 2 recordings where folds are needed (named, with what to
                leave out); a root that does not exist, a class the dataset lacks, the dataset's own errors.
            AudioLoadError: unreadable audio without ``skip_bad``.
            ConfigError: ``subset`` or ``group_by`` the dataset does not take.
        """
        if not self._listing:
            self._listing.append(self._list())
        manifest = self._listing[0]
        if not manifest.folds and (rotate or self.folds):
            self._refuse_foldless(manifest)
        return manifest

    def _list(self) -> Manifest:
        from envsound.data.registry import load_dataset
        from envsound.data.splits import with_made_folds

        options = {key: value for key, value in (("subset", self.subset), ("group_by", self.group_by))
                   if value is not None}
        manifest = load_dataset(self.name, self.root, on_error=self.on_error, **options)
        # folds of every class, so that narrowing never moves a clip to another fold (train on folds 1-3 of classes
        # a and b, then evaluate fold 4: unseen clips); of the kept classes only where some class was too small
        manifest = with_made_folds(manifest)
        if self.classes or self.exclude_classes:
            manifest = with_made_folds(manifest.select_classes(self.classes, exclude=self.exclude_classes))
        return manifest

    def _refuse_foldless(self, manifest: Manifest) -> None:
        from envsound.data.splits import recordings_per_class

        small = {label: n for label, n in recordings_per_class(manifest).items() if n < 2}
        if not small:
            return
        where = self.root if self.root is not None else f"dataset {self.name!r}"
        counts = ", ".join(f"{label!r} has {n} recording{'' if n == 1 else 's'}" for label, n in small.items())
        raise DatasetLayoutError(
            f"{where}: class {counts}; folds need at least 2 recordings in every class, one to test and one to "
            f"train: add recordings, or leave {'it' if len(small) == 1 else 'them'} out (--exclude-classes "
            f"{','.join(small)}; exclude_classes={list(small)!r} from Python)")


def dataset(name: str, *, root: str | os.PathLike | None = None, classes: Iterable[str] | None = None,
            exclude_classes: Iterable[str] | None = None, subset: str | None = None, group_by: str | None = None,
            skip_bad: bool = False, folds: Iterable[int] | None = None) -> Dataset:
    """The dataset ``name`` under ``root``, as a value to hand to :func:`~envsound.recipes.api.train`,
    :func:`~envsound.recipes.api.cross_validate` and :func:`~envsound.recipes.api.evaluate`. Nothing is read
    until a run (or :meth:`Dataset.load`) needs the clips.

    Args:
        name: a dataset name (``folder``, ``csv``, ``esc10``, ``esc50``, ``urbansound8k`` ...; ``envsound datasets``).
        root: its folder (a ``csv``'s file); default ``$ENVSOUND_DATA_<NAME>``, else ``$ENVSOUND_DATA/<name>``.
        classes: keep only these classes (a list of names; one string is one name).
        exclude_classes: leave these classes out.
        subset: the dataset's subset, where it has them (``--subset``: ``all``, ``curated`` ...).
        group_by: ``folder`` only: a regular expression whose first group, searched in a file's name, is its
            recording (takes of one recording share a fold); default ESC-50's ``fold-source-take`` names.
        skip_bad: leave unreadable audio out (each file listed in the run's ``skipped``) instead of raising
            :class:`~envsound.errors.AudioLoadError`.
        folds: the folds a run uses (train on them, rotate over them, score them); ``None``: every fold. A set
            without folds gets ``min(5, recordings in its smallest class)``, stratified and grouped by recording.

    Raises:
        ConfigError: an unknown ``name`` (the nearest is offered and the valid ones listed).

    >>> data = envsound.dataset("folder", root="my_sounds", skip_bad=True)
    >>> run = envsound.train(data, init="efficientat-mn04", out="runs/mine")
    """
    return Dataset(name, root=root, classes=classes or (), exclude_classes=exclude_classes or (), subset=subset,
                   group_by=group_by, skip_bad=skip_bad, folds=folds or ())


def _names(names: str | Iterable[str] | None) -> tuple[str, ...]:
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)
