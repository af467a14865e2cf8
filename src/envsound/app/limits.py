"""What the server checks before it reads a request body: its size (the kind of file uploaded:
:mod:`envsound.audio.sniff`)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets **413** ``{"error": ...}``.

    A declared ``Content-Length`` over the limit is refused before the app runs; a chunked body is counted as it
    arrives and the app is stopped at the limit. Either way the rest of the body is read and dropped (never stored)
    before the answer is sent, so the client sees the 413 instead of a connection reset mid-upload. Any other answer
    given before the app read its whole body is preceded by the same drain.
    """

    def __init__(self, app, *, max_bytes: int, hint: str = "") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.hint = hint

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"received": 0, "done": False, "over": False, "started": False}
        message_413 = f"request body is over the server's limit of {self.max_bytes / 1e6:g} MB{self.hint}"

        async def counted_receive():
            message = await receive()
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
            while not state["done"]:
                message = await receive()
                state["done"] = message["type"] == "http.disconnect" or not message.get("more_body", False)

        async def drained_send(message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                await drain()
            await send(message)

        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            state["over"] = True
        else:
            try:
                await self.app(scope, counted_receive, drained_send)
            except _BodyTooLarge:
                pass
        if state["over"] and not state["started"]:
            await drain()
            await JSONResponse({"error": message_413}, status_code=413)(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """Raised from the app's ``receive``; an HTTPException, so that FastAPI's body parsing passes it on as is."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)
