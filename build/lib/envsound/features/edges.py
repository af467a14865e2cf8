"""A clip's edges before its features: EnvNet-v2's input (Tokozume et al. 2018, mil-tokyo/bc_learning_sound).

Its dataset cuts the leading and trailing exact zeros of every clip (ESC-50 pads short sounds with digital silence to
5 s), and before any crop, in training and at test, pads half a window of zeros on each side. Together they keep a
random training crop from landing on silence alone: a 0.4-s bark, trimmed and padded, is in every 1.5-s crop.

``features.trim_zeros`` and ``features.edge_pad`` (windows of silence on each side) turn them on. They act on the
waveform, before log-mels or waveform windows, for a whole clip (:func:`prepare_clip`: training, evaluation, copies)
and for a file read in blocks (:class:`EdgeStream`: ``predict``), so both see the same samples.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from envsound.config import FeatureConfig

__all__ = ["EdgeStream", "edge_pad_samples", "pad_edges", "prepare_clip", "trim_zeros"]


def edge_pad_samples(cfg: FeatureConfig) -> int:
    """Zeros added on each side of a clip: ``edge_pad`` windows, rounded down to samples (the authors' ``// 2``)."""
    return int(cfg.edge_pad * cfg.window_samples)


def trim_zeros(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``waveform`` without its leading and trailing exact zeros when ``cfg.trim_zeros`` (an all-zero one whole)."""
    if not cfg.trim_zeros:
        return waveform
    first, end = _sound_span(waveform)
    return waveform[first:end] if end else waveform


def pad_edges(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``waveform`` with :func:`edge_pad_samples` zeros on each side."""
    pad = edge_pad_samples(cfg)
    return np.pad(waveform, (pad, pad)) if pad else waveform


def prepare_clip(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """One whole clip ``(samples,)`` with its edges shaped as ``cfg`` says (unchanged when it says nothing)."""
    return pad_edges(trim_zeros(waveform, cfg), cfg)


class EdgeStream:
    """The blocks of one waveform, in order, as :func:`prepare_clip` would give it whole: leading and trailing exact
    zeros cut (``trim_zeros``; an all-zero waveform kept) and ``edge_pad_samples`` zeros added at both ends.

    Memory stays bounded by the blocks: a run of zeros that may turn out to trail is counted, not kept, and given
    out again in pieces no longer than the longest block. ``shift`` is where sample 0 of the output lies in the
    input, in samples (trimmed lead minus padding); it is final once the first piece has been yielded, and
    :class:`~envsound.inference.predictor.Predictor` adds it to window starts so that a timeline speaks of the
    file's own seconds. ``read`` counts the input samples taken so far (the waveform's length once iterated).
    """

    def __init__(self, blocks: Iterable[np.ndarray], cfg: FeatureConfig) -> None:
        self.blocks = blocks
        self.trim = cfg.trim_zeros
        self.pad = edge_pad_samples(cfg)
        self.shift = -self.pad
        self.read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        started = False  # the padding and the first kept sample have gone out
        held = 0  # zeros still before the first sound, or maybe the trailing run
        piece = 1  # the longest block so far: the size zeros are given out in
        for block in self.blocks:
            block = np.asarray(block, dtype=np.float32)
            self.read += len(block)
            piece = max(piece, len(block))
            if not self.trim:
                if not started:
                    yield from _zeros_in_pieces(self.pad, piece)
                    started = True
                yield block
                continue
            first, end = _sound_span(block)
            if not end:
                held += len(block)
                continue
            if started:
                yield from _zeros_in_pieces(held, piece)
            else:
                self.shift = held + first - self.pad
                block, end = block[first:], end - first
                yield from _zeros_in_pieces(self.pad, piece)
                started = True
            held = len(block) - end
            yield block[:end]
        if not started:  # no block, or nothing but zeros: the waveform as read, padded
            yield from _zeros_in_pieces(self.pad + held, piece)
        yield from _zeros_in_pieces(self.pad, piece)


def _sound_span(block: np.ndarray) -> tuple[int, int]:
    """(first non-zero sample, one past the last); (0, 0) when there is none. A bool mask, not an index array."""
    sound = block != 0
    if not sound.any():
        return 0, 0
    return int(sound.argmax()), len(block) - int(sound[::-1].argmax())


def _zeros_in_pieces(count: int, piece: int) -> Iterator[np.ndarray]:
    for start in range(0, count, piece):
        yield np.zeros(min(piece, count - start), dtype=np.float32)
