"""FLAC, Ogg Vorbis and MP3 as they arrive on a byte stream (stdin), decoded forward only, piece by piece.

libsndfile, which decodes every audio *file* envsound reads, looks for the length of a FLAC, Ogg or MP3 file by
seeking to its end, so it cannot read one from a pipe (``flac -c``, ``sox ... -t flac -``, a radio stream through
``curl``). miniaudio's decoders (dr_flac, stb_vorbis, dr_mp3) read a stream forward once told its format, in
bounded memory; the few seeks they make while opening it (over metadata, back to the start) are served here from
what was read. The format comes from the stream's magic number, its sample rate and channels from its header, and
the audio is decoded at its own rate (envsound resamples it as it does any source). Ogg Opus is not among them.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

import miniaudio
import numpy as np

from envsound.audio.idle import wait_for_data
from envsound.errors import AudioLoadError

_FORMATS = {"FLAC": miniaudio.FileFormat.FLAC, "OGG": miniaudio.FileFormat.VORBIS, "MP3": miniaudio.FileFormat.MP3}
_INFO = {"FLAC": miniaudio.flac_get_info, "OGG": miniaudio.vorbis_get_info, "MP3": miniaudio.mp3_get_info}
_NAMES = {"FLAC": "FLAC", "OGG": "Ogg Vorbis", "MP3": "MP3"}
# A read handed to a decoder holds at least this much (or the stream's end): dr_flac takes a short read for the end.
# At 128 kbit/s it is a quarter of a second of audio, so it adds little to the latency of a live stream.
_LEAST_READ = 4096
_CHUNK = 1 << 16  # bytes a read of the stream may take at most, beyond what was asked
_REWIND = 1 << 20  # the stream's first bytes kept for a decoder to read again
_MAX_HEADER = 1 << 24  # metadata before the first audio frame (cover art in FLAC or ID3) is smaller than this


class _Reader:
    """A stream read forward only: what was peeked at first, then the stream; a wait longer than ``idle_seconds``
    for the next bytes raises :class:`AudioLoadError`."""

    def __init__(self, stream: BinaryIO, peeked: bytes, *, name: str, idle_seconds: float | None) -> None:
        self.stream, self.name, self.idle_seconds = stream, name, idle_seconds
        self.pending, self.taken = peeked, 0  # bytes put back, and how many of them were read again
        self.ended = False

    def put_back(self, data: bytes) -> None:
        self.pending, self.taken = data + self.pending[self.taken:], 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, and at least ``min(n, _LEAST_READ)`` unless the stream ends first."""
        data = b""
        while len(data) < min(n, _LEAST_READ) and (self.taken < len(self.pending) or not self.ended):
            if self.taken < len(self.pending):  # an offset, not a slice of the rest: megabytes put back stay cheap
                piece = self.pending[self.taken:self.taken + n - len(data)]
                self.taken += len(piece)
            else:  # whatever has arrived, up to a chunk: decoders ask for a few bytes at a time too
                wait_for_data(self.stream, self.idle_seconds, self.name)
                arrived = self.stream.read(max(n - len(data), _CHUNK))
                self.ended = not arrived
                piece, rest = arrived[:n - len(data)], arrived[n - len(data):]
                if rest:
                    self.put_back(rest)
            data += piece
        return data

    def skip_id3(self) -> None:
        """Step over ID3v2 tags (an MP3's title, cover art ...), which dr_mp3 cannot read from a stream."""
        while True:
            head = self.read(10)
            if len(head) < 10 or head[:3] != b"ID3":
                self.put_back(head)
                return
            size = 0
            for byte in head[6:10]:  # a "syncsafe" integer: 7 bits a byte
                size = size << 7 | byte & 0x7F
            size += 10 if head[5] & 0x10 else 0  # a footer
            if size > _MAX_HEADER:
                raise AudioLoadError(f"{self.name}: an ID3 tag of {size} bytes before the audio; over "
                                     f"{_MAX_HEADER} bytes is not an MP3 stream envsound reads")
            while size > 0:
                skipped = self.read(min(size, _CHUNK))
                if not skipped:
                    raise AudioLoadError(f"{self.name}: the stream ended inside its ID3 tag")
                size -= len(skipped)


class _Source(miniaudio.StreamableSource):
    """What the decoder reads: the stream, with the seeks decoders make on it. Forward is done by reading (dr_flac
    steps over metadata blocks so); back, to a place within the stream's first :data:`_REWIND` bytes, by reading those
    again (dr_mp3 goes back to the start while it opens the stream); further back raises, which stops the decoder
    rather than have it read from the wrong place. A seek to the end answers False: miniaudio then lets the decoder
    go on from where it is (dr_mp3 looks for a length there, and does without)."""

    def __init__(self, reader: _Reader) -> None:
        self.reader, self.position, self.start = reader, 0, bytearray()

    def read(self, num_bytes: int) -> bytes:
        data = self.reader.read(num_bytes)
        new = len(self.start) - self.position  # where in data the bytes not kept yet begin
        if len(self.start) < _REWIND and new < len(data):
            self.start += data[new:new + _REWIND - len(self.start)]
        self.position += len(data)
        return data

    def seek(self, offset: int, origin: miniaudio.SeekOrigin) -> bool:
        if origin == miniaudio.SeekOrigin.END:
            return False
        target = offset if origin == miniaudio.SeekOrigin.START else self.position + offset
        if target < self.position:
            if target < 0 or self.position > len(self.start):
                raise AudioLoadError(f"{self.reader.name}: the decoder went back past the stream's first {_REWIND} "
                                     "bytes, which a pipe cannot")
            self.reader.put_back(bytes(self.start[target:self.position]))
            self.position = target
        while self.position < target:
            if not self.read(min(target - self.position, _CHUNK)):
                return False
        return True


def open_compressed(stream: BinaryIO, peeked: bytes, kind: str, *, name: str, idle_seconds: float | None,
                    block_seconds: float = 0.1) -> tuple[int, Iterator[np.ndarray]]:
    """A FLAC, Ogg Vorbis or MP3 stream (``kind`` as :func:`~envsound.audio.sniff.sniff_audio` names it, from the
    ``peeked`` bytes already read off ``stream``) -> (sample rate, float32 ``(frames, channels)`` blocks of about
    ``block_seconds`` as the stream arrives). Its header is read before this returns."""
    reader = _Reader(stream, peeked, name=name, idle_seconds=idle_seconds)
    if kind == "MP3":
        reader.skip_id3()
    header = b""
    while True:  # the header is read as it arrives, until the decoder can tell the rate and channels from it
        header += reader.read(max(_LEAST_READ, len(header)))  # doubling: few tries for large metadata
        if kind == "OGG":
            _check_ogg_codec(header, name)
            _check_vorbis_comments(header, name)
        try:
            info = _INFO[kind](header)
            break
        except miniaudio.DecodeError:
            if reader.ended or len(header) > _MAX_HEADER:
                raise AudioLoadError(f"{name}: not a {_NAMES[kind]} stream envsound can decode (its first "
                                     f"{len(header)} bytes hold no valid header)") from None
    reader.put_back(header)
    source = _Source(reader)
    frames = max(256, int(info.sample_rate * block_seconds))
    try:
        decoded = miniaudio.stream_any(source, _FORMATS[kind], miniaudio.SampleFormat.FLOAT32, info.nchannels,
                                       info.sample_rate, frames)
    except miniaudio.MiniaudioError as exc:  # a header its info reader took, but not the decoder (found by fuzzing)
        if isinstance(source.error_in_readcallback, AudioLoadError):
            raise source.error_in_readcallback from None
        raise AudioLoadError(f"{name}: not a {_NAMES[kind]} stream envsound can decode (the decoder refused its "
                             f"header: {exc})") from None
    return info.sample_rate, _blocks(decoded, source, info.nchannels, name=name, kind=kind)


def _blocks(decoded, source: _Source, channels: int, *, name: str, kind: str) -> Iterator[np.ndarray]:
    try:
        for samples in decoded:
            yield np.frombuffer(samples, dtype=np.float32).reshape(-1, channels).copy()
    except miniaudio.MiniaudioError as exc:
        if isinstance(source.error_in_readcallback, AudioLoadError):
            raise source.error_in_readcallback from None
        raise AudioLoadError(f"{name}: the {_NAMES[kind]} stream could not be decoded further ({exc})") from None
    if isinstance(source.error_in_readcallback, AudioLoadError):  # a wait that timed out ends the decoder quietly
        raise source.error_in_readcallback


def _check_ogg_codec(header: bytes, name: str) -> None:
    """The first Ogg page holds the codec's identification header: refuse what is not Vorbis in one line."""
    if len(header) < 27 or len(header) < 27 + header[26] + 8:
        return
    body = header[27 + header[26]:]  # after the page header (27 bytes) and its segment table
    if body[:7] == b"\x01vorbis":
        return
    codec = "Opus" if body[:8] == b"OpusHead" else "FLAC" if body[:5] == b"\x7fFLAC" else "an unknown codec"
    raise AudioLoadError(f"{name}: an Ogg stream of {codec}; envsound decodes Ogg Vorbis, FLAC, MP3, WAV and raw PCM "
                         "as they arrive: convert it on the way (ffmpeg -i - -f wav -), or give the file (--input "
                         "FILE --realtime)")


def _check_vorbis_comments(header: bytes, name: str) -> None:
    """Refuse a Vorbis comment header (the second packet) whose lengths overrun it. stb_vorbis, which reads the
    stream's header, loops once a byte over such a length, past the packet's end: 4 GB, 10 s a try (found by
    fuzzing, issue 68). The packet may not have arrived whole yet: then only lengths over :data:`_MAX_HEADER` are."""
    packets, partial, pos = [], b"", 0
    while len(packets) < 2 and pos + 27 <= len(header) and header[pos:pos + 4] == b"OggS":
        count = header[pos + 26]
        lacing, body = header[pos + 27:pos + 27 + count], pos + 27 + count
        for size in lacing:
            partial += header[body:body + size]
            body += size
            if size < 255:
                packets.append(partial)
                partial = b""
        pos = body
    whole = len(packets) >= 2
    packet = packets[1] if whole else partial if packets else b""
    if packet[:7] != b"\x03vorbis":
        return
    limit = len(packet) if whole else _MAX_HEADER
    at, lengths = 7, 0
    while at + 4 <= len(packet):
        value = int.from_bytes(packet[at:at + 4], "little")
        at += 4
        if lengths == 1:  # the number of comments, each at least its 4-byte length
            if value * 4 > limit - at:
                raise AudioLoadError(f"{name}: a damaged Ogg Vorbis comment header ({value} comments in "
                                     f"{len(packet)} bytes); not a stream envsound can decode")
        elif value > limit - at:
            raise AudioLoadError(f"{name}: a damaged Ogg Vorbis comment header (a length of {value} bytes, over "
                                 "what the header holds); not a stream envsound can decode")
        else:
            at += value
        lengths += 1
