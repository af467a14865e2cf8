"""Seeded generator of test audio written to disk: good files of every kind and every sort of broken file.

Import it from any test as ``from audiofactory import write_tone, ...`` (``tests/audiofactory.py`` names this module;
``tests/`` is on ``sys.path`` while pytest runs), from a benchmark as ``from support.audiofactory import ...``. Every writer takes the target path first and keyword-only options after it, writes exactly one file and returns
its :class:`~pathlib.Path`. Same arguments, same bytes (numpy ``default_rng(seed)``; lossy OGG aside).

The container follows the file extension (``.wav``, ``.flac``, ``.ogg``) unless ``fmt`` names it; ``subtype=None`` is
the format's default (``PCM_16`` for WAV and FLAC, ``VORBIS`` for OGG).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "tone", "noise", "write_audio", "write_tone", "write_noise", "write_silence", "write_clipped",
    "write_overrange_float_wav", "write_empty_wav", "write_truncated_wav", "write_lying_header_wav",
    "write_nonfinite_float_wav", "write_not_audio", "write_zero_bytes", "dominant_frequency",
]


# ------------------------------------------------------------------------------------------------- signals in memory

def tone(*, seconds: float = 1.0, sample_rate: int = 22050, freq: float = 440.0, channels: int = 1,
         amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """A sine of ``freq`` Hz, shape ``(frames, channels)`` float64; each channel has its own seeded phase."""
    n = int(round(seconds * sample_rate))
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=channels)
    t = np.arange(n)[:, None] / sample_rate
    return amplitude * np.sin(2 * np.pi * freq * t + phases[None, :])


def noise(*, seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1, amplitude: float = 0.3,
          seed: int = 0) -> np.ndarray:
    """Uniform white noise in ``[-amplitude, amplitude]``, shape ``(frames, channels)`` float64."""
    n = int(round(seconds * sample_rate))
    return np.random.default_rng(seed).uniform(-amplitude, amplitude, size=(n, channels))


def dominant_frequency(wave: np.ndarray, *, sample_rate: int) -> float:
    """Frequency (Hz) of the largest bin of a Hann-windowed FFT of a 1-D waveform."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sample_rate / len(wave))


# ------------------------------------------------------------------------------------------------------ good files

def write_audio(path: str | Path, data: np.ndarray, *, sample_rate: int = 22050, subtype: str | None = None,
                fmt: str | None = None) -> Path:
    """Write ``data`` (``(frames,)`` or ``(frames, channels)``) with soundfile; creates parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype=subtype, format=fmt)
    return path


def write_tone(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050, freq: float = 440.0,
               channels: int = 1, amplitude: float = 0.5, subtype: str | None = "PCM_16", fmt: str | None = None,
               seed: int = 0) -> Path:
    """A sine file; ``subtype`` e.g. ``PCM_U8``, ``PCM_16``, ``PCM_24``, ``PCM_32``, ``FLOAT``, ``DOUBLE``."""
    data = tone(seconds=seconds, sample_rate=sample_rate, freq=freq, channels=channels, amplitude=amplitude, seed=seed)
    return write_audio(path, data, sample_rate=sample_rate, subtype=_subtype(path, subtype, fmt), fmt=fmt)


def write_noise(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1,
                amplitude: float = 0.3, subtype: str | None = "PCM_16", fmt: str | None = None, seed: int = 0) -> Path:
    """A white-noise file."""
    data = noise(seconds=seconds, sample_rate=sample_rate, channels=channels, amplitude=amplitude, seed=seed)
    return write_audio(path, data, sample_rate=sample_rate, subtype=_subtype(path, subtype, fmt), fmt=fmt)


def write_my_sounds(root: str | Path = ".") -> Path:
    """The README's example folder under ``root``: ``my_sounds/`` with doorbell (tones near 900 Hz), kettle (noise)
    and alarm (quiet 2.5-kHz tones), 5 clips of 1.5 s each, and ``new_recording.wav`` (a 900-Hz tone, 3 s)."""
    root = Path(root)
    for i in range(5):
        write_tone(root / "my_sounds" / "doorbell" / f"{i:03d}.wav", freq=880 + 20 * i, seconds=1.5)
        write_noise(root / "my_sounds" / "kettle" / f"{i:03d}.wav", seconds=1.5, seed=i)
        write_tone(root / "my_sounds" / "alarm" / f"{i:03d}.wav", freq=2500 + 50 * i, seconds=1.5, amplitude=0.2)
    write_tone(root / "new_recording.wav", freq=900, seconds=3.0)
    return root / "my_sounds"


def write_offsets(root: str | Path, *, sample_rate: int, seconds: float, per_class: int = 3) -> Path:
    """A folder dataset of two classes a tiny frozen network (tests/tinytflite.py: its embedding is a mean of the
    waveform) tells apart: ``up`` (an offset of +0.2) and ``down`` (-0.2) under noise of 0.05, ``per_class`` clips
    each, named as ESC-50's ``fold-source-take`` so a folder of them has folds."""
    root = Path(root)
    for c, (label, level) in enumerate((("up", 0.2), ("down", -0.2))):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            wave = level + np.random.default_rng(10 * c + i).normal(0, 0.05, int(sample_rate * seconds))
            sf.write(root / label / f"{i + 1}-{100 * c + i}-A.wav", wave.astype(np.float32), sample_rate,
                     subtype="FLOAT")
    return root


def write_silence(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1,
                  subtype: str | None = "PCM_16", fmt: str | None = None) -> Path:
    """A file of digital zeros (every sample exactly 0): "silent by corruption" for the loader."""
    data = np.zeros((int(round(seconds * sample_rate)), channels))
    return write_audio(path, data, sample_rate=sample_rate, subtype=_subtype(path, subtype, fmt), fmt=fmt)


def write_clipped(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050, freq: float = 440.0,
                  gain: float = 4.0, channels: int = 1, subtype: str | None = "PCM_16", fmt: str | None = None,
                  seed: int = 0) -> Path:
    """A sine driven ``gain`` times past full scale and hard-clipped to [-1, 1] (valid, if ugly, audio)."""
    data = np.clip(tone(seconds=seconds, sample_rate=sample_rate, freq=freq, channels=channels, amplitude=gain,
                        seed=seed), -1.0, 1.0)
    return write_audio(path, data, sample_rate=sample_rate, subtype=_subtype(path, subtype, fmt), fmt=fmt)


def write_overrange_float_wav(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050,
                              freq: float = 440.0, peak: float = 3.0, seed: int = 0) -> Path:
    """A 32-bit float WAV sine whose peak is ``peak`` (> 1: legal in float files, out of range for a waveform)."""
    data = tone(seconds=seconds, sample_rate=sample_rate, freq=freq, amplitude=peak, seed=seed)
    return write_audio(path, data, sample_rate=sample_rate, subtype="FLOAT", fmt="WAV")


def write_empty_wav(path: str | Path, *, sample_rate: int = 22050, channels: int = 1) -> Path:
    """A well-formed WAV header with 0 frames."""
    return write_audio(path, np.zeros((0, channels)), sample_rate=sample_rate, subtype="PCM_16", fmt="WAV")


# ------------------------------------------------------------------------------------------------------- bad files

def write_truncated_wav(path: str | Path, *, keep_fraction: float = 0.5, seconds: float = 1.0,
                        sample_rate: int = 22050, channels: int = 1, subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A valid noise WAV with the end of its ``data`` chunk cut off: only ``keep_fraction`` of the sample bytes remain.

    The header is untouched, so it promises more frames than the file holds (a download cut short).
    """
    path = write_noise(path, seconds=seconds, sample_rate=sample_rate, channels=channels, subtype=subtype,
                       fmt="WAV", seed=seed)
    raw = path.read_bytes()
    data_offset, data_size = _data_chunk(raw)
    path.write_bytes(raw[:data_offset + int(data_size * keep_fraction)])
    return path


def write_lying_header_wav(path: str | Path, *, claim_factor: float = 2.0, seconds: float = 1.0,
                           sample_rate: int = 22050, channels: int = 1, subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A complete noise WAV whose ``data`` chunk size field claims ``claim_factor`` times the bytes actually present."""
    path = write_noise(path, seconds=seconds, sample_rate=sample_rate, channels=channels, subtype=subtype,
                       fmt="WAV", seed=seed)
    raw = bytearray(path.read_bytes())
    data_offset, data_size = _data_chunk(bytes(raw))
    raw[data_offset - 4:data_offset] = struct.pack("<I", int(data_size * claim_factor))
    path.write_bytes(bytes(raw))
    return path


def write_nonfinite_float_wav(path: str | Path, *, value: float = float("nan"), at_seconds: float = 0.5,
                              seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1,
                              subtype: str = "FLOAT", seed: int = 0) -> Path:
    """A float WAV tone with ``value`` (NaN, inf or -inf) written at ``at_seconds`` in channel 0."""
    data = tone(seconds=seconds, sample_rate=sample_rate, channels=channels, seed=seed)
    data[int(round(at_seconds * sample_rate)), 0] = value
    return write_audio(path, data, sample_rate=sample_rate, subtype=subtype, fmt="WAV")


def write_not_audio(path: str | Path) -> Path:
    """A text file (with whatever audio extension ``path`` has)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not audio, it is a text file\n" * 20, encoding="utf-8")
    return path


def write_zero_bytes(path: str | Path) -> Path:
    """A file of 0 bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ---------------------------------------------------------------------------------------------------------- helpers

def _subtype(path: str | Path, subtype: str | None, fmt: str | None) -> str | None:
    """``PCM_16`` asked for an OGG file means "the default" (Vorbis): OGG has no PCM subtypes."""
    container = (fmt or Path(path).suffix.lstrip(".")).upper()
    if container in ("OGG", "OGA") and subtype is not None and subtype.startswith("PCM"):
        return None
    return subtype


def _data_chunk(raw: bytes) -> tuple[int, int]:
    """(offset of the first sample byte, declared size) of the ``data`` chunk of a little-endian RIFF WAV."""
    offset = 12
    while offset + 8 <= len(raw):
        chunk_id, size = raw[offset:offset + 4], struct.unpack("<I", raw[offset + 4:offset + 8])[0]
        if chunk_id == b"data":
            return offset + 8, size
        offset += 8 + size + (size & 1)
    raise ValueError("no data chunk found")
