"""Your own recordings, one folder per class::

    root/<label>/**/<audio files>      e.g. root/dog/park/001.wav, root/siren/a.flac

Labels are the class folder names, sorted. Every non-hidden audio file under a class folder (an extension of
:data:`AUDIO_EXTENSIONS`) is a clip; one whose header cannot be read is bad audio (an error, or left out and counted
with ``on_error="skip"``); other files (notes, READMEs) are left out and counted, as ``predict`` does. Files directly in ``root`` and hidden files/folders (``.name``) are
ignored. There are no folds unless ``n_folds`` asks for stratified ones (the commands make them with
:func:`~envsound.data.splits.with_made_folds`: as many as the smallest class has recordings, up to 5).

**Recordings**: folds keep the takes of one recording together. A file's recording is the first group of
``group_by`` (a regular expression searched in the file name without its extension); by default ESC-50's naming
``fold-source-take[-class]`` (``4-125825-A.wav`` and ``4-125825-B.wav`` are one recording, ``125825``). A file the
expression does not match is its own recording.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from envsound.audio.load import AUDIO_EXTENSIONS
from envsound.data.records import ClipRecord, Manifest
from envsound.data.splits import stratified_group_folds
from envsound.data.validate import check_on_error, check_records, finish_manifest
from envsound.errors import ConfigError, DatasetLayoutError

logger = logging.getLogger(__name__)

# ESC-50's file names: fold-source-take, and in the original archive -class after them (1-100032-A-0.wav)
ESC50_NAMES = r"^\d+-(\d+)-[A-Za-z]+(?:-\d+)?$"


def prepare_folder(root: str | os.PathLike, *, on_error: str = "raise", n_folds: int | None = None,
                   seed: int = 0, group_by: str | None = None) -> Manifest:
    """List a folder-per-class dataset.

    Args:
        root: a folder whose sub-folders are the classes.
        on_error: ``"raise"`` or ``"skip"``: what to do with a non-audio or unreadable file.
        n_folds: ``None`` (every clip has fold ``None``) or >= 2: assign stratified folds 1..n_folds.
        seed: seed of the fold assignment.
        group_by: a regular expression searched in each file's name without its extension; its first group is the
            file's recording, and files of one recording share a fold. ``None``: ESC-50's ``fold-source-take``
            names (:data:`ESC50_NAMES`). A file it does not match is its own recording.

    Returns:
        A manifest named ``"folder"``; ``clip_id`` is the path relative to ``root``, ``source_id`` the recording
        (``group_by``'s first group, else that path); ``grouping`` says in words how recordings were found.

    Raises:
        DatasetLayoutError: ``root`` is not a folder, or it holds no class folder with files.
        AudioLoadError: a non-audio or unreadable file (with ``on_error="raise"``).
        ConfigError: ``on_error`` or ``n_folds`` out of range; ``group_by`` not a regular expression or without a
            group.

    >>> manifest = prepare_folder("my_sounds", n_folds=5, group_by="^(.+)_take[0-9]+$")  # park_take1, park_take2
    >>> manifest.labels  # ['dog', 'siren']
    """
    check_on_error(on_error)
    pattern = _recording_pattern(group_by)
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: not a folder; pass a folder with one sub-folder per class as --root")
    candidates: list[ClipRecord] = []
    labels: list[str] = []
    loose = 0
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            loose += 1
            continue
        files = _files_under(entry)
        if not files:
            logger.warning("%s: class folder holds no files; class %r left out", entry, entry.name)
            continue
        labels.append(entry.name)
        for path in files:
            rel = path.relative_to(root).as_posix()
            found = pattern.search(path.stem)
            source = found.group(1) if found and found.group(1) else rel
            candidates.append(ClipRecord(path=path, labels=(entry.name,), fold=None, source_id=source, clip_id=rel))
    if loose:
        logger.warning("%s: ignored %d file(s) directly in the root; put clips in a folder named after their class",
                       root, loose)
    if not candidates:
        raise DatasetLayoutError(f"{root}: no class folders with audio files; expected {root}/<label>/<file>.wav")
    if n_folds is not None:
        folds = stratified_group_folds(candidates, n_folds=n_folds, seed=seed)
        candidates = [ClipRecord(path=r.path, labels=r.labels, fold=f, source_id=r.source_id, clip_id=r.clip_id)
                      for r, f in zip(candidates, folds)]
    # as `predict` does: a file that does not claim to be audio (README.md, notes.txt) is left out and counted; only a
    # file that claims to be audio and is broken is an error (or, with on_error="skip", left out and reported)
    audio = [r for r in candidates if r.path.suffix.lower() in AUDIO_EXTENSIONS]
    not_audio = [r.path for r in candidates if r.path.suffix.lower() not in AUDIO_EXTENSIONS]
    if not_audio:
        logger.info("%s: left out %d file(s) that are not audio (e.g. %s); audio is %s", root, len(not_audio),
                    not_audio[0].relative_to(root).as_posix(), ", ".join(sorted(AUDIO_EXTENSIONS)[:6]) + ", ...")
    if not audio:
        raise DatasetLayoutError(f"{root}: the class folders hold no audio files ({len(not_audio)} other files); "
                                 f"expected {root}/<label>/<file>.wav")
    good, bad = check_records(audio, on_error=on_error)
    manifest = finish_manifest("folder", good, labels, skipped=bad, where=root)
    manifest.grouping = _grouping(manifest, group_by)
    return manifest


def _recording_pattern(group_by: str | None) -> re.Pattern:
    """``group_by`` compiled (ESC-50's names when ``None``), checked to have a group for the recording's id."""
    if group_by is None:
        return re.compile(ESC50_NAMES)
    if not isinstance(group_by, str):
        raise ConfigError(f"group_by={group_by!r}: expected a regular expression (a string) whose first group is "
                          r"the recording, e.g. '^(.+)_take\d+$'")
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        raise ConfigError(f"group_by={group_by!r} is not a regular expression ({exc}); write one whose first "
                          r"group is the recording, e.g. '^(.+)_take\d+$'") from None
    if pattern.groups < 1:
        raise ConfigError(f"group_by={group_by!r} has no group; put the part of the file name that names the "
                          r"recording in parentheses, e.g. '^(.+)_take\d+$'")
    return pattern


def _grouping(manifest: Manifest, group_by: str | None) -> str:
    """How the recordings of ``manifest`` were found, in words, for the line that says how folds were made."""
    grouped = sum(r.source_id != r.clip_id for r in manifest.records)
    others = len(manifest.records) - grouped
    rule = "ESC-50's fold-source-take names (4-125825-A and -B: one)" if group_by is None else repr(group_by)
    if not grouped:
        return ("each file its own recording (no name like ESC-50's fold-source-take; --group-by REGEX groups takes)"
                if group_by is None else f"each file its own recording: group_by {rule} matched no file name")
    return (f"recordings from {'the first group of ' if group_by else ''}{rule} for {grouped} file(s)"
            + (", each other file its own" if others else "")
            + (" (--group-by REGEX: another rule)" if group_by is None else ""))


def _files_under(folder: Path) -> list[Path]:
    """Non-hidden files under ``folder`` at any depth (hidden folders are not entered), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(found)
