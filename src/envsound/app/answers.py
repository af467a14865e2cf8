"""The one error shape every route answers with, ``{"error": "<one line>"}``, the statuses the schema lists, and
the answer to a store that cannot be read."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Iterator

from pydantic import BaseModel
from starlette.exceptions import HTTPException

from envsound.errors import EnvsoundError, StoreError


class ErrorOut(BaseModel):
    error: str


ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 405, 408, 413, 415, 422, 429)}
STORE_ERRORS = {**ERRORS, 503: {"model": ErrorOut, "description": "the store could not take the write: retry"}}


async def read(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, a read of the detections store, off the event loop; a store gone away (StoreError)
    answers 503 with Retry-After."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None


async def audio_upload(file, default: str) -> str:
    """The uploaded ``file``'s name (its last part; ``default`` when it has none), once its first bytes are those of
    an audio file, the upload rewound: 422 for an empty file, 415 for one that is not audio (one line each)."""
    from envsound.inference.api import SNIFF_BYTES, SUPPORTED, sniff_audio

    name = PurePath((file.filename or default).replace("\\", "/")).name or default
    head = await file.read(SNIFF_BYTES)
    if not head:
        raise HTTPException(422, f"{name}: file is empty (0 bytes)")
    if sniff_audio(head) is None:
        raise HTTPException(415, f"{name}: not an audio file (its first bytes match no audio format); send "
                                 f"{SUPPORTED}")
    await file.seek(0)
    return name


@contextmanager
def private_copy(upload, name: str, *, max_seconds: float) -> Iterator[Path]:
    """The upload ``upload`` (a file object) copied to a private temporary file (its folder mode 0700, removed after
    the block), refused with 413 when it holds over ``max_seconds`` of audio; an error raised in the block
    (EnvsoundError, HTTPException) names the upload ``name``, not the private path. Blocking: call it off the event
    loop."""
    from envsound.inference.api import audio_duration

    with tempfile.TemporaryDirectory(prefix="envsound-upload-") as private:
        path = Path(private) / "upload"
        with open(path, "wb") as out:
            shutil.copyfileobj(upload, out, length=1 << 20)
        try:
            seconds = audio_duration(path)
            if seconds > max_seconds:
                raise HTTPException(413, f"{name}: {seconds:.1f} s of audio is over the server's limit of "
                                         f"{max_seconds:g} s (serve --max-seconds)")
            yield path
        except EnvsoundError as exc:  # AudioLoadError, ...: the same one-line reason, naming the upload
            exc.args = (str(exc).replace(str(path), name),)
            raise exc from None
        except HTTPException as exc:
            raise HTTPException(exc.status_code, str(exc.detail).replace(str(path), name)) from None
