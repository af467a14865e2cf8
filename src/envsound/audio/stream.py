"""Audio as it arrives on a byte stream (a pipe, stdin, a socket): a WAV stream or raw PCM, decoded piece by piece
(FLAC, Ogg Vorbis and MP3: :mod:`envsound.audio.compressed_stream`).

A WAV written to a pipe cannot be seeked, and its writer often does not know the length (``ffmpeg ... -f wav -``,
``arecord``, ``sox ... -t wav -`` write 0 or 0xFFFFFFFF as sizes), so the header is read here, chunk by chunk, up to
``data``, and the samples after it are taken as they come until the stream ends. Raw PCM has no header: its rate,
channels and encoding are announced by the caller. stdlib and numpy only.
"""

from __future__ import annotations

import logging
import queue
import struct
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from envsound.audio.idle import wait_for_data
from envsound.audio.sniff import SNIFF_BYTES, sniff_audio
from envsound.errors import AudioLoadError, ConfigError

logger = logging.getLogger(__name__)

# encoding -> (numpy dtype of one sample as stored, scale to -1..1)
ENCODINGS = {"pcm16": ("<i2", 2.0 ** 15), "pcm24": (None, 2.0 ** 23), "pcm32": ("<i4", 2.0 ** 31),
             "float32": ("<f4", 1.0), "pcm8": ("u1", 2.0 ** 7)}
_WAVE_FORMATS = {1: "pcm", 3: "float", 0xFFFE: "extensible"}
_MAX_HEADER = 1 << 20  # chunks before "data" (LIST, bext ...) are small; more is not a WAV stream
COMPRESSED = ("FLAC", "OGG", "MP3")  # what sniff_audio names that compressed_stream decodes (with miniaudio)


@dataclass(frozen=True)
class PcmFormat:
    sample_rate: int
    channels: int = 1
    encoding: str = "pcm16"

    @property
    def frame_bytes(self) -> int:
        return self.channels * {"pcm16": 2, "pcm24": 3, "pcm32": 4, "float32": 4, "pcm8": 1}[self.encoding]

    def check(self, name: str) -> "PcmFormat":
        if not 1 <= self.sample_rate <= 768_000 or not 1 <= self.channels <= 64 or self.encoding not in ENCODINGS:
            raise AudioLoadError(f"{name}: {self.sample_rate} Hz, {self.channels} channel(s), {self.encoding} is not "
                                 f"a stream envsound reads (1-768000 Hz, 1-64 channels, {', '.join(ENCODINGS)})")
        return self


def decode_pcm(data: bytes, fmt: PcmFormat) -> np.ndarray:
    """Whole frames of ``fmt`` -> float32 ``(frames, channels)`` in -1..1. A float32 sample that is not a number (NaN,
    infinity) becomes 0: left as it is, every window it falls in scores NaN and those hops vanish from the output.

    >>> decode_pcm(np.array([0.5, np.nan], "<f4").tobytes(), PcmFormat(16000, 1, "float32")).ravel().tolist()
    [0.5, 0.0]
    """
    dtype, scale = ENCODINGS[fmt.encoding]
    if fmt.encoding == "pcm24":
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        values = (raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8 | raw[:, 2].astype(np.int32) << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
    else:
        values = np.frombuffer(data, dtype=dtype)
        if fmt.encoding == "pcm8":
            values = values.astype(np.int16) - 128
    samples = (values.astype(np.float32) / np.float32(scale)).reshape(-1, fmt.channels)  # a copy: writable
    if fmt.encoding == "float32" and not np.isfinite(samples).all():
        samples[~np.isfinite(samples)] = 0.0
    return samples


def _non_finite_at(data: bytes, fmt: PcmFormat) -> int | None:
    """The frame of the first float32 sample of ``data`` that is not a number (NaN, infinity), else None."""
    if fmt.encoding != "float32":
        return None
    bad = np.flatnonzero(~np.isfinite(np.frombuffer(data, dtype="<f4")))
    return int(bad[0]) // fmt.channels if len(bad) else None


def read_wav_header(stream: BinaryIO, *, name: str, head: bytes = b"") -> PcmFormat:
    """Read a WAV stream's header up to its ``data`` chunk; the stream is then at the first sample. ``head``: the 12
    bytes of its RIFF header when they were already read off it (to see what the stream is)."""
    if not head:
        head = _exactly(stream, 12, name, "a WAV header")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioLoadError(f"{name}: not a WAV stream (it starts with {head[:4]!r})")
    fmt, seen = None, 12
    while True:
        chunk_id, size = struct.unpack("<4sI", _exactly(stream, 8, name, "a WAV chunk header"))
        if chunk_id == b"data":
            if fmt is None:
                raise AudioLoadError(f"{name}: WAV stream has no 'fmt ' chunk before its samples")
            return fmt
        seen += 8 + size + size % 2
        if seen > _MAX_HEADER:
            raise AudioLoadError(f"{name}: WAV stream has over {_MAX_HEADER} bytes before its samples")
        body = _exactly(stream, size + size % 2, name, f"its {chunk_id.decode('latin-1')!r} chunk")
        if chunk_id == b"fmt ":
            fmt = _wave_format(body, name)


def _wave_format(body: bytes, name: str) -> PcmFormat:
    if len(body) < 16:
        raise AudioLoadError(f"{name}: WAV 'fmt ' chunk is {len(body)} bytes, not 16 or more")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the plain format tag
    kind = _WAVE_FORMATS.get(tag)
    encoding = {("pcm", 8): "pcm8", ("pcm", 16): "pcm16", ("pcm", 24): "pcm24", ("pcm", 32): "pcm32",
                ("float", 32): "float32"}.get((kind, bits))
    if encoding is None:
        raise AudioLoadError(f"{name}: WAV stream of format {tag:#x} with {bits}-bit samples; a stream can be "
                             "8/16/24/32-bit integer PCM or 32-bit float")
    return PcmFormat(rate, channels, encoding).check(name)


def iter_pcm(stream: BinaryIO, fmt: PcmFormat, *, name: str, max_bytes: int = 1 << 16,
             idle_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Decode ``stream`` as it arrives: float32 ``(frames, channels)`` blocks of whatever whole frames came (up to
    ``max_bytes`` a read), until it ends. ``stream`` should be unbuffered (``sys.stdin.buffer.raw``), so that a read
    returns what is there now and waiting is seen. A stream that ends inside a frame, or sends nothing for
    ``idle_seconds`` (``None``: wait for ever), raises :class:`AudioLoadError` after the frames before it."""
    pending, frames, said = b"", 0, False
    while True:
        wait_for_data(stream, idle_seconds, name)
        data = stream.read(max_bytes)
        if not data:
            break
        pending += data
        whole = len(pending) - len(pending) % fmt.frame_bytes
        if whole:
            if not said and (at := _non_finite_at(pending[:whole], fmt)) is not None:
                logger.warning("%s: samples that are not numbers (NaN or infinity) from %.2f s, set to 0 (said once "
                               "a stream)", name, (frames + at) / fmt.sample_rate)
                said = True
            yield decode_pcm(pending[:whole], fmt)
            frames += whole // fmt.frame_bytes
            pending = pending[whole:]
    if pending:
        raise AudioLoadError(f"{name}: the stream stopped inside a frame ({len(pending)} stray byte(s); a frame is "
                             f"{fmt.frame_bytes} bytes: {fmt.channels} channel(s) of {fmt.encoding})")


def _exactly(stream: BinaryIO, n: int, name: str, what: str) -> bytes:
    data = _up_to(stream, n)
    if not data and what == "a WAV header":
        raise AudioLoadError(f"{name}: no audio (the stream was empty)")
    if len(data) < n:
        raise AudioLoadError(f"{name}: the stream ended inside {what} ({len(data)} of {n} bytes)")
    return data


def open_input(source: str, *, rate: int | None = None, channels: int = 1, encoding: str = "pcm16",
               realtime: bool = False, idle_seconds: float | None = None,
               block_seconds: float = 0.1) -> tuple[int, Iterator[np.ndarray]]:
    """Where ``envsound listen`` hears from -> (sample rate, blocks ``(frames,)`` or ``(frames, channels)`` float32).

    ``-``: stdin (:func:`open_stream`); ``mic``: the default input device (needs ``sounddevice``); anything else: an
    audio file, as fast as it decodes or, with ``realtime``, at the speed it would play.
    """
    if source == "-":  # unbuffered: a read gives what has arrived
        return open_stream(sys.stdin.buffer.raw, name="stdin", rate=rate, channels=channels, encoding=encoding,
                           idle_seconds=idle_seconds, block_seconds=block_seconds)
    if source == "mic":
        return _microphone(block_seconds=block_seconds)
    from envsound.audio.load import audio_info, iter_audio_blocks

    native = audio_info(source).sample_rate
    blocks = iter_audio_blocks(source, sample_rate=native, block_seconds=block_seconds)
    return native, (_paced(blocks, native) if realtime else blocks)


def open_stream(stream: BinaryIO, *, name: str, rate: int | None = None, channels: int = 1, encoding: str = "pcm16",
                idle_seconds: float | None = None, block_seconds: float = 0.1) -> tuple[int, Iterator[np.ndarray]]:
    """An unbuffered byte stream -> (sample rate, float32 ``(frames, channels)`` blocks as they arrive): raw PCM of
    ``rate`` Hz, ``channels`` and ``encoding`` when ``rate`` is given, else whatever its first bytes announce: a WAV
    stream, or FLAC, Ogg Vorbis or MP3 (:mod:`envsound.audio.compressed_stream`)."""
    if rate is not None:
        return rate, iter_pcm(stream, PcmFormat(rate, channels, encoding).check(name), name=name,
                              idle_seconds=idle_seconds)
    head = _up_to(stream, SNIFF_BYTES)
    if not head:
        raise AudioLoadError(f"{name}: no audio (the stream was empty)")
    kind = sniff_audio(head)
    if kind in COMPRESSED:
        from envsound.audio.compressed_stream import open_compressed  # miniaudio, loaded only for these

        return open_compressed(stream, head, kind, name=name, idle_seconds=idle_seconds, block_seconds=block_seconds)
    if kind != "WAV":
        raise AudioLoadError(f"{name}: not a WAV, FLAC, Ogg Vorbis or MP3 stream (it starts with {head[:4]!r}); raw "
                             "PCM needs its sample rate given (envsound listen --rate)")
    fmt = read_wav_header(stream, name=name, head=head)  # sniff_audio's "WAV" has read the 12-byte RIFF header
    return fmt.sample_rate, iter_pcm(stream, fmt, name=name, idle_seconds=idle_seconds)


def _up_to(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:  # an unbuffered read returns what has arrived, maybe less
        piece = stream.read(n - len(data))
        if not piece:
            break
        data += piece
    return data


def _paced(blocks: Iterator[np.ndarray], rate: int) -> Iterator[np.ndarray]:
    """Each block when it would have been heard: as a recording playing."""
    began, sent = time.monotonic(), 0
    for block in blocks:
        sent += len(block)
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))
        yield block


def _microphone(*, block_seconds: float) -> tuple[int, Iterator[np.ndarray]]:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the package is there but not the PortAudio library
        raise ConfigError(f"listening to the microphone needs sounddevice and PortAudio ({exc}): pip install "
                          "sounddevice, or pipe audio in (envsound listen --input -)") from None
    try:
        rate = int(sounddevice.query_devices(kind="input")["default_samplerate"])
    except Exception as exc:  # PortAudioError or ValueError: no input device
        raise AudioLoadError(f"no microphone: {exc}") from None
    heard: queue.Queue[np.ndarray] = queue.Queue()

    def blocks() -> Iterator[np.ndarray]:
        with sounddevice.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=int(rate * block_seconds),
                                     callback=lambda data, *_: heard.put(data[:, 0].copy())):
            while True:
                yield heard.get()

    return rate, blocks()
