"""The one error shape every route answers with, ``{"error": "<one line>"}``, and the statuses the schema lists."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorOut(BaseModel):
    error: str


ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 405, 413, 415, 422, 429)}
STORE_ERRORS = {**ERRORS, 503: {"model": ErrorOut, "description": "the store could not take the write: retry"}}
