""""None of these": the open-set gate of a single-label network.

A classifier trained on N classes spreads its softmax over those N whatever it hears, so a rooster given to a model
of dogs, cows, rain and sirens comes out as one of them, often with a high score. The gate asks a second question of
each window: is its embedding (what the network's head sees) as close to the class's training clips as the training
clips themselves are? Each class keeps a prototype, the mean direction of its training clips' embeddings, and a
threshold on the cosine similarity to it. A window below a class's threshold has that class ruled out; a window no
class passes counts as none of them (no label, no event). A ruled-out class keeps its closed-set probability negated
(:meth:`OpenSet.gate`): every reader takes :func:`admitted` (0 there, as the gate is meant) and a file no window of
which passes is still ranked by :func:`closed_set` (``files/``' ``rejected`` column).

The thresholds are calibrated on the training clips alone (:func:`calibrate`): the clips, shuffled and joined end to
end as in a recording, are cut into the windows prediction cuts; each window is compared with its class's prototype
made without the clips it holds (so a clip is never its own reference), and the threshold is the ``share``-quantile
of those similarities: the gate rejects about that share of windows of the classes it knows, in recordings like the
training clips. Measured on ESC-10 (docs/results.md, "None of my classes").

numpy only: a torch network's :class:`~envsound.models.clip.ClipModel` and its ONNX graph
(:mod:`envsound.inference.onnx_export`) apply the gate, and so does a head probed over a frozen network
(:class:`~envsound.models.litert.FrozenModel`, its checkpoint and its exported folder), calibrated on that network's
embeddings (:func:`envsound.transfer.frozen_probe.frozen_open_set`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from envsound.errors import CheckpointError

log = logging.getLogger(__name__)

MAX_CLIPS_PER_CLASS = 50  # calibration reads at most this many training clips a class (seeded choice): bounded cost


@dataclass(frozen=True)
class OpenSet:
    """Per class ``k``: ``prototypes[k]`` ``(d,)`` a unit vector, ``thresholds[k]`` the cosine similarity to it a
    window's embedding needs for the window to count as class ``k``; ``share``, the share of training windows it was
    calibrated to reject."""

    prototypes: np.ndarray  # (K, d) float32, unit rows
    thresholds: np.ndarray  # (K,) float32 in [-1, 1]
    share: float

    def similarity(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, d)`` embeddings -> ``(n, K)`` cosine similarity to each class's prototype."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        norms = np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        return (embeddings / norms) @ self.prototypes.T

    def gate(self, probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """``(n, K)`` probabilities with class ``k`` ruled out (its probability negated, so at most 0) in the windows
        whose embedding is below its threshold (a row at most 0: none of the classes). The ONNX graph does the same."""
        return np.where(self.similarity(embeddings) >= self.thresholds[None, :], probs, -probs).astype(np.float32)

    def to_payload(self) -> dict:
        return {"prototypes": self.prototypes.astype(np.float32), "thresholds": self.thresholds.astype(np.float32),
                "share": float(self.share)}

    @classmethod
    def from_payload(cls, payload: dict, *, n_classes: int, source: str = "checkpoint",
                     width: int | None = None) -> "OpenSet":
        """The gate :meth:`to_payload` wrote, for ``n_classes`` classes (and embeddings ``width`` wide, when given).

        Raises:
            CheckpointError: prototypes or thresholds that do not fit ``n_classes`` or ``width``.
        """
        prototypes = np.asarray(payload["prototypes"], dtype=np.float32)
        thresholds = np.asarray(payload["thresholds"], dtype=np.float32)
        if prototypes.ndim != 2 or len(prototypes) != n_classes or thresholds.shape != (n_classes,) \
                or (width is not None and prototypes.shape[1] != width):
            wide = "" if width is None else f" of {width}-d embeddings"
            raise CheckpointError(f"{source}: open-set prototypes {prototypes.shape} and thresholds "
                                  f"{thresholds.shape} do not fit {n_classes} classes{wide}")
        return cls(prototypes, thresholds, float(payload["share"]))

    def describe(self, labels: Sequence[str]) -> str:
        return ", ".join(f"{label} {t:.2f}" for label, t in zip(labels, self.thresholds))


def admitted(probs: np.ndarray) -> np.ndarray:
    """Gated probabilities (:meth:`OpenSet.gate`) as the gate means them: a ruled-out class 0. Unchanged values for a
    model without a gate (probabilities are never negative)."""
    return np.maximum(probs, 0.0, dtype=np.float32)


def closed_set(probs: np.ndarray) -> np.ndarray:
    """Gated probabilities -> the closed-set ones (every class as if no gate were there), to rank a file the gate
    rejected. A gate of ONNX format 7 zeroed ruled-out classes: those stay 0."""
    return np.abs(probs, dtype=np.float32)


def calibrate(features: Sequence[np.ndarray], classes: np.ndarray, *, embed: Callable[[np.ndarray], np.ndarray],
              cut: Callable[[np.ndarray], tuple[np.ndarray, list[int]]], share: float, n_classes: int,
              seed: int = 0, embed_stream: Callable[[np.ndarray], np.ndarray] | None = None) -> OpenSet:
    """The :class:`OpenSet` of a model from its training clips (see the module).

    Args:
        features: each training clip's features, ``(C, n_mels, frames)`` or ``(1, samples)``.
        classes: ``(n_clips,)`` each clip's class index.
        embed: windows -> ``(n, d)`` embeddings (the network's).
        cut: one clip's features -> (evaluation windows, their starts along the last axis), as prediction cuts.
        share: the share of training windows the gate may reject, ``0 < share < 0.5``.
        n_classes: K; a class without clips gets a threshold of -1 (never rejected).
        embed_stream: ``embed`` for the windows of the clips end to end (``None``: ``embed``), read once: a network
            that keeps each clip's windows for later (a frozen network's) need not keep these.
    """
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(classes == k))[:MAX_CLIPS_PER_CLASS]
                             for k in range(n_classes)]).astype(int)
    order = chosen[rng.permutation(len(chosen))]
    clips = [np.asarray(features[i], dtype=np.float32) for i in order]
    own = np.stack([_unit(embed(cut(clip)[0]).mean(axis=0)) for clip in clips])  # (n, d): each clip's direction
    sums = np.zeros((n_classes, own.shape[1]), dtype=np.float64)
    np.add.at(sums, classes[order], own)
    ends = np.cumsum([clip.shape[-1] for clip in clips])
    windows, starts = cut(np.concatenate(clips, axis=-1))  # the clips end to end, as a recording
    window = windows.shape[-1]  # a window's length along the clips' last axis
    emb = (embed_stream or embed)(windows)
    sims: list[list[float]] = [[] for _ in range(n_classes)]
    for row, start in enumerate(starts):
        first, last = np.searchsorted(ends, [start, min(start + window, ends[-1]) - 1], side="right")
        held = np.arange(first, min(last, len(clips) - 1) + 1)  # the clips this window holds
        cover = np.minimum(ends[held], start + window) - np.maximum(np.concatenate([[0], ends])[held], start)
        k = int(classes[order[held[int(np.argmax(cover))]]])  # the class that fills most of it
        mine = held[classes[order[held]] == k]
        rest = sums[k] - own[mine].sum(axis=0)
        if np.linalg.norm(rest) < 1e-9:
            continue  # the class's only clips are in this window: no other reference
        sims[k].append(float(_unit(emb[row]) @ _unit(rest)))
    prototypes = np.stack([_unit(s) if np.linalg.norm(s) > 0 else s for s in sums]).astype(np.float32)
    thresholds = np.array([np.quantile(s, share) if s else -1.0 for s in sims], dtype=np.float32)
    return OpenSet(prototypes, thresholds, share)


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
