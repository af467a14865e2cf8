"""The WebSocket /v1/listen over a real server: the hops equal the Python API's, and every bad client (garbage,
a format it did not announce, a frame cut off, silence, one too many) is closed with a one-line reason and frees
its stream."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from audiofactory import noise, tone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from envsound.app.run import running
from envsound.app.server import ServerLimits, create_app

RATE = 8000


@pytest.fixture(scope="module")
def live(served):
    """A server of the trained model with small live limits; yields (ws base URL, app)."""
    app = create_app(served.model, limits=ServerLimits(max_streams=2, idle_seconds=1.0, max_message_bytes=64_000))
    with running(app) as url:
        yield url.replace("http://", "ws://"), app


def samples() -> np.ndarray:
    return np.concatenate([tone(seconds=2.5, sample_rate=RATE, freq=660)[:, 0],
                           noise(seconds=2, sample_rate=RATE)[:, 0]]).astype(np.float32)


def received(socket) -> tuple[list[dict], int, str]:
    """Every message until the server closes, and its close code and reason."""
    messages = []
    try:
        while True:
            messages.append(json.loads(socket.recv(timeout=30)))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code, closed.rcvd.reason


def without_timing(hops):
    return [{**hop, "model_ms": 0} for hop in hops]


def test_a_stream_gets_what_the_python_api_gives_then_a_clean_close(live, served):
    url, app = live
    pcm = (samples() * 32767).round().astype("<i2")
    expected_listener = served.model.listen(sample_rate=RATE)
    expected = [h.to_dict() for piece in [pcm.astype(np.float32) / 32768] for h in expected_listener.push(piece)]
    expected += [h.to_dict() for h in expected_listener.finish()]
    data = pcm.tobytes()
    with connect(f"{url}/v1/listen?rate={RATE}&encoding=pcm16") as socket:
        cuts = [0, 1, 777, 4001, 10_000, 22_222, len(data)]  # pieces that split frames
        for begin, end in zip(cuts, cuts[1:]):
            socket.send(data[begin:end])
        socket.send("end")
        hops, code, _ = received(socket)
    assert code == 1000 and without_timing(hops) == without_timing(expected)
    assert hops[-1]["end"] and hops[0]["time"] == 1.0
    assert app.state.live_streams["open"] == 0


@pytest.mark.parametrize("query, send, code, reason", [
    ("rate=8000", ["hello"], 1003, "send binary PCM frames, or the text 'end'"),
    ("rate=0", [], 1008, "rate=0, encoding=float32: 0 Hz, 1 channel(s), float32 is not a stream envsound reads"),
    ("rate=8000&encoding=mp3", [], 1008, "is not a stream envsound reads"),
    ("rate=8000&encoding=pcm16", [b"\x00\x01\x02", "end"], 1008, "the stream stopped inside a frame (1 stray byte"),
    ("rate=8000", [b"\x00" * 64_004], 1009, "a message of 64004 bytes is over the limit of 64000"),
    ("rate=8000", [b"\x00" * 400], 1008, "no audio for 1 s; the stream was closed"),
])
def test_a_bad_client_is_closed_with_one_line(live, query, send, code, reason):
    url, app = live
    with connect(f"{url}/v1/listen?{query}") as socket:
        for message in send:
            socket.send(message)
        messages, closed_code, closed_reason = received(socket)
    assert closed_code == code and reason in closed_reason
    assert reason in messages[-1]["error"] and "\n" not in messages[-1]["error"]
    deadline = time.monotonic() + 5  # the handler's finally runs after the close frame went out
    while app.state.live_streams["open"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.state.live_streams["open"] == 0


def test_one_stream_too_many_is_refused_and_a_client_that_vanishes_frees_its_own(live):
    url, app = live
    with connect(f"{url}/v1/listen?rate={RATE}") as first, connect(f"{url}/v1/listen?rate={RATE}"):
        first.send(samples()[:RATE].tobytes())
        with connect(f"{url}/v1/listen?rate={RATE}") as third:
            messages, code, reason = received(third)
        assert code == 1013 and "listening to 2 streams already" in messages[0]["error"]
    # both left without "end": the server notices the disconnects
    deadline = time.monotonic() + 5
    while app.state.live_streams["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.live_streams["open"] == 0
