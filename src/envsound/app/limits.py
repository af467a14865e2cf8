"""What the server checks before it reads a request body: its size, and how long it takes to arrive (the kind of file
uploaded: :mod:`envsound.audio.sniff`)."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets **413** ``{"error": ...}``; one not all there within
    ``body_seconds`` of the request's start (None: no limit) gets **408** and its connection is closed.

    A declared ``Content-Length`` over the limit is refused before the app runs; a chunked body is counted as it
    arrives and the app is stopped at the limit. Either way the rest of the body is read and dropped (never stored)
    before the answer is sent, so the client sees the 413 instead of a connection reset mid-upload. Any other answer
    given before the app read its whole body is preceded by the same drain. A body sent slowly (a byte a second,
    many such at once: a "slowloris") holds only its own connection, and only until ``body_seconds``; the drain is
    under the same deadline. Other clients are unaffected: waiting for a body takes no thread.
    """

    def __init__(self, app, *, max_bytes: int, hint: str = "", body_seconds: float | None = None,
                 time_hint: str = "") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.hint = hint
        self.body_seconds = body_seconds
        self.time_hint = time_hint

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        # a request without a body (a GET: no Content-Length, not chunked) is done from the start: drain() must not
        # read it, or it would wait beside an app that listens for the disconnect (a FileResponse), for ever
        bodyless = "chunked" not in headers.get("transfer-encoding", "").lower() and declared in ("", "0")
        state = {"received": 0, "done": bodyless, "over": False, "started": False, "slow": False}
        message_413 = f"request body is over the server's limit of {self.max_bytes / 1e6:g} MB{self.hint}"
        message_408 = f"the request body did not arrive within {self.body_seconds or 0:g} s{self.time_hint}"
        loop = asyncio.get_running_loop()
        deadline = None if self.body_seconds is None else loop.time() + self.body_seconds

        async def timed_receive():
            """The next message; a body still arriving at the deadline raises _BodyTooSlow."""
            if deadline is None or state["done"]:  # after the body: the app may wait for a disconnect, untimed
                return await receive()
            try:
                return await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                state["slow"] = True
                raise _BodyTooSlow(message_408) from None

        async def counted_receive():
            message = await timed_receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["done"] = not message.get("more_body", False)
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise _BodyTooLarge(message_413)
            elif message["type"] == "http.disconnect":
                state["done"] = True
            return message

        async def drain() -> None:
            try:
                while not state["done"] and not state["slow"]:
                    message = await timed_receive()
                    state["done"] = message["type"] == "http.disconnect" or not message.get("more_body", False)
            except _BodyTooSlow:
                pass  # answered all the same, and the connection closed: the rest of the body is never read

        async def drained_send(message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                await drain()
                headers = list(message.get("headers", []))
                if state["slow"] and (b"connection", b"close") not in [(k.lower(), v) for k, v in headers]:
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        if declared.isdigit() and int(declared) > self.max_bytes:
            state["over"] = True
        else:
            try:
                await self.app(scope, counted_receive, drained_send)
            except (_BodyTooLarge, _BodyTooSlow):
                pass
        if state["over"] and not state["started"]:
            await drain()
            if not state["slow"]:
                await JSONResponse({"error": message_413}, status_code=413)(scope, receive, send)
        if state["slow"] and not state["started"]:
            await JSONResponse({"error": message_408}, status_code=408, headers={"Connection": "close"})(
                scope, receive, send)


class _BodyTooLarge(HTTPException):
    """Raised from the app's ``receive``; an HTTPException, so that FastAPI's body parsing passes it on as is."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class _BodyTooSlow(HTTPException):
    """Raised from the app's ``receive`` at the deadline; the app's answer to it (408) closes the connection."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=408, detail=message, headers={"Connection": "close"})
