"""One ESC-10 cross-validation over folds 1-4 as a subprocess, shared by the experiment scripts beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def esc10_cv(target: Path, root: Path, options: list[str]) -> dict:
    """``envsound cv --dataset esc10 --root ROOT --folds 1,2,3,4 --out TARGET -q --resume`` plus ``options``
    (e.g. ``["--model", "dtu", "--set", "train.lr=0.01"]``); returns ``TARGET/cv.json``. A target whose ``cv.json``
    exists is not rerun (delete it to rerun)."""
    if not (target / "cv.json").exists():
        command = [sys.executable, "-m", "envsound.cli.main", "cv", "--dataset", "esc10", "--root", str(root),
                   "--folds", "1,2,3,4", "--out", str(target), "-q", "--resume", *options]
        subprocess.run(command, check=True)
    return json.loads((target / "cv.json").read_text())


def result_cells(summary: dict) -> str:
    """``mean ± std % | fold accuracies | minutes`` of a ``cv.json`` summary, as Markdown table cells."""
    folds = " / ".join(f"{f['accuracy'] * 100:.1f}" for f in summary["folds"])
    return (f"{summary['mean_accuracy'] * 100:.1f} ± {summary['std_accuracy'] * 100:.1f} % | {folds} "
            f"| {summary['seconds'] / 60:.1f}")
