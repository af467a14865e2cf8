"""How precise a learned detector is over the whole store, from a random sample of what it finds (``envsound check
MODEL DB``): the precision ``learn`` calibrates leans on the reviewed windows, which a loop chose because they were
uncertain or found, not at random, so it is a little optimistic (docs/results.md, "From one example to a detector").
A sample drawn uniformly at random from the windows at or above a label's threshold and then reviewed gives the
precision a user can report: ``yes / (yes + no)`` of the sample, with its Wilson interval, and the number of the
label's windows at or above the threshold (those windows times that precision).

Only a model ``envsound learn`` made is checked (its ``meta["learned"]``): a network's own classes (an AudioSet
tagger's 527) were never calibrated on the store, and a sheet each would say nothing. No audio is decoded, so the
model is loaded without the runtime probe that times its network on audio windows.

The sample is a sheet, ``<model's folder>/<label>.check.csv`` (``window,file,start,end,score,label,verdict,
threshold``; the verdict filled in where one is known), drawn once, seeded, and kept while the threshold is the same:
checking again, after the sheet was filled in and given to ``envsound label DB --from SHEET``, counts the current
verdicts of those windows, however given (one reviewed earlier in the loop counts too: a verdict is the truth of its
window whoever chose it). Verdicts on other windows never count here. A new
threshold (the label learned again) draws a new sheet.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from envsound.agile.calibrate import wilson
from envsound.agile.labelled import LabelledStore
from envsound.agile.names import file_name
from envsound.agile.head import store_scores
from envsound.errors import ConfigError
from envsound.fileio import atomic_open
from envsound.inference.embeddings.store import CHUNK_ROWS, EmbeddingsStore
from envsound.models.open_set import admitted

__all__ = ["CHUNK_ROWS", "SAMPLE", "Check", "CheckResult", "check"]  # CHUNK_ROWS: the store's, named here as before
SAMPLE = 50  # windows a sheet: the interval of a precision near 0.9 from 50 answers is about +-0.09
SHEET_COLUMNS = ("window", "file", "start", "end", "score", "label", "verdict", "threshold")


@dataclass(frozen=True)
class Check:
    """One label's check: ``above`` windows of the store score at or above ``threshold``; ``sheet`` holds the
    ``drawn`` windows sampled from them, of which ``yes``, ``no`` and ``unsure`` are reviewed so far."""

    label: str
    threshold: float
    above: int
    sheet: Path
    drawn: int
    yes: int
    no: int
    unsure: int
    new_sheet: bool = False
    unstored: int = 0  # verdicts on the sheet the labels store does not have (not counted)

    @property
    def answered(self) -> int:
        return self.yes + self.no

    @property
    def precision(self) -> float | None:
        return self.yes / self.answered if self.answered else None

    @property
    def precision_interval(self) -> tuple[float, float] | None:
        if not self.answered:
            return None
        low, high = wilson(self.yes, self.answered)
        return float(low), float(high)

    @property
    def expected(self) -> tuple[float, float, float] | None:
        """The label's windows among those at or above the threshold: ``above`` times the precision and its
        interval."""
        if not self.answered:
            return None
        low, high = self.precision_interval
        return self.above * self.precision, self.above * low, self.above * high

    def line(self) -> str:
        """One line: what was drawn, and the precision and count its stored verdicts give (or what to do next)."""
        if not self.above:
            return f"{self.label}: no window of the store scores at or above its threshold {self.threshold:.3f}"
        text = self._said()
        if self.unstored:
            text += (f"; {self.unstored} verdicts on the sheet are not stored yet (envsound label DB --from "
                     f"{self.sheet})")
        return text

    def _said(self) -> str:
        head = (f"{self.label}: {self.drawn} of the {self.above:,} windows at or above {self.threshold:.3f} drawn at "
                f"random into {self.sheet}")
        if not self.answered:
            said = f"{self.unsure} unsure, none yes or no" if self.unsure else "none reviewed yet"
            return (f"{head}; {said}: give each a verdict (yes, no or unsure) and store them with envsound "
                    f"label DB --from {self.sheet}, then check again")
        low, high = self.precision_interval
        mid, few, many = self.expected
        text = (f"{head}; {self.answered} reviewed ({self.yes} yes, {self.no} no): precision {self.precision:.2f} "
                f"({low:.2f}-{high:.2f}, Wilson 95 %), about {mid:,.0f} ({few:,.0f}-{many:,.0f}) {self.label} "
                "windows at or above the threshold")
        left = self.drawn - self.answered - self.unsure
        return text + (f"; {left} of the sheet still to review" if left else "")

    def to_dict(self) -> dict:
        return {"label": self.label, "threshold": self.threshold, "above": self.above, "sheet": str(self.sheet),
                "drawn": self.drawn, "yes": self.yes, "no": self.no, "unsure": self.unsure,
                "precision": self.precision,
                "precision_interval": list(self.precision_interval) if self.answered else None,
                "expected": list(self.expected) if self.answered else None, "interval": "wilson 95%",
                "new_sheet": self.new_sheet, "unstored": self.unstored}


@dataclass
class CheckResult:
    """Each checked label's :class:`Check`, in the model's order."""

    model: Path
    checks: list[Check] = field(default_factory=list)

    def line(self) -> str:
        """One line: the model and, per label, its precision so far or that its sheet awaits review (as
        :meth:`LearnResult.line <envsound.agile.learn.LearnResult.line>` says a learned model in one line)."""
        said = [f"{c.label} precision {c.precision:.2f} from {c.answered} of {c.drawn}" if c.answered else
                f"{c.label} {c.drawn} to review" if c.above else f"{c.label} none above {c.threshold:.3f}"
                for c in self.checks]
        return f"{self.model}: checked {', '.join(said) or 'no label'}"

    def lines(self) -> list[str]:
        """Each label's :meth:`Check.line` (the CLI prints these)."""
        return [check.line() for check in self.checks]

    def to_dict(self) -> dict:
        return {"model": str(self.model), "checks": [check.to_dict() for check in self.checks]}


def check(model: str | os.PathLike, db: str | os.PathLike, *, labels: str | Sequence[str] | None = None,
          sample: int = SAMPLE, seed: int = 0, store: str | None = None, density: bool = False):
    """Check each of ``labels`` (default: all of ``model``'s) of the learned ``model`` over the embeddings store
    ``db``: draw ``sample`` windows at random from those at or above its threshold into a sheet beside the model (kept
    while the threshold stays), and count the verdicts its windows have in the labels store (see the module).
    ``density``: the call density instead (:func:`envsound.agile.density.call_density`, the same arguments): a sample
    stratified over score bins, below the threshold too, into ``<label>.density.csv``; returns its
    :class:`~envsound.agile.density.DensityResult` rather than a :class:`CheckResult`.

    Args:
        model: a model whose head reads ``db``'s embeddings (``envsound learn``'s ``model.ckpt``).
        db: the store folder (``envsound embed MODEL INPUTS --out DB``).
        labels: the labels to check; each must be one of the model's.
        sample: windows a sheet (>= 1); a kept sheet of another size is drawn again.
        seed: seeds the draw.
        store: the labels store's URL or path (default ``db/review.sqlite``).

    >>> result = check("chainsaw.model/model.ckpt", "recordings.db")
    >>> result.checks[0].precision, result.checks[0].expected

    Raises:
        ConfigError: ``db`` is not a store, ``model`` is not one ``envsound learn`` made or cannot read its
            embeddings, a label not the model's, a bad sample size.
        CheckpointError: ``model`` cannot be loaded.
    """
    if density:
        from envsound.agile.density import call_density

        return call_density(model, db, labels=labels, sample=sample, seed=seed, store=store)
    opened = open_checked(model, db, labels=labels, sample=sample, store=store)
    result = CheckResult(Path(model))
    for name in opened.chosen:
        at = opened.names.index(name)
        threshold = float(opened.thresholds[at])
        sheet = opened.folder / f"{file_name(name)}.check.csv"
        drawn, above = _draw(opened.windows, opened.predictor, at, threshold, sample, seed)
        kept = sheet_round(sheet, opened.windows, drawn, name, threshold, min(sample, above), opened.current(name))
        result.checks.append(Check(name, threshold, above, sheet, len(kept.ids), kept.answers.count("yes"),
                                   kept.answers.count("no"), kept.answers.count("unsure"), new_sheet=kept.new_sheet,
                                   unstored=kept.unstored))
    return result


@dataclass
class Opened:
    """A learned model opened over a store for a check: its labels, thresholds, folder (where the sheets go) and the
    chosen labels' stored verdicts."""

    windows: EmbeddingsStore
    predictor: object
    names: list[str]
    chosen: list[str]
    thresholds: np.ndarray
    folder: Path
    verdicts: dict

    def current(self, name: str) -> dict[int, str]:
        """The stored verdict of each window reviewed for ``name``: ``{window: verdict}``."""
        given = self.verdicts[name]
        return dict(zip(given.windows.tolist(), given.verdicts.tolist()))


def open_checked(model: str | os.PathLike, db: str | os.PathLike, *, labels: str | Sequence[str] | None,
                 sample: int, store: str | None) -> Opened:
    """Open ``model`` over ``db`` for :func:`check` (or the call density): the sample size and labels checked, the
    model loaded without the runtime probe and refused when ``envsound learn`` did not make it.

    Raises:
        ConfigError, CheckpointError: as :func:`check` says.
    """
    from envsound.inference.predictor import Predictor
    from envsound.inference.scan.rank import check_reads

    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ConfigError(f"sample must be a whole number of windows >= 1, got {sample!r}")
    labelled = LabelledStore.open(db, store)
    windows = labelled.windows
    predictor = Predictor.from_checkpoint(model, device="cpu", precision="32", timed=False)  # it scores no audio
    check_reads(predictor, windows, model)
    _require_learned(predictor, model)
    names = list(predictor.labels)
    chosen = names if labels is None else ([labels] if isinstance(labels, str) else list(labels))
    for name in chosen:
        if name not in names:
            raise ConfigError(f"{model}: has no label {name!r} (its labels: {', '.join(names)})")
    with labelled:
        verdicts = labelled.verdicts(chosen)
    return Opened(windows, predictor, names, chosen, predictor.model.task.thresholds(len(names)),
                  Path(predictor.source.path).parent, verdicts)


@dataclass(frozen=True)
class Round:
    """A sheet after one check: its windows and scores (window order), the stored verdict of each (None: none), how
    many of its own verdicts the store lacks, and whether it was drawn anew."""

    ids: np.ndarray
    scores: np.ndarray
    answers: list
    unstored: int
    new_sheet: bool


def sheet_round(sheet: Path, windows: EmbeddingsStore, drawn: tuple[np.ndarray, np.ndarray], label: str,
                threshold: float, size: int, current: dict[int, str], *,
                extra: Callable[[np.ndarray, np.ndarray], dict[str, list]] | None = None) -> Round:
    """Keep the sheet drawn before for ``label`` at ``threshold`` (of ``size`` windows, still the store's), else take
    ``drawn`` (``(ids, scores)``; refused over a sheet holding verdicts the store lacks), and write it back with the
    verdicts known: the store's ``current``, else the sheet's own. ``extra(ids, scores)``: columns added after
    :data:`SHEET_COLUMNS`, ``{name: values}``."""
    on_sheet = _read_sheet(sheet)
    kept = _kept(on_sheet, windows, label, threshold, size)
    if kept is None:
        _refuse_unstored(sheet, on_sheet, current)
        ids, scores = drawn
    else:
        ids, scores = kept
    # the sheet's own answers where the store has another or none: a reviewer's work not stored yet, kept
    written = {row["window"]: row["verdict"] for row in on_sheet or [] if kept is not None and row["verdict"]}
    _write_sheet(sheet, windows, ids, scores, label, threshold, {**current, **written},
                 extra(ids, scores) if extra else {})
    unstored = sum(current.get(window) != verdict for window, verdict in written.items())
    return Round(ids, scores, [current.get(window) for window in ids.tolist()], unstored, kept is None)


def _require_learned(predictor, model: str | os.PathLike) -> None:
    """Refuse a model ``envsound learn`` did not make (no ``meta["learned"]``): its thresholds were never calibrated
    on reviewed windows, and an AudioSet tagger would get 527 sheets."""
    if not isinstance((getattr(predictor.model, "meta", None) or {}).get("learned"), dict):
        raise ConfigError(f"{model}: is not a model envsound learn made ({len(predictor.labels)} labels of its own, "
                          "no threshold calibrated on reviewed windows); check the DIR/model.ckpt that envsound learn "
                          "DB --label NAME --out DIR writes")


class _ModelHead:
    """A learned model's own head as the loop's heads score (``predict_proba``): its network's head, the task's
    activation and any open-set gate, so the windows score as ``predict`` scores them."""

    def __init__(self, model) -> None:
        self.model = model

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return admitted(self.model.head_probs(x))


def _draw(windows: EmbeddingsStore, predictor, at: int, threshold: float, sample: int,
          seed: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """``sample`` windows drawn uniformly from those at or above ``threshold`` (each gets a seeded random key; the
    smallest keys are kept, one chunk at a time: no list of every window above is held), as ``(ids, scores)`` in
    window order, and the number above."""
    rng = np.random.default_rng(seed)
    ids, scores, keys = np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0)
    above = 0
    for chunk_ids, probs in store_scores(windows, _ModelHead(predictor.model), context=predictor.context_seconds):
        chunk = probs[:, at]
        hit = np.flatnonzero(chunk >= threshold)
        above += len(hit)
        ids = np.concatenate([ids, chunk_ids[hit]])
        scores = np.concatenate([scores, chunk[hit].astype(np.float32)])
        keys = np.concatenate([keys, rng.random(len(hit))])
        if len(keys) > sample:
            keep = np.argpartition(keys, sample - 1)[:sample]
            ids, scores, keys = ids[keep], scores[keep], keys[keep]
    order = np.argsort(ids)
    return (ids[order], scores[order]), above


def _read_sheet(sheet: Path) -> list[dict] | None:
    """A sheet's rows (dicts of its columns), or None: none there, or not a sheet this module could write."""
    try:
        with open(sheet, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            row["window"], row["score"], row["threshold"] = (int(row["window"]), float(row["score"]),
                                                             float(row["threshold"]))
            row["start"], row["end"] = float(row["start"]), float(row["end"])
            row["verdict"] = (row["verdict"] or "").strip().lower()
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError):
        return None
    return rows


def _kept(rows: list[dict] | None, windows: EmbeddingsStore, label: str, threshold: float,
          size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The windows and scores of a sheet drawn before for this label at this threshold, of this size, whose windows
    are still the store's (``embed`` renumbers the windows after a changed file's), or None: drawn again."""
    if not rows or len(rows) != size or any(row["label"] != label or row["threshold"] != threshold for row in rows):
        return None
    ids = np.array([row["window"] for row in rows], dtype=np.int64)
    if ids.min() < 0 or ids.max() >= windows.windows:
        return None
    for row, now in zip(rows, windows.rows(ids)):
        if (now["file"], round(now["start"], 6), round(now["end"], 6)) != (row["file"], round(row["start"], 6),
                                                                         round(row["end"], 6)):
            return None
    return ids, np.array([row["score"] for row in rows], dtype=np.float32)


def _refuse_unstored(sheet: Path, rows: list[dict] | None, current: dict[int, str]) -> None:
    """Refuse to draw a new sheet over one holding verdicts the labels store does not have: a reviewer's work."""
    unstored = [row for row in rows or [] if row["verdict"] and current.get(row["window"]) != row["verdict"]]
    if unstored:
        raise ConfigError(f"{sheet}: holds {len(unstored)} verdicts not in the labels store, and a new sheet is to be "
                          "drawn (the threshold or the windows changed); store them first with envsound label DB "
                          f"--from {sheet}, or remove the sheet")


def _write_sheet(sheet: Path, windows: EmbeddingsStore, ids: np.ndarray, scores: np.ndarray, label: str,
                 threshold: float, known: dict[int, str], extra: dict[str, list]) -> None:
    """The sheet, the verdicts known so far filled in: the labels store's, else what the sheet held (answers not
    stored yet are kept). A CSV ``envsound label --from`` reads: its empty verdicts are left out, the other columns
    ignored."""
    rows = windows.rows(ids) if len(ids) else []
    sheet.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(sheet) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(SHEET_COLUMNS + tuple(extra))
        for at, (window, score, row) in enumerate(zip(ids.tolist(), scores.tolist(), rows)):
            writer.writerow([window, row["file"], float(row["start"]), float(row["end"]), round(score, 6), label,
                             known.get(window, ""), repr(threshold)] + [values[at] for values in extra.values()])
        text.flush()
        text.detach()
