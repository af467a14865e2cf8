"""The one error shape every route answers with, ``{"error": "<one line>"}``, the statuses the schema lists, and
the answer to a store that cannot be read."""

from __future__ import annotations

import asyncio
from pathlib import PurePath

from pydantic import BaseModel
from starlette.exceptions import HTTPException

from envsound.errors import StoreError


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
