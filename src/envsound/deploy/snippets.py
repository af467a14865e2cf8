"""A sensor's snippets: the sound of each event it reports (``listen --report URL --snippets``), cut from what it
heard, compressed, and queued in its outbox beside the event.

A snippet is the event with ``margin`` seconds each side, at least one window of the network (so that it can be
embedded later: a shorter event is widened evenly from the audio around it, never padded with zeros while there is
sound to take), at most ``cap`` seconds (a longer event keeps its **last** ``cap`` seconds: the buffer reaches back
only so far). It is Ogg Opus at :data:`OPUS_KBPS` kbit/s, at the lowest of Opus's rates (8, 12, 16, 24, 48 kHz)
at or above the rate the network hears (and not above the stream's). ``benchmarks/snippet_codecs.py`` chose it on
10 ESC-50 clips: 31 KB for 5 s (FLAC: 164 KB, five times the 32 KB goal), decoded in 17 ms, and a frozen network's
embedding (efficientat-mn04) moved by 1 - cos = 0.012, thirty times less than two clips of one class differ;
Vorbis at 38 KB moved it 0.10, and Opus at 24 kHz 0.10 for a 32-kHz network (its top band lost).

**Privacy**: :class:`SnippetRules` says which labels a sensor may send the sound of (``--snippets dog,rain``, or
every label but ``--snippets-except speech``); an event of any other label is reported without its sound, and its
audio is never cut, encoded or queued.

The standard library, numpy, soundfile and soxr only: a sensor runs on the light install.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from envsound.errors import ConfigError

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the rates libsndfile's Opus encoder takes
OPUS_KBPS = 48.0
MEDIA_TYPES = {"audio/ogg": "ogg", "audio/flac": "flac"}  # what a server keeps, by media type -> file extension


@dataclass(frozen=True)
class SnippetRules:
    """Which labels' sound may leave the sensor: ``only`` (None: every label) minus ``never``."""

    only: frozenset[str] | None = None
    never: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, only: str | None, never: str | None) -> "SnippetRules":
        """``--snippets`` (None or "": every label; ``"dog,rain"``: those) and ``--snippets-except`` (a comma list).

        Raises:
            ConfigError: a list with an empty name (``"dog,,rain"``).
        """
        return cls(_names(only, "--snippets") if only else None, _names(never, "--snippets-except") or frozenset())

    def allows(self, label: str) -> bool:
        """Whether the sound of an event of ``label`` may leave the sensor."""
        return label not in self.never and (self.only is None or label in self.only)


def _names(text: str | None, flag: str) -> frozenset[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"{flag} {text!r}: give labels separated by commas, none empty")
    return frozenset(names)


def opus_rate(heard: int, stream: int) -> int:
    """The Opus rate a snippet is encoded at: the lowest of :data:`OPUS_RATES` at or above ``min(heard, stream)``
    (Hz; the network's rate and the stream's), 48 kHz above them all."""
    wanted = min(heard, stream)
    return next((rate for rate in OPUS_RATES if rate >= wanted), OPUS_RATES[-1])


def encode(samples: np.ndarray, rate: int, *, codec: str = "opus", kbps: float = OPUS_KBPS) -> tuple[bytes, str]:
    """Mono float32 ``samples`` (-1..1) at ``rate`` Hz -> (the file's bytes, its media type). ``codec``: ``opus``
    (``rate`` must be one of :data:`OPUS_RATES`; ``kbps`` 6..256) or ``flac`` (lossless, 16 bits).

    Raises:
        ConfigError: an unknown codec, or an Opus rate libsndfile cannot encode.
    """
    import soundfile as sf

    out = io.BytesIO()
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if codec == "opus":
        if rate not in OPUS_RATES:
            raise ConfigError(f"Opus encodes at {', '.join(map(str, OPUS_RATES))} Hz, not {rate} (resample first)")
        # libsndfile maps its compression level 0..1 onto 256..6 kbit/s, linearly (measured: 5 s are 160 KB at 0)
        level = min(max((256.0 - kbps) / 250.0, 0.0), 1.0)
        sf.write(out, clipped, rate, format="OGG", subtype="OPUS", compression_level=level)
        return out.getvalue(), "audio/ogg"
    if codec == "flac":
        sf.write(out, clipped, rate, format="FLAC", subtype="PCM_16")
        return out.getvalue(), "audio/flac"
    raise ConfigError(f"snippet codec {codec!r}: choose opus or flac")


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """A snippet's bytes -> (mono float32 samples, rate in Hz); raises soundfile's error for bytes it cannot read."""
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def snippet_span(onset: float, offset: float, *, margin: float, minimum: float, cap: float,
                 start: float, end: float) -> tuple[float, float]:
    """The seconds of the stream a snippet of the event ``[onset, offset]`` holds: the event with ``margin`` each
    side, widened evenly to ``minimum`` (a window of the network) from the audio around it, cut to its last ``cap``
    seconds when longer, all within what is held: ``[start, end]`` (a widening that meets one edge takes more from
    the other side)."""
    first, last = onset - margin, offset + margin
    if last - first > cap:
        first = last - cap
    if last - first < minimum:
        grow = (minimum - (last - first)) / 2
        first, last = first - grow, last + grow
        if first < start:
            first, last = start, last + (start - first)
        if last > end:
            first, last = first - (last - end), end
    return max(first, start), min(last, end)


class AudioRing:
    """The last ``seconds`` of a stream at ``rate`` Hz, mono float32, indexed by the stream's own sample count
    (:attr:`end`: every sample pushed so far). Memory: ``4 x rate x seconds`` bytes."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = int(rate)
        self.buffer = np.zeros(max(1, int(np.ceil(seconds * rate))), np.float32)
        self.end = 0
        self.floor = 0  # no sample before this is held (after a grow: what the smaller ring held no longer)

    @property
    def start(self) -> int:
        """The first sample still held."""
        return max(self.floor, self.end - len(self.buffer))

    def push(self, samples: np.ndarray) -> None:
        """``(frames,)`` or ``(frames, channels)`` float samples (channels are averaged)."""
        mono = np.asarray(samples, dtype=np.float32)
        if mono.ndim == 2:
            mono = mono.mean(axis=1, dtype=np.float32)
        size, count = len(self.buffer), len(mono)
        tail = mono[-size:]  # only the last `size` samples stay
        at = (self.end + count - len(tail)) % size
        first = min(len(tail), size - at)
        self.buffer[at:at + first] = tail[:first]
        self.buffer[:len(tail) - first] = tail[first:]
        self.end += count

    def grow(self, seconds: float) -> None:
        """Hold at least ``seconds`` from now on, keeping what is held."""
        size = int(np.ceil(seconds * self.rate))
        if size > len(self.buffer):
            first, held = self.start, self._held(self.start, self.end)
            self.buffer, self.end = np.zeros(size, np.float32), first
            self.push(held)
            self.floor = first

    def cut(self, first: float, last: float) -> np.ndarray:
        """The samples of seconds ``[first, last)`` of the stream that are still held (a copy)."""
        return self._held(max(int(round(first * self.rate)), self.start), min(int(round(last * self.rate)), self.end))

    def _held(self, begin: int, stop: int) -> np.ndarray:
        if stop <= begin:
            return np.zeros(0, np.float32)
        return self.buffer[np.arange(begin, stop) % len(self.buffer)]


def ring_seconds(*, window: float, hop: float, median: float, gap: float, cap: float, margin: float,
                 slack: float = 1.0) -> float:
    """How far back a sensor's :class:`AudioRing` must reach, in seconds, so that every snippet is whole.

    An event is reported ended about a window, a hop and half the median filter after its end sounds, and ``gap``
    more seconds later (:mod:`envsound.inference.live`): ``window + hop + median / 2 + gap`` seconds after its
    offset, when the stream has also taken in up to a block more (``slack``, 0.1-s blocks: one second is ample).
    A snippet ends at most ``margin`` past the offset (or half a window when widened) and is at most
    ``max(cap, window)`` long, so the ring holds that delay plus that length plus the margin.
    """
    return max(cap, window) + window + hop + median / 2 + gap + margin + window / 2 + slack


@dataclass(frozen=True)
class SnippetSettings:
    """What a sensor cuts: ``margin`` seconds each side, at least ``minimum`` (one window) and at most ``cap``."""

    rules: SnippetRules = SnippetRules()
    margin: float = 0.5
    cap: float = 10.0
    codec: str = "opus"
    kbps: float = OPUS_KBPS


class Snipper:
    """Keeps what a stream heard (:meth:`hear`) and cuts an event's snippet from it (:meth:`cut`).

    ``stream_rate``: the stream's rate (Hz); ``network_rate``, ``window``, ``hop``, ``median``, ``gap``: the
    network's rate and its windows and decoding (seconds), which say how far back the ring reaches
    (:func:`ring_seconds`) and the shortest snippet (a window); :meth:`tune` gives another network's (a swap).
    """

    def __init__(self, settings: SnippetSettings, *, stream_rate: int, network_rate: int, window: float,
                 hop: float, median: float, gap: float) -> None:
        if settings.margin < 0 or settings.cap <= 0:
            raise ConfigError(f"snippet margin {settings.margin} must be >= 0 and cap {settings.cap} > 0")
        self.settings, self.tuning, self.tuned = settings, None, None
        self.ring = AudioRing(stream_rate, 0.0)
        self._tune(network_rate=network_rate, window=window, hop=hop, median=median, gap=gap)

    def tune(self, **network) -> None:
        """Cut for another network (a model swapped in: its window the shortest snippet, its rate the encoding's;
        keywords as the constructor's) from the stream's next block on: safe to call from another thread."""
        self.tuning = network

    def _tune(self, *, network_rate: int, window: float, hop: float, median: float, gap: float) -> None:
        settings, stream_rate = self.settings, self.ring.rate  # the ring only grows: what was heard stays
        self.window = window
        self.ring.grow(ring_seconds(window=window, hop=hop, median=median, gap=gap, cap=settings.cap,
                                    margin=settings.margin))
        self.rate = (opus_rate(network_rate, stream_rate) if settings.codec == "opus"
                     else min(network_rate, stream_rate))

    def hear(self, samples: np.ndarray) -> None:
        """Every block of the stream, as it is heard (before the listener scores it)."""
        tuning = self.tuning  # read once: a tune() meanwhile is applied at the next block
        if tuning is not self.tuned:
            self._tune(**tuning)
            self.tuned = tuning
        self.ring.push(samples)

    def cut(self, event: dict) -> tuple[bytes, str, float] | None:
        """The snippet of ``event`` (``label``, ``onset``, ``offset`` in the stream's seconds) -> (bytes, media
        type, where it starts in seconds from the event's onset: a margin is negative); None when its label may not
        be sent or nothing of it is still held."""
        if not self.settings.rules.allows(event["label"]):
            return None
        ring, settings = self.ring, self.settings
        first, last = snippet_span(float(event["onset"]), float(event["offset"]), margin=settings.margin,
                                   minimum=self.window, cap=max(settings.cap, self.window),
                                   start=ring.start / ring.rate, end=ring.end / ring.rate)
        samples = ring.cut(first, last)
        if not len(samples):
            return None
        if self.rate != ring.rate:
            import soxr

            samples = soxr.resample(samples, ring.rate, self.rate, quality="HQ").astype(np.float32)
        # where the samples cut begin (the ring may hold less than asked), from the event's onset
        begin = max(first, ring.start / ring.rate) - float(event["onset"])
        return (*encode(samples, self.rate, codec=settings.codec, kbps=settings.kbps), round(begin, 4))
