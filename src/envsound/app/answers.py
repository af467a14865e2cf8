"""The one error shape every route answers with, ``{"error": "<one line>"}``, the statuses the schema lists, and
the answer to a store that cannot be read."""

from __future__ import annotations

import asyncio

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
