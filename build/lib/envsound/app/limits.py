"""What the server checks before it decodes anything: the size of a request body and the kind of file uploaded."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

# Magic numbers of the formats `envsound predict` reads (libsndfile): (offset, bytes) pairs that must all match.
_SIGNATURES: dict[str, tuple[tuple[int, bytes], ...]] = {
    "WAV": ((0, b"RIFF"), (8, b"WAVE")),
    "RF64": ((0, b"RF64"), (8, b"WAVE")),
    "W64": ((0, b"riff\x2e\x91\xcf\x11"),),
    "AIFF": ((0, b"FORM"), (8, b"AIFF")),
    "AIFC": ((0, b"FORM"), (8, b"AIFC")),
    "FLAC": ((0, b"fLaC"),),
    "OGG": ((0, b"OggS"),),
    "MP3": ((0, b"ID3"),),
    "AU": ((0, b".snd"),),
    "CAF": ((0, b"caff"),),
}
SNIFF_BYTES = 12
SUPPORTED = "WAV, FLAC, OGG/Opus, MP3, AIFF, AU, CAF"


def sniff_audio(head: bytes) -> str | None:
    """The container a file's first :data:`SNIFF_BYTES` bytes announce, or None when they announce no audio format
    envsound reads. An MP3 without an ID3 tag starts with an MPEG audio frame header (11 sync bits, layer != 0)."""
    for name, marks in _SIGNATURES.items():
        if all(head[at:at + len(mark)] == mark for at, mark in marks):
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "MP3"
    return None


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
