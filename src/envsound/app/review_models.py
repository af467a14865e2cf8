"""What the Review view shows of the models it reviews with, and ``envsound check``'s random sample as a way to review.

- :func:`learned_labels`: each label's learned model (``DB/learned/<label>/model.ckpt``, the one the view's learning
  rounds write and whose scores choose the next candidates): its path, when it was learned, its threshold and what
  its calibration expects (precision and its interval, or "not calibrated" and why), read from the model's own
  ``meta["learned"]``, so a restarted server shows what the last round learned.
- :func:`check_sample`: :func:`envsound.agile.check.check` of a label's learned model (its random sample of the
  windows at or above the threshold, drawn once and kept in a sheet beside the model), with the sample's windows not
  yet reviewed for the label as candidates. Their verdicts go through the view's ``give``, into the same labels
  table as every other review, and count toward check's precision as verdicts given with ``envsound label``.
"""

from __future__ import annotations

import csv
import threading
from datetime import datetime, timezone
from pathlib import Path

from envsound.agile.calibrate import Calibration
from envsound.agile.check import SAMPLE, check
from envsound.agile.learn import MODEL_NAME
from envsound.agile.review import LEARNED, Candidate, NotFound, Review, learned_folder
from envsound.agile.names import check_label
from envsound.errors import ConfigError
from envsound.inference.api import load_model

__all__ = ["SAMPLE", "MAX_SAMPLE", "check_sample", "learned_labels"]
MAX_SAMPLE = 500  # windows a check's sample may hold when asked from the page
_CALIBRATION = ("threshold", "target", "positives", "negatives", "calibrated", "reached", "precision", "recall",
                "folds")
_kept: dict[Path, tuple[int, dict]] = {}  # a learned model's meta["learned"], by its file's modification time
_keeping = threading.Lock()


def learned_labels(db: str | Path, label: str | None = None) -> list[dict]:
    """Each label learned in the Review view of ``db`` (or only ``label``; none when it was never learned), sorted
    by name: ``label``, ``model`` (its file), ``learned`` (when, ISO 8601 UTC), ``threshold``, ``target``,
    ``calibrated``, ``reached``, ``precision`` and ``precision_interval`` (None when not calibrated), ``recall``,
    ``positives``, ``negatives``, and ``why`` / ``wanted`` (why it is not calibrated and the reviews that would
    calibrate it; "" when it is).

    Raises:
        ConfigError: ``label`` is not a label name (a comma, empty).
    """
    wanted = None if label is None else check_label(label)
    found = []
    for path in sorted((Path(db) / LEARNED).glob(f"*/{MODEL_NAME}")):
        stamp, learned = _learned_meta(path)
        for name, values in learned.get("labels", {}).items():
            # a label's model is the one in its own folder (another folder may hold a model learn --out wrote)
            if (wanted is None or name == wanted) and learned_folder(db, name) == path.parent:
                found.append(_described(name, values, path, stamp))
    return sorted(found, key=lambda entry: entry["label"])


def _learned_meta(path: Path) -> tuple[datetime, dict]:
    """The model file's time and its ``meta["learned"]`` ({} for a model learn did not make), read once a version."""
    mtime = path.stat().st_mtime_ns
    with _keeping:
        kept = _kept.get(path)
    if kept is None or kept[0] != mtime:
        # loaded as any model (the app reads models through inference only), on the CPU in fp32: read once a round
        learned = load_model(path, device="cpu", precision="32").describe()["training"].get("learned")
        kept = (mtime, learned if isinstance(learned, dict) else {})
        with _keeping:
            _kept[path] = kept
    return datetime.fromtimestamp(mtime / 1e9, timezone.utc), kept[1]


def _described(name: str, values: dict, path: Path, stamp: datetime) -> dict:
    """One label of a learned model as :func:`learned_labels` answers it."""
    pairs = {key: tuple(values[key]) if values.get(key) else None for key in ("precision_interval", "recall_interval")}
    calibration = Calibration(label=name, **{key: values.get(key) for key in _CALIBRATION if key in values}, **pairs)
    return {"label": name, "model": str(path), "learned": stamp.isoformat(timespec="seconds"),
            **{key: values.get(key) for key in _CALIBRATION if key != "folds"},
            "precision_interval": values.get("precision_interval"), "why": calibration.why(),
            "wanted": calibration.wanted()}


def check_sample(review: Review, label: str, *, sample: int = SAMPLE) -> dict:
    """``check`` of ``label``'s learned model over the store under review: ``check`` (its counts, precision and
    interval: :meth:`Check.to_dict <envsound.agile.check.Check.to_dict>`), ``line`` (check's one line) and
    ``candidates``: the sample's windows with no verdict yet, in window order, ``source="check"``, ``score`` the
    learned model's.

    Raises:
        NotFound: the label was never learned in this store's Review view (no ``DB/learned/<label>/model.ckpt``).
        ConfigError: a bad label or sample size (1-:data:`MAX_SAMPLE`); what ``check`` refuses.
    """
    name = check_label(label)
    if isinstance(sample, bool) or not 1 <= sample <= MAX_SAMPLE:
        raise ConfigError(f"sample={sample}: ask for 1-{MAX_SAMPLE} windows")
    model = learned_folder(review.db, name) / MODEL_NAME
    if not model.is_file():
        raise NotFound(f"{name}: never learned in {review.db} (no {model}); review a round and learn it, then check "
                       "its random sample")
    with review.learning:  # the model file is not rewritten while its sample is drawn
        result = check(model, review.db, labels=[name], sample=sample, store=review.spec).checks[0]
    # the sheet holds each window's verdict where one is known (stored, or written on the sheet): those with none
    candidates = [Candidate(row["window"], row["file"], row["start"], row["end"], row["score"], "check")
                  for row in _sheet(result.sheet) if not row["verdict"]]
    return {"check": result.to_dict(), "line": result.line(), "candidates": [c.to_dict() for c in candidates]}


def _sheet(sheet: Path) -> list[dict]:
    """The windows of check's sheet: ``window``, ``file``, ``start``, ``end``, ``score`` and ``verdict`` ("" when
    none is known) of each row."""
    with open(sheet, encoding="utf-8", newline="") as fh:
        return [{"window": int(row["window"]), "file": row["file"], "start": float(row["start"]),
                 "end": float(row["end"]), "score": float(row["score"]), "verdict": row["verdict"].strip()}
                for row in csv.DictReader(fh)]
