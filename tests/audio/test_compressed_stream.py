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
ID3 = b"ID3\x04\x00\x00\x00\x00\x08\x00" + bytes(1024)  # an ID3v2.4 tag of 1,024 bytes (size 7 bits a byte)


def encoded(fmt: str, subtype: str | None = None, *, rate: int = RATE, seconds: float = 3.0) -> bytes:
    out = io.BytesIO()
    sf.write(out, noise(seconds=seconds, sample_rate=rate, channels=2), rate, format=fmt, subtype=subtype)
    return out.getvalue()


class Pipe:
    """A real pipe: its first part written at once, the rest only after ``release()`` (or 10 s), then closed."""

    def __init__(self, data: bytes, *, first: int, then_close: bool = True) -> None:
        read_end, self.write_end = os.pipe()
        self.reader = io.FileIO(read_end, "rb")
        self.released, self.rest_written = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._write, args=(data, first, then_close), daemon=True)
        self.thread.start()

    def _write(self, data: bytes, first: int, then_close: bool) -> None:
        with os.fdopen(self.write_end, "wb") as out:
            out.write(data[:first])
            out.flush()
            self.released.wait(10)
            if then_close:
                out.write(data[first:])
                self.rest_written.set()

    def release(self) -> None:
        self.released.set()


@pytest.mark.parametrize("fmt, subtype, prefix", [("FLAC", None, b""), ("OGG", "VORBIS", b""), ("MP3", None, ID3)])
def test_a_compressed_stream_decodes_as_it_arrives(fmt, subtype, prefix):
    data = prefix + encoded(fmt, subtype, seconds=8.0)  # dr_mp3 decodes once it holds 16 KB: half is more here
    expected = sf.read(io.BytesIO(data[len(prefix):]), dtype="float32", always_2d=True)[0]
    pipe = Pipe(data, first=len(data) // 2)
    rate, blocks = open_stream(pipe.reader, name="s", idle_seconds=20)
    first = next(blocks)
    before_the_rest = not pipe.rest_written.is_set()
    pipe.release()
    got = np.concatenate([first, *blocks])
    assert before_the_rest and rate == RATE and got.shape[1] == 2
    assert got.shape == expected.shape  # an MP3's encoder delay and padding dropped, as libsndfile drops them
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("fmt", ["FLAC", "MP3"])
def test_a_stream_shorter_than_a_read_decodes_whole(fmt):
    data = ID3 + encoded(fmt, seconds=0.05) if fmt == "MP3" else encoded(fmt, seconds=0.05)
    assert len(data) < 4096  # all of it arrives in the read that finds the header
    rate, blocks = open_stream(io.BytesIO(data), name="s")
    got = np.concatenate(list(blocks))
    assert len(got) >= 0.05 * RATE


def test_a_flac_stream_with_megabytes_of_metadata_decodes():
    """Megabytes of metadata before the audio (cover art; here a 3-MB APPLICATION block of random bytes after
    STREAMINFO), which the decoder steps over by seeking forward, are read through."""
    data = encoded("FLAC", seconds=1.0)
    assert data[4] & 0x7F == 0  # STREAMINFO first, 34 bytes
    size = 3 << 20
    streaminfo = bytes([data[4] & 0x7F]) + data[5:42]  # not the last block now: the new one follows it
    body = b"test" + np.random.default_rng(0).integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    block = bytes([0x02 | (data[4] & 0x80)]) + size.to_bytes(3, "big") + body
    padded = data[:4] + streaminfo + block + data[42:]
    expected = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0]
    pipe = Pipe(padded, first=len(padded))
    pipe.release()
    rate, blocks = open_stream(pipe.reader, name="s")
    np.testing.assert_array_equal(np.concatenate(list(blocks)), expected)


def test_an_ogg_opus_stream_is_refused_with_the_ways_round():
    pipe = Pipe(encoded("OGG", "OPUS", rate=48000), first=1 << 20)
    with pytest.raises(AudioLoadError, match=r"^s: an Ogg stream of Opus; envsound decodes .* \(ffmpeg -i - -f wav -"):
        open_stream(pipe.reader, name="s")
    pipe.release()


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
