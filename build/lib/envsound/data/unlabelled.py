"""Unlabelled audio: every audio file under a folder, at any depth, of any length (for autoencoder pre-training)::

    root/**/<audio files>      e.g. a field-recording archive, or the ESC-US layout root/<part>/<id>.ogg

Records have no labels and no fold; ``clip_id`` and ``source_id`` are the path relative to ``root`` (each file is its
own recording). Hidden files and folders are ignored, and so are files whose extension is not an audio format
soundfile reads (:data:`~envsound.audio.load.AUDIO_EXTENSIONS`): an archive of recordings often holds a CSV or a
README beside them; they are counted in the log. An audio file whose header cannot be read is bad audio: an error by
default, or left out and counted with ``on_error="skip"`` (``--skip-bad``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from envsound.audio.load import AUDIO_EXTENSIONS
from envsound.data.folder import _files_under
from envsound.data.records import ClipRecord, Manifest
from envsound.data.validate import check_on_error, check_records, finish_manifest
from envsound.errors import DatasetLayoutError

logger = logging.getLogger(__name__)


def prepare_unlabelled(root: str | os.PathLike, *, on_error: str = "raise") -> Manifest:
    """List every audio file under ``root`` (recursively) as an unlabelled clip.

    Args:
        root: a folder.
        on_error: ``"raise"`` or ``"skip"``: what to do with an unreadable audio file.

    Returns:
        A manifest named ``"unlabelled"`` with ``labels == []``; every record has ``labels == ()`` and ``fold=None``.

    Raises:
        DatasetLayoutError: ``root`` is not a folder, or holds no (usable) files.
        AudioLoadError: an unreadable audio file (with ``on_error="raise"``; the message names it).
        ConfigError: ``on_error`` is not ``"raise"`` or ``"skip"``.

    >>> manifest = prepare_unlabelled("recordings/")
    >>> len(manifest), manifest.records[0].labels   # (1234, ())
    """
    check_on_error(on_error)
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: not a folder; pass a folder of audio files (any depth) as --root")
    audio: list[ClipRecord] = []
    not_audio: list[Path] = []
    for path in _files_under(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            not_audio.append(path)
            continue
        audio.append(ClipRecord(path=path, labels=(), fold=None, source_id=rel, clip_id=rel))
    if not_audio:
        logger.info("%s: ignored %d file(s) without an audio extension (e.g. %s)", root, len(not_audio),
                    not_audio[0].name)
    good, bad = check_records(audio, on_error=on_error)
    return finish_manifest("unlabelled", good, [], skipped=bad, where=root)
