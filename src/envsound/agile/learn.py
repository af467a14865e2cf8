"""Learn a detector from reviewed windows of an embeddings store: per label a logistic regression on the stored
embeddings (no audio decoded), written as an ordinary envsound model (the store's network with a new head; over a
frozen network, BirdNET or YAMNet, a ``model.ckpt`` of the head that names its trunk by digest:
:func:`envsound.models.litert.write_learned`).

A label's training windows are its reviewed ones (``yes`` = 1, ``no`` = 0, ``unsure`` left out) and, with
``negatives="weak"``, a seeded sample of the store's windows not reviewed for it as negatives of weight
:data:`WEAK_WEIGHT` (most windows of an archive are not the sound sought, but some are: a reviewed ``no`` outweighs
ten of them, so a few dozen reviews steer the head and one ``yes`` is enough to start). A window whose centre lies
inside a window reviewed ``yes`` (of the same file) is never a weak negative: it holds most of the same sound, and
as a negative it would contradict the reviewer. The two sides are weighted to equal totals, so an uncalibrated
threshold of 0.5 sits between them. The embeddings are standardised and the standardisation folded into the
coefficients (as :mod:`envsound.transfer.probe` does), which become the rows of the
network's head: ``network.head`` (a dropout and one linear layer) reads ``network.embed``'s output, the vector the
store holds, so ``predict`` with the learned model on audio gives the scores the head gives the stored windows.

Context (``context``, seconds; :data:`~envsound.events.context.DEFAULT_SECONDS`, 1 s, by default; 0: off): the head
is fitted, its weak negatives drawn, its threshold calibrated out of fold and its disagreements counted on each
window's mean embedding over its file's windows starting within ``context`` seconds of it
(:func:`~envsound.agile.head.context_vectors`), and the model records it (``meta["learned"]["context_seconds"]``), so
every scorer averages each window's logit with those neighbours' (:mod:`envsound.events.context`): the head on
the mean embedding. +0.086 AP after 50 reviews on 35 ESC-50 classes it was not chosen on, the threshold's precision
kept (docs/results.md, "Context as a model setting").
"""

from __future__ import annotations

import copy
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from envsound.agile.calibrate import MIN_REVIEWED, Calibration, calibrate, write_curve
from envsound.agile.disagree import Disagreement, disagreements as find_disagreements
from envsound.agile.head import C, WEAK_WEIGHT, LinearHead, context_vectors
from envsound.agile.labelled import LabelledStore
from envsound.agile.names import check_label
from envsound.agile.suggest import Suggestion, suggest as suggest_windows
from envsound.errors import ConfigError
from envsound.events.context import DEFAULT_SECONDS
from envsound.inference.embeddings.store import EmbeddingsStore
from envsound.models.files import FROZEN

log = logging.getLogger(__name__)

NEGATIVES = ("weak", "none")
# C (the regression's inverse regularisation, 0.1 by measurement) and WEAK_WEIGHT (0.1) are the head's
# (envsound.agile.head, where the measurements are cited); named here too, as module settings read at each fit (the
# experiments set learn.C and learn.WEAK_WEIGHT)
__all__ = ["C", "WEAK_WEIGHT", "LabelResult", "LearnResult", "fit_head", "learn", "learn_verdicts", "write_model"]
WEAK_MIN, WEAK_PER_YES = 1_000, 10  # weak negatives a label: max(1,000, 10 x its yes), at most the unreviewed
MODEL_NAME = "model.ckpt"


@dataclass(frozen=True)
class LabelResult:
    """What one label was learned from and what its threshold is expected to give (``calibration``)."""

    label: str
    positives: int
    negatives: int
    unsure: int
    weak_negatives: int
    calibration: Calibration
    disagreeing: int = 0  # reviewed windows the head, out of fold, would decide otherwise (envsound.agile.disagree)
    disagreements: list[Disagreement] = field(default_factory=list)  # the farthest from their verdicts, first

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def to_dict(self) -> dict:
        return {"label": self.label, "positives": self.positives, "negatives": self.negatives,
                "unsure": self.unsure, "weak_negatives": self.weak_negatives, "disagreeing": self.disagreeing,
                **self.calibration.to_dict()}

    def disagreement_line(self) -> str:
        """One line saying how many reviewed windows the head disagrees with ("" when none)."""
        if not self.disagreeing:
            return ""
        many = "window disagrees" if self.disagreeing == 1 else "windows disagree"
        return (f"{self.label}: {self.disagreeing} reviewed {many} with the head out of fold (a no at or above the "
                f"threshold, a yes below it and 0.5); review them again: envsound learn DB --label "
                f"{shlex.quote(self.label)} --out DIR --disagreements {max(5, self.disagreeing)}")


@dataclass
class LearnResult:
    """A learned model: its file (``model``), per label what it learned from and its calibrated threshold
    (``labels``, in the order given), the windows to review next (``suggestions``) and the curves written."""

    model: Path
    labels: list[LabelResult]
    suggestions: list[Suggestion] = field(default_factory=list)
    curves: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """One line: where the model is, and per label its threshold and expected precision."""
        parts = []
        for result in self.labels:
            c = result.calibration
            text = f"{result.label} at {c.threshold:.3f}"
            if c.calibrated:
                text += f" (precision {c.precision:.2f}, {c.precision_interval[0]:.2f}-{c.precision_interval[1]:.2f})"
            else:
                text += " (not calibrated)"
            parts.append(text)
        return f"{self.model}: learned {', '.join(parts)} in {self.seconds:.1f} s"

    def lines(self) -> list[str]:
        """:meth:`line`, then each label's calibration line (counts, precision and recall with intervals) and, when
        some reviewed windows disagree with the head, how many."""
        return [self.line()] + [line for result in self.labels
                                for line in (result.calibration.line(), result.disagreement_line()) if line]

    def to_dict(self) -> dict:
        return {"model": str(self.model), "labels": [r.to_dict() for r in self.labels],
                "suggestions": [s.to_dict() for s in self.suggestions], "curves": [str(p) for p in self.curves],
                "disagreements": [d.to_dict() for r in self.labels for d in r.disagreements]}


def learn(db: str | os.PathLike, labels: str | Sequence[str], *, out: str | os.PathLike, store: str | None = None,
          suggest: int = 0, precision: float = 0.9, negatives: str = "weak", progress: bool = True,
          disagreements: int = 0, context: float = DEFAULT_SECONDS) -> LearnResult:
    """Learn ``labels`` (one name or a list) from the windows of the embeddings store ``db`` reviewed for them and
    write ``out/model.ckpt``: the store's network with a head of one sigmoid output a label, in that order, each
    deciding at the threshold that held ``precision`` on its reviewed windows (cross-validated by file,
    :mod:`envsound.agile.calibrate`; its curve in ``out/<label>.curve.csv`` and ``.png``). The weak negatives'
    sample and the folds are seeded (0; :func:`learn_verdicts` takes another ``seed``).

    Args:
        db: the store folder (``envsound embed MODEL INPUTS --out DB``).
        labels: label names; no comma, none twice.
        out: the folder to write (made if missing; a model already there is replaced).
        store: the labels store's URL or path (default ``db/review.sqlite``: :func:`envsound.agile.labels.store_of`).
        suggest: the number of windows to suggest for review next (>= 0), shared among the labels.
        precision: the target precision, 0 < precision < 1.
        negatives: ``"weak"``: unreviewed windows count as negatives of weight :data:`WEAK_WEIGHT`; ``"none"``:
            only the reviewed windows.
        progress: log each label as it is learned.
        disagreements: list, per label, this many reviewed windows whose out-of-fold score is farthest from their
            verdict (:mod:`envsound.agile.disagree`); every label counts those on the other side of its threshold.
        context: seconds (>= 0): the head reads each window's mean embedding over its file's windows starting within
            this of it, and every scorer of the model averages each window's logit with theirs (see the module); 0:
            each window alone, as models learned before the setting.

    >>> result = learn("recordings.db", "chainsaw", out="chainsaw.model", suggest=10)
    >>> result.labels[0].threshold, result.suggestions[0].file

    Raises:
        ConfigError: ``db`` is not a store, or its model file is missing or changed; a label with no ``yes``
            (or, with ``negatives="none"``, no ``no``); a bad name or setting.
    """
    names = _names(labels)
    _check(suggest=suggest, precision=precision, negatives=negatives, disagreements=disagreements, context=context)
    with LabelledStore.open(db, store) as labelled:  # the store opened once, its labels read, the labels store closed
        verdicts = labelled.verdicts(names)
    return learn_verdicts(labelled.windows,
                          {name: (verdicts[name].windows, verdicts[name].verdicts) for name in names},
                          out=out, suggest=suggest, precision=precision, negatives=negatives,
                          progress=progress, disagreements=disagreements, context=context)


def learn_verdicts(windows: EmbeddingsStore, verdicts: dict[str, tuple[np.ndarray, np.ndarray]], *,
                   out: str | os.PathLike, suggest: int = 0, precision: float = 0.9, negatives: str = "weak",
                   seed: int = 0, progress: bool = True, disagreements: int = 0,
                   context: float = DEFAULT_SECONDS) -> LearnResult:
    """:func:`learn` from verdicts already read: ``verdicts[label] = (window ids (n,) int64, verdicts (n,) of
    "yes"/"no"/"unsure")``, the labels in the model's order.

    >>> learn_verdicts(EmbeddingsStore("recordings.db"), {"chainsaw": (np.array([17]), np.array(["yes"]))},
    ...                out="chainsaw.model")
    """
    started = time.perf_counter()
    names = _names(list(verdicts))
    _check(suggest=suggest, precision=precision, negatives=negatives, disagreements=disagreements, context=context)
    context = float(context)
    source = _source(windows)
    rng = np.random.default_rng(seed)
    results, rows, reviewed = [], [], {}
    for name in names:
        ids, said = (np.asarray(a) for a in verdicts[name])
        if ids.shape != said.shape or ids.ndim != 1:
            raise ConfigError(f"label {name!r}: {ids.size} window ids and {said.size} verdicts; give one verdict a "
                              "window")
        ids = ids.astype(np.int64)
        yes, no = ids[said == "yes"], ids[said == "no"]
        if not len(yes):
            raise ConfigError(f"{windows.path}: label {name!r} has no window reviewed yes ({len(no)} no); label at "
                              "least one of its windows yes before learning it")
        if negatives == "none" and not len(no):
            raise ConfigError(f"{windows.path}: label {name!r} has no window reviewed no, and negatives='none' "
                              "learns from reviewed windows only; review some no, or use negatives='weak'")
        reviewed[name] = ids
        weak = _weak_sample(windows, ids, yes, rng) if negatives == "weak" else np.zeros(0, np.int64)
        # each window's mean embedding over its neighbours (context 0: its own): what the model's scorers average
        x = context_vectors(windows, np.concatenate([yes, no]), context)
        truth = np.r_[np.ones(len(yes), bool), np.zeros(len(no), bool)]
        weak_x = context_vectors(windows, weak, context) if len(weak) else np.zeros((0, x.shape[1]), np.float32)
        files = np.array([row["file"] for row in windows.rows(np.concatenate([yes, no]))], dtype=object)

        def fit(x_train, truth_train, weak_x=weak_x):
            head = _head().fit(x_train, truth_train, weak_x)
            return lambda x_held: head.predict_proba(np.asarray(x_held, np.float64))[:, 0]

        calibration = calibrate(name, x, truth, files, fit, target=precision, seed=seed)
        rows.append(_head().fit(x, truth, weak_x))
        disagreeing, listed = find_disagreements(windows, name, np.concatenate([yes, no]), truth, calibration.scores,
                                                 calibration.threshold, top=disagreements)
        results.append(LabelResult(name, len(yes), len(no), int((said == "unsure").sum()), len(weak), calibration,
                                   disagreeing, listed))
        if progress:
            log.info("learn: %s", calibration.line())
    head = LinearHead.stack(rows)
    weights, bias = head.weights, head.bias
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curves = [path for result in results for path in write_curve(result.calibration, out)]
    meta = {"trunk": {"digest": windows.settings["model"], "layer": "embed"},
            "learned": {"store": str(windows.path), "negatives": negatives, "weak_weight": WEAK_WEIGHT,
                        "target_precision": precision, "seed": seed, "context_seconds": context,
                        "labels": {r.label: r.to_dict() for r in results}}}
    thresholds = [r.threshold for r in results]
    if source.kind == FROZEN:  # a frozen network (BirdNET, YAMNet): the head and the trunk's name and digest
        from envsound.models.litert import write_learned

        model = write_learned(source.path, names, weights, bias, thresholds, out / MODEL_NAME, meta=meta)
    else:
        model = write_model(source, names, weights, bias, thresholds, out / MODEL_NAME, meta=meta)
    wanted_no = {r.label: max(0, MIN_REVIEWED - r.negatives) for r in results}  # what calibration still lacks
    suggestions = suggest_windows(windows, weights, bias, names, labelled=reviewed, top=suggest,
                                  wanted_no=wanted_no, context=context) if suggest else []
    return LearnResult(model=model, labels=results, suggestions=suggestions, curves=curves,
                       seconds=time.perf_counter() - started)


def fit_head(x: np.ndarray, truth: np.ndarray, weak: np.ndarray) -> tuple[np.ndarray, float]:
    """One label's head (:meth:`LinearHead.fit <envsound.agile.head.LinearHead.fit>` at this module's :data:`C` and
    :data:`WEAK_WEIGHT`) as ``(w (d,), b)`` in the raw embedding's units (score = sigmoid(w . x + b)).

    >>> w, b = fit_head(x, truth, weak)
    """
    head = _head().fit(x, truth, weak)
    return head.weights[0], float(head.bias[0])


def _head() -> LinearHead:
    """An unfitted head at this module's settings, read now (the experiments change them for a run)."""
    return LinearHead(c=C, weak_weight=WEAK_WEIGHT)


def write_model(source, labels: Sequence[str], weights: np.ndarray, bias: np.ndarray, thresholds: Sequence[float],
                path: Path, *, meta: dict) -> Path:
    """``path``: ``source`` (an opened :class:`~envsound.models.files.ModelFile` with a network) with its head's
    last linear layer replaced by ``weights`` ``(n_labels, d)`` and ``bias`` ``(n_labels,)``, multi-label with
    ``thresholds``; a frame head, an open-set gate and tuned event decoding of the source are dropped (the new
    head scores windows only). Checks that the head reads ``network.embed`` (its forward is ``head(embed(x))``).

    Raises:
        ConfigError: the source's head does not read its embedding as a linear layer of width ``d``.
    """
    import torch

    from envsound.models.checkpoint import Checkpoint, save_checkpoint
    from envsound.task import MULTI_LABEL, Task
    from envsound.transfer.source import head_keys

    checkpoint = source.checkpoint
    state = {k: v for k, v in (checkpoint.state_dict or {}).items() if not k.startswith("frame_head.")}
    weight_key, bias_key = head_keys(state)
    if state[weight_key].shape[1] != weights.shape[1]:
        raise ConfigError(f"{source.given}: its head reads {state[weight_key].shape[1]}-d vectors, the store holds "
                          f"{weights.shape[1]}-d embeddings; embed the archive again with this model")
    dtype = state[weight_key].dtype
    state[weight_key] = torch.from_numpy(np.ascontiguousarray(weights)).to(dtype)
    state[bias_key] = torch.from_numpy(np.ascontiguousarray(bias)).to(dtype)
    config = copy.deepcopy(checkpoint.config)
    config.model.options = {k: v for k, v in config.model.options.items() if k != "frame_head"}
    config.events.open_set = 0.0
    _check_head_reads_embedding(config, state, len(labels), source.given)
    learned = Checkpoint(config=config, labels=list(labels),
                         task=Task(MULTI_LABEL, class_thresholds=tuple(float(t) for t in thresholds)),
                         state_dict=state, meta={**{k: v for k, v in checkpoint.meta.items()
                                                    if k not in ("events_tuned", "open_set")}, **meta},
                         trained_on=checkpoint.trained_on, trained_prints=checkpoint.trained_prints)
    return save_checkpoint(path, learned)


def _check_head_reads_embedding(config, state: dict, n_labels: int, given: str) -> None:
    """Build the learned network and check that its logits are ``head(embed(x))`` with a head of dropout and one
    linear layer: then the head sees what the store holds."""
    import torch
    from torch import nn

    from envsound.models.clip import build_network, input_shape

    network = build_network(config, n_labels)
    network.load_state_dict(state)
    network.eval()
    head = getattr(network, "head", None)
    parts = [m for m in head.modules() if m is not head] if isinstance(head, nn.Module) else []
    linear = [m for m in parts if isinstance(m, nn.Linear)]
    if not hasattr(network, "embed") or len(linear) != 1 or any(
            not isinstance(m, (nn.Linear, nn.Dropout, nn.Identity)) for m in parts):
        raise ConfigError(f"{given}: its network's head is not one linear layer over network.embed; a learned "
                          "head needs one")
    probe = torch.randn(2, *input_shape(config.features), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if not torch.allclose(network(probe), head(network.embed(probe)), atol=1e-4):
            raise ConfigError(f"{given}: its network's output is not its head applied to network.embed; a learned "
                              "head would not see the stored embeddings")


def _source(windows: EmbeddingsStore):
    """The store's model file, opened; the same file the store was made with (by digest)."""
    from envsound.models.files import CLASSIFIER, RELEASE, open_model_file

    given = windows.network_file(needed_for="learning (its network becomes the learned model's trunk)")
    source = open_model_file(given).require(CLASSIFIER, RELEASE, FROZEN, purpose="learning a head on its embeddings")
    windows.check_network(given, source.digest, fix="learn with the model that made it")
    return source


def _weak_sample(windows: EmbeddingsStore, reviewed: np.ndarray, yes: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """A seeded sample of window ids not in ``reviewed``: max(:data:`WEAK_MIN`, :data:`WEAK_PER_YES` x yes windows),
    or all of them when fewer; sorted. Left out: the windows whose centre lies inside a window of ``yes`` (of the
    same file; at mn04's 5-s windows and a 1-s hop, a yes window's 4 nearest neighbours), so fewer when the sample
    drew them."""
    free = windows.windows - len(np.unique(reviewed))
    wanted = min(max(WEAK_MIN, WEAK_PER_YES * len(yes)), free)
    if wanted <= 0:
        return np.zeros(0, np.int64)
    # drawn with room for the reviewed ones and the yes windows' neighbours, which are then left out
    draw = rng.choice(windows.windows, size=min(windows.windows, 2 * (wanted + len(reviewed))), replace=False)
    picked = _outside(windows, np.setdiff1d(draw, reviewed), yes)
    return np.sort(rng.choice(picked, size=wanted, replace=False)) if len(picked) > wanted else picked


def _outside(windows: EmbeddingsStore, ids: np.ndarray, yes: np.ndarray) -> np.ndarray:
    """``ids`` (sorted) less those whose centre lies in ``[start, end)`` of a ``yes`` window of the same file (the
    rule by which ``envsound label`` gives an event's verdict to the windows in it)."""
    if not len(ids) or not len(yes):
        return ids
    inside: dict[str, list[tuple[float, float]]] = {}
    for row in windows.rows(yes):
        inside.setdefault(row["file"], []).append((row["start"], row["end"]))
    keep = [not any(a <= (row["start"] + row["end"]) / 2 < b for a, b in inside.get(row["file"], ()))
            for row in windows.rows(ids)]
    return ids[np.array(keep, dtype=bool)]


def _check(*, suggest: int, precision: float, negatives: str, disagreements: int = 0,
           context: float = 0.0) -> None:
    if isinstance(context, bool) or not isinstance(context, (int, float)) or not 0.0 <= context < float("inf"):
        raise ConfigError(f"context={context!r} is not valid; valid: seconds >= 0 (0: each window alone)")
    if negatives not in NEGATIVES:
        raise ConfigError(f"negatives={negatives!r} is not valid; valid: {', '.join(NEGATIVES)}")
    for name, value in (("suggest", suggest), ("disagreements", disagreements)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}={value!r} is not valid; valid: a whole number >= 0")
    if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0.0 < precision < 1.0:
        raise ConfigError(f"precision={precision!r} is out of range; valid: 0 < precision < 1")


def _names(labels: str | Sequence[str]) -> list[str]:
    names = [labels] if isinstance(labels, str) else list(labels)
    if not names:
        raise ConfigError("learn needs at least one label name")
    for name in names:
        check_label(name)  # the one check of a label's name (CSV rows, the page, here)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"label {twice[0]!r} is given twice; give each label once")
    return names
