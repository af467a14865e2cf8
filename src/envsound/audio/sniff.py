"""Which audio format a file or stream announces in its first bytes (its magic number), before anything decodes it."""

from __future__ import annotations

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
