"""Answers to look at again in the Review view: the reviewed windows a label's head disagrees with, out of fold.

:func:`look_again` learns the label from its current verdicts (the latest verdict of each window counts) as
``envsound learn --disagreements K`` does (:func:`envsound.agile.learn.learn`, :mod:`envsound.agile.disagree`), into
a temporary folder: the label's model in ``DB/learned/<label>/`` and its suggestions are left as the last learning
round wrote them. The ``K`` windows whose out-of-fold score is farthest from their verdict become candidates, each
with its verdict and score; a new verdict on one goes through the view's ``give`` into the labels table as any other.
"""

from __future__ import annotations

import tempfile

from envsound.agile.learn import learn
from envsound.agile.names import check_label
from envsound.agile.review import MAX_CANDIDATES, Review
from envsound.errors import ConfigError

__all__ = ["AGAIN", "look_again"]
AGAIN = 10  # answers listed for a second look when the page does not say how many


def look_again(review: Review, label: str, *, k: int = AGAIN) -> dict:
    """The ``k`` reviewed windows of ``label`` farthest from their verdicts out of fold, farthest first:
    ``label``, ``disagreeing`` (how many of all its reviewed windows the head, not having seen them, would decide
    otherwise), ``line`` (that count in words, "" when none), ``calibrated`` and ``why`` (a label not calibrated has no
    out-of-fold scores, so nothing to list), and ``candidates``: ``window``, ``file``, ``start``, ``end``, ``verdict``
    (the current one, ``yes``/``no``), ``score`` (out of fold, 0-1), ``disagrees`` and ``source="again"``.

    Raises:
        ConfigError: a bad label or ``k`` (1-:data:`~envsound.agile.review.MAX_CANDIDATES`); a label with no ``yes``.
    """
    name = check_label(label)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CANDIDATES:
        raise ConfigError(f"k={k!r}: ask for 1-{MAX_CANDIDATES} answers to look at again")
    with review.learning, tempfile.TemporaryDirectory(prefix="envsound-again-") as out:
        # one learning at a time (as the view's rounds); the model written here is thrown away
        found = learn(review.db, name, out=out, store=review.spec, disagreements=k, progress=False).labels[0]
    calibration = found.calibration
    return {"label": name, "disagreeing": found.disagreeing, "line": disagreeing_line(found.disagreeing),
            "calibrated": calibration.calibrated, "why": calibration.why(),
            "candidates": [{"window": d.window, "file": d.file, "start": d.start, "end": d.end, "verdict": d.verdict,
                            "score": d.score, "disagrees": d.disagrees, "source": "again"}
                           for d in found.disagreements]}


def disagreeing_line(count: int) -> str:
    """How many reviewed windows disagree with the head out of fold, in words ("" when none)."""
    if not count:
        return ""
    return f"{count} reviewed {'window disagrees' if count == 1 else 'windows disagree'} with the head out of fold"
