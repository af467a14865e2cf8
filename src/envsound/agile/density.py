"""Call density: how much of a store holds a learned label, and how much of it the detector finds (``envsound check
MODEL DB --density``, ``envsound.check(..., density=True)``).

``check`` samples only the windows at or above the threshold, so it says the precision, never what the detector
misses. Here the sample is stratified over score bins of the model's scores on all the store's windows, below the
threshold too (as perch-hoplite's call density does): bins cut at the score quantiles :data:`QUANTILES` (each bin
half as large as the one below it, so the rare high scores where the sound lives get as many answers as the common
low ones) and at the threshold (so the windows above and below it never share a bin). Each bin gets an equal share of
the sample, drawn uniformly at random within it, seeded.

Once reviewed, each bin's share of windows holding the sound has a Beta posterior, ``Beta(yes + 0.1, no + 0.9)``
(:data:`PRIOR`: a prior worth one window, as weak as Jeffreys' ``Beta(1/2, 1/2)``, but saying a tenth of a bin, not
half, holds the sound before any answer: the sound is rare below the threshold, and a symmetric prior in the largest,
lowest bins outweighs their few ``no`` answers; measured with experiments/agile_density.py on ESC-10's archive, 50
answers, 3 seeds, Jeffreys' interval held the true share for 19, 25 and 18 of 30 with mn04, YAMNet and BirdNET,
this one for 29, 29 and 30). The store's share is those shares weighted by the bins' sizes, and its 95 % interval
the 2.5 and 97.5 percentiles of :data:`DRAWS` draws from the posteriors. The same draws give the share of
recording time (each window weighted by the time it alone covers: up to the next window's start in its file, so
overlapping windows are not counted twice) and the detector's recall at its threshold (the sound's windows at or
above it over all the sound's windows). Unsure answers count in neither.

The sheet is ``<model's folder>/<label>.density.csv``: ``check``'s sheet (its columns, its kept-while-the-threshold-
stays rule, ``envsound label DB --from SHEET`` reads it) with the column ``bin`` added (0: the lowest scores).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from envsound.agile.check import SAMPLE, open_checked, sheet_round
from envsound.agile.head import store_scores
from envsound.agile.names import file_name
from envsound.inference.embeddings.store import EmbeddingsStore

__all__ = ["QUANTILES", "Density", "DensityResult", "call_density", "estimate"]
QUANTILES = (0.5, 0.75, 0.875, 0.9375)  # bin edges as score quantiles: each bin above half the size of the one below
DRAWS = 20_000  # posterior draws for the intervals: their percentiles move by about 0.001 from run to run
PRIOR = (0.1, 0.9)  # Beta(yes + 0.1, no + 0.9) per bin: one window's worth of prior, a tenth of it yes (the module)


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95 % interval (posterior median, 2.5 and 97.5 percentiles)."""

    value: float
    low: float
    high: float

    def listed(self) -> list[float]:
        return [self.value, self.low, self.high]


@dataclass(frozen=True)
class Bin:
    """One score bin: scores in ``[low, high)`` (the top bin includes 1), ``windows`` of the store, ``seconds`` of
    recording they alone cover, ``drawn`` into the sheet, of which ``yes``/``no``/``unsure`` reviewed so far."""

    low: float
    high: float
    windows: int
    seconds: float
    drawn: int
    yes: int
    no: int
    unsure: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Density:
    """One label's call density: the bins, the sheet, and (once some are answered) the share of windows and of
    recording time that hold the label and the detector's recall at ``threshold`` (None before any answer)."""

    label: str
    threshold: float
    sheet: Path
    bins: list[Bin]
    new_sheet: bool = False
    unstored: int = 0
    windows_share: Interval | None = None
    time_share: Interval | None = None
    recall: Interval | None = None

    @property
    def drawn(self) -> int:
        return sum(b.drawn for b in self.bins)

    @property
    def answered(self) -> int:
        return sum(b.yes + b.no for b in self.bins)

    @property
    def windows(self) -> int:
        return sum(b.windows for b in self.bins)

    @property
    def seconds(self) -> float:
        return sum(b.seconds for b in self.bins)

    def line(self) -> str:
        """One line: what was drawn and, once reviewed, the shares and the recall with their intervals."""
        head = (f"{self.label}: {self.drawn} of the {self.windows:,} windows drawn over {len(self.bins)} score bins "
                f"into {self.sheet}")
        yes, no = sum(b.yes for b in self.bins), sum(b.no for b in self.bins)
        if not self.answered:
            return (f"{head}; none reviewed yet: give each a verdict (yes, no or unsure) and store them with envsound "
                    f"label DB --from {self.sheet}, then check --density again")
        share, time, recall = self.windows_share, self.time_share, self.recall
        text = (f"{head}; {self.answered} reviewed ({yes} yes, {no} no): {share.value:.1%} of the windows hold "
                f"{self.label} ({share.low:.1%}-{share.high:.1%}, 95 %), {time.value:.1%} of the recording time "
                f"(about {_duration(time.value * self.seconds)} of {_duration(self.seconds)}); recall at "
                f"{self.threshold:.3f}: {recall.value:.2f} ({recall.low:.2f}-{recall.high:.2f})")
        left = self.drawn - self.answered - sum(b.unsure for b in self.bins)
        text += f"; {left} of the sheet still to review" if left else ""
        if self.unstored:
            text += (f"; {self.unstored} verdicts on the sheet are not stored yet (envsound label DB --from "
                     f"{self.sheet})")
        return text

    def to_dict(self) -> dict:
        said = {name: getattr(self, name).listed() if getattr(self, name) else None
                for name in ("windows_share", "time_share", "recall")}
        return {"label": self.label, "threshold": self.threshold, "sheet": str(self.sheet), "windows": self.windows,
                "seconds": self.seconds, "drawn": self.drawn, "answered": self.answered,
                "bins": [b.to_dict() for b in self.bins], **said, "interval": "beta posterior 95%, [value, low, high]",
                "new_sheet": self.new_sheet, "unstored": self.unstored}


@dataclass
class DensityResult:
    """Each label's :class:`Density`, in the model's order (what ``check(..., density=True)`` returns)."""

    model: Path
    densities: list[Density] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Each label's :meth:`Density.line` (the CLI prints these)."""
        return list(map(Density.line, self.densities))

    def to_dict(self) -> dict:
        return {"model": str(self.model), "densities": list(map(Density.to_dict, self.densities))}

    def line(self) -> str:
        """One line: the model and, per label, its share of windows so far or that its sheet awaits review."""
        said = ", ".join(f"{d.label} {d.windows_share.value:.1%} of windows from {d.answered} of {d.drawn}"
                         if d.answered else f"{d.label} {d.drawn} to review" for d in self.densities)
        return f"{self.model}: call density {said or 'of no label'}"


def call_density(model: str | os.PathLike, db: str | os.PathLike, *, labels: str | Sequence[str] | None = None,
                 sample: int = SAMPLE, seed: int = 0, store: str | None = None) -> DensityResult:
    """The call density of each of ``labels`` (default: all the learned ``model``'s) over the store ``db``: draw
    ``sample`` windows stratified over score bins into ``<label>.density.csv`` beside the model (kept while the
    threshold stays), and estimate from the verdicts its windows have (see the module). The arguments and errors
    are :func:`envsound.agile.check.check`'s.

    >>> result = call_density("chainsaw.model/model.ckpt", "recordings.db")
    >>> result.densities[0].windows_share, result.densities[0].recall
    """
    opened = open_checked(model, db, labels=labels, sample=sample, store=store)
    ids, probs = _all_scores(opened.windows, opened.predictor)
    seconds = own_seconds(opened.windows, ids)
    result = DensityResult(Path(model))
    for name in opened.chosen:
        at = opened.names.index(name)
        threshold = float(opened.thresholds[at])
        scores = probs[:, at]
        edges = bin_edges(scores, threshold)
        bins = np.searchsorted(edges, scores, side="right")
        drawn = _draw(ids, scores, bins, len(edges) + 1, sample, seed)
        sheet = opened.folder / f"{file_name(name)}.density.csv"
        kept = sheet_round(sheet, opened.windows, drawn, name, threshold, len(drawn[0]), opened.current(name),
                           extra=lambda window, _: {"bin": bins[_positions(ids, window)].tolist()})
        result.densities.append(_density(name, threshold, sheet, kept, edges, bins, bins[_positions(ids, kept.ids)],
                                         seconds, seed))
    return result


def bin_edges(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The inner edges of the score bins, ascending: the scores' :data:`QUANTILES` and ``threshold``, each once,
    those that leave a bin empty below them left out. A score ``s`` falls in bin ``searchsorted(edges, s, "right")``
    (a score equal to an edge goes to the bin above it: at or above the threshold is above)."""
    inner = np.unique(np.r_[np.quantile(scores, QUANTILES) if len(scores) else [], threshold])
    return inner[inner > scores.min()] if len(scores) else inner


def estimate(windows: np.ndarray, seconds: np.ndarray, yes: np.ndarray, no: np.ndarray, above: np.ndarray, *,
             seed: int = 0, draws: int = DRAWS,
             prior: tuple[float, float] = PRIOR) -> tuple[Interval, Interval, Interval]:
    """The share of windows, the share of time and the recall at the threshold, each with its 95 % interval, from
    the bins' sizes ``windows`` ``(b,)`` and ``seconds`` ``(b,)``, their ``yes``/``no`` answers ``(b,)`` and
    ``above`` ``(b,)`` bool (the bin is at or above the threshold): ``Beta(yes + prior[0], no + prior[1])`` per bin,
    drawn ``draws`` times.

    >>> share, time, recall = estimate(np.array([900, 90, 10]), ..., np.array([0, 2, 9]), np.array([10, 8, 1]), ...)
    """
    rng = np.random.default_rng(seed)
    p = rng.beta(np.asarray(yes) + prior[0], np.asarray(no) + prior[1], size=(draws, len(windows)))
    held = p * np.asarray(windows, dtype=np.float64)
    share = held.sum(axis=1) / max(float(np.sum(windows)), 1.0)
    time = (p * np.asarray(seconds, dtype=np.float64)).sum(axis=1) / max(float(np.sum(seconds)), 1e-9)
    recall = held[:, np.asarray(above, dtype=bool)].sum(axis=1) / np.maximum(held.sum(axis=1), 1e-12)
    return tuple(Interval(*map(float, np.percentile(d, [50, 2.5, 97.5]))) for d in (share, time, recall))


def own_seconds(windows: EmbeddingsStore, ids: np.ndarray) -> np.ndarray:
    """The recording time each of ``ids`` alone covers, seconds ``(n,)``: from its start to the next window's start
    in its file, or to its end (the file's last window, or a gap)."""
    table = windows.columns(("window", "file", "start", "end"), dictionary=True)
    window = table["window"].to_numpy()
    file = table["file"].combine_chunks().indices.to_numpy(zero_copy_only=False)
    start, end = table["start"].to_numpy(), table["end"].to_numpy()
    order = np.lexsort((start, file))
    following = np.r_[start[order][1:], np.inf]
    same = np.r_[file[order][1:] == file[order][:-1], False]
    own = np.empty(len(window))
    own[order] = np.where(same, np.minimum(following, end[order]), end[order]) - start[order]
    return own[_positions(window, ids)]


def _duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``42 s``, ``17 min``, ``2.5 h``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def _positions(among: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Where each of ``ids`` stands in ``among`` (window ids, each there once)."""
    sorter = np.argsort(among, kind="stable")
    return sorter[np.searchsorted(among, ids, sorter=sorter)]


def _all_scores(windows: EmbeddingsStore, predictor) -> tuple[np.ndarray, np.ndarray]:
    """Every window's id ``(n,)`` and scores ``(n, labels)``, float32: the quantiles need them all (4 bytes a window
    a label)."""
    from envsound.agile.check import _ModelHead

    parts = list(store_scores(windows, _ModelHead(predictor.model), context=predictor.context_seconds))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, len(predictor.labels)), np.float32)
    return np.concatenate([i for i, _ in parts]), np.concatenate([p.astype(np.float32) for _, p in parts])


def _draw(ids: np.ndarray, scores: np.ndarray, bins: np.ndarray, count: int, sample: int,
          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``min(sample, windows)`` windows, an equal share a bin (what a small bin cannot take goes to the others; the
    highest bins get the remainder), uniform within a bin; ``(ids, scores)`` in window order."""
    rng = np.random.default_rng(seed)
    sizes = np.bincount(bins, minlength=count)
    take = np.zeros(count, np.int64)
    left = min(sample, len(ids))
    while left:  # one window a bin in turn, the highest bins first, skipping the bins drawn out
        for b in np.flatnonzero(take < sizes)[::-1][:left]:
            take[b] += 1
            left -= 1
    chosen = np.concatenate([rng.choice(np.flatnonzero(bins == b), take[b], replace=False) for b in range(count)])
    order = np.argsort(ids[chosen])
    return ids[chosen][order], scores[chosen][order]


def _density(name: str, threshold: float, sheet: Path, kept, edges: np.ndarray, bins: np.ndarray,
             on_sheet: np.ndarray, seconds: np.ndarray, seed: int) -> Density:
    """One label's :class:`Density` from its sheet's round: the bins' sizes from every window's bin ``bins``, their
    answers from the sheet's windows (in bins ``on_sheet``)."""
    count = len(edges) + 1
    first_above = int(np.searchsorted(edges, threshold, side="right"))  # threshold <= every score: all bins above
    answers = np.array([answer or "" for answer in kept.answers], dtype=object)
    sizes = np.bincount(bins, minlength=count)
    time = np.bincount(bins, weights=seconds, minlength=count)
    counted = {v: np.bincount(on_sheet[answers == v], minlength=count) for v in ("yes", "no", "unsure")}
    drawn = np.bincount(on_sheet, minlength=count)
    bounds = np.r_[0.0, edges, 1.0]
    kept_bins = [b for b in range(count) if sizes[b]]
    made = [Bin(float(bounds[b]), float(bounds[b + 1]), int(sizes[b]), float(time[b]), int(drawn[b]),
                int(counted["yes"][b]), int(counted["no"][b]), int(counted["unsure"][b])) for b in kept_bins]
    density = Density(name, threshold, sheet, made, new_sheet=kept.new_sheet, unstored=kept.unstored)
    if not density.answered:
        return density
    share, time_share, recall = estimate(np.array([b.windows for b in made]), np.array([b.seconds for b in made]),
                                         np.array([b.yes for b in made]), np.array([b.no for b in made]),
                                         np.array([b >= first_above for b in kept_bins]), seed=seed)
    return Density(name, threshold, sheet, made, new_sheet=kept.new_sheet, unstored=kept.unstored,
                   windows_share=share, time_share=time_share, recall=recall)
