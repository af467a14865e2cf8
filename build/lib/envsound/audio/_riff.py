"""Read the chunk headers of a RIFF/WAVE file to see whether its ``data`` chunk is all there.

libsndfile quietly shortens a WAV whose ``data`` chunk size says more than the file holds (a download cut short, or a
writer that never patched the header), so the frame count it reports cannot reveal the damage. This module walks the
chunk headers itself (stdlib only; nothing in soundfile exposes the declared size) and reports declared vs. present
bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_UNKNOWN_SIZE = 0xFFFFFFFF  # "length unknown": written by streaming writers (e.g. ffmpeg to a pipe) and by RF64
_MAX_CHUNKS = 4096  # a WAV has a handful of chunks; stop walking garbage long before this


@dataclass(frozen=True)
class DataChunk:
    """The ``data`` chunk of a WAV file as declared by its header and as present on disk (both in bytes).

    ``block_align`` is bytes per frame (all channels) from the ``fmt `` chunk, 0 if the header has no ``fmt `` chunk
    before ``data``. ``declared`` is ``None`` when the header says "unknown length" (0xFFFFFFFF in a plain RIFF file).
    """

    declared: int | None
    present: int
    block_align: int

    @property
    def missing(self) -> int:
        """Bytes the header promises that the file does not hold (0 when complete or of unknown length)."""
        return 0 if self.declared is None else max(0, self.declared - self.present)


def wav_data_chunk(path: Path) -> DataChunk | None:
    """Locate the ``data`` chunk of a RIFF/RIFX/RF64/BW64 WAVE file.

    Returns ``None`` for files that are not RIFF WAVE (FLAC, OGG, Wave64, ...) or whose chunk list is too damaged to
    find a ``data`` chunk; libsndfile's own checks then decide. Reads only headers (a few hundred bytes), never the
    samples.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
            return None
        endian = ">" if head[:4] == b"RIFX" else "<"
        rf64 = head[:4] in (b"RF64", b"BW64")
        ds64_data_size: int | None = None
        block_align = 0
        offset = 12
        for _ in range(_MAX_CHUNKS):
            header = fh.read(8)
            if len(header) < 8:
                return None
            chunk_id, chunk_size = header[:4], struct.unpack(endian + "I", header[4:])[0]
            body = offset + 8
            if chunk_id == b"ds64" and chunk_size >= 16:
                ds64_data_size = struct.unpack("<Q", fh.read(16)[8:16])[0]
            elif chunk_id == b"fmt " and chunk_size >= 14:
                block_align = struct.unpack(endian + "H", fh.read(14)[12:14])[0]
            elif chunk_id == b"data":
                present = size - body
                if chunk_size == _UNKNOWN_SIZE:
                    declared = ds64_data_size if rf64 else None
                else:
                    declared = chunk_size
                return DataChunk(declared=declared, present=present, block_align=block_align)
            offset = body + chunk_size + (chunk_size & 1)  # chunks are padded to an even length
            if offset >= size:
                return None
            fh.seek(offset)
    return None
