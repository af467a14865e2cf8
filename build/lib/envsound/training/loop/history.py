"""A resumed run keeps the training curve it logged before the interruption.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its writer starts, so a ``--resume`` would keep only the epochs
run after it: a replication that takes several sessions would lose the first ones' curve. :func:`rows_before_resume`
copies the file aside before the run (a crash before the rows are written back leaves the copy, which the next resume
reads) and :class:`KeepHistory` writes its rows back, less those the resumed run will make again."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import lightning as L

from envsound.fileio import atomic_path, launched_rank

__all__ = ["KeepHistory", "BEFORE_RESUME", "logged_rows", "rows_before_resume"]

BEFORE_RESUME = "metrics.before-resume.csv"


def logged_rows(metrics_csv: Path) -> list[dict[str, str]]:
    """The rows of a ``CSVLogger`` file, each without its empty cells; [] when there is none or it cannot be read."""
    try:
        with metrics_csv.open(newline="") as file:
            return [{k: v for k, v in row.items() if k and v not in ("", None)} for row in csv.DictReader(file)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def rows_before_resume(log_dir: Path) -> tuple[list[dict[str, str]], Path]:
    """The rows logged in ``log_dir`` before this resume, and the copy they were read from (:data:`BEFORE_RESUME`,
    made from ``metrics.csv`` by process 0 unless an interrupted resume left one)."""
    backup = log_dir / BEFORE_RESUME
    metrics = log_dir / "metrics.csv"
    if launched_rank() == 0 and not backup.exists() and metrics.exists():
        with atomic_path(backup) as tmp:
            shutil.copyfile(metrics, tmp)
    return logged_rows(backup), backup


class KeepHistory(L.Callback):
    """Writes the rows logged before a resume back into the logger, once the checkpoint is restored: those of the
    optimizer steps it holds (``step`` < the restored global step), ahead of the rows the run logs from there on;
    then removes the copy they came from."""

    def __init__(self, rows: list[dict[str, str]], backup: Path) -> None:
        self.rows, self.backup = rows, backup

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.logger is None:
            return
        writer = trainer.logger.experiment  # the writer, which has deleted the old file by now
        kept = [row for row in self.rows if _step(row) < trainer.global_step]
        if kept:
            writer.metrics = [*kept, *writer.metrics]
            writer.save()
        self.backup.unlink(missing_ok=True)
        self.rows = []


def _step(row: dict[str, str]) -> float:
    try:
        return float(row["step"])
    except (KeyError, ValueError):
        return float("inf")  # not a row this logger wrote: left out
