"""``/v1/listen``: a WebSocket that takes PCM as it is recorded and answers one JSON object a hop.

The protocol (the page's Live button speaks it; so can any client):

- connect to ``/v1/listen?rate=48000&encoding=float32`` (``encoding`` ``pcm16`` or ``float32``, little-endian;
  ``channels``, default 1; ``top_k``, default 3);
- send binary messages of samples, any number of whole or split frames each;
- receive one text message a hop: ``envsound listen --json``'s object
  (:meth:`~envsound.inference.live.Hop.to_dict`);
- send the text ``end`` (or close): the remaining hops and the ``"end": true`` record come, then the server closes.

A client that sends something else (text, a message over ``max_message_bytes``, a stream ending inside a frame),
announces a format envsound does not read, or sends nothing for ``idle_seconds`` gets ``{"error": "<one line>"}``
and a close with that reason; so does one over ``max_streams``. Each stream holds one listener (one window of audio)
and nothing else; it is dropped when the connection ends, however it ends. The model runs in the server's
prediction pool, as uploads do, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from envsound.errors import EnvsoundError
from envsound.inference.api import Model
from envsound.inference.live import PcmFormat, decode_pcm

POLICY, UNSUPPORTED, TOO_BIG, BUSY = 1008, 1003, 1009, 1013  # RFC 6455 close codes


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def add_live_route(app: FastAPI, model: Model, pool, limits) -> None:
    """Register ``/v1/listen`` on ``app``; ``pool`` runs the model, ``limits`` is the server's ServerLimits."""
    streams = {"open": 0}
    app.state.live_streams = streams

    @app.websocket("/v1/listen")
    async def listen(socket: WebSocket, rate: int = 0, encoding: str = "float32", channels: int = 1,
                     top_k: int = 3) -> None:
        await socket.accept()
        if streams["open"] >= limits.max_streams:
            await _close(socket, BUSY, f"the server is listening to {limits.max_streams} streams already "
                                       "(serve --max-streams); try again later")
            return
        streams["open"] += 1
        try:
            fmt = PcmFormat(rate, channels, encoding).check(f"rate={rate}, encoding={encoding}")
            listener = model.listen(sample_rate=fmt.sample_rate, top_k=top_k)
            await _stream(socket, listener, fmt, pool, limits)
        except _Refused as exc:
            await _close(socket, exc.code, str(exc))
        except EnvsoundError as exc:
            await _close(socket, POLICY, str(exc))
        except WebSocketDisconnect:
            pass  # the client went away: its listener goes with this frame
        finally:
            streams["open"] -= 1


async def _stream(socket: WebSocket, listener, fmt: PcmFormat, pool, limits) -> None:
    pending = b""
    while True:
        try:
            message = await asyncio.wait_for(socket.receive(), timeout=limits.idle_seconds)
        except asyncio.TimeoutError:
            raise _Refused(POLICY, f"no audio for {limits.idle_seconds:g} s; the stream was closed") from None
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            if message["text"].strip() != "end":
                raise _Refused(UNSUPPORTED, "send binary PCM frames, or the text 'end'")
            break
        data = message.get("bytes") or b""
        if len(data) > limits.max_message_bytes:
            raise _Refused(TOO_BIG, f"a message of {len(data)} bytes is over the limit of "
                                    f"{limits.max_message_bytes} (send smaller pieces)")
        pending += data
        whole = len(pending) - len(pending) % fmt.frame_bytes
        if whole:
            samples, pending = decode_pcm(pending[:whole], fmt), pending[whole:]
            await _send(socket, await pool.run(listener.push, samples))
    if pending:
        raise _Refused(POLICY, f"the stream stopped inside a frame ({len(pending)} stray byte(s); a frame is "
                               f"{fmt.frame_bytes} bytes)")
    await _send(socket, await pool.run(listener.finish))
    await socket.close(1000)


async def _send(socket: WebSocket, hops) -> None:
    for hop in hops:
        await socket.send_text(json.dumps(hop.to_dict()))


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    reason = " ".join(reason.split())
    try:
        await socket.send_text(json.dumps({"error": reason}))
        await socket.close(code, reason=reason[:120])  # a close frame's reason is at most 123 bytes
    except (WebSocketDisconnect, RuntimeError):
        pass  # already gone
