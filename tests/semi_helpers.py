"""A tiny ESC-50-like root built from the synthetic generator (real WAV files), for the semi-supervised tests."""

from __future__ import annotations

import csv
from pathlib import Path

from envsound.data.synthetic import CLASSES, generate_synthetic, prepare_synthetic

ESC10_CLASSES = 5  # the first five synthetic classes play ESC-10; all ten are the "ESC-50"


def make_tiny_esc50(root: Path, *, n_folds: int = 4, clips: int = 2, seconds: float = 1.5) -> Path:
    """``root/meta/esc50.csv`` + ``root/audio/*.wav``: 10 classes x ``n_folds`` folds x ``clips`` clips.

    Clips 0 and 1 of one class and fold share a source recording (``src_file``), so grouping is exercised.
    """
    generate_synthetic(root, clips_per_class_per_fold=clips, n_folds=n_folds, seconds=seconds, seed=11)
    manifest = prepare_synthetic(root)
    rows = []
    for record in manifest.records:
        target = CLASSES.index(record.label)
        index = int(record.path.stem.rsplit("-", 1)[1])
        rows.append([record.path.name, record.fold, target, record.label, target < ESC10_CLASSES,
                     f"{record.fold}{target:02d}{index // 2}", "A"])
    (root / "meta").mkdir(exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root
