"""Write one evaluation to disk: the JSON report, its text rendering and the confusion-matrix figure."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from envsound.evaluation.metrics import format_report_text
from envsound.evaluation.plots import plot_class_scores, plot_confusion_matrix
from envsound.fileio import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["write_report"]


def write_report(
    report: dict[str, Any], *, out_dir: str | os.PathLike, stem: str = "report", title: str | None = None,
    figure: bool = True,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.txt`` and (when ``figure``) ``<stem>_confusion.png`` (single-label) or
    ``<stem>_per_class_ap.png`` (multi-label) into ``out_dir``.

    Args:
        report: a :func:`~envsound.evaluation.metrics.task_report` dict (extra JSON-ready keys, such as the fold
            number or the run config, are kept in the JSON file).
        out_dir: directory, created if needed.
        stem: file-name stem, e.g. ``"fold1"`` or ``"test"``.
        title: confusion-matrix title (default from the plot function).
        figure: also draw the confusion matrix.

    Returns:
        ``{"json": path, "text": path, "confusion_png" or "per_class_png": path (only when figure)}``; every file is
        written atomically.

    >>> report = classification_report(y_true, y_prob, labels=names)  # doctest: +SKIP
    >>> paths = write_report(report, out_dir="runs/x/eval", stem="fold1")  # doctest: +SKIP
    """
    out = Path(out_dir)
    paths = {
        "json": write_json_atomic(out / f"{stem}.json", report),
        "text": write_text_atomic(out / f"{stem}.txt", format_report_text(report)),
    }
    if figure and report.get("task") == "multi_label":
        paths["per_class_png"] = plot_class_scores(report, path=out / f"{stem}_per_class_ap.png", title=title)
    elif figure:
        paths["confusion_png"] = plot_confusion_matrix(
            report["confusion_matrix"], labels=report["labels"], path=out / f"{stem}_confusion.png", title=title
        )
    logger.info("evaluation report written to %s", out)
    return paths
