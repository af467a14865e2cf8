"""FLAC, Ogg Vorbis and MP3 on a real pipe (envsound.audio.stream.open_stream): decoded as they arrive, to what
libsndfile decodes from the file; what cannot be read ends in one line."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest
import soundfile as sf
from audiofactory import noise

from envsound.audio.stream import open_stream
from envsound.errors import AudioLoadError

RATE = 16000
ID3 = b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128)  # a 128-byte ID3v2.4 tag, as taggers put before an MP3


def encoded(fmt: str, subtype: str | None = None, *, rate: int = RATE, seconds: float = 3.0) -> bytes:
    out = io.BytesIO()
    sf.write(out, noise(seconds=seconds, sample_rate=rate, channels=2), rate, format=fmt, subtype=subtype)
    return out.getvalue()


class Pipe:
    """A real pipe: its first part written at once, the rest only after ``release()`` (or 10 s), then closed."""

    def __init__(self, data: bytes, *, first: int, then_close: bool = True) -> None:
        read_end, self.write_end = os.pipe()
        self.reader = io.FileIO(read_end, "rb")
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._write, args=(data, first, then_close), daemon=True)
        self.thread.start()

    def _write(self, data: bytes, first: int, then_close: bool) -> None:
        with os.fdopen(self.write_end, "wb") as out:
            out.write(data[:first])
            out.flush()
            self.released.wait(10)
            if then_close:
                out.write(data[first:])

    def release(self) -> None:
        self.released.set()


@pytest.mark.parametrize("fmt, subtype, prefix", [("FLAC", None, b""), ("OGG", "VORBIS", b""), ("MP3", None, ID3)])
def test_a_compressed_stream_decodes_as_it_arrives(fmt, subtype, prefix):
    data = prefix + encoded(fmt, subtype)
    expected = sf.read(io.BytesIO(data[len(prefix):]), dtype="float32", always_2d=True)[0]
    pipe = Pipe(data, first=len(data) // 2)
    rate, blocks = open_stream(pipe.reader, name="s", idle_seconds=20)
    first = next(blocks)  # before the second half is written
    released_before_first_block = pipe.released.is_set()
    pipe.release()
    got = np.concatenate([first, *blocks])
    assert not released_before_first_block and rate == RATE and got.shape[1] == 2
    if fmt == "MP3":  # dr_mp3 on a stream keeps the encoder's delay and padding (LAME: 1105 samples in front)
        delay = min(range(2400), key=lambda k: np.abs(got[k:k + 8000] - expected[:8000]).mean())
        assert delay == 1105 and len(got) - len(expected) < 2 * 1152
        got = got[delay:delay + len(expected)]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("fmt", ["FLAC", "MP3"])
def test_a_stream_shorter_than_a_read_decodes_whole(fmt):
    data = ID3 + encoded(fmt, seconds=0.05) if fmt == "MP3" else encoded(fmt, seconds=0.05)
    assert len(data) < 4096  # all of it arrives in the read that finds the header
    rate, blocks = open_stream(io.BytesIO(data), name="s")
    got = np.concatenate(list(blocks))
    assert len(got) >= 0.05 * RATE


def test_an_ogg_opus_stream_is_refused_with_the_ways_round():
    pipe = Pipe(encoded("OGG", "OPUS", rate=48000), first=1 << 20)
    with pytest.raises(AudioLoadError, match=r"^s: an Ogg stream of Opus; envsound decodes .* \(ffmpeg -i - -f wav -"):
        open_stream(pipe.reader, name="s")


@pytest.mark.parametrize("data, reason", [
    (b"fLaC" + bytes(range(256)) * 40, "s: not a FLAC stream envsound can decode (its first 10244 bytes hold no "
                                       "valid header)"),
    (b"ID3\x04\x00\x00\x00\x00\x7f\x7f", "s: the stream ended inside its ID3 tag"),
    (b"RIFX\x00\x00\x00\x00WAVE", "s: not a WAV, FLAC, Ogg Vorbis or MP3 stream (it starts with b'RIFX')"),
])
def test_a_stream_that_is_not_what_it_announces_ends_in_one_line(data, reason):
    with pytest.raises(AudioLoadError, match="^" + reason.replace("(", r"\(").replace(")", r"\)")):
        open_stream(io.BytesIO(data), name="s")


def test_a_compressed_stream_that_goes_silent_is_given_up():
    data = encoded("FLAC", seconds=6)
    pipe = Pipe(data, first=len(data) // 2, then_close=False)
    rate, blocks = open_stream(pipe.reader, name="s", idle_seconds=0.5)
    heard = []
    with pytest.raises(AudioLoadError, match=r"^s: no audio for 0.5 s; the stream was closed$"):
        for block in blocks:
            heard.append(len(block))
    pipe.release()
    assert 1.5 * rate < sum(heard) < 3 * rate  # what came before the silence was decoded
