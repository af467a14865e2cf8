"""The agile loop's one linear head: a logistic regression per label on stored embeddings, with scikit-learn's names
(:meth:`LinearHead.fit`, :meth:`LinearHead.predict_proba`): fitted by ``learn``, scoring its calibration's held-out
windows and ``suggest``'s whole store (one sigmoid: :func:`sigmoid`); :func:`store_scores` is the one loop that scores
a store with a head (``suggest``'s, or ``check``'s learned model's own, run by torch), with a learned model's context
(:mod:`envsound.events.context`: each window's logit averaged with its file's windows within ``context`` seconds);
:func:`context_vectors` gives windows' mean embeddings over the same neighbours, what ``learn`` fits on.

A head is ``weights`` ``(n_labels, d)`` and ``bias`` ``(n_labels,)`` in the raw embedding's units: a label's score is
``sigmoid(w . x + b)``, the rows a learned model's last linear layer holds (:func:`envsound.agile.learn.write_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Protocol

import numpy as np

from envsound.events.context import ContextStream, neighbour_bounds

if TYPE_CHECKING:
    from envsound.inference.embeddings.store import EmbeddingsStore

# The logistic regression's inverse regularisation on standardised embeddings. 0.1 by measurement (docs/results.md,
# "From one example to a detector (issue 67)": experiments/agile_review_tune.py on 4 ESC-50 classes outside ESC-10,
# then experiments/agile_review.py --C 0.1 --suggest-at half on the 10 ESC-10 classes): mean AP after 50 reviews
# 0.912 against 0.852 for C=1 (scikit-learn's default, ours until then) on the 4, 0.789 +- 0.059 against 0.743 on
# ESC-10, higher for all 10 classes (both with suggestions nearest 0.5 against nearest the calibrated threshold).
# With C=1 the head fits a few reviews so tightly that the calibrated threshold can collapse (1e-6 for chainsaw,
# 2,129 windows above it).
C = 0.1
WEAK_WEIGHT = 0.1  # an unreviewed window as a negative: a tenth of a reviewed "no"
CONTEXT_ROWS = 8_192  # windows whose neighbours' mean is taken at once: ~100 MB of their float32 rows at 1,000 dims
CONSTANT = 30.0  # the logit of a head fitted on one class only: a score of ~0 or ~1 whatever the window


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-logits))``, elementwise, in the logits' float dtype; no overflow warning at large
    negative logits (``exp`` of +inf is inf, the score 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits))


@dataclass
class LinearHead:
    """A linear head of one or more labels (see the module). Made empty and fitted (one label), or from the rows of a
    head already learned (``LinearHead(weights, bias)``); :meth:`stack` joins one-label heads in label order.

    >>> head = LinearHead().fit(x, truth, weak=unreviewed)
    >>> head.predict_proba(x)[:, 0]
    """

    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    c: float = C
    weak_weight: float = WEAK_WEIGHT

    def __post_init__(self) -> None:
        self.weights = np.atleast_2d(np.asarray(self.weights, dtype=np.float64))
        self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)

    @property
    def width(self) -> int:
        """``d``: the embedding's dimensions the head reads."""
        return int(self.weights.shape[1])

    @classmethod
    def stack(cls, heads: list["LinearHead"]) -> "LinearHead":
        """One head of each of ``heads``' labels, in that order."""
        return cls(np.concatenate([h.weights for h in heads]), np.concatenate([h.bias for h in heads]))

    def fit(self, x: np.ndarray, truth: np.ndarray, weak: np.ndarray | None = None) -> "LinearHead":
        """Fit one label: a logistic regression of ``truth`` ``(n,)`` bool on ``x`` ``(n, d)``, with ``weak``
        ``(m, d)`` as negatives of weight :attr:`weak_weight`, the two classes weighted to equal totals (the prior is
        even, 0.5 between them), on standardised embeddings (the standardisation folded into the rows: the head reads
        raw embeddings). One class only: a constant head (score ~0 or ~1). Returns ``self``.
        """
        from sklearn.linear_model import LogisticRegression

        truth = np.asarray(truth, bool)
        x = np.asarray(x, dtype=np.float64).reshape(len(truth), -1)
        weak = np.zeros((0, x.shape[1])) if weak is None else np.asarray(weak, dtype=np.float64)
        d = x.shape[1] if x.size else weak.shape[1]
        data = np.concatenate([x.reshape(-1, d), weak.reshape(-1, d)])
        target = np.r_[truth, np.zeros(len(weak), bool)]
        if target.all() or not target.any():
            self.weights, self.bias = np.zeros((1, d)), np.array([CONSTANT if target.all() else -CONSTANT])
            return self
        weight = np.r_[np.ones(len(truth)), np.full(len(weak), self.weak_weight)]
        positive, negative = weight[target].sum(), weight[~target].sum()
        weight[target] *= negative / positive
        mean, scale = data.mean(axis=0), data.std(axis=0)
        scale[scale < 1e-6] = 1.0  # a unit that never fires (ReLU) carries nothing
        regression = LogisticRegression(C=self.c, max_iter=2000)
        regression.fit((data - mean) / scale, target, sample_weight=weight / weight.mean())
        coef = regression.coef_[0] / scale  # folded in: w (x - m) / s + b = (w / s) x + b - w.m / s
        self.weights, self.bias = coef[None, :], np.array([float(regression.intercept_[0] - coef @ mean)])
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """``(n, d)`` embeddings -> ``(n, n_labels)`` logits ``w . x + b``, in ``x``'s float dtype (float32 stays
        float32: a chunk of a store is scored without a float64 copy)."""
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        return np.asarray(x, dtype=dtype) @ self.weights.T.astype(dtype) + self.bias.astype(dtype)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(n, d)`` embeddings -> ``(n, n_labels)`` scores in [0, 1], one column a label (multi-label: each its own
        sigmoid, not scikit-learn's two columns of one binary class)."""
        return sigmoid(self.decision_function(x))


class Head(Protocol):
    """What scores stored embeddings: a :class:`~envsound.agile.head.LinearHead`, or a learned model's own head
    (``check``)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def store_scores(store: "EmbeddingsStore", head: Head, *,
                 context: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(window ids (rows,), probabilities (rows, n_labels))`` over the whole store, a chunk of stored rows at a time
    (:meth:`EmbeddingsStore.chunks`: one chunk's memory for ten million windows), in id order. ``context`` (seconds,
    a learned model's :func:`~envsound.events.context.context_seconds`): each window's logit averaged with those
    of its file's windows starting within that of it (a chunk's last windows wait for the next chunk); 0: alone.

    Raises:
        ConfigError: a linear head whose width is not the store's.
    """
    width = head.width if isinstance(head, LinearHead) else None
    if context <= 0:
        for ids, vectors in store.chunks(width=width):
            yield ids, head.predict_proba(vectors)
        return
    stream = ContextStream(context)
    for index, part in enumerate(store.parts):
        if not part.rows:
            continue
        keys, starts = _part_keys(store, part, index)
        for ids, vectors in store.chunks(parts=[part], width=width):
            at = ids - part.first
            done, probs = stream.push(keys[at], starts[at], head.predict_proba(vectors), ids)
            if len(done):
                yield done, probs
    done, probs = stream.finish()
    if len(done):
        yield done, probs


def context_vectors(store: "EmbeddingsStore", ids: np.ndarray, context: float) -> np.ndarray:
    """``(len(ids), d)`` float32: each window's mean stored embedding over its file's windows starting within
    ``context`` seconds of it (itself included; ``context`` 0: its own, :meth:`EmbeddingsStore.vectors`). A linear
    head on it is the mean of the neighbours' logits, what every scorer of a model with that context gives.

    Raises:
        ConfigError: an id that is not a window of the store.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if context <= 0 or not len(ids) or ((ids < 0) | (ids >= store.windows)).any():
        return store.vectors(ids)  # no context, or an id outside the store (the error that names it)
    firsts = np.array([part.first for part in store.parts], dtype=np.int64)
    where = np.searchsorted(firsts, ids, side="right") - 1
    lo, hi = np.empty(len(ids), np.int64), np.empty(len(ids), np.int64)
    for index in np.unique(where):
        part = store.parts[index]
        wanted = np.flatnonzero(where == index)
        part_lo, part_hi = neighbour_bounds(*_part_keys(store, part, int(index)), context)
        at = ids[wanted] - part.first
        lo[wanted], hi[wanted] = part_lo[at] + part.first, part_hi[at] + part.first
    out = None
    for at in range(0, len(ids), CONTEXT_ROWS):  # a batch of windows and their neighbours at a time
        first, count = lo[at:at + CONTEXT_ROWS], hi[at:at + CONTEXT_ROWS] - lo[at:at + CONTEXT_ROWS]
        offsets = np.r_[0, np.cumsum(count)[:-1]]
        members = np.repeat(first - offsets, count) + np.arange(count.sum())
        sums = np.add.reduceat(store.vectors(members), offsets, axis=0, dtype=np.float64)
        if out is None:
            out = np.empty((len(ids), sums.shape[1]), np.float32)
        out[at:at + len(count)] = sums / count[:, None]
    return out


def _part_keys(store: "EmbeddingsStore", part, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A part's windows' file keys (unique in the store: the part's index and the file's place in its dictionary; a
    file's windows lie in one part) and starts (seconds)."""
    table = store.part_columns(part, ("file", "start"), dictionary=True).unify_dictionaries()
    files = table.column("file").combine_chunks()
    keys = files.indices.to_numpy().astype(np.int64) + (index << 32)
    return keys, table.column("start").to_numpy()
