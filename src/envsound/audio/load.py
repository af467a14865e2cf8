"""Read audio files as mono float32 waveforms at a chosen sample rate (soundfile to decode, soxr to resample).

Every waveform this module returns has shape ``(samples,)``, dtype float32, values in [-1, 1]; channels are averaged
to mono and the signal is resampled with soxr (quality ``"HQ"``). Anything that makes a file unusable as audio raises
:class:`~envsound.errors.AudioLoadError` with a one-line message ``"<path>: <problem>; <what to do>"``:

- missing file, directory, not a regular file (a FIFO, a device), 0-byte file, a file this user may not read
  ("permission denied"), not audio (libsndfile cannot open it), 0 frames;
- truncated: a WAV ``data`` chunk shorter than its header declares (detected from the chunk headers, because libsndfile
  silently shortens such files), or fewer frames decoded than the header promises, or a decoder error part-way;
- non-finite samples (NaN or inf, possible in float WAV files);
- shorter than ``min_seconds`` (the ``features.min_seconds`` setting);
- silent by corruption: every sample exactly 0.0 (digital zeros, e.g. a zero-filled download).

Float and lossy files may hold values beyond [-1, 1]. They are **scaled down by their peak** (the waveform's shape is
kept; clipping would add distortion the model could learn) and a warning is logged. Tiny resampler overshoot beyond
[-1, 1] is clipped.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from envsound.audio._riff import wav_data_chunk
from envsound.errors import AudioLoadError, ConfigError

logger = logging.getLogger(__name__)

RESAMPLE_QUALITY = "HQ"
# File suffixes of the formats libsndfile reads: what folder datasets, background folders and `predict` pick up
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf",
    ".w64", ".rf64", ".voc", ".sd2", ".nist", ".sph", ".ircam", ".sf", ".paf", ".svx", ".xi", ".htk", ".avr"})
# How messages name them (CLI, API and server alike)
FORMAT_NAMES = "WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, AU, CAF or another format libsndfile reads"
_PCM_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW", "DWVW_12", "DWVW_16",
                           "DWVW_24", "DPCM_8", "DPCM_16", "IMA_ADPCM", "MS_ADPCM", "GSM610", "G721_32"})
_SCAN_BLOCK_SECONDS = 10.0  # decoding block of validate_audio
_LOAD_BLOCK_FRAMES = 1 << 20  # decoding block of load_audio (4 MB a channel)
_SPECIAL = {stat.S_IFIFO: "named pipe (FIFO)", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
            stat.S_IFSOCK: "socket"}


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says.

    ``sample_rate`` in Hz, ``frames`` per channel (>= 1), ``format``/``subtype`` as soundfile names them
    (e.g. ``"WAV"``/``"PCM_16"``, ``"FLAC"``/``"PCM_24"``, ``"OGG"``/``"VORBIS"``).
    """

    path: Path
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds (``frames / sample_rate``)."""
        return self.frames / self.sample_rate

    @property
    def may_exceed_unity(self) -> bool:
        """True for float and lossy encodings, whose decoded samples can lie outside [-1, 1] (PCM cannot)."""
        return self.subtype not in _PCM_SUBTYPES


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file (no samples are decoded).

    For WAV files the chunk headers are walked too, so a ``data`` chunk shorter than declared (a cut download, a header
    that lies about its length) is caught here, which makes this check enough for listing a dataset quickly.

    Raises:
        AudioLoadError: missing file, directory, FIFO or device, 0-byte file, permission denied, not audio /
            unreadable, 0 frames ("empty"), or a truncated WAV ``data`` chunk.

    >>> info = audio_info("dog.wav")
    >>> info.sample_rate, info.channels, round(info.duration, 2)
    """
    path = Path(path)
    try:
        status = path.stat()  # one system call for existence, kind and size
    except FileNotFoundError:
        raise AudioLoadError(f"{path}: file not found; check the path or the dataset root") from None
    except OSError as exc:
        raise AudioLoadError(f"{path}: cannot read file ({exc.strerror or exc}); check its permissions") from exc
    if stat.S_ISDIR(status.st_mode):
        raise AudioLoadError(f"{path}: is a directory, not an audio file; pass an audio file path")
    if not stat.S_ISREG(status.st_mode):  # reading a FIFO would wait for a writer; each of these stats as 0 bytes
        kind = _SPECIAL.get(stat.S_IFMT(status.st_mode), "special file")
        raise AudioLoadError(f"{path}: is a {kind}, not a regular file; audio is read from files, leave it out")
    if status.st_size == 0:
        raise AudioLoadError(f"{path}: file is empty (0 bytes); re-download or remove it")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, OSError) as exc:
        _check_opens(path)  # libsndfile says only "System error." of a file it may not open
        reason = _one_line(exc).replace(f"Error opening {str(path)!r}: ", "")  # libsndfile names the path again
        raise AudioLoadError(f"{path}: not a readable audio file ({reason}); "
                             f"expected {FORMAT_NAMES}; re-download or remove it") from exc
    if info.frames <= 0:
        raise AudioLoadError(f"{path}: empty audio: the file holds 0 frames; remove it from the dataset")
    result = AudioInfo(path=path, sample_rate=int(info.samplerate), frames=int(info.frames),
                       channels=int(info.channels), format=str(info.format), subtype=str(info.subtype))
    _check_wav_chunk(result)
    return result


def load_audio(path: str | os.PathLike, *, sample_rate: int, min_seconds: float = 0.0) -> np.ndarray:
    """Decode a whole file to a mono float32 waveform at ``sample_rate``.

    Args:
        path: WAV (8-bit .. 32-bit PCM, float), FLAC, OGG or anything else libsndfile reads; any channel count.
        sample_rate: output rate in Hz, >= 1 (resampled with soxr ``"HQ"`` when the file's rate differs).
        min_seconds: shortest accepted clip in seconds (>= 0), measured before resampling.

    Returns:
        Array of shape ``(samples,)``, float32 in [-1, 1], ``samples = round(frames * sample_rate / file_rate)``.

    Raises:
        AudioLoadError: see the module docstring (missing, not audio, empty, truncated, non-finite, too short,
            digital zeros). The message names the file and the problem.
        ConfigError: ``sample_rate`` < 1 or ``min_seconds`` < 0.

    >>> wave = load_audio("dog.flac", sample_rate=22050)
    >>> wave.shape, wave.dtype   # ((110250,), dtype('float32')) for a 5 s clip
    """
    _check_rate(sample_rate)
    info = _checked_info(path, min_seconds=min_seconds)
    # Block by block, not one read of the header's frame count: a damaged header can promise billions of frames,
    # which one read would allocate up front (MemoryError) before finding the file short.
    pieces, nonzero = [], False
    for _, data in _decode_blocks(info, min(info.frames, _LOAD_BLOCK_FRAMES)):
        nonzero = nonzero or bool(np.any(data))
        pieces.append(_to_mono(data))
    mono = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    del pieces
    _check_finite(info, mono, start_frame=0)
    if not nonzero:
        raise _digital_zeros(info)
    if info.may_exceed_unity:
        peak = float(np.max(np.abs(mono)))
        if peak > 1.0:
            _warn_peak(info.path, peak)
            mono = mono / np.float32(peak)
    if info.sample_rate != sample_rate:
        mono = soxr.resample(mono, info.sample_rate, sample_rate, quality=RESAMPLE_QUALITY)
    return _finish(mono)


def iter_audio_blocks(path: str | os.PathLike, *, sample_rate: int, block_seconds: float,
                      min_seconds: float = 0.0) -> Iterator[np.ndarray]:
    """Decode a file of any length block by block, as mono float32 at ``sample_rate``.

    Every block has ``round(block_seconds * sample_rate)`` samples except the last, which is shorter (never empty).
    Concatenated, the blocks equal ``load_audio(path, sample_rate=sample_rate)`` (soxr's streaming resampler gives the
    same samples). Memory stays bounded by a few blocks whatever the file's length.

    Args:
        path: any file :func:`load_audio` reads.
        sample_rate: output rate in Hz, >= 1.
        block_seconds: block length in seconds, > 0.
        min_seconds: shortest accepted clip in seconds (>= 0), checked from the header before anything is yielded.

    Yields:
        Arrays of shape ``(block_samples,)``, float32 in [-1, 1].

    Raises:
        AudioLoadError: as :func:`load_audio`. Header problems (missing, not audio, empty, a truncated WAV chunk, too
            short) raise at the call, before any decoding. Float and lossy files are pre-scanned (one extra decoding
            pass), so their non-finite samples and digital zeros raise before the first block too; in PCM files a
            decoding failure, a short read or all-zero audio is only known at the end of the stream and raises there
            (a non-finite sample, impossible in PCM, would raise at its block).
        ConfigError: ``sample_rate`` < 1, ``block_seconds`` <= 0 or ``min_seconds`` < 0.

    >>> for block in iter_audio_blocks("night.flac", sample_rate=22050, block_seconds=10.0):
    ...     scores.append(model(block))
    """
    _check_rate(sample_rate)
    if not (isinstance(block_seconds, (int, float)) and math.isfinite(block_seconds) and block_seconds > 0):
        raise ConfigError(f"block_seconds={block_seconds!r} is out of range; valid: > 0 seconds")
    info = _checked_info(path, min_seconds=min_seconds)
    return _iter_blocks(info, sample_rate=sample_rate, block_seconds=block_seconds)


def _iter_blocks(info: AudioInfo, *, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """The generator behind :func:`iter_audio_blocks` (a separate function so that argument and header checks run
    at the call, not at the first ``next``)."""
    out_block = max(1, round(block_seconds * sample_rate))
    # Decode in quarter blocks so that the decoded and resampled pieces stay small next to the block being filled.
    read_frames = max(1, round(block_seconds * info.sample_rate / 4))

    peak = 1.0
    if info.may_exceed_unity:  # the peak must be known before the first block to match load_audio's scaling
        peak, nonzero = 0.0, False
        for start, data in _decode_blocks(info, read_frames):
            mono = _to_mono(data)
            _check_finite(info, mono, start_frame=start)
            peak, nonzero = max(peak, float(np.max(np.abs(mono)))), nonzero or bool(np.any(data))
        if not nonzero:
            raise _digital_zeros(info)
        if peak > 1.0:
            _warn_peak(info.path, peak)

    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    block = np.empty(out_block, dtype=np.float32)  # filled piece by piece, yielded when full, then a fresh one
    filled = 0
    nonzero = False

    def pieces() -> Iterator[np.ndarray]:
        nonlocal nonzero
        for start, data in _decode_blocks(info, read_frames):
            nonzero = nonzero or bool(np.any(data))
            mono = _to_mono(data)
            del data
            _check_finite(info, mono, start_frame=start)
            if peak > 1.0:
                mono = mono / np.float32(peak)
            yield mono if stream is None else stream.resample_chunk(mono, last=False)
        if stream is not None:
            yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    for piece in pieces():
        used = 0
        while used < len(piece):
            n = min(out_block - filled, len(piece) - used)
            block[filled:filled + n] = piece[used:used + n]
            filled, used = filled + n, used + n
            if filled == out_block:
                yield np.clip(block, -1.0, 1.0, out=block)  # clip resampler overshoot in place
                block, filled = np.empty(out_block, dtype=np.float32), 0
    if not nonzero:
        raise _digital_zeros(info)
    if filled:
        yield np.clip(block[:filled], -1.0, 1.0)


def validate_audio(path: str | os.PathLike, *, min_seconds: float = 0.0) -> AudioInfo:
    """Decode a whole file (in bounded memory, without resampling) and raise if it is unusable; return its header.

    This is what a dataset listing calls to decide bad audio up front: every check of :func:`load_audio` runs.

    Raises:
        AudioLoadError: as :func:`load_audio`.
        ConfigError: ``min_seconds`` < 0.

    >>> info = validate_audio("clips/1-100032-A-0.wav", min_seconds=0.1)
    >>> info.duration
    """
    info = _checked_info(path, min_seconds=min_seconds)
    nonzero = False
    for start, data in _decode_blocks(info, max(1, round(_SCAN_BLOCK_SECONDS * info.sample_rate))):
        _check_finite(info, _to_mono(data), start_frame=start)
        nonzero = nonzero or bool(np.any(data))
    if not nonzero:
        raise _digital_zeros(info)
    return info


# ----------------------------------------------------------------------------------------------------------- helpers

def _checked_info(path: str | os.PathLike, *, min_seconds: float) -> AudioInfo:
    """Header checks shared by every reader: :func:`audio_info` and the minimum duration."""
    if not (isinstance(min_seconds, (int, float)) and math.isfinite(min_seconds) and min_seconds >= 0):
        raise ConfigError(f"min_seconds={min_seconds!r} is out of range; valid: >= 0 seconds (features.min_seconds)")
    info = audio_info(path)
    if info.frames < min_seconds * info.sample_rate - 0.5:  # half a frame of rounding is not "too short"
        raise AudioLoadError(
            f"{info.path}: too short: {info.duration:.3f} s is below the minimum of {min_seconds:g} s "
            f"(features.min_seconds); remove the clip or lower features.min_seconds")
    return info


def _check_opens(path: Path) -> None:
    """Raise the reason a file cannot be opened for reading (permission denied, ...), if it cannot."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioLoadError(f"{path}: permission denied: this user may not read the file; give it read permission "
                             "(chmod a+r) or leave it out") from None
    except OSError as exc:
        raise AudioLoadError(f"{path}: cannot read file ({exc.strerror or exc}); check it and its disk") from None


def _check_wav_chunk(info: AudioInfo) -> None:
    """Raise if a WAV's ``data`` chunk holds fewer bytes than its header declares (libsndfile would just read less)."""
    chunk = wav_data_chunk(info.path) if info.format in ("WAV", "WAVEX", "RF64") else None
    if chunk is None:
        return
    if chunk.declared is None:
        logger.warning("%s: WAV header gives no data length (streamed file); reading to the end of the file",
                       info.path)
    elif chunk.missing:
        align = chunk.block_align or 1
        promised, present = chunk.declared // align, chunk.present // align
        raise AudioLoadError(
            f"{info.path}: truncated: the WAV header promises {promised} frames "
            f"({promised / info.sample_rate:.3f} s) but the file holds only {present} "
            f"({present / info.sample_rate:.3f} s, {chunk.missing} bytes missing); re-download or re-export it")


def _decode_blocks(info: AudioInfo, frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_frame, data)`` with ``data`` of shape ``(<= frames, channels)`` float32, checking the length."""
    read = 0
    try:
        with sf.SoundFile(str(info.path)) as fh:
            while True:
                data = fh.read(frames, dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                yield read, data
                read += len(data)
    except (sf.SoundFileError, OSError) as exc:
        raise _decode_error(info, read, exc) from exc
    if read < info.frames:
        raise _short_read(info, read)


def waveform_from_array(samples, *, sample_rate: int, target_rate: int, min_seconds: float = 0.0,
                        name: str = "waveform") -> np.ndarray:
    """An in-memory waveform made what :func:`load_audio` returns: mono float32 at ``target_rate``, in [-1, 1].

    Args:
        samples: ``(frames,)`` or ``(frames, channels)`` (soundfile's order), float or integer PCM (scaled by its
            type's full scale); a float waveform that peaks above 1 is scaled down by its peak, as files are.
        sample_rate: the rate of ``samples`` in Hz, >= 1.
        target_rate: the output rate, >= 1 (soxr ``"HQ"`` when they differ).
        min_seconds: shortest accepted waveform, >= 0.
        name: what the messages call it.

    Raises:
        AudioLoadError: not numeric, more than 2 dimensions, empty, shorter than ``min_seconds``, non-finite
            samples, all zeros. One line, naming ``name``.
        ConfigError: a rate < 1.
    """
    _check_rate(sample_rate)
    _check_rate(target_rate)
    data = np.asarray(samples)
    if data.dtype.kind not in "fiu" or data.ndim not in (1, 2):
        raise AudioLoadError(f"{name}: expected a numeric array of shape (frames,) or (frames, channels); got "
                             f"dtype {data.dtype} and shape {data.shape}")
    if data.dtype.kind in "iu":  # PCM: full scale of the integer type
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max - info.min + 1) * 2
    if data.size == 0:
        raise AudioLoadError(f"{name}: empty audio: the array holds 0 frames")
    data = data.reshape(len(data), -1).astype(np.float32)
    if len(data) < min_seconds * sample_rate:
        raise AudioLoadError(f"{name}: too short: {len(data) / sample_rate:.3f} s, the model needs at least "
                             f"{min_seconds:g} s")
    mono = _to_mono(data)
    finite = np.isfinite(mono)
    if not finite.all():
        first = int(np.argmin(finite))
        raise AudioLoadError(f"{name}: non-finite sample (NaN or inf) at {first / sample_rate:.3f} s (frame {first})")
    if not np.any(mono):
        raise AudioLoadError(f"{name}: silent: all {len(mono)} frames are exactly 0")
    peak = float(np.max(np.abs(mono)))
    if peak > 1.0:
        _warn_peak(name, peak)
        mono = mono / np.float32(peak)
    if sample_rate != target_rate:
        mono = soxr.resample(mono, sample_rate, target_rate, quality=RESAMPLE_QUALITY)
    return _finish(mono)


def _to_mono(data: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` -> ``(frames,)`` float32, the channel mean."""
    if data.shape[1] == 1:
        return data[:, 0]
    return data.mean(axis=1, dtype=np.float32)


def _check_finite(info: AudioInfo, mono: np.ndarray, *, start_frame: int) -> None:
    finite = np.isfinite(mono)
    if not finite.all():
        first = start_frame + int(np.argmin(finite))
        raise AudioLoadError(f"{info.path}: non-finite sample (NaN or inf) at {first / info.sample_rate:.3f} s "
                             f"(frame {first}); the file is corrupt, re-export or remove it")


_PEAKS_WARNED: set[tuple[str, float]] = set()  # one warning a file: a run decodes it for features, then fingerprints


def _warn_peak(name: str | Path, peak: float) -> None:
    key = (str(name), round(peak, 3))
    if key in _PEAKS_WARNED:
        return
    if len(_PEAKS_WARNED) >= 100_000:  # a long-running server: bounded memory, a repeat warning at worst
        _PEAKS_WARNED.clear()
    _PEAKS_WARNED.add(key)
    logger.warning("%s: peak amplitude %.3f exceeds 1.0; scaling the waveform down by its peak", name, peak)


def _finish(wave: np.ndarray) -> np.ndarray:
    """float32, contiguous, clipped to [-1, 1] (resampling can overshoot full scale by a fraction of a percent)."""
    return np.clip(np.ascontiguousarray(wave, dtype=np.float32), -1.0, 1.0)


def _check_rate(sample_rate: int) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
        raise ConfigError(f"sample_rate={sample_rate!r} is out of range; valid: a positive integer in Hz, "
                          "e.g. features.sample_rate=22050")


def _short_read(info: AudioInfo, read: int) -> AudioLoadError:
    return AudioLoadError(
        f"{info.path}: truncated: the header promises {info.frames} frames ({info.duration:.3f} s) but only {read} "
        f"could be decoded ({read / info.sample_rate:.3f} s); re-download or re-export it")


def _decode_error(info: AudioInfo, read: int | None, exc: BaseException) -> AudioLoadError:
    where = "" if read is None else f" after {read / info.sample_rate:.3f} s of {info.duration:.3f} s"
    return AudioLoadError(f"{info.path}: truncated or corrupt: decoding failed{where} ({_one_line(exc)}); "
                          "re-download or re-export it")


def _digital_zeros(info: AudioInfo) -> AudioLoadError:
    return AudioLoadError(f"{info.path}: silent by corruption: all {info.frames} frames are exactly 0 (digital zeros); "
                          "re-export or re-download it, or remove it from the dataset")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
