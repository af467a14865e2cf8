"""What a model predicts: one label per clip, or any number of them. Chosen once from the dataset
(:attr:`Manifest.task <envsound.data.records.Manifest.task>`), saved in the checkpoint, and asked by every stage
instead of a ``multi_label`` flag passed along:

===================  =======================================  ===========================================
                     single-label                             multi-label
===================  =======================================  ===========================================
targets              one-hot rows                             multi-hot rows
output activation    softmax                                  sigmoid per class
loss                 cross-entropy (label smoothing, weights) BCE, or a noise-robust loss (``losses``)
clip score           accuracy                                 lwlrap
splits               stratified by the label                  iterative stratification over label sets
report / predict     accuracy, confusion matrix; top-k        lwlrap, mAP, F1 at ``threshold``; labels above it
===================  =======================================  ===========================================

A base module: numpy at import, torch only inside the functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from envsound.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
KINDS = (SINGLE_LABEL, MULTI_LABEL)
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Task:
    """The prediction task. ``threshold`` (multi-label only): a label is predicted when its probability reaches it;
    ``class_thresholds`` (one per class, optional) replaces it class by class.

    >>> Task.from_flag(True).activation(torch.zeros(1, 3))   # sigmoid: tensor([[0.5, 0.5, 0.5]])
    """

    kind: str = SINGLE_LABEL
    threshold: float = DEFAULT_THRESHOLD
    class_thresholds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.kind!r} is unknown; valid: {', '.join(KINDS)}")
        check_threshold(self.threshold)
        for value in self.class_thresholds or ():
            check_threshold(value)

    @classmethod
    def from_flag(cls, multi_label: bool) -> "Task":
        return cls(MULTI_LABEL if multi_label else SINGLE_LABEL)

    @property
    def multi_label(self) -> bool:
        return self.kind == MULTI_LABEL

    @property
    def score_name(self) -> str:
        """The clip-level score that picks the best epoch and heads a report: ``accuracy`` or ``lwlrap``."""
        return "lwlrap" if self.multi_label else "accuracy"

    def describe(self) -> str:
        return "multi-label (sigmoid, BCE)" if self.multi_label else "single-label (softmax, cross-entropy)"

    # ---------------------------------------------------------------- targets and outputs

    def targets(self, label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
        """``(n, C)`` float32 one-hot (single-label) or multi-hot rows; an empty label set gives a zero row.

        Raises:
            ConfigError: a label not in ``labels``, or several labels on a clip of a single-label task.
        """
        index = {name: i for i, name in enumerate(labels)}
        out = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
        for row, names in enumerate(label_sets):
            if not self.multi_label and len(names) > 1:
                raise ConfigError(f"clip {row} has {len(names)} labels ({', '.join(names)}) but the task is "
                                  "single-label")
            for name in names:
                if name not in index:
                    raise ConfigError(f"label {name!r} is not one of the {len(labels)} classes")
                out[row, index[name]] = 1.0
        return out

    def activation(self, logits: "torch.Tensor") -> "torch.Tensor":
        """Logits ``(..., C)`` -> probabilities: softmax over classes, or a sigmoid per class."""
        import torch

        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def loss(self, logits: "torch.Tensor", targets: "torch.Tensor", *, weight: "torch.Tensor | None" = None,
             label_smoothing: float = 0.0) -> "torch.Tensor":
        """The training loss on logits ``(batch, C)`` and float targets ``(batch, C)`` (mixed or smoothed rows
        allowed): cross-entropy with ``weight`` per class and ``label_smoothing``, or BCE with ``weight`` per
        class (smoothing pulls multi-hot targets toward 0.5 by ``label_smoothing / 2``)."""
        import torch.nn.functional as F

        logits = logits.float()
        if self.multi_label:
            if label_smoothing:
                targets = targets * (1 - label_smoothing) + label_smoothing / 2
            return F.binary_cross_entropy_with_logits(logits, targets,
                                                      weight=None if weight is None else weight[None, :])
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)

    def clip_loss(self, probs: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
        """The loss of clip-averaged probabilities ``(n, C)`` (validation): cross-entropy or BCE."""
        import torch.nn.functional as F

        probs = probs.clamp(1e-7, 1 - 1e-7)
        if self.multi_label:
            return F.binary_cross_entropy(probs, targets)
        return -(targets * probs.log()).sum(dim=1).mean()

    def clip_score(self, probs: np.ndarray, targets: np.ndarray) -> float:
        """:attr:`score_name` of clip probabilities ``(n, C)`` against target rows: accuracy, or lwlrap (0.0 when
        no clip has a label)."""
        probs, targets = np.asarray(probs), np.asarray(targets)
        if not self.multi_label:
            return float(np.mean(probs.argmax(axis=1) == targets.argmax(axis=1))) if len(probs) else 0.0
        if not (targets > 0.5).any():
            return 0.0
        return lwlrap_score(targets > 0.5, probs)

    # ---------------------------------------------------------------- decisions

    def thresholds(self, n_classes: int) -> np.ndarray:
        """``(n_classes,)`` decision thresholds (``class_thresholds`` when set, else ``threshold``).

        Raises:
            CheckpointError: ``class_thresholds`` of another length.
        """
        if self.class_thresholds is None:
            return np.full(n_classes, self.threshold)
        if len(self.class_thresholds) != n_classes:
            raise CheckpointError(f"task has {len(self.class_thresholds)} class thresholds for {n_classes} classes")
        return np.asarray(self.class_thresholds, dtype=np.float64)

    def with_threshold(self, value: float, *, name: str = "threshold") -> "Task":
        """This task deciding at ``value`` for every class (any fitted per-class thresholds dropped).

        Raises:
            ConfigError: ``value`` not in (0, 1) (the message calls it ``name``).
        """
        return replace(self, threshold=check_threshold(value, name=name), class_thresholds=None)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Boolean ``(n, C)`` predictions: the arg-max class (single-label), or every class at or above its
        threshold (multi-label)."""
        probs = np.asarray(probs)
        if not self.multi_label:
            out = np.zeros(probs.shape, dtype=bool)
            out[np.arange(len(probs)), probs.argmax(axis=1)] = True
            return out
        return probs >= self.thresholds(probs.shape[1])[None, :]

    # ---------------------------------------------------------------- checkpoint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "threshold": self.threshold}
        if self.class_thresholds is not None:
            out["class_thresholds"] = list(self.class_thresholds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        try:
            thresholds = data.get("class_thresholds")
            return cls(kind=str(data["kind"]), threshold=float(data.get("threshold", DEFAULT_THRESHOLD)),
                       class_thresholds=None if thresholds is None else tuple(float(t) for t in thresholds))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"checkpoint task {data!r} is malformed: {exc}") from exc


def fit_class_thresholds(targets: np.ndarray, probs: np.ndarray, *, default: float = DEFAULT_THRESHOLD
                         ) -> tuple[float, ...]:
    """Per-class decision thresholds that maximise each class's F1 on held-out clips (``targets`` ``(n, C)`` 0/1,
    ``probs`` ``(n, C)``), read off scikit-learn's precision-recall curve; a class with no positive or no negative
    clip keeps ``default``. Each threshold is one of the class's scores, kept inside [0.01, 0.99]."""
    from sklearn.metrics import precision_recall_curve

    targets, probs = np.asarray(targets) > 0.5, np.asarray(probs, dtype=np.float64)
    out = []
    for c in range(targets.shape[1]):
        if targets[:, c].all() or not targets[:, c].any():
            out.append(default)
            continue
        precision, recall, cut = precision_recall_curve(targets[:, c], probs[:, c])
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]  # the last point has no cut
        out.append(float(np.clip(cut[int(np.argmax(f1))], 0.01, 0.99)))
    return tuple(out)


def check_threshold(value: float, *, name: str = "threshold") -> float:
    """``value`` if it is in (0, 1), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ConfigError(f"{name}={value!r} is out of range; valid: 0 < {name} < 1")
    return float(value)


def lwlrap_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (the FSDKaggle2019 / DCASE 2019 task 2 metric).

    For every (clip, positive label) pair, the precision of the clip's ranked label list at that label's rank (the
    share of labels ranked at or above it that are positive); lwlrap is the mean over all pairs, so every positive
    label counts once. Ties count pessimistically (a label's rank is the number of labels scoring at least as high),
    as scikit-learn does: the result equals ``label_ranking_average_precision_score`` with each clip weighted by its
    number of labels (tested). Clips without a label contribute nothing.

    Kept by hand because it is measurably faster: 0.08 s against scikit-learn's 1.2 s on 4,000 clips x 80 classes
    (``benchmarks/bench_lwlrap.py``), and validation computes it every epoch.

    Raises:
        ValueError: shapes differ, or no clip has a label.
    """
    y_true = np.asarray(y_true).astype(bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"lwlrap: y_true {y_true.shape} and y_score {y_score.shape} must both be (n, C)")
    n_pairs = int(y_true.sum())
    if n_pairs == 0:
        raise ValueError("lwlrap: y_true has no positive labels")
    total = 0.0
    for truth, score in zip(y_true, y_score):
        if not truth.any():
            continue
        positive = score[truth]
        rank = (score[None, :] >= positive[:, None]).sum(axis=1)  # labels scoring at least as high
        hits = (positive[None, :] >= positive[:, None]).sum(axis=1)  # positives among them
        total += float(np.sum(hits / rank))
    return total / n_pairs
