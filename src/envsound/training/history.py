"""A resumed run keeps the training curve it logged before the interruption.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its writer starts, so a ``--resume`` would keep only the epochs
run after it: a replication that takes several sessions would lose the first ones' curve. :class:`KeepHistory` reads
the file before the run and writes its rows back, less those the resumed run will make again."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L

__all__ = ["KeepHistory", "logged_rows"]


def logged_rows(metrics_csv: Path) -> list[dict[str, str]]:
    """The rows of a ``CSVLogger`` file, each without its empty cells; [] when there is none or it cannot be read."""
    try:
        with metrics_csv.open(newline="") as file:
            return [{k: v for k, v in row.items() if k and v not in ("", None)} for row in csv.DictReader(file)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


class KeepHistory(L.Callback):
    """Writes the rows logged before a resume back into the logger, once the checkpoint is restored: those of the
    optimizer steps it holds (``step`` < the restored global step), ahead of the rows the run logs from there on."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.logger is None or not self.rows:
            return
        writer = trainer.logger.experiment  # the writer, which has deleted the old file by now
        kept = [row for row in self.rows if _step(row) < trainer.global_step]
        writer.metrics = [*kept, *writer.metrics]
        writer.save()
        self.rows = []


def _step(row: dict[str, str]) -> float:
    try:
        return float(row["step"])
    except (KeyError, ValueError):
        return float("inf")  # not a row this logger wrote: left out
