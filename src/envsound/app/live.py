"""``/v1/listen``: a WebSocket that takes PCM as it is recorded and answers one JSON object a hop.

The protocol (the page's Live button speaks it; so can any client):

- connect to ``/v1/listen?rate=48000&encoding=float32`` (``encoding`` ``pcm16`` or ``float32``, little-endian;
  ``channels``, default 1; ``top_k``, default 3);
- send binary messages of samples, any number of whole or split frames each;
- receive one text message a hop: ``envsound listen --json``'s object
  (:meth:`~envsound.inference.live.Hop.to_dict`);
- send the text ``end`` (or close): the remaining hops and the ``"end": true`` record come, then the server closes.

Before the audio, a text message ``{"token": ..., "sensor": ..., "start": ...}`` (every key optional) says who is
streaming: ``token`` is required when the server requires tokens (the first message, never the URL); ``sensor``
makes the server store what it detects as that sensor's events and heartbeats (a sensor token may only stream as
its own sensor), with times counted from ``start`` (ISO 8601, the sensor's clock when it recorded the first sample;
the server's clock when the stream was accepted if absent).

A client that sends something else (text, a message over ``max_message_bytes``, a stream ending inside a frame),
announces a format envsound does not read, or sends nothing for ``idle_seconds`` gets ``{"error": "<one line>"}``
and a close with that reason; so does one over ``max_streams``. Each stream holds one listener (one window of audio)
and nothing else; it is dropped when the connection ends, however it ends. The model runs in the server's
prediction pool, as uploads do, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.exceptions import HTTPException

from envsound.app.auth import Caller, Guard, check_sensor
from envsound.deploy.times import StreamClock
from envsound.deploy.tokens import MAY
from envsound.errors import EnvsoundError
from envsound.inference.api import Model
from envsound.inference.live import PcmFormat, decode_pcm

POLICY, UNSUPPORTED, TOO_BIG, BUSY, FAILED = 1008, 1003, 1009, 1013, 1011  # RFC 6455 close codes
HEARTBEAT_SECONDS = 30.0  # of a sensor's stream, between the heartbeats stored
HELLO_SECONDS = 5.0  # for the first message when tokens are required


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def add_live_route(app: FastAPI, model: Model, pool, limits, *, guard: Guard, writer=None,
                   fingerprint: str | None = None) -> None:
    """Register ``/v1/listen`` on ``app``; ``pool`` runs the model, ``limits`` is the server's ServerLimits,
    ``guard`` checks tokens, ``writer`` (a :class:`~envsound.app.monitor.Writer`) stores a sensor's detections,
    marked with the model's name and ``fingerprint``."""
    model_name = model.describe()["model"]
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
        caller = None
        try:
            fmt = PcmFormat(rate, channels, encoding).check(f"rate={rate}, encoding={encoding}")
            # a client must show its token soon: a silent one would hold a stream's place for idle_seconds
            first = await _receive(socket, limits, HELLO_SECONDS if guard.required else None)
            hello = _hello(first)
            caller = await _admit(guard, hello, socket.client.host if socket.client else None)
            listener = model.listen(sample_rate=fmt.sample_rate, top_k=top_k)
            keep = _Recorder.of(hello, writer, model_name, fingerprint)
            await _stream(socket, listener, fmt, pool, limits, None if hello else first, keep)
        except _Refused as exc:
            await _close(socket, exc.code, str(exc))
        except EnvsoundError as exc:
            await _close(socket, POLICY, str(exc))
        except WebSocketDisconnect:
            pass  # the client went away: its listener goes with this frame
        finally:
            streams["open"] -= 1
            if caller is not None:
                guard.close_stream(caller)


def _hello(message: dict) -> dict | None:
    """The opening ``{"token", "sensor", "start"}`` message, or None when the stream starts with audio."""
    text = message.get("text")
    if text is None or not text.lstrip().startswith("{"):
        return None
    try:
        hello = json.loads(text)
    except ValueError:
        hello = None
    if (not isinstance(hello, dict) or not set(hello) <= {"token", "sensor", "start"}
            or not all(isinstance(value, str) or value is None for value in hello.values())):
        raise _Refused(POLICY, 'the first message is {"token": ..., "sensor": ..., "start": ...} (each optional, '
                               'each a string)')
    return hello


async def _admit(guard: Guard, hello: dict | None, client: str | None) -> Caller:
    """The caller, if its token lets it stream (as the sensor it names); a refusal closes with its reason."""
    try:
        caller = await guard.admit((hello or {}).get("token"), "stream", client=client)
        if hello and hello.get("sensor") is not None:  # storing as a sensor is reporting: sensor or admin only
            if caller.role not in MAY["report"]:
                raise HTTPException(403, f"a {caller.role} token may not stream as a sensor (its events would be "
                                         "stored); stream without a sensor name")
            check_sensor(caller, hello["sensor"])
        guard.open_stream(caller)
    except HTTPException as exc:
        raise _Refused(BUSY if exc.status_code == 429 else POLICY, f"{exc.status_code}: {exc.detail}") from None
    return caller


class _Recorder:
    """Stores a sensor's stream as its reports would be: each ended event (key: the stream's id and the event's
    number) and a heartbeat every HEARTBEAT_SECONDS of audio, timed from the stream's ``start``."""

    def __init__(self, sensor: str, start: datetime, writer, model: str, fingerprint: str | None) -> None:
        self.sensor, self.clock, self.writer = sensor, StreamClock(start), writer
        self.model, self.fingerprint = model, fingerprint
        self.stream, self.count, self.beat = uuid.uuid4().hex[:16], 0, float("-inf")

    @classmethod
    def of(cls, hello: dict | None, writer, model: str, fingerprint: str | None) -> "_Recorder | None":
        """The recorder of a stream whose hello names a sensor (None without one); refuses a bad ``start``."""
        from envsound.app.monitor import check_times
        from envsound.deploy.times import parse_time
        from envsound.deploy.tokens import check_name

        sensor = (hello or {}).get("sensor")
        if sensor is None:
            return None
        if writer is None:
            raise _Refused(POLICY, "this server keeps no store: stream without a sensor name")
        start = datetime.now(timezone.utc)
        if hello.get("start") is not None:
            try:
                start = parse_time(hello["start"])
            except ValueError:
                raise _Refused(POLICY, f"start {hello['start']!r} is not an ISO 8601 time") from None
            if start.tzinfo is None:
                raise _Refused(POLICY, f"start {hello['start']!r}: give the time's zone (Z for UTC)")
        try:
            check_times(start)
        except HTTPException as exc:
            raise _Refused(POLICY, exc.detail) from None
        return cls(check_name(str(sensor)), start, writer, model, fingerprint)

    async def hops(self, hops) -> None:
        from envsound.deploy.store import Detection, Heartbeat

        events = []
        for hop in hops:
            for event in self.clock.ended(hop.to_dict()):
                self.count += 1
                events.append(Detection(f"{self.stream}-{self.count}", event["label"], event["onset"],
                                        event["offset"], event["score"]))
        last, beat = hops[-1] if hops else None, None
        if last is not None and (last.time - self.beat >= HEARTBEAT_SECONDS or last.end):
            hearing = self.clock.hearing
            beat = Heartbeat(self.clock.at(last.time), hearing.get("label"), hearing.get("score"))
            self.beat = last.time
        if events or beat:
            try:
                await self.writer.report(self.sensor, events, heartbeat=beat, model=self.model,
                                         fingerprint=self.fingerprint)
            except HTTPException as exc:
                raise _Refused(FAILED, exc.detail) from None


async def _receive(socket: WebSocket, limits, timeout: float | None = None) -> dict:
    wait = min(timeout or limits.idle_seconds, limits.idle_seconds)
    try:
        return await asyncio.wait_for(socket.receive(), timeout=wait)
    except asyncio.TimeoutError:
        what = "audio" if timeout is None else "token"
        raise _Refused(POLICY, f"no {what} for {wait:g} s; the stream was closed") from None


async def _stream(socket: WebSocket, listener, fmt: PcmFormat, pool, limits, first: dict | None,
                  recorder: _Recorder | None) -> None:
    """``first``: a message received already (the stream began with audio, not a hello)."""
    pending = b""
    while True:
        message, first = first or await _receive(socket, limits), None
        if message["type"] == "websocket.disconnect":
            if recorder is not None:  # a sensor that went away: the events it had open end where its audio did
                await recorder.hops(await pool.run(listener.finish))
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
            await _send(socket, await pool.run(listener.push, samples), recorder)
    if pending:
        raise _Refused(POLICY, f"the stream stopped inside a frame ({len(pending)} stray byte(s); a frame is "
                               f"{fmt.frame_bytes} bytes)")
    await _send(socket, await pool.run(listener.finish), recorder)
    await socket.close(1000)


async def _send(socket: WebSocket, hops, recorder: _Recorder | None = None) -> None:
    if recorder is not None:  # stored before they are sent: what the client saw is in the store
        await recorder.hops(hops)
    for hop in hops:
        await socket.send_text(json.dumps(hop.to_dict()))


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    reason = " ".join(reason.split())
    try:
        await socket.send_text(json.dumps({"error": reason}))
        await socket.close(code, reason=reason[:120])  # a close frame's reason is at most 123 bytes
    except (WebSocketDisconnect, RuntimeError):
        pass  # already gone
