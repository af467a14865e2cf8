"""Waiting for a live stream's next bytes, with a limit: what the WAV/PCM reader (:mod:`.stream`) and the compressed
stream reader (:mod:`.compressed_stream`) both do before a read that could block for ever."""

from __future__ import annotations

import select
from typing import BinaryIO

from envsound.errors import AudioLoadError


def wait_for_data(stream: BinaryIO, idle_seconds: float | None, name: str) -> None:
    """Return when ``stream`` has something to read (or has ended); raise :class:`AudioLoadError` when nothing came
    for ``idle_seconds`` (``None``: wait for ever). Streams without a file descriptor (in memory) always have."""
    if idle_seconds is None:
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    if not select.select([fd], [], [], idle_seconds)[0]:
        raise AudioLoadError(f"{name}: no audio for {idle_seconds:g} s; the stream was closed")
