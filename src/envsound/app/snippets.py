"""The sound of sensors' events (``listen --snippets``): a sensor uploads an event's snippet after the event
(``PUT /v1/snippets/{sensor}/{key}``, the raw Ogg Opus or FLAC body with its Content-Type and ``X-Snippet-Start``,
where it begins from the event's onset, which places the event in it for review), and viewers, reviewers and
admins hear it (``GET /v1/events/{id}/audio``); a sensor never does. Kept by
:class:`~envsound.deploy.snippet_files.SnippetFiles` in the fleet folder.

Answers to an upload: **403** a sensor token uploading another sensor's snippet, **404** no such event of that
sensor (report the event first), **413** over :data:`~envsound.deploy.snippet_files.MAX_SNIPPET_BYTES`, **415** not
Ogg or FLAC, **503** the store could not take it (retry). A retried upload of a snippet kept already writes nothing.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from envsound.app.answers import STORE_ERRORS, read
from envsound.app.auth import Caller, Guard, check_sensor
from envsound.app.monitor import SensorName, Writer
from envsound.deploy.snippet_files import MAGIC, MAX_SNIPPET_BYTES, SnippetFiles
from envsound.errors import StoreError


def add_snippet_routes(app: FastAPI, guard: Guard, writer: Writer, files: SnippetFiles) -> None:
    """Register ``PUT /v1/snippets/{sensor}/{key}`` and ``GET /v1/events/{event_id}/audio`` on ``app``."""

    @app.put("/v1/snippets/{sensor}/{key}", responses=STORE_ERRORS)
    async def upload(request: Request, sensor: SensorName,
                     key: str = Path(min_length=1, max_length=64, description="the event's key, as reported"),
                     caller: Caller = Depends(guard.needs("report"))) -> dict:
        """The sound of ``sensor``'s event ``key`` (the raw file; Content-Type audio/ogg or audio/flac;
        ``X-Snippet-Start``: where it begins, in seconds from the event's onset, negative for a margin)."""
        check_sensor(caller, sensor)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in MAGIC:
            raise HTTPException(415, f"a snippet is {' or '.join(MAGIC)}, not {media_type or 'untyped'}")
        start = _start(request.headers.get("x-snippet-start"))
        body = await request.body()
        if len(body) > MAX_SNIPPET_BYTES:
            raise HTTPException(413, f"a snippet of {len(body)} bytes: at most {MAX_SNIPPET_BYTES} are kept")
        if not body.startswith(MAGIC[media_type]):
            raise HTTPException(415, f"the body is not {media_type} (it does not start as one)")
        try:
            event_id, new = await writer.run(files.keep, sensor, key, body, media_type, start)
        except LookupError:
            raise HTTPException(404, f"sensor {sensor!r} reported no event {key!r}: report it first") from None
        except (StoreError, OSError) as exc:
            raise HTTPException(503, f"{exc}; retry", headers={"Retry-After": "5"}) from None
        return {"event": event_id, "bytes": len(body), "stored": new}

    @app.get("/v1/events/{event_id}/audio", responses={**STORE_ERRORS, 200: {"content": {t: {} for t in MAGIC}}},
             response_class=Response)
    async def audio(event_id: int = Path(ge=1), caller: Caller = Depends(guard.needs("read"))) -> Response:
        """The kept sound of event ``event_id`` (404: none kept); for viewers, reviewers and admins, never sensors."""
        found = await read(files.audio, event_id)
        if found is None:
            raise HTTPException(404, f"event {event_id}: no sound of it is kept")
        body, media_type, name = found
        return Response(body, media_type=media_type, headers={
            "Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, no-store"})


def _start(text: str | None) -> float | None:
    """``X-Snippet-Start``: where the snippet begins, in seconds from its event's onset (within an hour); 422 else."""
    if text is None:
        return None
    try:
        start = float(text)
    except ValueError:
        start = float("nan")
    if not abs(start) <= 3600.0:  # NaN fails too
        raise HTTPException(422, f"X-Snippet-Start {text[:40]!r}: seconds from the event's onset, within an hour")
    return start
