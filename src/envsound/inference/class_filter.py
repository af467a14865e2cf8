"""Reporting only some of a model's classes, for any model: a list of class names (``classes=``), a species-list
file (``--species-list FILE``, BirdNET-Analyzer's ``--slist``: one label a line as the model writes it), or what
BirdNET's species-range model keeps at a place and week (:mod:`envsound.models.birdnet_range` makes that list).

:class:`ClassSubset` wraps a model so that every probability it gives has only the kept columns, in the model's label
order: top-k, segments, labels and events never see a class filtered out (a multi-label model's per-class thresholds
are kept with their classes).

    >>> predictor = Predictor.from_checkpoint("birdnet-v2.4", classes="my_species.txt")
"""

from __future__ import annotations

import difflib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from envsound.errors import ConfigError

ClassNames = Iterable[str] | str | os.PathLike
"""What ``classes=`` takes: class names, or the path of a species-list file (a ``str`` is a path, never names)."""


def nearest_label(name: str, labels: list[str]) -> str:
    """The label of ``labels`` closest to ``name``: one whose Latin or common half (BirdNET's ``Latin_Common``) is
    ``name``, else the most similar spelling, ignoring case."""
    folded = name.strip().casefold()
    for label in labels:
        if folded in (part.strip().casefold() for part in label.split("_")):
            return label
    by_fold = {label.casefold(): label for label in labels}
    return by_fold[difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.0)[0]]


def read_class_list(path: str | os.PathLike, labels: list[str], *, model: str = "the model") -> list[str]:
    """The class names the species-list file at ``path`` lists, one a line as ``labels`` write them (blank lines and
    lines starting with ``#`` skipped), each checked against ``labels``; a folder's ``species_list.txt``, as
    BirdNET-Analyzer's ``--slist`` reads a folder.

    Raises:
        ConfigError: the file cannot be read, lists no class, or a line names no class of ``labels`` (the message
            names the file, the line and the nearest label).
    """
    path = Path(path) / "species_list.txt" if Path(path).is_dir() else Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the species list ({exc.__class__.__name__}: {exc})") from exc
    known = set(labels)
    names = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name not in known:
            raise ConfigError(f"{path}:{number}: {name!r} is not a class of {model}; nearest: "
                              f"{nearest_label(name, labels)!r}")
        names.append(name)
    if not names:
        raise ConfigError(f"{path}: the species list names no class (one label a line, as {model} writes them)")
    return names


def kept_columns(classes: ClassNames, labels: list[str], *, model: str = "the model") -> np.ndarray:
    """The columns of ``labels`` that ``classes`` keeps (names, or a species-list file's path), in label order.

    Raises:
        ConfigError: a name that is not a class of the model (with the nearest label), or no class at all.
    """
    if isinstance(classes, (str, os.PathLike)):
        wanted = read_class_list(classes, labels, model=model)
    else:
        wanted = list(classes)
        known = set(labels)
        stranger = next((name for name in wanted if name not in known), None)
        if stranger is not None:
            raise ConfigError(f"classes: {stranger!r} is not a class of {model}; nearest: "
                              f"{nearest_label(stranger, labels)!r}")
        if not wanted:
            raise ConfigError(f"classes: an empty list keeps no class of {model}; pass None to keep them all")
    kept = set(wanted)
    return np.asarray([k for k, label in enumerate(labels) if label in kept], dtype=np.int64)


class ClassSubset:
    """A model (a :class:`~envsound.inference.predictor.WindowScorer`) that reports only the columns ``keep`` of its
    classes, in label order: ``labels``, ``n_classes``, ``task`` (per-class thresholds kept with their classes) and
    every probability (``waveform_probs``, ``scored_windows``, ``head_probs``) have those columns only. Anything
    else (config, meta, runtime, embeddings) is the model's own."""

    def __init__(self, model: Any, keep: np.ndarray) -> None:
        self.inner, self.keep = model, np.asarray(keep, dtype=np.int64)
        self.labels = [model.labels[k] for k in self.keep]
        thresholds = model.task.class_thresholds
        self.task = model.task if thresholds is None else replace(
            model.task, class_thresholds=tuple(thresholds[k] for k in self.keep))

    def __getattr__(self, name: str) -> Any:  # config, meta, runtime, scores_windows, window_embeddings ...
        if name == "inner":  # not set yet (a copy being unpickled): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def n_classes(self) -> int:
        return len(self.keep)

    def waveform_probs(self, samples: np.ndarray, *, before: int | None = None, frames: bool = False) -> tuple:
        """The model's :meth:`waveform_probs`, the kept columns only (a frame model's frames too)."""
        probs, starts, *framed = self.inner.waveform_probs(samples, before=before, frames=frames)
        return (probs[:, self.keep], starts, *(f[..., self.keep] for f in framed))

    def scored_windows(self, windows: np.ndarray, *, frames: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's :meth:`scored_windows`, the kept columns only."""
        probs, framed = self.inner.scored_windows(windows, frames=frames)
        return probs[:, self.keep], None if framed is None else framed[..., self.keep]

    def head_probs(self, embeddings: np.ndarray) -> np.ndarray:
        """The model's :meth:`head_probs`, the kept columns only."""
        return self.inner.head_probs(embeddings)[:, self.keep]
