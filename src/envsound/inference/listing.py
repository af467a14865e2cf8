"""The one listing of inputs, for ``predict`` and the scan alike, lazily: folders walked one directory at a time, globs matched as they go, a file list
read line by line, so a list of ten million paths costs the memory of one line and one directory listing.

A folder's files are named as that folder joined with their path inside it (``audio/dog/1.flac`` for ``audio``);
everything else keeps the name it was given. A folder holding no audio, a glob matching nothing and a missing path
are yielded as given, so that the caller reports them as bad inputs like any other.

The order: the inputs as given, each folder walked depth first (a directory's files sorted by name, then its
subfolders sorted by name), each glob in the order the filesystem gives its matches, then the lines of the file list.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Iterable, Iterator

from envsound.audio.load import AUDIO_EXTENSIONS

GLOB_CHARACTERS = frozenset("*?[")


def as_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str | os.PathLike]:
    """``inputs`` as a list of entries: one path (a ``str`` or a ``Path``) is one entry, never its letters.

    >>> as_inputs("archive/site3")
    ['archive/site3']
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return [os.fsdecode(inputs) if isinstance(inputs, bytes) else inputs]
    return list(inputs)


def iter_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
                files_from: str | os.PathLike | None = None) -> Iterator[str]:
    """Every file the inputs name, in order: ``inputs`` first (one path, or a list of them), then the lines of
    ``files_from`` (``-``: standard input; blank lines and lines starting with ``#`` skipped); each entry may be a
    file, a folder or a glob."""
    for item in as_inputs(inputs):
        yield from expand(os.fspath(item))
    if files_from is None:
        return
    with _opened(os.fspath(files_from)) as lines:
        for line in lines:
            entry = line.rstrip("\r\n")
            if entry.strip() and not entry.startswith("#"):
                yield from expand(entry)


def expand(entry: str) -> Iterator[str]:
    """One entry -> its files: a folder's audio at any depth (sorted in each directory), a glob's matches."""
    if os.path.isdir(entry):
        found = False
        for folder, subfolders, files in os.walk(entry):
            subfolders.sort()
            for name in sorted(files):
                if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                    found = True
                    yield os.path.join(folder, name)
        if not found:
            yield entry
    elif GLOB_CHARACTERS & set(entry) and not os.path.lexists(entry):
        found = False
        for match in glob.iglob(entry, recursive=True):
            if not os.path.isdir(match):
                found = True
                yield match
        if not found:
            yield entry
    else:
        yield entry


class _opened:
    """``open(path)`` for reading lines, or standard input for ``-`` (left open)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = None

    def __enter__(self):
        if self.path == "-":
            return sys.stdin
        self.file = open(self.path, encoding="utf-8", errors="surrogateescape")
        return self.file

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
