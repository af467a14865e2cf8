"""The precision a learned detector's counts carry (the scan's ``counts/`` table): ``check``'s when ``envsound check``
drew a sample for the label at the threshold it is decided at and verdicts were given on it, else ``learn``'s.

``learn``'s precision comes from out-of-fold scores of the windows the loop chose to review (uncertain or found
ones, not a random draw), so it leans optimistic; ``check``'s comes from windows drawn uniformly at random from those
at or above the threshold, the one to report. ``envsound check`` keeps its sample as a sheet beside the model,
``<label>.check.csv`` (columns ``window, file, start, end, score, label, verdict, threshold``: see
``envsound.agile.check``), its verdicts filled in from the labels store each time it runs (and by a reviewer in
between). That sheet is read here, by its columns (inference sits below the agile loop, which it cannot import):
its ``yes`` and ``no`` verdicts give the precision and its Wilson 95 % interval, as ``check`` computes them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def carried_precision(predictor) -> list[dict | None]:
    """Per class of ``predictor`` (a :class:`~envsound.inference.predictor.Predictor`), the precision its counts
    carry: ``{"precision", "low", "high", "from"}`` (``from``: ``check`` or ``learn``), or None: neither a check at
    the threshold used nor a calibration at it (a model ``envsound learn`` did not make carries none)."""
    learned = predictor.expected_precision
    out = [None if known is None else {**known, "from": "learn"} for known in learned]
    if not predictor.learned or predictor.source is None:
        return out
    used = predictor.task.thresholds(len(predictor.labels))
    sheets = check_sheets(Path(predictor.source.path).parent)
    for k, name in enumerate(predictor.labels):
        sheet = sheets.get(name)
        if sheet is None or abs(sheet["threshold"] - float(used[k])) > 1e-9 or not sheet["yes"] + sheet["no"]:
            continue
        answered = sheet["yes"] + sheet["no"]
        low, high = wilson(sheet["yes"], answered)
        out[k] = {"precision": sheet["yes"] / answered, "low": low, "high": high, "from": "check"}
    return out


def check_sheets(folder: Path) -> dict[str, dict]:
    """The check sheets in ``folder``, by label: ``{"threshold", "yes", "no"}``; a file that is not a whole sheet
    of one label at one threshold is left out."""
    found: dict[str, dict] = {}
    for path in sorted(folder.glob("*.check.csv")):
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
            labels = {row["label"] for row in rows}
            thresholds = {float(row["threshold"]) for row in rows}
            verdicts = [(row["verdict"] or "").strip().lower() for row in rows]
        except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError):
            continue
        if len(labels) == 1 and len(thresholds) == 1:
            found[labels.pop()] = {"threshold": thresholds.pop(), "yes": verdicts.count("yes"),
                                   "no": verdicts.count("no")}
    return found


def wilson(successes: int, trials: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials`` (``trials`` >= 1) at the normal quantile ``z``."""
    share, spread = successes / trials, z * z / trials
    middle = (share + spread / 2) / (1 + spread)
    half = z * math.sqrt(share * (1 - share) / trials + spread / (4 * trials)) / (1 + spread)
    return max(middle - half, 0.0), min(middle + half, 1.0)
