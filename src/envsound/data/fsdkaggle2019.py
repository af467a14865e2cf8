"""FSDKaggle2019 (DCASE 2019 task 2, "Freesound Audio Tagging 2019"; Fonseca et al. 2019): 80 classes, multi-label.

Two training sets with the same 80 classes: ``curated`` (4,970 Freesound clips, labels checked by hand) and ``noisy``
(19,815 Flickr soundtracks, labels inferred from metadata), plus a hand-labelled ``test`` set (4,481 clips). No
official folds. Two layouts under ``root`` are accepted:

- Zenodo release (record 3612637), what ``envsound download fsdkaggle2019`` leaves::

      FSDKaggle2019.meta/train_curated_post_competition.csv   fname,labels,freesound_id,license
      FSDKaggle2019.meta/train_noisy_post_competition.csv     fname,labels,flickr_video_URL,license
      FSDKaggle2019.meta/test_post_competition.csv            fname,labels,usage,freesound_id,license
      FSDKaggle2019.meta/vocabulary.csv                       index,label (no header row)
      FSDKaggle2019.audio_train_curated/<fname>
      FSDKaggle2019.audio_train_noisy/<fname>
      FSDKaggle2019.audio_test/<fname>

- Kaggle competition::

      train_curated.csv, train_noisy.csv                      fname,labels
      train_curated/<fname>, train_noisy/<fname>
      test.csv + test/<fname>                                 only if you have test labels: Kaggle gives none

``labels`` is a comma-separated list in one quoted cell (``0006ae4e.wav,"Bark,Walk_and_footsteps"``).

- **Records**: ``origin`` is ``"curated"`` or ``"noisy"`` (test clips are hand-labelled: ``"curated"``);
  ``clip_id`` is ``train_curated/<fname>``, ``train_noisy/<fname>`` or ``test/<fname>`` in both layouts.
  ``source_id`` is the recording id where the Zenodo CSV gives one (``freesound_id``, ``flickr_video_URL``); the
  Kaggle CSVs give no recording ids, so there each file is its own recording (``source_id`` = ``fname``).
- **Labels**: the sorted names of ``vocabulary.csv`` (or a ``classes.txt``, one name a line) when the root holds one,
  and a label outside it is an error; otherwise the union of the labels of both training CSVs. Either way the class
  indices are the same whatever ``subset`` is loaded.
- **Folds**: a CSV with a ``fold`` column keeps its folds. Otherwise ``n_folds`` stratified folds that keep one
  recording on one side are assigned (:func:`envsound.data.splits.stratified_group_folds`) over every row of that
  CSV before anything is skipped, so a clip's fold does not change with ``subset`` or with other files being
  skipped (a noisy clip whose ``source_id`` is also in the curated set takes the curated clip's fold). The test set
  has no folds unless its CSV has a ``fold`` column.

Known problems of the release (Zenodo README): curated clips ``f76181c4``, ``77b925c2``, ``6a1f682a``, ``c7db12aa``
and ``7752cc8a`` have wrong labels, and ``1d44b0bd`` holds no signal; they are listed like any other clip.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path

from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import stratified_group_folds
from envsound.data.strong_labels import read_strong_labels
from envsound.data.validate import check_on_error, check_records, drop_missing, finish_manifest, parse_int, read_table
from envsound.errors import ConfigError, DatasetLayoutError

SUBSETS = {"curated": ("curated",), "noisy": ("noisy",), "all": ("curated", "noisy"), "test": ("test",)}
ZENODO_META = Path("FSDKaggle2019.meta")
LABEL_SEPARATOR = ","


@dataclass(frozen=True)
class _Part:
    """One CSV of a layout: where it is, where its audio is, its recording-id column, its clip-id prefix."""

    name: str  # curated | noisy | test
    csv: Path
    audio: Path
    source_column: str | None
    prefix: str


def _layout(root: Path) -> tuple[dict[str, _Part], list[Path]]:
    """The parts of the layout found under ``root`` and where a vocabulary file may be."""
    meta = root / ZENODO_META
    if (meta / "train_curated_post_competition.csv").is_file():
        return {
            "curated": _Part("curated", meta / "train_curated_post_competition.csv",
                             root / "FSDKaggle2019.audio_train_curated", "freesound_id", "train_curated/"),
            "noisy": _Part("noisy", meta / "train_noisy_post_competition.csv",
                           root / "FSDKaggle2019.audio_train_noisy", "flickr_video_URL", "train_noisy/"),
            "test": _Part("test", meta / "test_post_competition.csv", root / "FSDKaggle2019.audio_test",
                          "freesound_id", "test/"),
        }, [meta / "vocabulary.csv", root / "vocabulary.csv", root / "classes.txt"]
    if (root / "train_curated.csv").is_file():
        return {
            "curated": _Part("curated", root / "train_curated.csv", root / "train_curated", None, "train_curated/"),
            "noisy": _Part("noisy", root / "train_noisy.csv", root / "train_noisy", None, "train_noisy/"),
            "test": _Part("test", root / "test.csv", root / "test", None, "test/"),
        }, [root / "vocabulary.csv", root / "classes.txt"]
    raise DatasetLayoutError(f"{root}: no {ZENODO_META / 'train_curated_post_competition.csv'} (Zenodo layout) or "
                             "train_curated.csv (Kaggle layout); pass the FSDKaggle2019 folder as --root or run "
                             "'envsound download fsdkaggle2019'")


def prepare_fsdkaggle2019(root: str | os.PathLike, *, on_error: str = "raise", subset: str = "curated",
                          n_folds: int = 5, seed: int = 0) -> Manifest:
    """List FSDKaggle2019 as a multi-label manifest (see the module docstring for layouts, labels and folds).

    Args:
        root: the dataset folder, in the Zenodo or the Kaggle layout.
        on_error: ``"raise"`` or ``"skip"`` (see :func:`envsound.data.validate.check_records`).
        subset: ``"curated"``, ``"noisy"``, ``"all"`` (curated then noisy) or ``"test"`` (the hand-labelled test
            set: Zenodo's ``test_post_competition.csv``, or a ``test.csv`` with ``fname,labels`` in the Kaggle layout).
        n_folds: number of folds to assign where a CSV has no ``fold`` column, >= 2 (numbered 1..n_folds).
        seed: seed of the fold assignment.

    Returns:
        A manifest named ``"fsdkaggle2019"`` with ``multi_label=True``; each record has ``origin`` set.

    Raises:
        ConfigError: ``subset`` not one of the four (the message lists them), ``on_error`` or ``n_folds`` out of range.
        DatasetLayoutError: no layout found; a missing CSV or column; on a named line of a named CSV: an empty file
            name, no labels, an unknown label, a non-integer fold, a file listed twice (or under different labels in
            the curated and noisy CSVs); a CSV whose audio folder does not exist; a row naming a missing file (with
            ``on_error="raise"``).
        AudioLoadError: an unreadable or empty audio file (with ``on_error="raise"``).

    >>> manifest = prepare_fsdkaggle2019("data/FSDKaggle2019", subset="all")
    >>> len(manifest.labels), {r.origin for r in manifest.records}  # 80, {'curated', 'noisy'}
    """
    check_on_error(on_error)
    if subset not in SUBSETS:
        raise ConfigError(f"subset={subset!r} is not valid for fsdkaggle2019; valid: {', '.join(SUBSETS)}")
    root = Path(root)
    parts, vocabulary_files = _layout(root)
    vocabulary_file = next((p for p in vocabulary_files if p.is_file()), None)
    rows = {name: _read_part(parts[name]) for name in ("curated", "noisy")}
    _check_same_labels(rows["curated"], rows["noisy"], parts)
    if subset == "test":
        if not parts["test"].csv.is_file():
            raise DatasetLayoutError(f"{parts['test'].csv}: test metadata not found; the Kaggle release has no test "
                                     "labels (the Zenodo release has them in FSDKaggle2019.meta/"
                                     "test_post_competition.csv): download it with 'envsound download fsdkaggle2019'")
        rows["test"] = _read_part(parts["test"])

    if vocabulary_file is not None:
        labels, known_from = _read_vocabulary(vocabulary_file), str(vocabulary_file)
    else:
        labels = sorted({label for name in ("curated", "noisy") for _, rec in rows[name] for label in rec.labels})
        known_from = f"the labels of {parts['curated'].csv.name} and {parts['noisy'].csv.name}"
    for name in rows:
        _check_known(rows[name], set(labels), csv_path=parts[name].csv, known_from=known_from)

    wanted = SUBSETS[subset]
    for name in wanted:
        part = parts[name]
        if rows[name] and not part.audio.is_dir():
            raise DatasetLayoutError(f"{part.csv.name} lists {len(rows[name])} clips but {part.audio.name}/ does not "
                                     f"exist in {root}; unpack its audio there, or load another subset "
                                     f"(valid: {', '.join(SUBSETS)})")
    if subset != "test":
        _assign_folds(rows, wanted, n_folds=n_folds, seed=seed)
    present, skipped = [], []
    for name in wanted:
        part = parts[name]
        found, missing = drop_missing(rows[name], csv_path=part.csv, on_error=on_error)
        present += found
        skipped += missing
    good, bad = check_records(present, on_error=on_error)
    manifest = finish_manifest("fsdkaggle2019", good, labels, skipped=skipped + bad, where=parts[wanted[0]].csv,
                               multi_label=True)
    manifest.strong = read_strong_labels(root, labels=labels)  # an `envsound mix` set's events: None elsewhere
    return manifest


def _read_part(part: _Part) -> list[tuple[int, ClipRecord]]:
    """``(line, record)`` for every row of ``part.csv``; ``fold`` is the ``fold`` column's value or ``None``."""
    listed: list[tuple[int, ClipRecord]] = []
    first_line: dict[str, tuple[int, tuple[str, ...]]] = {}
    for line, row in read_table(part.csv, required=("fname", "labels")):
        fname = row["fname"]
        if not fname:
            raise DatasetLayoutError(f"{part.csv}: line {line}: empty fname; give every row a file name")
        labels = tuple(dict.fromkeys(p.strip() for p in row["labels"].split(LABEL_SEPARATOR) if p.strip()))
        if not labels:
            raise DatasetLayoutError(f"{part.csv}: line {line}: {fname} has no labels; give every clip at least one")
        if fname in first_line:
            other_line, other = first_line[fname]
            what = (f"with labels {','.join(labels)} (line {other_line} gives {','.join(other)})"
                    if set(labels) != set(other) else f"again (also on line {other_line})")
            raise DatasetLayoutError(f"{part.csv}: line {line}: {fname} is listed {what}; list each clip once "
                                     "with all its labels")
        first_line[fname] = (line, labels)
        fold = None
        if "fold" in row:
            if not row["fold"]:
                raise DatasetLayoutError(f"{part.csv}: line {line}: empty fold; give every row a fold or drop "
                                         "the fold column")
            fold = parse_int(row["fold"], csv_path=part.csv, line=line, column="fold")
        source = (row.get(part.source_column, "") if part.source_column else "") or fname
        origin = "noisy" if part.name == "noisy" else "curated"
        listed.append((line, ClipRecord(path=part.audio / fname, labels=labels, fold=fold, source_id=source,
                                        clip_id=part.prefix + fname, origin=origin)))
    return listed


def _check_same_labels(curated: list[tuple[int, ClipRecord]], noisy: list[tuple[int, ClipRecord]],
                       parts: dict[str, _Part]) -> None:
    """A file name in both training CSVs must carry the same labels in both."""
    by_name = {rec.path.name: (line, rec.labels) for line, rec in curated}
    for line, rec in noisy:
        if rec.path.name in by_name and set(by_name[rec.path.name][1]) != set(rec.labels):
            other_line, other = by_name[rec.path.name]
            raise DatasetLayoutError(
                f"{parts['noisy'].csv}: line {line}: {rec.path.name} has labels {','.join(rec.labels)} but "
                f"{parts['curated'].csv} line {other_line} gives it {','.join(other)}; one file name must mean "
                "one clip: rename one of them or give both the same labels")


def _check_known(listed: list[tuple[int, ClipRecord]], known: set[str], *, csv_path: Path, known_from: str) -> None:
    for line, rec in listed:
        unknown = [label for label in rec.labels if label not in known]
        if unknown:
            raise DatasetLayoutError(f"{csv_path}: line {line}: {rec.path.name} has unknown label(s) "
                                     f"{', '.join(map(repr, unknown))}, not among the {len(known)} classes of "
                                     f"{known_from}; fix the label (names are case-sensitive)")


def _read_vocabulary(path: Path) -> list[str]:
    """Class names of ``vocabulary.csv`` (rows ``index,label[,mid]``, a header row allowed, or one name a row) or of
    ``classes.txt`` (one name a line), sorted and without repeats."""
    names: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            if path.suffix == ".txt":
                rows = [[line] for line in fh.read().splitlines()]
            else:
                rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(f"{path}: cannot read the class vocabulary ({exc}); check the file") from exc
    first = True
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if len(cells) == 1:
            names.append(cells[0])
        elif cells[0].isdigit() and cells[1]:
            names.append(cells[1])
        elif not first:  # a first row that is not 'index,label' is a header
            raise DatasetLayoutError(f"{path}: line {line}: expected 'index,label' or one class name, found "
                                     f"{','.join(cells)!r}; fix the vocabulary")
        first = False
    if not names:
        raise DatasetLayoutError(f"{path}: the class vocabulary lists no classes; fix or remove it")
    return sorted(set(names))


def _assign_folds(rows: dict[str, list[tuple[int, ClipRecord]]], wanted: tuple[str, ...], *, n_folds: int,
                  seed: int) -> None:
    """Give every record of the ``wanted`` training CSVs a fold, in place (see the module docstring)."""
    assigned = []
    for name in ("curated", "noisy"):
        listed = rows[name]
        if name in wanted and listed and all(rec.fold is None for _, rec in listed):
            folds = stratified_group_folds([rec for _, rec in listed], n_folds=n_folds, seed=seed)
            rows[name] = [(line, replace(rec, fold=fold)) for (line, rec), fold in zip(listed, folds)]
            assigned.append(name)
    if "noisy" not in assigned:
        return
    curated_sources = {rec.source_id for _, rec in rows["curated"]}
    if not any(rec.source_id in curated_sources for _, rec in rows["noisy"]):
        return
    if "curated" not in wanted:  # the curated folds decide the shared recordings' folds, so work them out
        _assign_folds(rows, ("curated",), n_folds=n_folds, seed=seed)
    fold_of = {rec.source_id: rec.fold for _, rec in rows["curated"]}
    rows["noisy"] = [(line, replace(rec, fold=fold_of.get(rec.source_id, rec.fold))) for line, rec in rows["noisy"]]
