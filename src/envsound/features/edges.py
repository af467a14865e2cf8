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

__all__ = ["EdgeStream", "edge_pad_samples", "prepare_clip", "shapes_edges"]


def shapes_edges(cfg: FeatureConfig) -> bool:
    """Whether ``cfg`` trims or pads a clip's edges (off by default: the clip as read)."""
    return cfg.trim_zeros or cfg.edge_pad > 0


def edge_pad_samples(cfg: FeatureConfig) -> int:
    """Zeros added on each side of a clip: ``edge_pad`` windows, rounded down to samples (the authors' ``// 2``)."""
    return int(cfg.edge_pad * cfg.window_samples)


def prepare_clip(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """One whole clip ``(samples,)`` with its edges shaped as ``cfg`` says (unchanged when it says nothing)."""
    if not shapes_edges(cfg):
        return waveform
    return np.concatenate(list(EdgeStream([waveform], cfg)))


class EdgeStream:
    """The blocks of one waveform, in order, with its leading and trailing exact zeros cut (``trim_zeros``) and
    ``edge_pad_samples`` zeros added at both ends. An all-zero waveform is kept whole (nothing to trim to).

    ``shift`` is where sample 0 of the output lies in the input, in samples (trimmed lead minus padding); it is
    final once the first block has been yielded, and :class:`~envsound.inference.predictor.Predictor` adds it to
    window starts so that a timeline speaks of the file's own seconds.
    """

    def __init__(self, blocks: Iterable[np.ndarray], cfg: FeatureConfig) -> None:
        self.blocks = blocks
        self.trim = cfg.trim_zeros
        self.pad = edge_pad_samples(cfg)
        self.shift = -self.pad

    def __iter__(self) -> Iterator[np.ndarray]:
        pad = np.zeros(self.pad, dtype=np.float32)
        started = False  # the padding and the first kept sample have gone out
        held: list[np.ndarray] = []  # zeros still before the first sound, or maybe the trailing run
        for block in self.blocks:
            block = np.asarray(block, dtype=np.float32)
            if not self.trim:
                if not started:
                    yield pad
                    started = True
                yield block
                continue
            nonzero = np.flatnonzero(block)
            if len(nonzero) == 0:
                held.append(block)
                continue
            if started:
                yield from held
                end = int(nonzero[-1]) + 1
            else:
                first = int(nonzero[0])
                self.shift = sum(len(b) for b in held) + first - self.pad
                block, end = block[first:], int(nonzero[-1]) + 1 - first
                yield pad
                started = True
            held = []
            yield block[:end]
            if end < len(block):
                held.append(block[end:])
        if not started:  # no block, or nothing but zeros: the waveform as read, padded
            yield pad
            yield from held
        yield pad
