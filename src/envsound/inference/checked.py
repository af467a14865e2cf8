"""The precision a learned detector's counts carry (the scan's ``counts/`` table): ``check``'s when ``envsound check``
drew a sample for the label at the threshold it is decided at and verdicts were given on it, else ``learn``'s.

``learn``'s precision comes from out-of-fold scores of the windows the loop chose to review (uncertain or found
ones, not a random draw), so it leans optimistic; ``check``'s comes from windows drawn uniformly at random from those
at or above the threshold, the one to report. ``envsound check`` keeps its sample as a sheet beside the model,
``<label>.check.csv`` (columns ``window, file, start, end, score, label, verdict, threshold``: see
``envsound.agile.check``), its verdicts filled in from the labels store each time it runs (and by a reviewer in
between). That sheet is read here, by its columns (inference sits below the agile loop, which it cannot import):
its ``yes`` and ``no`` verdicts give the precision and its Wilson 95 % interval, as ``check`` computes them
(:func:`envsound.evaluation.metrics.wilson`, the one both use).
"""

from __future__ import annotations

import csv
from pathlib import Path

from envsound.evaluation.metrics import wilson


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
        out[k] = {"precision": sheet["yes"] / answered, "low": float(low), "high": float(high), "from": "check"}
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
